"""The Celery tasks: thin adapters that build nothing themselves and call plain functions.

Send tasks retry by re-publishing the same kwargs (``self.retry``: same task id, so the same
derived keys), only for waits of a minute or less; :mod:`worker.sending` stores longer waits in
PostgreSQL. ``max_retries=None`` because the ledger's own attempt counter caps real attempts.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from shared import task_names
from shared.db import DATABASE_UNAVAILABLE, make_sessionmaker
from shared.settings import get_settings
from worker import maintenance, metrics, sending, status_checks
from worker.context import SendContext, process_context
from worker.results import SendOutcome

#: Database unreachable or no connection free: retry through the broker with backoff (the rows, if
#: any, wait in PostgreSQL). Any other exception acks the task: a send not yet in the ledger is lost.
_SEND_OPTIONS: dict[str, Any] = {
    "bind": True,
    "max_retries": None,
    "autoretry_for": DATABASE_UNAVAILABLE,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
}
#: Countdown after a soft time limit: the rows stay open and the same task resumes them.
SOFT_LIMIT_RETRY_S = 5.0


def context() -> SendContext:
    """This process's send context (built on first use, after fork)."""
    return process_context(get_settings)


# Both take ``*args`` only to refuse them with a recorded reason (a payload given positionally would
# otherwise fail in Celery's call, before any of our code, and leave no trace).
@shared_task(name=task_names.SEND_EMAIL, **_SEND_OPTIONS)
def send_email(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Send one email (one Resend email per mailbox of ``to``, ``cc`` and ``bcc``)."""
    return _run(self, sending.send_email, args, kwargs)


@shared_task(name=task_names.SEND_BATCH, **_SEND_OPTIONS)
def send_batch(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Send many emails in ``POST /emails/batch`` calls of up to 100."""
    return _run(self, sending.send_batch, args, kwargs)


def _run(task: Task, send: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        outcome: SendOutcome = send(context(), kwargs, task_ref=task.request.id or "eager", args=args)
    except SoftTimeLimitExceeded:
        raise task.retry(countdown=SOFT_LIMIT_RETRY_S, max_retries=None) from None
    metrics.count_results(result.status for result in outcome.results)
    if outcome.retry_in is not None:
        raise task.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.as_dict()


def _publish(task: Task) -> maintenance.Publish:
    def publish(name: str, kwargs: dict[str, Any]) -> None:
        task.app.send_task(name, kwargs=kwargs)

    return publish


@shared_task(bind=True, name=task_names.RELEASE_DEFERRED)
def release_deferred(self: Task) -> int:
    """Re-enqueue deferred rows whose time has come."""
    ctx = context()
    return maintenance.release_deferred(make_sessionmaker(ctx.engine), _publish(self), now=ctx.clock())


@shared_task(bind=True, name=task_names.SWEEP)
def sweep(self: Task) -> dict[str, int]:
    """Re-enqueue sends stuck in ``queued`` and webhook events stored but never processed."""
    from worker.event_tasks import process_pending_events  # the webhook side's half of the sweep

    ctx = context()
    factory = make_sessionmaker(ctx.engine)
    sends = maintenance.sweep(factory, _publish(self), now=ctx.clock())

    def enqueue_event(event_id: str) -> None:
        self.app.send_task(task_names.PROCESS_WEBHOOK_EVENT, args=[str(event_id)])

    events = process_pending_events(factory, enqueue_event, now=ctx.clock())
    return {"sends": sends, "webhook_events": events}


@shared_task(bind=True, name=task_names.RECONCILE)
def reconcile(self: Task) -> dict[str, int]:
    """Resolve rows whose outcome has been unknown for too long."""
    ctx = context()
    resent, given_up = maintenance.reconcile(make_sessionmaker(ctx.engine), _publish(self), now=ctx.clock())
    return {"resent": resent, "needs_attention": given_up}


@shared_task(name=task_names.CHECK_CONNECTOR_STATUS)
def check_connector_status() -> list[dict[str, Any]]:
    """Test every connector's key; record status, last check and last error."""
    ctx = context()
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
