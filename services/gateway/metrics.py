"""Gateway metrics (prometheus-client), low-cardinality labels only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import MS_BUCKETS

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
