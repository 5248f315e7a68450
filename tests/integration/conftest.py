"""Fixtures of integration tests: the `pilot` CLI, and a send context on real PostgreSQL with a fake
Resend (``httpx.MockTransport``) and fakeredis buckets."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator

import fakeredis
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.cli import cli
from shared.crypto import generate_key
from shared.db import make_engine, make_sessionmaker
from shared.rate_limit import RateLimiter, api_key_hash
from shared.sending.context import SendContext
from shared.settings import get_settings, load_settings
from tests.conftest import create_database, drop_database
from tests.fake_resend import BASE_URL, FakeResend
from tests.sandbox_process import SANDBOX_WEBHOOK_SECRET, SandboxHandle, running_sandbox
from tests.send_helpers import FakeClock, RecordingScheduler, add_connector
from tests.webhook_sink import WebhookSink, running_webhook_sink

Pilot = Callable[..., Result]


@pytest.fixture
def pilot(
    fresh_database_url: str, isolated_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pilot]:
    """Run `pilot ARGS...` through click's runner against this test's own database and Redis."""
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("REDIS_URL", isolated_redis_url)
    monkeypatch.setenv("PILOT_REDIS_PREFIX", f"pilot-test-{uuid.uuid4().hex[:8]}:")
    monkeypatch.setenv("PILOT_ENCRYPTION_KEYS", generate_key())
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


# --- sending: shared.sending on real PostgreSQL ------------------------------------------------------


@pytest.fixture
def resend() -> FakeResend:
    """A fake Resend recording every request; answers like a healthy Resend unless told otherwise."""
    return FakeResend()


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    """A fresh in-memory Redis for the buckets."""
    return fakeredis.FakeRedis()


@pytest.fixture
def limiter(redis_prefix: str, fake_redis: fakeredis.FakeRedis) -> RateLimiter:
    # Each bucket check happens one second after the last: the request bucket (2/s) never
    # stands in the way of the behaviour under test, while hour and day budgets barely refill.
    ticks = itertools.count(1)
    return RateLimiter(fake_redis, key_prefix=redis_prefix, clock_ms=lambda: next(ticks) * 1000)


@pytest.fixture(scope="module")
def database_url(template_database: str) -> Iterator[str]:
    """One database for the module: every test works on its own organization and connector."""
    name = f"pilot_test_mod_{uuid.uuid4().hex[:10]}"
    yield create_database(name, template=template_database)
    drop_database(name)


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the module's database."""
    engine = make_engine(load_settings(database_url=database_url))
    yield engine
    engine.dispose()


@pytest.fixture
def api_key() -> str:
    """The Resend API key of this test's connectors (the settings' fallback key): one queue per test."""
    return f"re_test_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def clock() -> FakeClock:
    """The send context's clock: now, until the test moves it."""
    return FakeClock()


@pytest.fixture
def scheduler() -> RecordingScheduler:
    """The dispatches the pipeline asks for, recorded (none runs by itself)."""
    return RecordingScheduler()


@pytest.fixture
def ctx(
    engine: Engine,
    resend: FakeResend,
    limiter: RateLimiter,
    api_key: str,
    clock: FakeClock,
    scheduler: RecordingScheduler,
) -> Iterator[SendContext]:
    """A worker's send context on the module's database, the fake Resend and the fakeredis buckets."""
    settings = load_settings(
        database_url=str(engine.url.render_as_string(hide_password=False)),
        resend_api_key=api_key,
        resend_base_url=BASE_URL,
    )
    http = resend.client()
    ctx = SendContext(
        settings=settings,
        engine=engine,
        limiter=limiter,
        http=http,
        rand=lambda: 0.5,
        clock=clock,
        scheduler=scheduler,
    )
    yield ctx
    ctx.release()


@pytest.fixture
def key_hash(api_key: str) -> str:
    """The dispatch key (queue) of this test's connectors."""
    return api_key_hash(api_key)


@pytest.fixture
def factory(ctx: SendContext) -> sessionmaker[Session]:
    """Sessions on the send context's database."""
    return make_sessionmaker(ctx.engine)


@pytest.fixture
def ids(factory: sessionmaker[Session]) -> tuple[uuid.UUID, uuid.UUID]:
    """A new organization and its connector: ``(organization_id, connector_id)``."""
    return add_connector(factory)


@pytest.fixture
def connector_id(ids: tuple[uuid.UUID, uuid.UUID]) -> uuid.UUID:
    """The connector of :func:`ids`."""
    return ids[1]


@pytest.fixture(scope="module")
def module_sink() -> Iterator[WebhookSink]:
    """A webhook sink for the module, where the module's sandbox delivers its signed webhooks."""
    with running_webhook_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
def sandbox_server(module_sink: WebhookSink) -> Iterator[SandboxHandle]:
    """The sandbox as a real server for the module, with no rate limit and webhooks 1,000 times faster."""
    with running_sandbox(
        rate_limit_per_second=0,
        webhook_url=module_sink.url,
        webhook_secret=SANDBOX_WEBHOOK_SECRET,
        webhook_time_scale=0.001,
    ) as handle:
        yield handle


@pytest.fixture
def sink(module_sink: WebhookSink) -> WebhookSink:
    """The module's webhook sink, emptied for this test."""
    module_sink.clear()
    return module_sink
