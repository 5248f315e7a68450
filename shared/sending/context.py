"""The collaborators a process sends with, built once per process and passed down.

Nothing here connects at import. :func:`process_context` builds the context lazily in each process
(Celery prefork children after ``fork``; the main process under the threads pool), keyed by pid so a
context inherited through ``fork`` is never used by the child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from pydantic import SecretStr
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from shared.crypto import KeyRing
from shared.db import make_engine
from shared.errors import RateLimitBackendUnavailable
from shared.rate_limit import RateLimiter, api_key_hash
from shared.resend_client import ResendClient, make_http_client
from shared.resend_http import ResendHTTP
from shared.sending.connectors import ConnectorCache
from shared.sending.ledger import recent_usage
from shared.sending.observers import DispatchScheduler, NoMetrics, NoScheduler, SendMetrics
from shared.sending.spent_budgets import SpentBudgets
from shared.settings import Settings
from shared.unsubscribe.links import UnsubscribeLinks

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SendContext:
    """Everything :mod:`shared.sending` needs: database, buckets, HTTP, keys, clock, randomness, and
    where it reports (metrics) and asks for later dispatches (scheduler)."""

    settings: Settings
    engine: Engine
    limiter: RateLimiter
    http: ResendHTTP
    keyring: KeyRing | None = None
    #: Makes unsubscribe links (None: ``PILOT_PUBLIC_URL`` or ``PILOT_UNSUBSCRIBE_KEYS`` unset).
    unsubscribe: UnsubscribeLinks | None = None
    clock: Callable[[], datetime] = _utc_now
    rand: Callable[[], float] = random.random
    #: Sleeps through short pacing waits for a request token (see :mod:`shared.sending.pacing`).
    sleep: Callable[[float], None] = time.sleep
    #: Request rates already pushed to Redis, by API-key hash (saves a write per send).
    known_rates: dict[str, float] = field(default_factory=dict)
    metrics: SendMetrics = field(default_factory=NoMetrics)
    scheduler: DispatchScheduler = field(default_factory=NoScheduler)
    #: Connectors read recently (keys, limits): a dispatch reads no connector row, decrypts no key.
    connectors: ConnectorCache = field(default_factory=ConnectorCache)
    #: Connectors whose budget this process saw spent (see :mod:`shared.sending.spent_budgets`).
    spent_budgets: SpentBudgets = field(default_factory=SpentBudgets)
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @contextlib.contextmanager
    def held_connection(self) -> Iterator[Connection]:
        """This thread's database connection, kept open between sends.

        Keeping it saves the pool's pre-ping and reset round trips on every send. Any error closes
        it (a later send opens a new one), so a broken connection is never reused.
        """
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.invalidated:
            connection = self._local.connection = self.engine.connect()
        try:
            yield connection
        except BaseException:
            self._local.connection = None
            with contextlib.suppress(Exception):
                connection.invalidate()
                connection.close()
            raise

    @contextlib.contextmanager
    def held_autocommit(self) -> Iterator[psycopg.Connection[Any]]:
        """This thread's autocommit psycopg connection (the dispatcher's), kept open between sends.

        Outside the engine's pool, so its autocommit mode never leaks into an ORM session. Any error
        closes it, which also releases every advisory lock it held.
        """
        connection: psycopg.Connection[Any] | None = getattr(self._local, "autocommit", None)
        if connection is None or connection.closed:
            url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            connection = self._local.autocommit = psycopg.connect(url, autocommit=True)
        try:
            yield connection
        except BaseException:
            self._local.autocommit = None
            with contextlib.suppress(Exception):
                connection.close()
            raise

    def learn_rate(self, api_key: SecretStr, limit: int | None) -> None:
        """Follow Resend's ``ratelimit-limit`` (requests per 1-second window) for every worker."""
        if not limit or limit <= 0:
            return
        key = api_key.get_secret_value()
        name = api_key_hash(key)
        if self.known_rates.get(name) == limit:
            return
        try:
            self.limiter.set_request_rate(key, float(limit))
            self.known_rates[name] = float(limit)
        except RateLimitBackendUnavailable:
            logger.warning("could not record Resend's request rate: Redis unavailable")

    def resend_client(self, api_key: SecretStr) -> ResendClient:
        """A client for one API key over the shared HTTP pool."""
        return ResendClient(http=self.http, api_key=api_key)

    @classmethod
    def from_settings(cls, settings: Settings, *, metrics: SendMetrics | None = None) -> SendContext:
        """A context for this process from ``settings`` (connections open on first use)."""
        keyring = KeyRing.from_settings(settings) if settings.pilot_encryption_keys else None
        engine = make_engine(settings, max_overflow=-1)
        return cls(
            metrics=metrics or NoMetrics(),
            settings=settings,
            # Each thread keeps one connection between sends (held_connection): a bounded overflow
            # made the 11th thread of a threads pool wait 30 s, then fail its task (and, for a
            # task whose rows were not written yet, lose the send). The pool size is the thread count.
            engine=engine,
            # Buckets Redis lost are rebuilt from the ledger, never granted afresh (fail closed).
            limiter=RateLimiter.from_settings(settings, usage_source=ledger_usage_source(engine)),
            http=make_http_client(settings),
            keyring=keyring,
            unsubscribe=UnsubscribeLinks.from_settings(settings),
        )

    def release(self) -> None:
        """Give this thread's held database connection back to the pool (and close its autocommit one)."""
        connection: Connection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()
        raw: psycopg.Connection[Any] | None = getattr(self._local, "autocommit", None)
        self._local.autocommit = None
        if raw is not None:
            raw.close()

    def close(self) -> None:
        """Release every connection (database and HTTP)."""
        self.release()
        self.engine.dispose()
        self.http.close()


def ledger_usage_source(engine: Engine) -> Callable[[str], tuple[int, int]]:
    """The limiter's usage source: a connector's emails in the last hour and day, from the ledger."""

    def usage(connector_id: str) -> tuple[int, int]:
        with Session(engine) as session:
            return recent_usage(session, uuid.UUID(connector_id), _utc_now())

    return usage


_contexts: dict[int, SendContext] = {}
_lock = threading.Lock()


def process_context(build: Callable[[], SendContext]) -> SendContext:
    """This process's context, built by ``build`` on first use."""
    pid = os.getpid()
    with _lock:
        context = _contexts.get(pid)
        if context is None:
            context = _contexts[pid] = build()
        return context


def forget_inherited_contexts() -> None:
    """Drop contexts built by a parent process (called in each new worker child)."""
    pid = os.getpid()
    with _lock:
        for owner in [owner for owner in _contexts if owner != pid]:
            del _contexts[owner]
