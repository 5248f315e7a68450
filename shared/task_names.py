"""Celery task names: the public contract with upstream apps, the receiver and beat."""

from __future__ import annotations

from marketing_pilot_client.contract import (
    CANCEL,
    DEFAULT_QUEUE,
    OUTCOME,
    PRIORITY_SENDS_QUEUE,
    SEND_BATCH,
    SEND_EMAIL,
    SENDS_QUEUE,
)

DISPATCH = "pilot.dispatch"
PROCESS_WEBHOOK_EVENT = "pilot.process_webhook_event"
CHECK_CONNECTOR_STATUS = "pilot.check_connector_status"
RELEASE_DEFERRED = "pilot.release_deferred"
RELEASE_SCHEDULED = "pilot.release_scheduled"
REMOVE_ATTACHMENTS = "pilot.remove_unneeded_attachments"
SWEEP = "pilot.sweep"
RECONCILE = "pilot.reconcile"
RECORD_DEAD_LETTER = "pilot.record_dead_letter"
PUBLISH_OUTCOMES = "pilot.publish_outcomes"
MAINTAIN_PARTITIONS = "pilot.maintain_partitions"
ROLL_UP_LEDGER = "pilot.roll_up_ledger"

#: Queues: sends, webhook events and periodic maintenance never wait behind each other, and
#: transactional sends (with the dispatches that carry every key's queue) never wait behind bulk ones.
EVENTS_QUEUE = "pilot.events"
MAINTENANCE_QUEUE = "pilot.maintenance"
#: The order a worker takes messages in: the first queue holding one gives it. Bulk sends come last:
#: they only write rows (the dispatches send them), so their wait costs no throughput.
#: Celery's default queue comes last: a send published without ``queue=`` is consumed and handled
#: like a bulk one (its rows still carry their own class).
CONSUMED_QUEUES = (PRIORITY_SENDS_QUEUE, EVENTS_QUEUE, MAINTENANCE_QUEUE, SENDS_QUEUE, DEFAULT_QUEUE)

#: Each task's queue; a send's producer picks the priority queue for transactional ones
#: (``shared.task_producer.queue_for``).
TASK_QUEUES = {
    SEND_EMAIL: SENDS_QUEUE,
    SEND_BATCH: SENDS_QUEUE,
    DISPATCH: PRIORITY_SENDS_QUEUE,
    PROCESS_WEBHOOK_EVENT: EVENTS_QUEUE,
    CHECK_CONNECTOR_STATUS: MAINTENANCE_QUEUE,
    RELEASE_DEFERRED: MAINTENANCE_QUEUE,
    # Scheduled mail leaves within seconds of its time, and a cancel lands before it: neither waits
    # behind webhook events or housekeeping.
    RELEASE_SCHEDULED: PRIORITY_SENDS_QUEUE,
    CANCEL: PRIORITY_SENDS_QUEUE,
    REMOVE_ATTACHMENTS: MAINTENANCE_QUEUE,
    SWEEP: MAINTENANCE_QUEUE,
    RECONCILE: MAINTENANCE_QUEUE,
    RECORD_DEAD_LETTER: MAINTENANCE_QUEUE,
    PUBLISH_OUTCOMES: MAINTENANCE_QUEUE,
    MAINTAIN_PARTITIONS: MAINTENANCE_QUEUE,
    ROLL_UP_LEDGER: MAINTENANCE_QUEUE,
}

__all__ = [
    "CANCEL",
    "CHECK_CONNECTOR_STATUS",
    "CONSUMED_QUEUES",
    "DEFAULT_QUEUE",
    "DISPATCH",
    "EVENTS_QUEUE",
    "MAINTAIN_PARTITIONS",
    "MAINTENANCE_QUEUE",
    "OUTCOME",
    "PRIORITY_SENDS_QUEUE",
    "PROCESS_WEBHOOK_EVENT",
    "PUBLISH_OUTCOMES",
    "RECONCILE",
    "RECORD_DEAD_LETTER",
    "RELEASE_DEFERRED",
    "ROLL_UP_LEDGER",
    "SENDS_QUEUE",
    "SEND_BATCH",
    "SEND_EMAIL",
    "SWEEP",
    "TASK_QUEUES",
]
