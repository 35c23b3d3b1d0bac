"""Prometheus metrics of the inference workers (``owc_inference_…``)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from services.common.infra.metrics import MS_BUCKETS

FRAMES = Counter(
    "owc_inference_frames_processed_total",
    "Frames classified (a label was published for them).",
)
DROPPED = Counter(
    "owc_inference_frames_dropped_total",
    "Frames acked without a model verdict: stale (older than max_frame_age_ms), "
    "poison (malformed or undecodable; an error label is published when possible), "
    "dead_letter (moved to the DLQ).",
    ["reason"],
)
LABELS = Counter(
    "owc_inference_labels_total",
    "Labels published, by class.",
    ["label"],
)
STAGE_SECONDS = Histogram(
    "owc_inference_stage_seconds",
    "Per-frame time of each stage: decode, preprocess, model (the gate runs per batch; "
    "each frame observes its share), reader (the text recogniser, on the gate's candidates only).",
    ["stage"],
    buckets=MS_BUCKETS,
)
BATCH_SIZE = Histogram(
    "owc_inference_batch_size_frames",
    "Frames per batch read from the stream.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
CANDIDATES = Counter(
    "owc_inference_candidates_total",
    "Frames the gate passed to the reader.",
)
NEAR_MISSES = Counter(
    "owc_inference_near_misses_total",
    "Frames where the reader saw an outcome word but not clearly enough to count it.",
    ["outcome"],
)
READS = Counter(
    "owc_inference_reads_total",
    "Frames the reader looked at, by why (gate, settle, every, follow) and how (full, reused)",
    ["why", "how"],
)
LIST_CHECKS = Counter(
    "owc_inference_list_checks_total", "List checks by how (full, reused)", ["how"],
)
LAG = Gauge(
    "owc_inference_consumer_lag_frames",
    "Frames in owc:frames not yet delivered to the inference group (counted after its last-delivered-id up to "
    "64, then XINFO GROUPS lag bounded by the stream length).",
)
PENDING = Gauge(
    "owc_inference_consumer_pending_frames",
    "Frames delivered to the inference group but not acked yet (XINFO GROUPS pending).",
)

# children looked up once: .labels() on every frame costs more than the observation
DROPPED_STALE = DROPPED.labels("stale")
DROPPED_POISON = DROPPED.labels("poison")
DROPPED_DEAD_LETTER = DROPPED.labels("dead_letter")
LABELS_BY_CLASS = {name: LABELS.labels(name) for name in ("none", "victory", "defeat", "draw", "error")}
DECODE_SECONDS = STAGE_SECONDS.labels("decode")
PREPROCESS_SECONDS = STAGE_SECONDS.labels("preprocess")
MODEL_SECONDS = STAGE_SECONDS.labels("model")
READER_SECONDS = STAGE_SECONDS.labels("reader")


def observe_reading(pred: Any) -> None:
    """The reader's share of one frame's prediction: candidates, readings (why, fresh or reused), list
    checks, its time, near misses."""
    reader = pred.stages.get("reader")
    if reader is None:
        return
    why = str(pred.stages.get("reader_why", "gate"))
    if why == "gate":
        CANDIDATES.inc()
    reused = bool(reader.get("reused"))
    READS.labels(why, "reused" if reused else "full").inc()
    listed = pred.stages.get("list")
    if isinstance(listed, dict) and "scores" in listed:
        LIST_CHECKS.labels("reused" if listed.get("reused") else "full").inc()
    if not reused:
        READER_SECONDS.observe(float(reader["ms"]) / 1000.0)
    if pred.near_miss:
        NEAR_MISSES.labels(outcome=pred.near_miss).inc()
