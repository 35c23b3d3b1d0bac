"""Prometheus metrics of the capture service (``owc_capture_…``).

Built per process (or per test) on a registry, so tests can use a private
:class:`~prometheus_client.CollectorRegistry` and assert exact values.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from services.common.infra.metrics import MS_BUCKETS

# encoded frame sizes: 640x360 JPEG is ~30-60 KB, a 1080p PNG ~3 MB
BYTES_BUCKETS = (
    4_096, 16_384, 32_768, 65_536, 131_072, 262_144, 524_288, 1_048_576, 2_097_152, 4_194_304, 8_388_608,
)

SKIP_REASONS = ("obs_slow", "backpressure", "error")
ERROR_KINDS = (
    "connect",
    "auth",
    "kicked",
    "closed",
    "source_missing",
    "not_video",
    "render_failed",
    "request",
    "timeout",
    "decode",
    "redis",
    "replay",
)


class CaptureMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self.frames_published = Counter(
            "owc_capture_frames_published_total",
            "Frames published to the frames stream.",
            ["source"],
            registry=reg,
        )
        self.frames_skipped = Counter(
            "owc_capture_frames_skipped_total",
            "Capture slots skipped, by reason (obs_slow: OBS slower than the interval; "
            "backpressure: inference is behind; error: the request failed).",
            ["reason"],
            registry=reg,
        )
        self.screenshot_seconds = Histogram(
            "owc_capture_screenshot_seconds",
            "GetSourceScreenshot round trip (replay: re-encoding time).",
            buckets=MS_BUCKETS,
            registry=reg,
        )
        self.frame_bytes = Histogram(
            "owc_capture_frame_bytes",
            "Encoded size of published frames.",
            buckets=BYTES_BUCKETS,
            registry=reg,
        )
        self.obs_connected = Gauge(
            "owc_capture_obs_connected", "1 while connected and identified with OBS.", registry=reg
        )
        self.errors = Counter(
            "owc_capture_errors_total", "Errors, by kind.", ["kind"], registry=reg
        )
        self.replay_paused_seconds = Counter(
            "owc_capture_replay_paused_seconds_total",
            "Time a replay waited for inference to catch up (back-pressure).",
            registry=reg,
        )
        self.bursts = Counter(
            "owc_capture_bursts_total",
            "Frames taken early because inference saw a candidate (burst confirmation; each one is the "
            "next slot taken early, never an extra frame).",
            registry=reg,
        )
        self.backlog = Gauge(
            "owc_capture_inference_backlog_frames",
            "Last measured inference backlog on the frames stream (lag + pending).",
            registry=reg,
        )
        for reason in SKIP_REASONS:
            self.frames_skipped.labels(reason)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
