"""Actions service metrics (prometheus-client), low-cardinality labels only (action names are configured)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "owc_actions_events_total", "Events read from the event logs, by result (handled|invalid).", ["result"]
)
DELIVERIES = Counter(
    "owc_actions_deliveries_total",
    "Action deliveries by action and result (ok|skipped|duplicate|retry|dead).",
    ["action", "result"],
)
DELIVERY_SECONDS = Histogram(
    "owc_actions_delivery_seconds", "Time of one successful delivery, retries included.", ["action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
DEAD_LETTERS = Gauge("owc_actions_dead_letters", "Dead letters waiting for a retry, by action.", ["action"])
CHAT_CONNECTED = Gauge("owc_actions_chat_connected", "1 while the chat bot is logged in and joined.")
CHAT_COMMANDS = Counter(
    "owc_actions_chat_commands_total",
    "Chat commands by command and result (ok|failed|ignored|limited).",
    ["command", "result"],
)
