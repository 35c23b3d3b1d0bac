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

from collections.abc import Sequence
from typing import Any

from services.common.contracts.streamids import parse_id
from tools.bench.report import percentile

HOPS = ("confirm_wait", "capture", "queue", "inference", "state", "sse")
ONSET_HOPS = ("capture", "queue", "inference")


def _id_ms(entry_id: bytes | str) -> int:
    return parse_id(entry_id)[0]


def onset_seq(trigger_seq: int, starts: Sequence[int]) -> int:
    """The first banner frame's seq for a trigger frame (the replay's frame ``i`` is seq ``i+1``)."""
    idx = trigger_seq - 1
    return max((s for s in starts if s <= idx), default=idx) + 1


def per_detection(info: dict[str, Any], arrivals: list[dict[str, Any]], starts: Sequence[int]) -> list[dict[str, Any]]:
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
    except redis.RedisError:
        return []
    finally:
        client.close()
    return hop_rows(frames, labels, arrivals, starts)


def hop_rows(
    frames: dict[int, tuple[int, int]], labels: dict[int, tuple[int, float]], arrivals: list[dict[str, Any]],
    starts: Sequence[int],
) -> list[dict[str, Any]]:
    """The hop times of each detection (pure): ``frames`` seq -> (captured_at, XADD ms), ``labels`` seq ->
    (XADD ms, infer_ms), ``arrivals`` the browser's ``{"t": ms, "event": {...}}``."""
    rows = []
    for arrival in arrivals:
        event = arrival["event"]
        seq = event.get("frame_seq")
        if seq is None or seq not in frames or seq not in labels:
            continue
        onset = onset_seq(seq, starts)
        if onset not in frames:
            continue
        captured, xadd = frames[seq]
        label_ms, infer_ms = labels[seq]
        row = {
            "confirm_wait": captured - frames[onset][0],
            "capture": xadd - captured,
            "queue": label_ms - infer_ms - xadd,
            "inference": infer_ms,
            "state": event["ts"] - label_ms,
            "sse": arrival["t"] - event["ts"],
            "total": arrival["t"] - frames[onset][0],
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
