"""Beat's periodic work: release deferred rows, sweep stalled queues, reconcile unknown outcomes,
check connector keys."""
