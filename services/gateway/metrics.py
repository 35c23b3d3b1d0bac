"""Gateway metrics (prometheus-client), low-cardinality labels only.

Requests are measured by prometheus-fastapi-instrumentator's middleware
(:func:`add_request_metrics`), which reports each request to
:func:`record_request`: our own counter and histogram keep the names and
labels the Grafana dashboard queries (the library's defaults would be
``http_requests_total{handler,status}``).
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram
from prometheus_fastapi_instrumentator.metrics import Info
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware

from services.common.infra.metrics import MS_BUCKETS

HTTP_REQUESTS = Counter(
    "owc_gateway_http_requests_total",
    "HTTP requests by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "owc_gateway_http_request_seconds",
    "Time to answer an HTTP request (streams excluded), by route template.",
    ["route"],
    buckets=MS_BUCKETS,
)
SSE_CLIENTS = Gauge("owc_gateway_sse_clients", "Connected SSE clients (all channels).")
SSE_READERS = Gauge("owc_gateway_sse_readers", "Running event-log reader tasks (one per channel with clients).")
SSE_EVENTS = Counter("owc_gateway_sse_events_total", "Event-log entries fanned out to SSE clients.")
SSE_DROPPED = Counter(
    "owc_gateway_sse_dropped_clients_total", "SSE clients disconnected because they fell too far behind."
)
COMMANDS = Counter(
    "owc_gateway_commands_total",
    "Commands sent to the state service, by type and result (ok|rejected|invalid|expired|timeout|error).",
    ["type", "result"],
)
COMMAND_SECONDS = Histogram(
    "owc_gateway_command_seconds", "Time from sending a command to its reply.", buckets=MS_BUCKETS
)


def record_request(info: Info) -> None:
    """Count a request by route template (not raw path: low cardinality) and status; time it unless
    it is a stream."""
    scope = info.request.scope
    # Set by the router: a request the guard refused, or that no route takes, never reached one.
    route = scope.get("route")
    template = getattr(route, "path", None) or ("static" if scope["path"].startswith("/static/") else "other")
    HTTP_REQUESTS.labels(template, info.method, info.modified_status).inc()
    streaming = info.response is not None and info.response.headers.get("content-type", "").startswith(
        "text/event-stream"
    )
    if not streaming:
        HTTP_SECONDS.labels(template).observe(info.modified_duration)


def add_request_metrics(app: FastAPI) -> None:
    """Measure every HTTP request (status codes as they are, not grouped as ``2xx``)."""
    app.add_middleware(
        PrometheusInstrumentatorMiddleware, should_group_status_codes=False, instrumentations=[record_request]
    )
