"""Time-partitioned tables and their retention: which tables, at what grain (:mod:`.tables`), and the
beat job that creates partitions ahead and drops them once past retention (:mod:`.maintenance`).
Layout and reasons: docs/architecture.md, "Data lifecycle"."""
