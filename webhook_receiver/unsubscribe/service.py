"""What the unsubscribe endpoints do, apart from HTTP: open tokens, limit clients, write the database.

Rate limits are per client address, in Redis (shared by every receiver process): each client may
make :data:`REQUESTS_PER_MINUTE` requests a minute, and :data:`FAILURES_PER_WINDOW` requests with a
token that does not open per :data:`FAILURE_WINDOW_MS`, so tokens cannot be guessed by brute force
(they are 128-bit authenticated besides). While Redis is unreachable the limits are not applied:
an unsubscribe must never be lost to it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.errors import RateLimitBackendUnavailable, TokenInvalid
from shared.rate_limit import RateLimiter
from shared.unsubscribe import actions
from shared.unsubscribe.actions import Unsubscribed, UnsubscribeSource
from shared.unsubscribe.links import UnsubscribeLinks
from shared.unsubscribe.tokens import ResubscribeToken, UnsubscribeToken
from shared.unsubscribe.topics import Scope

logger = logging.getLogger(__name__)

REQUESTS_PER_MINUTE = 60
FAILURES_PER_WINDOW = 20
FAILURE_WINDOW_MS = 10 * 60 * 1000
#: How long a confirmation page's undo link works.
UNDO_VALID_FOR = timedelta(days=7)


class RateLimited(Exception):
    """The client made too many requests, or too many with bad tokens."""


@dataclass(frozen=True)
class Recipient:
    """Who a token names, as a page shows it: organization name, address, topic ('' or None: none)."""

    organization: str
    email: str
    topic: str | None


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class UnsubscribeService:
    """Tokens, limits and writes behind the endpoints; ``links`` None: not configured (every link 404)."""

    links: UnsubscribeLinks | None
    engine: Engine
    limiter: RateLimiter
    count: Callable[[str, str], None] = lambda source, scope: None
    clock: Callable[[], datetime] = _utc_now

    def admit(self, client: str) -> None:
        """Raise :class:`RateLimited` when ``client`` made too many requests, or too many bad ones."""
        try:
            requests = self.limiter.acquire_client(
                "unsubscribe", client, capacity=REQUESTS_PER_MINUTE, period_ms=60_000
            )
            failures = self.limiter.acquire_client(
                "unsubscribe-failures",
                client,
                capacity=FAILURES_PER_WINDOW,
                period_ms=FAILURE_WINDOW_MS,
                take=False,
            )
        except RateLimitBackendUnavailable:
            logger.warning("unsubscribe rate limits not applied: Redis unavailable")
            return
        if not (requests.granted and failures.granted):
            raise RateLimited()

    def failed(self, client: str) -> None:
        """Count a request whose token did not open against ``client``."""
        try:
            self.limiter.acquire_client(
                "unsubscribe-failures", client, capacity=FAILURES_PER_WINDOW, period_ms=FAILURE_WINDOW_MS
            )
        except RateLimitBackendUnavailable:
            logger.warning("unsubscribe failure not counted: Redis unavailable")

    def open_unsubscribe(self, text: str) -> UnsubscribeToken:
        """The token of an email's link, or :class:`TokenInvalid`."""
        if self.links is None:
            raise TokenInvalid()
        return self.links.sealer.open_unsubscribe(text)

    def open_resubscribe(self, text: str) -> ResubscribeToken:
        """The token of an undo link still valid, or :class:`TokenInvalid`."""
        if self.links is None:
            raise TokenInvalid()
        return self.links.sealer.open_resubscribe(
            text, now=self.clock(), max_age_s=UNDO_VALID_FOR.total_seconds()
        )

    def recipient(self, organization_id: uuid.UUID, email: str, topic: str | None) -> Recipient:
        """What a page shows; :class:`TokenInvalid` when the organization no longer exists."""
        with Session(self.engine) as session:
            name = actions.organization_name(session, organization_id)
        if name is None:
            raise TokenInvalid()
        return Recipient(name, email, topic)

    def unsubscribe(self, token: UnsubscribeToken, scope: Scope, source: UnsubscribeSource) -> Unsubscribed:
        """Record it (idempotent); :class:`TokenInvalid` when the organization no longer exists."""
        try:
            with Session(self.engine) as session, session.begin():
                done = actions.unsubscribe(session, token, scope, source=source, now=self.clock())
        except IntegrityError:
            raise TokenInvalid() from None  # the organization was deleted
        if done.new:
            self.count(source.value, Scope.EVERYTHING.value if not done.topic else Scope.TOPIC.value)
            logger.info(
                "unsubscribe recorded (%s, %s) for message %s",
                source.value,
                done.topic or "everything",
                token.message_id,
            )
        return done

    def undo_url(self, token: UnsubscribeToken, topic: str) -> str:
        """The undo link of an unsubscribe from ``topic`` ('' : everything), issued now."""
        assert self.links is not None  # a token opened, so links exist
        return self.links.resubscribe_url(
            ResubscribeToken(token.organization_id, token.email, topic, self.clock())
        )

    def resubscribe(self, token: ResubscribeToken) -> bool:
        """Remove the entry the undo link names, if an unsubscribe link made it."""
        with Session(self.engine) as session, session.begin():
            removed = actions.resubscribe(session, token)
        if removed:
            logger.info("unsubscribe undone (%s)", token.topic or "everything")
        return removed
