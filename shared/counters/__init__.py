"""A task's figures (its ledger rows by status, its delivery figures), kept as rows and events are
written, and rebuilt from scratch by :mod:`shared.counters.recount`."""
