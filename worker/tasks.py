"""The send tasks: thin adapters that build nothing themselves and call :mod:`shared.sending`.

Send tasks record their rows and run their API key's dispatch once (:mod:`shared.sending.pipeline`);
every later wait is kept in the rows and in one scheduled ``pilot.dispatch`` per key, never in a
retry of the task. A task retries only when the database is unreachable (its rows may not be
written yet): ``max_retries=None``, because the ledger's own attempt counter caps real attempts.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from shared import task_names
from shared.errors import PayloadInvalid, RateLimitBackendUnavailable
from shared.sending import pipeline
from shared.sending.outcomes import SendOutcome
from worker.context import context
from worker.retry import DATABASE_RETRY

logger = logging.getLogger(__name__)

_SEND_OPTIONS: dict[str, Any] = {"bind": True, **DATABASE_RETRY}
#: Countdown after a soft time limit: the rows are in the ledger; the same task looks at them again.
SOFT_LIMIT_RETRY_S = 5.0
#: What an API key's hash looks like (``shared.rate_limit.api_key_hash``).
_KEY_HASH = re.compile(r"^[0-9a-f]{20}$")


# Both take ``*args`` only to refuse them with a recorded reason (a payload given positionally would
# otherwise fail in Celery's call, before any of our code, and leave no trace).
@shared_task(name=task_names.SEND_EMAIL, **_SEND_OPTIONS)
def send_email(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Send one email (one Resend email per mailbox of ``to``, ``cc`` and ``bcc``)."""
    return _run(self, pipeline.send_email, args, kwargs)


@shared_task(name=task_names.SEND_BATCH, **_SEND_OPTIONS)
def send_batch(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Send many emails; their API key's queue carries them, up to 100 a request."""
    return _run(self, pipeline.send_batch, args, kwargs)


def _run(task: Task, send: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        outcome: SendOutcome = send(context(task.app), kwargs, task_ref=task.request.id or "eager", args=args)
    except SoftTimeLimitExceeded:
        raise task.retry(countdown=SOFT_LIMIT_RETRY_S, max_retries=None) from None
    return outcome.as_dict()


@shared_task(name=task_names.CANCEL, **_SEND_OPTIONS)
def cancel(self: Task, **kwargs: Any) -> dict[str, Any]:
    """Cancel sends that have not left, named by ``idempotency_key`` (with ``connector_id``),
    ``task_id`` or ``message_ids``; each row's answer (an invalid request: ``error``, naming the field)."""
    try:
        outcome = pipeline.cancel(context(self.app), kwargs, actor=f"task:{self.request.id or 'eager'}")
    except PayloadInvalid as exc:
        logger.warning("cancel refused: %s", exc)
        return {"error": str(exc)}
    return outcome.as_dict()


@shared_task(name=task_names.DISPATCH, **_SEND_OPTIONS)
def dispatch(self: Task, dispatch_key: str, at_ms: int | None = None) -> dict[str, int]:
    """Send the queue of one API key (named by its hash) while its request tokens allow."""
    if not isinstance(dispatch_key, str) or not _KEY_HASH.match(dispatch_key):
        return {"rows": 0}  # not a key of ours: nothing to send
    ctx = context(self.app)
    started_ms = int(ctx.clock().timestamp() * 1000)
    if isinstance(at_ms, int):
        started_ms = max(started_ms, at_ms)
    with contextlib.suppress(RateLimitBackendUnavailable):  # the dispatch fails closed below
        ctx.limiter.release_dispatch(dispatch_key, started_ms)
    return {"rows": len(pipeline.dispatch(ctx, dispatch_key))}
