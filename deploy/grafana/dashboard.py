#!/usr/bin/env python3
"""Generate deploy/grafana/dashboards/owc.json (dashboard as code; standard library only).

    python3 deploy/grafana/dashboard.py > deploy/grafana/dashboards/owc.json

Edit the panels here, not in the JSON: tests/integration/test_deploy.py checks that
the committed JSON is this script's output, that every metric it queries is exported
by the running services, and (tests/integration/test_prometheus_live.py) that every
query runs on a real Prometheus. Provisioned dashboards are read-only in Grafana.
"""

from __future__ import annotations

import json
import sys
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "owc-prometheus"}  # deploy/grafana/provisioning/datasources
RI = "$__rate_interval"


class Layout:
    """Places panels left to right on Grafana's 24-column grid, rows top to bottom."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {"type": "row", "id": self._id(), "title": title, "collapsed": False,
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []}
        )
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def targets(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def timeseries(title: str, description: str, tgts: list[dict[str, Any]], unit: str = "short",
               stack: bool = False, bars: bool = False, min_zero: bool = True) -> dict[str, Any]:
    custom: dict[str, Any] = {"drawStyle": "bars" if bars else "line", "lineWidth": 1,
                              "fillOpacity": 60 if bars else (25 if stack else 10),
                              "showPoints": "never", "spanNulls": True}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    defaults: dict[str, Any] = {"unit": unit, "custom": custom}
    if min_zero:
        defaults["min"] = 0
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DATASOURCE,
        "targets": tgts, "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def stat(title: str, description: str, tgts: list[dict[str, Any]], unit: str = "short",
         mappings: list[dict[str, Any]] | None = None, thresholds: list[dict[str, Any]] | None = None,
         text_mode: str = "auto", decimals: int | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit, "mappings": mappings or [], "color": {"mode": "thresholds"},
        "thresholds": {"mode": "absolute", "steps": thresholds or [{"color": "green", "value": None}]},
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    for t in tgts:  # a stat shows one number: ask Prometheus for the instant value only
        t["instant"] = True
        t["range"] = False
    return {
        "type": "stat", "title": title, "description": description, "datasource": DATASOURCE,
        "targets": tgts, "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "none", "textMode": text_mode,
                    "justifyMode": "auto", "orientation": "auto"},
    }


def quantiles(metric: str, by: str = "", legend: str = "", qs: tuple[float, ...] = (0.5, 0.99),
              matcher: str = "") -> list[dict[str, Any]]:
    group = f"{by}, le" if by else "le"
    pairs = []
    for q in qs:
        name = f"p{round(q * 100)}"
        expr = f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{matcher}[{RI}])))"
        pairs.append((expr, f"{legend} {name}".strip() if legend else name))
    return targets(*pairs)


def build() -> dict[str, Any]:
    g = Layout()

    # ---- overview -----------------------------------------------------------------------
    g.row("Overview")
    g.add(stat("Frames captured /s", "Frames published to the frames stream by every capture.",
               targets((f"sum(rate(owc_capture_frames_published_total[{RI}]))", "captured")),
               unit="short", decimals=1), 4, 4)
    g.add(stat("Frames classified /s", "Frames labelled by all inference workers together.",
               targets((f"sum(rate(owc_inference_frames_processed_total[{RI}]))", "classified")),
               unit="short", decimals=1), 4, 4)
    g.add(stat("OBS", "1 while every capture is connected and identified with OBS (a replay shows 0).",
               targets(("min(owc_capture_obs_connected)", "OBS")),
               mappings=[{"type": "value", "options": {
                   "0": {"text": "disconnected", "color": "red", "index": 0},
                   "1": {"text": "connected", "color": "green", "index": 1}}}]), 4, 4)
    g.add(stat("Targets up", "Scraped services that answer, per job (inference: one per replica).",
               targets(('sum by (job) (up{job=~"capture|inference|state|gateway"})', "{{job}}")),
               thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}]), 4, 4)
    g.add(stat("SSE clients", "Overlays and admin pages connected to the gateway's event stream.",
               targets(("sum(owc_gateway_sse_clients)", "clients"))), 4, 4)
    g.add(stat("State writer", "State instances holding the single-writer lease: exactly 1 is healthy.",
               targets(("sum(owc_state_lease_holder)", "lease holders")),
               thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1},
                           {"color": "red", "value": 2}]), 4, 4)

    # ---- capture ------------------------------------------------------------------------
    g.row("Capture")
    g.add(timeseries("Frames per second", "Captured (by source), classified, and capture slots skipped (by reason).",
                     targets((f"sum by (source) (rate(owc_capture_frames_published_total[{RI}]))",
                              "captured {{source}}"),
                             (f"sum(rate(owc_inference_frames_processed_total[{RI}]))", "classified"),
                             (f"sum by (reason) (rate(owc_capture_frames_skipped_total[{RI}]))",
                              "skipped {{reason}}")),
                     unit="short"), 8, 8)
    g.add(timeseries("OBS round trip", "GetSourceScreenshot request to reply (replay: re-encoding time).",
                     quantiles("owc_capture_screenshot_seconds"), unit="s"), 8, 8)
    g.add(timeseries("Frame size", "Encoded size of the published frames.",
                     quantiles("owc_capture_frame_bytes"), unit="bytes"), 8, 8)

    # ---- inference ----------------------------------------------------------------------
    g.row("Inference")
    g.add(timeseries("Inference seconds per stage", "Per-frame time of decode, preprocess and model (p50, p99).",
                     quantiles("owc_inference_stage_seconds", by="stage", legend="{{stage}}"), unit="s"), 12, 8)
    g.add(timeseries("Frames per worker", "Frames classified per second by each inference replica.",
                     targets((f"sum by (instance) (rate(owc_inference_frames_processed_total[{RI}]))",
                              "{{instance}}")), unit="short", stack=True), 12, 8)
    g.add(timeseries("Consumer lag", "Frames waiting for the inference group (lag: not delivered yet; pending: "
                     "delivered, not acked) and the backlog capture last measured.",
                     targets(("max(owc_inference_consumer_lag_frames)", "lag"),
                             ("max(owc_inference_consumer_pending_frames)", "pending"),
                             ("max(owc_capture_inference_backlog_frames)", "backlog seen by capture")),
                     unit="short"), 8, 8)
    g.add(timeseries("Dropped frames", "Frames dropped by inference (stale, poison, dead letter) and capture slots "
                     "skipped because inference was behind.",
                     targets((f"sum by (reason) (rate(owc_inference_frames_dropped_total[{RI}]))",
                              "inference {{reason}}"),
                             (f'sum(rate(owc_capture_frames_skipped_total{{reason="backpressure"}}[{RI}]))',
                              "capture backpressure")),
                     unit="short"), 8, 8)
    g.add(timeseries("Labels by class", "Labels published by inference, per class.",
                     targets((f"sum by (label) (rate(owc_inference_labels_total[{RI}]))", "{{label}}")),
                     unit="short", stack=True), 8, 8)

    # ---- state --------------------------------------------------------------------------
    g.row("Counting (state)")
    g.add(stat("Phase", "Current phase of the counting machine, per channel.",
               [target('max by (channel, phase) (owc_state_phase{channel=~"$channel"}) == 1',
                       "{{channel}}: {{phase}}", instant=True)], text_mode="name"), 6, 6)
    g.add(timeseries("Detections and events", "Events appended to the event log per outcome and type "
                     "(detected = counted automatically).",
                     targets((f"sum by (type, outcome) (increase(owc_state_events_total[{RI}]))",
                              "{{type}} {{outcome}}")), unit="short", bars=True, stack=True), 9, 6)
    g.add(stat("Detections in range", "Matches counted automatically in the selected time range, per outcome.",
               targets(('sum by (outcome) (increase(owc_state_events_total{type="detected"}[$__range]))',
                        "{{outcome}}")), decimals=0), 9, 6)
    g.add(timeseries("Phase over time", "1 while the channel is in the phase.",
                     targets(('max by (channel, phase) (owc_state_phase{channel=~"$channel"})',
                              "{{channel}} {{phase}}")), unit="short"), 6, 8)
    g.add(timeseries("Labels consumed", "Labels read by the state service, by class; ignored duplicates and seq "
                     "numbers skipped after the reorder window.",
                     targets((f"sum by (label) (rate(owc_state_labels_consumed_total[{RI}]))", "{{label}}"),
                             (f"sum(rate(owc_state_labels_ignored_total[{RI}]))", "ignored (duplicate/old)"),
                             (f"sum(rate(owc_state_reorder_skipped_total[{RI}]))", "reorder skipped")),
                     unit="short"), 6, 8)
    g.add(timeseries("Commands handled", "Admin commands handled by the state service, by type and result.",
                     targets((f"sum by (type, result) (rate(owc_state_commands_total[{RI}]))",
                              "{{type}} {{result}}")), unit="short", stack=True), 6, 8)
    g.add(timeseries("Commit time", "One MULTI/EXEC commit: events, snapshot and acks together (p50, p99).",
                     quantiles("owc_state_commit_seconds"), unit="s"), 6, 8)

    # ---- gateway ------------------------------------------------------------------------
    g.row("Gateway")
    g.add(timeseries("HTTP requests", "Requests per second by status code.",
                     targets((f"sum by (status) (rate(owc_gateway_http_requests_total[{RI}]))", "{{status}}")),
                     unit="reqps", stack=True), 8, 8)
    g.add(timeseries("HTTP latency", "Time to answer a request, by route (p50, p99; event streams excluded).",
                     quantiles("owc_gateway_http_request_seconds", by="route", legend="{{route}}"), unit="s"), 8, 8)
    g.add(timeseries("SSE", "Connected SSE clients, channel readers, events fanned out per second, clients "
                     "dropped for falling behind.",
                     targets(("sum(owc_gateway_sse_clients)", "clients"),
                             ("sum(owc_gateway_sse_readers)", "readers"),
                             (f"sum(rate(owc_gateway_sse_events_total[{RI}]))", "events/s"),
                             (f"sum(rate(owc_gateway_sse_dropped_clients_total[{RI}]))", "dropped/s")),
                     unit="short"), 8, 8)
    g.add(timeseries("Command round trip",
                     "From the gateway sending a command to the state service's reply (p50, p99).",
                     quantiles("owc_gateway_command_seconds"), unit="s"), 12, 8)
    g.add(timeseries("Commands by result", "Commands the gateway sent, by type and result.",
                     targets((f"sum by (type, result) (rate(owc_gateway_commands_total[{RI}]))",
                              "{{type}} {{result}}")), unit="short", stack=True), 12, 8)

    # ---- errors -------------------------------------------------------------------------
    g.row("Errors")
    g.add(timeseries("Errors per second", "Everything that went wrong, by service and kind.",
                     targets((f"sum by (kind) (rate(owc_capture_errors_total[{RI}]))", "capture {{kind}}"),
                             ("sum by (reason) (rate(owc_inference_frames_dropped_total"
                              f'{{reason=~"poison|dead_letter"}}[{RI}]))', "inference {{reason}}"),
                             (f"sum by (stream) (rate(owc_state_dead_letters_total[{RI}]))",
                              "state dead letter {{stream}}"),
                             (f"sum(rate(owc_state_commit_conflicts_total[{RI}]))", "state commit conflicts"),
                             (f'sum(rate(owc_gateway_http_requests_total{{status=~"5.."}}[{RI}]))', "gateway 5xx"),
                             (f'sum by (result) (rate(owc_gateway_commands_total{{result=~"timeout|error"}}[{RI}]))',
                              "gateway command {{result}}")),
                     unit="short"), 16, 8)
    g.add(timeseries("Lease changes", "State instances taking or losing the single-writer lease.",
                     targets((f"sum by (change) (increase(owc_state_lease_changes_total[{RI}]))", "{{change}}")),
                     unit="short", bars=True), 8, 8)

    return {
        "uid": "owc-overview",
        "title": "OW Victory Counter",
        "description": "Capture, inference, counting and the gateway of the OW Victory Counter stack.",
        "tags": ["owc"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [{
            "name": "channel", "label": "Channel", "type": "query", "datasource": DATASOURCE,
            "definition": "label_values(owc_state_phase, channel)",
            "query": "label_values(owc_state_phase, channel)",
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*", "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        }]},
        "panels": g.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
