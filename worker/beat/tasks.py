"""Beat's tasks: thin adapters over :mod:`worker.beat.maintenance` and :mod:`worker.beat.status_checks`."""

from __future__ import annotations

import dataclasses
from typing import Any

from celery import Task, shared_task

from shared import task_names
from shared.db import make_sessionmaker
from shared.outcome_publisher import publish_pending
from shared.partitions import ledger_rollups
from shared.partitions import maintenance as partition_maintenance
from shared.task_producer import publish_event_processing
from worker.beat import maintenance, status_checks
from worker.context import context
from worker.events.tasks import process_pending_events


@shared_task(bind=True, name=task_names.RELEASE_DEFERRED)
def release_deferred(self: Task) -> int:
    """Dispatch the queues of deferred rows whose time has come."""
    ctx = context(self.app)
    return maintenance.release_deferred(make_sessionmaker(ctx.engine), ctx, now=ctx.clock())


@shared_task(bind=True, name=task_names.RELEASE_SCHEDULED)
def release_scheduled(self: Task) -> int:
    """Dispatch the queues of scheduled rows whose time has come."""
    ctx = context(self.app)
    return maintenance.release_scheduled(make_sessionmaker(ctx.engine), ctx, now=ctx.clock())


@shared_task(bind=True, name=task_names.REMOVE_ATTACHMENTS)
def remove_unneeded_attachments(self: Task) -> int:
    """Remove attachment bytes no row waiting to be sent needs any more."""
    ctx = context(self.app)
    return maintenance.remove_unneeded_attachments(make_sessionmaker(ctx.engine), now=ctx.clock())


@shared_task(bind=True, name=task_names.SWEEP)
def sweep(self: Task) -> dict[str, int]:
    """Dispatch queues whose rows wait too long, and process webhook events stored but never processed."""
    ctx = context(self.app)
    factory = make_sessionmaker(ctx.engine)
    sends = maintenance.sweep(factory, ctx, now=ctx.clock())

    def enqueue_event(event_id: str) -> None:
        publish_event_processing(self.app, [event_id])

    events = process_pending_events(factory, enqueue_event, now=ctx.clock())
    return {"sends": sends, "webhook_events": events}


@shared_task(bind=True, name=task_names.RECONCILE)
def reconcile(self: Task) -> dict[str, int]:
    """Send again, or give up on, units whose outcome has been unknown for too long."""
    ctx = context(self.app)
    resent, given_up = maintenance.reconcile(make_sessionmaker(ctx.engine), ctx, now=ctx.clock())
    return {"resent": resent, "needs_attention": given_up}


@shared_task(bind=True, name=task_names.PUBLISH_OUTCOMES)
def publish_outcomes(self: Task) -> int:
    """Publish the outcome events waiting in the outbox to the queues their senders named."""
    return publish_pending(make_sessionmaker(context(self.app).engine), self.app)


@shared_task(bind=True, name=task_names.MAINTAIN_PARTITIONS)
def maintain_partitions(self: Task) -> dict[str, list[str]]:
    """Create the partitions ahead and drop those past retention (rolled up first)."""
    ctx = context(self.app)
    report = partition_maintenance.maintain(ctx.engine, ctx.settings, now=ctx.clock())
    return dataclasses.asdict(report)


#: A day of ledger at full volume takes longer to read than a send may run; still well under the
#: broker's visibility timeout, so a rollup running is never delivered a second time.
ROLL_UP_TIME_LIMIT_S = 1800


@shared_task(
    bind=True,
    name=task_names.ROLL_UP_LEDGER,
    time_limit=ROLL_UP_TIME_LIMIT_S,
    soft_time_limit=ROLL_UP_TIME_LIMIT_S - 10,
)
def roll_up_ledger(self: Task) -> list[str]:
    """Rewrite the ledger's daily rollups of the last finished days; the days rewritten."""
    ctx = context(self.app)
    return [day.isoformat() for day in ledger_rollups.roll_up_recent(ctx.engine, now=ctx.clock())]


@shared_task(bind=True, name=task_names.CHECK_CONNECTOR_STATUS)
def check_connector_status(self: Task) -> list[dict[str, Any]]:
    """Test every connector's key; record status, last check and last error."""
    ctx = context(self.app)
    outcomes = status_checks.check_connectors(
        make_sessionmaker(ctx.engine),
        ctx.resend_client,
        keyring=ctx.keyring,
        fallback_key=ctx.settings.resend_api_key,
        now=ctx.clock(),
    )
    return [
        {"connector_id": str(o.connector_id), "ok": o.ok, "error": o.error, "status": o.status}
        for o in outcomes
    ]
