"""State service metrics (prometheus-client), low-cardinality labels only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.infra.metrics import MS_BUCKETS

LABELS_CONSUMED = Counter(
    "owc_state_labels_consumed_total", "Labels read from the labels stream, by label.", ["label"]
)
LABELS_IGNORED = Counter(
    "owc_state_labels_ignored_total", "Labels ignored as duplicates or older than the last frame seen."
)
EVENTS = Counter(
    "owc_state_events_total", "Events appended to the event logs, by type and outcome ('' for none).",
    ["type", "outcome"],
)
COMMANDS = Counter(
    "owc_state_commands_total", "Commands handled, by type and result (ok|rejected|invalid|expired|repeat).",
    ["type", "result"],
)
PHASE = Gauge(
    "owc_state_phase", "1 for the phase each channel is in, 0 for the others.", ["channel", "phase"]
)
LABELS_SUSPECT = Counter(
    "owc_state_labels_suspect_total",
    "Labels ignored because their seq is ahead of anything capture allocated for the channel "
    "(or far ahead of the next seq with nothing backing it up): written by hand or by another tool.",
)
REORDER_SKIPS = Counter(
    "owc_state_reorder_skipped_total", "Frame seq numbers skipped after waiting the reorder window."
)
DEAD_LETTERS = Counter(
    "owc_state_dead_letters_total", "Entries moved to a dead-letter stream, by stream.", ["stream"]
)
LEASE_HOLDER = Gauge("owc_state_lease_holder", "1 while this instance holds the single-writer lease.")
LEASE_CHANGES = Counter(
    "owc_state_lease_changes_total", "Times this instance took (acquired) or lost the lease.", ["change"]
)
COMMIT_SECONDS = Histogram(
    "owc_state_commit_seconds", "Time of one MULTI/EXEC commit (events, snapshot, acks).", buckets=MS_BUCKETS
)
CONFLICTS = Counter(
    "owc_state_commit_conflicts_total", "Commits refused because another writer changed the channel."
)
