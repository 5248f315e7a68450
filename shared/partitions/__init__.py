"""Time-partitioned tables and their retention: which tables, at what grain (:mod:`.tables`), and the
beat job that creates partitions ahead and drops them once past retention (:mod:`.maintenance`); the
daily totals kept after the rows go (:mod:`.rollups` for metrics, :mod:`.ledger_rollups` for the
ledger). Layout and reasons: docs/architecture.md, "Data lifecycle"."""
