#!/usr/bin/env python3
"""Generate deploy/grafana/dashboards/owc.json with Grafana's Foundation SDK (dashboard as code).

    .venv/bin/python deploy/grafana/dashboard.py > deploy/grafana/dashboards/owc.json

(``grafana-foundation-sdk`` is in the dev extra, pinned in constraints.txt to the
build for the Grafana version compose.yaml runs.) Edit the panels here, not in the
JSON: tests/integration/test_deploy.py checks that the committed JSON is this
script's output and that it loads into the SDK's typed ``Dashboard`` model, that
every metric it queries is exported by the running services, and
(tests/integration/test_prometheus_live.py) that every query runs on a real
Prometheus. Provisioned dashboards are read-only in Grafana.

Rows: *Streamer* (results over time, detections, false-positive undos) first, then
the operations rows (overview, capture, inference, counting, gateway, errors).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="owc-prometheus")  # deploy/grafana/provisioning
RI = "$__rate_interval"


class Layout:
    """Numbers panels and places them left to right on Grafana's 24-column grid, rows top to bottom."""

    def __init__(self, dash: db.Dashboard) -> None:
        self.dash = dash
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.dash.with_row(db.Row(title).id(self._id()).collapsed(False).grid_pos(dm.GridPos(h=1, w=24, x=0, y=self.y)))
        self.y += 1

    def add(self, panel: timeseries.Panel | stat.Panel, w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        self.dash.with_panel(panel.id(self._id()).grid_pos(dm.GridPos(h=h, w=w, x=self.x, y=self.y)))
        self.x += w
        self.row_h = max(self.row_h, h)


def query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(DATASOURCE)
    return q.instant() if instant else q


def queries(*pairs: tuple[str, str], instant: bool = False) -> list[prometheus.Dataquery]:
    return [query(expr, legend, chr(ord("A") + i), instant) for i, (expr, legend) in enumerate(pairs)]


def series(title: str, description: str, targets: list[prometheus.Dataquery], unit: str = "short",
           stack: bool = False, bars: bool = False) -> timeseries.Panel:
    panel = (
        timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
        .targets(list(targets)).unit(unit).min(0)
        .draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
        .line_width(1).fill_opacity(60 if bars else (25 if stack else 10))
        .show_points(common.VisibilityMode.NEVER).span_nulls(True)
        .legend(cb.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM).show_legend(True))
        .tooltip(cb.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING))
    )
    if stack:
        panel = panel.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
    return panel


def single(title: str, description: str, targets: list[prometheus.Dataquery], unit: str = "short",
           mappings: list[dm.ValueMapping] | None = None, steps: list[dm.Threshold] | None = None,
           text_mode: common.BigValueTextMode = common.BigValueTextMode.AUTO,
           decimals: int | None = None) -> stat.Panel:
    """A stat: one number per series, so its queries ask Prometheus for the instant value only."""
    panel = (
        stat.Panel().title(title).description(description).datasource(DATASOURCE)
        .targets([t.instant() for t in targets]).unit(unit).mappings(mappings or [])
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
                    .steps(steps or [dm.Threshold(value=None, color="green")]))
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .color_mode(common.BigValueColorMode.VALUE).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(text_mode).justify_mode(common.BigValueJustifyMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
    )
    return panel.decimals(decimals) if decimals is not None else panel


def quantiles(metric: str, by: str = "", legend: str = "", qs: tuple[float, ...] = (0.5, 0.99),
              matcher: str = "") -> list[prometheus.Dataquery]:
    group = f"{by}, le" if by else "le"
    pairs = []
    for q in qs:
        name = f"p{round(q * 100)}"
        expr = f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{matcher}[{RI}])))"
        pairs.append((expr, f"{legend} {name}".strip() if legend else name))
    return queries(*pairs)


def value_map(options: dict[str, tuple[str, str]]) -> list[dm.ValueMapping]:
    return [dm.ValueMap(options={
        value: dm.ValueMappingResult(text=text, color=color, index=i)
        for i, (value, (text, color)) in enumerate(options.items())
    })]


OUTCOMES = 'outcome=~"victory|defeat|draw"'


def streamer_row(g: Layout) -> None:
    """What a streamer asks: how did tonight go, did it see my matches, did it count something wrong."""
    g.row("Streamer")
    g.add(single("Results in range", "Matches counted automatically in the selected time range, per outcome.",
                 queries((f'sum by (outcome) (increase(owc_state_events_total{{type="detected",{OUTCOMES}}}'
                          '[$__range]))', "{{outcome}}")), decimals=0), 8, 6)
    g.add(single("False-positive undos in range",
                 "Counted results a moderator undid (a count that should not have happened), and their share "
                 "of the automatic counts.",
                 queries(('sum(increase(owc_state_events_total{type="undone"}[$__range]))', "undone"),
                         ('sum(increase(owc_state_events_total{type="undone"}[$__range])) / '
                          'clamp_min(sum(increase(owc_state_events_total{type="detected"}[$__range])), 1)',
                          "share of detections")),
                 steps=[dm.Threshold(value=None, color="green"), dm.Threshold(value=1, color="orange")],
                 decimals=0), 8, 6)
    g.add(single("Manual corrections in range", "Counts set or adjusted by hand (admin page, API, chat).",
                 queries(('sum by (type) (increase(owc_state_events_total{type=~"adjusted|set"}[$__range]))',
                          "{{type}}")), decimals=0), 8, 6)
    g.add(series("Wins, losses and draws over time", "Results counted per interval: detected automatically, "
                 "and corrections (adjusted) by outcome.",
                 queries((f'sum by (outcome) (increase(owc_state_events_total{{type="detected",{OUTCOMES}}}[{RI}]))',
                          "{{outcome}}"),
                         (f'sum by (outcome) (increase(owc_state_events_total{{type="adjusted",{OUTCOMES}}}[{RI}]))',
                          "adjusted {{outcome}}")),
                 bars=True, stack=True), 12, 8)
    g.add(series("Detections", "Frames the model labelled as a result banner (several per match: the banner "
                 "stays on screen), next to the matches counted from them and the undos.",
                 queries((f'sum by (label) (rate(owc_inference_labels_total{{label=~"victory|defeat|draw"}}[{RI}]))',
                          "banner frames {{label}}"),
                         (f'sum(increase(owc_state_events_total{{type="detected"}}[{RI}]))', "counted"),
                         (f'sum(increase(owc_state_events_total{{type="undone"}}[{RI}]))', "undone")),
                 ), 12, 8)


def operations_rows(g: Layout) -> None:
    # ---- overview -----------------------------------------------------------------------
    g.row("Overview")
    g.add(single("Frames captured /s", "Frames published to the frames stream by every capture.",
                 queries((f"sum(rate(owc_capture_frames_published_total[{RI}]))", "captured")), decimals=1), 4, 4)
    g.add(single("Frames classified /s", "Frames labelled by all inference workers together.",
                 queries((f"sum(rate(owc_inference_frames_processed_total[{RI}]))", "classified")), decimals=1), 4, 4)
    g.add(single("OBS", "1 while every capture is connected and identified with OBS (a replay shows 0).",
                 queries(("min(owc_capture_obs_connected)", "OBS")),
                 mappings=value_map({"0": ("disconnected", "red"), "1": ("connected", "green")})), 4, 4)
    g.add(single("Targets up", "Scraped services that answer, per job (inference: one per replica).",
                 queries(('sum by (job) (up{job=~"capture|inference|state|gateway"})', "{{job}}")),
                 steps=[dm.Threshold(value=None, color="red"), dm.Threshold(value=1, color="green")]), 4, 4)
    g.add(single("SSE clients", "Overlays and admin pages connected to the gateway's event stream.",
                 queries(("sum(owc_gateway_sse_clients)", "clients"))), 4, 4)
    g.add(single("State writer", "State instances holding the single-writer lease: exactly 1 is healthy.",
                 queries(("sum(owc_state_lease_holder)", "lease holders")),
                 steps=[dm.Threshold(value=None, color="red"), dm.Threshold(value=1, color="green"),
                        dm.Threshold(value=2, color="red")]), 4, 4)

    # ---- capture ------------------------------------------------------------------------
    g.row("Capture")
    g.add(series("Frames per second", "Captured (by source), classified, and capture slots skipped (by reason).",
                 queries((f"sum by (source) (rate(owc_capture_frames_published_total[{RI}]))", "captured {{source}}"),
                         (f"sum(rate(owc_inference_frames_processed_total[{RI}]))", "classified"),
                         (f"sum by (reason) (rate(owc_capture_frames_skipped_total[{RI}]))", "skipped {{reason}}"))),
          8, 8)
    g.add(series("OBS round trip", "GetSourceScreenshot request to reply (replay: re-encoding time).",
                 quantiles("owc_capture_screenshot_seconds"), unit="s"), 8, 8)
    g.add(series("Frame size", "Encoded size of the published frames.",
                 quantiles("owc_capture_frame_bytes"), unit="bytes"), 8, 8)

    # ---- inference ----------------------------------------------------------------------
    g.row("Inference")
    g.add(series("Inference seconds per stage", "Per-frame time of decode, preprocess and model (p50, p99).",
                 quantiles("owc_inference_stage_seconds", by="stage", legend="{{stage}}"), unit="s"), 12, 8)
    g.add(series("Frames per worker", "Frames classified per second by each inference replica.",
                 queries((f"sum by (instance) (rate(owc_inference_frames_processed_total[{RI}]))", "{{instance}}")),
                 stack=True), 12, 8)
    g.add(series("Consumer lag", "Frames waiting for the inference group (lag: not delivered yet; pending: "
                 "delivered, not acked) and the backlog capture last measured.",
                 queries(("max(owc_inference_consumer_lag_frames)", "lag"),
                         ("max(owc_inference_consumer_pending_frames)", "pending"),
                         ("max(owc_capture_inference_backlog_frames)", "backlog seen by capture"))), 8, 8)
    g.add(series("Dropped frames", "Frames dropped by inference (stale, poison, dead letter) and capture slots "
                 "skipped because inference was behind.",
                 queries((f"sum by (reason) (rate(owc_inference_frames_dropped_total[{RI}]))", "inference {{reason}}"),
                         (f'sum(rate(owc_capture_frames_skipped_total{{reason="backpressure"}}[{RI}]))',
                          "capture backpressure"))), 8, 8)
    g.add(series("Labels by class", "Labels published by inference, per class.",
                 queries((f"sum by (label) (rate(owc_inference_labels_total[{RI}]))", "{{label}}")), stack=True), 8, 8)

    # ---- state --------------------------------------------------------------------------
    g.row("Counting (state)")
    g.add(single("Phase", "Current phase of the counting machine, per channel.",
                 [query('max by (channel, phase) (owc_state_phase{channel=~"$channel"}) == 1',
                        "{{channel}}: {{phase}}")], text_mode=common.BigValueTextMode.NAME), 6, 6)
    g.add(series("Detections and events", "Events appended to the event log per outcome and type "
                 "(detected = counted automatically).",
                 queries((f"sum by (type, outcome) (increase(owc_state_events_total[{RI}]))", "{{type}} {{outcome}}")),
                 bars=True, stack=True), 18, 6)
    g.add(series("Phase over time", "1 while the channel is in the phase.",
                 queries(('max by (channel, phase) (owc_state_phase{channel=~"$channel"})', "{{channel}} {{phase}}"))),
          6, 8)
    g.add(series("Labels consumed", "Labels read by the state service, by class; ignored duplicates and seq "
                 "numbers skipped after the reorder window.",
                 queries((f"sum by (label) (rate(owc_state_labels_consumed_total[{RI}]))", "{{label}}"),
                         (f"sum(rate(owc_state_labels_ignored_total[{RI}]))", "ignored (duplicate/old)"),
                         (f"sum(rate(owc_state_reorder_skipped_total[{RI}]))", "reorder skipped"))), 6, 8)
    g.add(series("Commands handled", "Admin commands handled by the state service, by type and result.",
                 queries((f"sum by (type, result) (rate(owc_state_commands_total[{RI}]))", "{{type}} {{result}}")),
                 stack=True), 6, 8)
    g.add(series("Commit time", "One MULTI/EXEC commit: events, snapshot and acks together (p50, p99).",
                 quantiles("owc_state_commit_seconds"), unit="s"), 6, 8)

    # ---- gateway ------------------------------------------------------------------------
    g.row("Gateway")
    g.add(series("HTTP requests", "Requests per second by status code.",
                 queries((f"sum by (status) (rate(owc_gateway_http_requests_total[{RI}]))", "{{status}}")),
                 unit="reqps", stack=True), 8, 8)
    g.add(series("HTTP latency", "Time to answer a request, by route (p50, p99; event streams excluded).",
                 quantiles("owc_gateway_http_request_seconds", by="route", legend="{{route}}"), unit="s"), 8, 8)
    g.add(series("SSE", "Connected SSE clients, channel readers, events fanned out per second, clients "
                 "dropped for falling behind.",
                 queries(("sum(owc_gateway_sse_clients)", "clients"),
                         ("sum(owc_gateway_sse_readers)", "readers"),
                         (f"sum(rate(owc_gateway_sse_events_total[{RI}]))", "events/s"),
                         (f"sum(rate(owc_gateway_sse_dropped_clients_total[{RI}]))", "dropped/s"))), 8, 8)
    g.add(series("Command round trip", "From the gateway sending a command to the state service's reply (p50, p99).",
                 quantiles("owc_gateway_command_seconds"), unit="s"), 12, 8)
    g.add(series("Commands by result", "Commands the gateway sent, by type and result.",
                 queries((f"sum by (type, result) (rate(owc_gateway_commands_total[{RI}]))", "{{type}} {{result}}")),
                 stack=True), 12, 8)

    # ---- errors -------------------------------------------------------------------------
    g.row("Errors")
    g.add(series("Errors per second", "Everything that went wrong, by service and kind.",
                 queries((f"sum by (kind) (rate(owc_capture_errors_total[{RI}]))", "capture {{kind}}"),
                         ("sum by (reason) (rate(owc_inference_frames_dropped_total"
                          f'{{reason=~"poison|dead_letter"}}[{RI}]))', "inference {{reason}}"),
                         (f"sum by (stream) (rate(owc_state_dead_letters_total[{RI}]))",
                          "state dead letter {{stream}}"),
                         (f"sum(rate(owc_state_commit_conflicts_total[{RI}]))", "state commit conflicts"),
                         (f'sum(rate(owc_gateway_http_requests_total{{status=~"5.."}}[{RI}]))', "gateway 5xx"),
                         (f'sum by (result) (rate(owc_gateway_commands_total{{result=~"timeout|error"}}[{RI}]))',
                          "gateway command {{result}}"))), 16, 8)
    g.add(series("Lease changes", "State instances taking or losing the single-writer lease.",
                 queries((f"sum by (change) (increase(owc_state_lease_changes_total[{RI}]))", "{{change}}")),
                 bars=True), 8, 8)


def build() -> dm.Dashboard:
    dash = (
        db.Dashboard("OW Victory Counter").uid("owc-overview")
        .description("Results for the streamer, and capture, inference, counting and the gateway for operators.")
        .tags(["owc"]).readonly().tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .refresh("10s").time("now-1h", "now").timezone("browser")
        .with_variable(
            db.QueryVariable("channel").label("Channel").datasource(DATASOURCE)
            .query("label_values(owc_state_phase, channel)")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .include_all(True).multi(True).all_value(".*")
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
    )
    g = Layout(dash)
    streamer_row(g)
    operations_rows(g)
    return dash.build()


def as_json(dash: dm.Dashboard) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(dash, cls=JSONEncoder))
    return data


def render() -> str:
    return json.dumps(as_json(build()), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
