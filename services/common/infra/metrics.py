"""Prometheus helpers. Each service defines its metrics in its own ``metrics.py``."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger("owc.metrics")

# Millisecond-scale buckets (in seconds) for request/inference stage timings.
MS_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)


def serve_metrics(host: str, port: int, service: str) -> None:
    """Expose ``/metrics`` on ``host:port`` (``port == 0`` disables it)."""
    if port == 0:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise SystemExit(
            f"{service}: cannot serve metrics on {host}:{port} ({exc.strerror}); "
            f"another process uses the port: set {service}.metrics_port to a free port or 0"
        ) from None
    log.info("%s metrics on http://%s:%d/metrics", service, host, port)
