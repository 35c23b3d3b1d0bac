"""Prometheus helpers. Each service defines its metrics in its own ``metrics.py``."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger("owc.metrics")

# Millisecond-scale buckets (in seconds) for request/inference stage timings.
MS_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)

# How often the /metrics server's loop wakes by itself: only to see a shutdown() (nobody calls it: the server is a
# daemon thread that ends with its process); a request wakes it at once. prometheus_client's start_http_server
# polls every 0.5 s: two wake-ups a second in every service process of `owc run --processes`.
POLL_S = 3600.0


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Log no request (what prometheus_client's own handler does)."""


def serve_metrics(host: str, port: int, service: str) -> None:
    """Expose ``/metrics`` on ``host:port`` (``port == 0`` disables it): prometheus_client's
    ``start_http_server``, but its thread waits for requests without polling twice a second."""
    if port == 0:
        return
    try:
        # an IPv6 address binds an IPv6 socket (as prometheus_client does)
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                       flags=socket.AI_PASSIVE)[0]

        class MetricsServer(ThreadingWSGIServer):
            address_family = family

        server = make_server(str(sockaddr[0]), port, make_wsgi_app(REGISTRY), MetricsServer,
                             handler_class=_QuietHandler)
    except OSError as exc:
        raise SystemExit(
            f"{service}: cannot serve metrics on {host}:{port} ({exc.strerror}); "
            f"another process uses the port: set {service}.metrics_port to a free port or 0"
        ) from None
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_S}, name=f"{service}-metrics",
                     daemon=True).start()
    log.info("%s metrics on http://%s:%d/metrics", service, host, port)
