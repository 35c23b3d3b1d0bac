"""``owc bench e2e``'s latency budget per hop (``--burst-compare``: tools/bench/burst_compare.py).

Every timestamp is on this machine's one clock: a frame's ``captured_at``
(capture), the millisecond part of the stream ids Redis gives the frame and
its label on ``XADD``, the event's ``ts`` (state), ``Date.now()`` in the
browser. For each detection, with *onset* the first banner frame and
*trigger* the frame that completed the count:

==================  ==========================================================
``confirm_wait``    onset captured → trigger captured: the wait for the
                    confirming frame (one interval, or a burst)
``capture``         trigger captured → its ``XADD`` (screenshot/encode, publish)
``queue``           trigger ``XADD`` → the worker starts on it (label ``XADD``
                    minus ``infer_ms``)
``inference``       the trigger's ``infer_ms`` (decode, gate, reader)
``state``           label ``XADD`` → the event appended (``ts``)
``sse``             event appended → the browser's ``EventSource`` has it
==================  ==========================================================

They add up to onset → browser exactly. The onset frame's own ``capture``,
``queue`` and ``inference`` are reported beside them (they are inside
``confirm_wait`` when a burst follows them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.common.contracts.streamids import parse_id
from tools.bench.report import percentile

HOPS = ("confirm_wait", "capture", "queue", "inference", "state", "sse")
ONSET_HOPS = ("capture", "queue", "inference")


def _id_ms(entry_id: bytes | str) -> int:
    return parse_id(entry_id)[0]


@dataclass(frozen=True)
class ReplayClock:
    """Where the replay's frame ``i`` falls in time: ``start_ms + i * frame_ms`` (its progress hash's
    ``start_ms``). Frames are told apart by time, not seq: capture leaves frames out in a cooldown
    (services/capture/cooldown.py), so seq ``i+1`` is not frame ``i``."""

    start_ms: int
    frame_ms: float

    def index(self, captured_at: int) -> int:
        """The replay frame a frame taken at ``captured_at`` shows (a burst frame, stamped between two: the later)."""
        return math.ceil((captured_at - self.start_ms) / self.frame_ms - 1e-6)

    def at(self, index: int) -> int:
        return self.start_ms + round(index * self.frame_ms)


def onset_at(trigger_captured_at: int, starts: Sequence[int], clock: ReplayClock) -> int:
    """When the banner a trigger frame shows first appeared (the replay time of its first frame)."""
    idx = clock.index(trigger_captured_at)
    return clock.at(max((s for s in starts if s <= idx), default=idx))


def _frame_at(frames: dict[int, tuple[int, int]], at_ms: int) -> int | None:
    """The seq of the frame taken at ``at_ms`` (±1 ms), if it was published and is still there."""
    return next((seq for seq, (captured, _x) in frames.items() if abs(captured - at_ms) <= 1), None)


def replay_clock(client: Any, keys: Any, fps: float) -> ReplayClock | None:
    """The replay's clock from its progress hash (``owc:replay:default``), or None before it started."""
    raw = client.hget(keys.replay("default"), "start_ms")
    return None if raw is None else ReplayClock(int(raw), 1000.0 / fps)


def per_detection(
    info: dict[str, Any], arrivals: list[dict[str, Any]], starts: Sequence[int], fps: float
) -> list[dict[str, Any]]:
    """One row of hop times (ms) per detection; read from the bench stack's Redis while it still runs."""
    import redis

    from services.common.contracts.keys import Keys
    from services.common.contracts.messages import Frame, Label

    keys = Keys(info["prefix"])
    client = redis.Redis.from_url(info["redis_url"])
    try:
        frames: dict[int, tuple[int, int]] = {}  # seq -> (captured_at, XADD ms)
        frame_entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(keys.frames)  # type: ignore[assignment]
        for entry_id, fields in frame_entries:
            frame = Frame.from_fields(fields)
            frames[frame.seq] = (frame.captured_at, _id_ms(entry_id))
        labels: dict[int, tuple[int, float]] = {}  # seq -> (XADD ms, infer_ms)
        label_entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(keys.labels)  # type: ignore[assignment]
        for entry_id, fields in label_entries:
            label = Label.from_fields(fields)
            labels[label.seq] = (_id_ms(entry_id), label.infer_ms)
        clock = replay_clock(client, keys, fps)
    except redis.RedisError:
        return []
    finally:
        client.close()
    return [] if clock is None else hop_rows(frames, labels, arrivals, starts, clock)


def hop_rows(
    frames: dict[int, tuple[int, int]], labels: dict[int, tuple[int, float]], arrivals: list[dict[str, Any]],
    starts: Sequence[int], clock: ReplayClock,
) -> list[dict[str, Any]]:
    """The hop times of each detection (pure): ``frames`` seq -> (captured_at, XADD ms), ``labels`` seq ->
    (XADD ms, infer_ms), ``arrivals`` the browser's ``{"t": ms, "event": {...}}``, ``starts`` the replay frames
    where banners begin, ``clock`` the replay's."""
    rows = []
    for arrival in arrivals:
        event = arrival["event"]
        seq = event.get("frame_seq")
        if seq is None or seq not in frames or seq not in labels:
            continue
        captured, xadd = frames[seq]
        first_at = onset_at(captured, starts, clock)
        onset = _frame_at(frames, first_at)
        if onset is None:
            continue
        label_ms, infer_ms = labels[seq]
        row = {
            "confirm_wait": captured - first_at,
            "capture": xadd - captured,
            "queue": label_ms - infer_ms - xadd,
            "inference": infer_ms,
            "state": event["ts"] - label_ms,
            "sse": arrival["t"] - event["ts"],
            "total": arrival["t"] - first_at,
            "frames_after_onset": seq - onset,  # 1: the onset's own burst (or next frame) confirmed it
        }
        if onset in labels and onset != seq:
            o_captured, o_xadd = frames[onset]
            o_label, o_infer = labels[onset]
            row["onset_frame"] = {"capture": o_xadd - o_captured, "queue": o_label - o_infer - o_xadd,
                                  "inference": o_infer}
        rows.append(row)
    return rows


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1),
            "mean": round(sum(values) / len(values), 1) if values else float("nan")}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95/mean per hop, and each hop's share of the mean total."""
    if not rows:
        return {"detections": 0}
    out: dict[str, Any] = {"detections": len(rows)}
    total_mean = sum(r["total"] for r in rows) / len(rows)
    for hop in (*HOPS, "total"):
        stats = _stats([float(r[hop]) for r in rows])
        if hop != "total":
            stats["share_of_mean_total"] = round(stats["mean"] / total_mean, 3) if total_mean else float("nan")
        out[f"{hop}_ms"] = stats
    onsets = [r["onset_frame"] for r in rows if "onset_frame" in r]
    if onsets:
        out["onset_frame"] = {f"{hop}_ms": _stats([float(o[hop]) for o in onsets]) for hop in ONSET_HOPS}
    return out
