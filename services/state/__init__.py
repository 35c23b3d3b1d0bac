"""State service: the counting rules, the event log and the single-writer worker."""
