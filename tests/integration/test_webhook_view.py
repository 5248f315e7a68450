"""POST /api/webhooks/resend through the Flask test client, storing into the real PostgreSQL.

Requests are signed by the standardwebhooks library (an independent signer) and with the test
signing test vectors. Every malformed or forged variant must be a 4xx that stores nothing.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from shared.errors import ConfigError
from shared.models import UNDATED_EVENT, WebhookEvent
from shared.settings import Settings, load_settings
from tests.conftest import REDIS_URL
from tests.webhook_factories import VECTOR_SECRET, resend_body
from tests.webhook_requests import NOW, PATH, SECRET_A, SECRET_B, SECRET_OTHER, SignedRequest, signed
from webhook_receiver import create_app
from webhook_receiver.dispatch import BatchingDispatcher, CeleryPublisher

#: What the receiver is configured with: A with its prefix, B without (both forms must work).
CONFIGURED = f"{SECRET_A} {SECRET_B.removeprefix('whsec_')}"


class RecordingDispatcher:
    """Remembers enqueued event ids; ``broken`` makes it fail like a broker that is down."""

    def __init__(self, *, broken: bool = False) -> None:
        self.enqueued: list[str] = []
        self.broken = broken

    def enqueue(self, event_id: str) -> None:
        if self.broken:
            raise ConnectionRefusedError("broker down")
        self.enqueued.append(event_id)

    def ping(self) -> bool:
        return not self.broken


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values = {"database_url": database_url, "resend_webhook_secret": CONFIGURED, **overrides}
    return load_settings(**values)


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def app(database_url: str, engine: Engine, dispatcher: RecordingDispatcher) -> Flask:
    return create_app(settings_for(database_url), engine=engine, dispatcher=dispatcher, clock=lambda: NOW)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, request: SignedRequest) -> Any:
    return client.post(PATH, data=request.body, headers=request.headers)


def stored(engine: Engine, svix_id: str | None = None) -> int:
    query = select(func.count()).select_from(WebhookEvent)
    if svix_id is not None:
        query = query.where(WebhookEvent.svix_id == svix_id)
    with engine.connect() as connection:
        return connection.scalar(query) or 0


BODY = resend_body("delivered", "56761188-7520-42d8-8898-ff6fc54ce618")


def good() -> SignedRequest:
    return signed(BODY)


def resigned(body: bytes) -> Callable[[SignedRequest], SignedRequest]:
    """A variant whose body is ``body``, correctly signed: it verifies, then fails on content."""
    return lambda _: signed(body)


def sig_of(request: SignedRequest) -> str:
    return request.headers["svix-signature"].removeprefix("v1,")


def _dup_family(request: SignedRequest) -> SignedRequest:
    headers = dict(request.headers)
    headers["webhook-signature"] = headers.pop("svix-signature")
    return replace(request, headers=headers)


def _deeply_nested() -> bytes:
    return b'{"type":"email.sent","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


# (variant, expected status): each builds a bad request from a good one.
MALFORMED: list[Any] = [
    pytest.param(
        lambda r: replace(r, headers={"content-type": "application/json"}), 400, id="no-signature-headers"
    ),
    pytest.param(lambda r: r.with_headers(svix_id=None), 400, id="missing-id"),
    pytest.param(lambda r: r.with_headers(svix_timestamp=None), 400, id="missing-timestamp"),
    pytest.param(lambda r: r.with_headers(svix_signature=None), 400, id="missing-signature"),
    pytest.param(lambda r: r.with_headers(svix_signature=""), 400, id="empty-signature"),
    pytest.param(lambda r: r.with_headers(svix_id=""), 400, id="empty-id"),
    pytest.param(lambda r: signed(r.body, timestamp=NOW - 301), 400, id="timestamp-301s-old"),
    pytest.param(lambda r: signed(r.body, timestamp=NOW + 301), 400, id="timestamp-301s-new"),
    pytest.param(lambda r: r.with_headers(svix_timestamp="abc"), 400, id="timestamp-not-a-number"),
    pytest.param(lambda r: r.with_headers(svix_timestamp=f"{NOW}.5"), 400, id="timestamp-fractional"),
    pytest.param(lambda r: r.with_headers(svix_timestamp=f"{NOW}000"), 400, id="timestamp-milliseconds"),
    pytest.param(lambda r: r.with_headers(svix_timestamp="nan"), 400, id="timestamp-nan"),
    pytest.param(lambda r: r.with_headers(svix_timestamp="1.79e9"), 400, id="timestamp-exponent"),
    pytest.param(lambda r: r.with_headers(svix_timestamp=f"+{NOW}"), 400, id="timestamp-plus-sign"),
    pytest.param(lambda r: r.with_headers(svix_timestamp="-1"), 400, id="timestamp-negative"),
    pytest.param(lambda r: signed(r.body, secret=SECRET_OTHER), 400, id="wrong-secret"),
    pytest.param(lambda r: replace(r, body=r.body + b" "), 400, id="body-changed-after-signing"),
    pytest.param(
        lambda r: replace(r, body=r.body.replace(b"delivered", b"bounced!!")), 400, id="body-tampered"
    ),
    pytest.param(lambda r: r.with_headers(svix_id="msg_other"), 400, id="id-changed-after-signing"),
    pytest.param(
        lambda r: r.with_headers(svix_timestamp=str(NOW + 1)), 400, id="timestamp-changed-after-signing"
    ),
    pytest.param(lambda r: r.with_headers(svix_signature="v1"), 400, id="entry-without-comma"),
    pytest.param(
        lambda r: r.with_headers(svix_signature=f"v1,{sig_of(r)},x"), 400, id="entry-with-three-parts"
    ),
    pytest.param(lambda r: r.with_headers(svix_signature="v1,K5oZf"), 400, id="truncated-base64"),
    pytest.param(lambda r: r.with_headers(svix_signature="v1,@@@"), 400, id="not-base64"),
    pytest.param(lambda r: r.with_headers(svix_signature=f"v1,{sig_of(r)[:8]}"), 400, id="partial-signature"),
    pytest.param(lambda r: r.with_headers(svix_signature="v1,"), 400, id="empty-entry"),
    pytest.param(lambda r: r.with_headers(svix_signature=f"v2,{sig_of(r)}"), 400, id="valid-hmac-as-v2"),
    pytest.param(lambda r: r.with_headers(svix_signature=f"v1a,{sig_of(r)}"), 400, id="valid-hmac-as-v1a"),
    pytest.param(
        lambda r: r.with_headers(svix_signature=f"v1,{sig_of(r)[:-2]}é="), 400, id="non-ascii-signature"
    ),
    pytest.param(lambda r: signed(r.body, msg_id="msg_é"), 400, id="non-ascii-id"),
    pytest.param(lambda r: signed(r.body, msg_id="msg 1"), 400, id="id-with-space"),
    pytest.param(_dup_family, 400, id="mixed-header-families"),
    pytest.param(lambda r: signed(r.body, secret=b"\x00" * 32), 400, id="forged-with-zero-key"),
    pytest.param(lambda r: signed(r.body, secret="whsec_YQ=="), 400, id="forged-with-1-byte-key"),
    pytest.param(resigned(b"\xff\xfe not utf-8"), 400, id="signed-invalid-utf8"),
    pytest.param(resigned(b"not json"), 400, id="signed-not-json"),
    pytest.param(resigned(b"[1, 2]"), 400, id="signed-json-array"),
    pytest.param(resigned(b'{"type": "email.sent", "n": NaN}'), 400, id="signed-nan"),
    pytest.param(resigned(b'{"type": "email.sent", "s": "a\\u0000b"}'), 400, id="signed-nul-char"),
    pytest.param(resigned(b'{"type": "email.sent", "s": "\\ud800"}'), 400, id="signed-lone-surrogate"),
    pytest.param(resigned(_deeply_nested()), 400, id="signed-deeply-nested"),
    pytest.param(resigned(b""), 400, id="signed-empty-body"),
    pytest.param(lambda r: r.with_headers(content_type="text/plain"), 415, id="content-type-text"),
    pytest.param(lambda r: r.with_headers(content_type=None), 415, id="content-type-missing"),
    pytest.param(lambda r: r.with_headers(content_type="application/x-www-form-urlencoded"), 415, id="form"),
    pytest.param(resigned(b'{"pad": "' + b"x" * 300_000 + b'"}'), 413, id="signed-too-large"),
]


def test_malformed_table_has_at_least_30_variants() -> None:
    assert len(MALFORMED) >= 30


@pytest.mark.parametrize(("variant", "status"), MALFORMED)
def test_webhook_malformed_or_forged_is_4xx_and_stores_nothing(
    client: FlaskClient, engine: Engine, variant: Callable[[SignedRequest], SignedRequest], status: int
) -> None:
    before = stored(engine)
    response = post(client, variant(good()))
    assert response.status_code == status
    assert stored(engine) == before
    assert response.is_json


def several_signatures() -> SignedRequest:
    """A sender signing with a retired key and ours, plus a v2 decoy and junk (svix suite style)."""
    msg_id = f"msg_{uuid.uuid4().hex}"
    ours = signed(BODY, msg_id=msg_id).headers["svix-signature"]
    retired = signed(BODY, msg_id=msg_id, secret=SECRET_OTHER).headers["svix-signature"]
    header = f"{retired} v2,{ours[3:]} {ours} v1,@@@"
    return signed(BODY, msg_id=msg_id, signature=header)


def upper_case_headers() -> SignedRequest:
    request = signed(BODY)
    return replace(request, headers={name.upper(): value for name, value in request.headers.items()})


VALID: list[Any] = [
    pytest.param(lambda: signed(BODY), id="svix-headers"),
    pytest.param(lambda: signed(BODY, prefix="webhook"), id="webhook-headers"),
    pytest.param(lambda: signed(BODY, secret=SECRET_A.removeprefix("whsec_")), id="signer-without-prefix"),
    pytest.param(lambda: signed(BODY, secret=SECRET_B), id="rotation-second-secret-configured-bare"),
    pytest.param(lambda: signed(BODY, secret=SECRET_B, prefix="webhook"), id="rotation-webhook-headers"),
    pytest.param(several_signatures, id="several-signatures-one-valid"),
    pytest.param(upper_case_headers, id="upper-case-header-names"),
    pytest.param(lambda: signed(BODY, timestamp=NOW - 300), id="timestamp-300s-old"),
    pytest.param(lambda: signed(BODY, timestamp=NOW + 300), id="timestamp-300s-new"),
    pytest.param(lambda: signed(b'{"type":"contact.created","data":{}}'), id="unknown-type"),
    pytest.param(lambda: signed(b'{"no_type": true}'), id="object-without-type"),
    pytest.param(
        lambda: signed(BODY).with_headers(content_type="application/json; charset=utf-8"),
        id="json-with-charset",
    ),
]


@pytest.mark.parametrize("build", VALID)
def test_webhook_valid_variant_is_200_and_one_row(
    client: FlaskClient, engine: Engine, dispatcher: RecordingDispatcher, build: Callable[[], SignedRequest]
) -> None:
    request = build()
    svix_id = (
        request.headers.get("svix-id") or request.headers.get("webhook-id") or request.headers["SVIX-ID"]
    )
    response = post(client, request)
    assert response.status_code == 200
    assert response.json == {"status": "stored", "svix_id": svix_id}
    assert stored(engine, svix_id) == 1
    assert len(dispatcher.enqueued) == 1


def test_webhook_stores_type_and_raw_payload(client: FlaskClient, engine: Engine) -> None:
    request = signed(BODY)
    post(client, request)
    with engine.connect() as connection:
        row = connection.execute(
            select(WebhookEvent.type, WebhookEvent.payload, WebhookEvent.processed_at).where(
                WebhookEvent.svix_id == request.headers["svix-id"]
            )
        ).one()
    assert (row.type, row.payload, row.processed_at) == ("email.delivered", json.loads(BODY), None)


def test_webhook_repeat_delivery_is_200_and_stores_nothing(
    client: FlaskClient, engine: Engine, dispatcher: RecordingDispatcher
) -> None:
    request = signed(BODY)
    post(client, request)
    # A retry keeps the svix-id but comes with a new timestamp and signature.
    retry = signed(BODY, msg_id=request.headers["svix-id"], timestamp=NOW + 5)
    response = post(client, retry)
    assert (response.status_code, response.json["status"]) == (200, "duplicate")
    assert stored(engine, request.headers["svix-id"]) == 1
    assert len(dispatcher.enqueued) == 1


def occurred_at(engine: Engine, svix_id: str) -> datetime:
    with engine.connect() as connection:
        return connection.execute(
            select(WebhookEvent.occurred_at).where(WebhookEvent.svix_id == svix_id)
        ).scalar_one()


def test_webhook_event_is_filed_under_its_payloads_created_at(client: FlaskClient, engine: Engine) -> None:
    request = signed(resend_body("delivered", "e-1", created_at=datetime(2026, 12, 1, 8, 30, tzinfo=UTC)))

    post(client, request)

    assert occurred_at(engine, request.headers["svix-id"]) == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)


def test_webhook_event_without_a_created_at_is_filed_as_undated(client: FlaskClient, engine: Engine) -> None:
    request = signed(b'{"type":"email.delivered","data":{"email_id":"e-2"}}')

    post(client, request)

    assert occurred_at(engine, request.headers["svix-id"]) == UNDATED_EVENT


#: Test vector V2: a Resend-shaped body, byte for byte.
V2_BODY = (
    b'{"type":"email.delivered","created_at":"2026-02-22T23:41:12.126Z","data":{"created_at":'
    b'"2026-02-22T23:41:11.894Z","email_id":"56761188-7520-42d8-8898-ff6fc54ce618",'
    b'"from":"Acme <onboarding@resend.dev>","to":["delivered@resend.dev"],'
    b'"subject":"Sending this example","tags":{"task_id":"t-123"}}}'
)


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "body", "signature", "status"),
    [
        (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            200,
        ),
        (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
            400,
        ),
        (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test":2432232314}',
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            400,
        ),
        (
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            1674087231,
            V2_BODY,
            "v1,It708dtTKRW+dwpFUctebAUwPwnBfPUXFuQL2LOAHs4=",
            200,
        ),
    ],
    ids=["V1", "V1-neg", "V1-ws", "V2"],
)
def test_webhook_resend_api_test_vectors(
    database_url: str, engine: Engine, msg_id: str, timestamp: int, body: bytes, signature: str, status: int
) -> None:
    app = create_app(
        settings_for(database_url, resend_webhook_secret=VECTOR_SECRET),
        engine=engine,
        dispatcher=RecordingDispatcher(),
        clock=lambda: timestamp,
    )
    request = signed(body, msg_id=f"{msg_id}", timestamp=timestamp, signature=signature)
    before = stored(engine, msg_id)
    response = post(app.test_client(), request)
    assert response.status_code == status
    assert stored(engine, msg_id) == (1 if status == 200 else before)


def test_webhook_chunked_body_over_the_cap_is_413_not_truncated(client: FlaskClient, engine: Engine) -> None:
    request = signed(b'{"pad": "' + b"x" * 300_000 + b'"}')
    before = stored(engine)
    # No Content-Length: the body arrives chunked and the server marks the input terminated.
    response = client.post(
        PATH,
        input_stream=io.BytesIO(request.body),
        headers=request.headers,
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert stored(engine) == before


def test_webhook_chunked_body_under_the_cap_is_read_whole(client: FlaskClient, engine: Engine) -> None:
    request = signed(BODY)
    response = client.post(
        PATH,
        input_stream=io.BytesIO(request.body),
        headers=request.headers,
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200
    assert stored(engine, request.headers["svix-id"]) == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_webhook_wrong_method_is_405(client: FlaskClient, method: str) -> None:
    assert client.open(PATH, method=method).status_code == 405


def test_webhook_database_down_is_503_with_retry_after(database_url: str) -> None:
    settings = settings_for(f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing")
    app = create_app(settings, dispatcher=RecordingDispatcher(), clock=lambda: NOW)
    response = post(app.test_client(), signed(BODY))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"


@pytest.mark.parametrize("batching", [False, True], ids=["direct", "batching"])
def test_webhook_broker_down_still_stores_and_answers_200(
    database_url: str, engine: Engine, batching: bool
) -> None:
    publisher = CeleryPublisher(broker_url=f"redis://127.0.0.1:{closed_port()}/0")
    dispatcher = BatchingDispatcher(publisher) if batching else publisher
    app = create_app(settings_for(database_url), engine=engine, dispatcher=dispatcher, clock=lambda: NOW)
    request = signed(BODY)
    response = post(app.test_client(), request)
    assert response.status_code == 200
    assert stored(engine, request.headers["svix-id"]) == 1
    if isinstance(dispatcher, BatchingDispatcher):
        dispatcher.flush()  # logs the failure, raises nothing


def queued_arguments(real_redis: Any, redis_prefix: str) -> list[Any]:
    """The task name and first argument of every message on the (prefixed) events queue."""
    out = []
    for message in real_redis.lrange(f"{redis_prefix}pilot.events", 0, -1):
        envelope = json.loads(message)
        assert envelope["headers"]["task"] == "pilot.process_webhook_event"
        out.append(json.loads(base64.b64decode(envelope["body"]))[0][0])
    return out


def event_id_of(engine: Engine, svix_id: str) -> str:
    with engine.connect() as connection:
        return str(connection.scalar(select(WebhookEvent.id).where(WebhookEvent.svix_id == svix_id)))


def test_webhook_enqueues_the_task_by_name_on_the_events_queue(
    database_url: str, engine: Engine, real_redis: Any, redis_prefix: str
) -> None:
    publisher = CeleryPublisher(broker_url=REDIS_URL, transport_options={"global_keyprefix": redis_prefix})
    app = create_app(settings_for(database_url), engine=engine, dispatcher=publisher, clock=lambda: NOW)
    request = signed(BODY)
    post(app.test_client(), request)
    assert queued_arguments(real_redis, redis_prefix) == [event_id_of(engine, request.headers["svix-id"])]


def test_batching_dispatcher_sends_many_ids_per_task_message(
    database_url: str, engine: Engine, real_redis: Any, redis_prefix: str
) -> None:
    publisher = CeleryPublisher(broker_url=REDIS_URL, transport_options={"global_keyprefix": redis_prefix})
    dispatcher = BatchingDispatcher(publisher, max_batch=3, linger=60)
    app = create_app(settings_for(database_url), engine=engine, dispatcher=dispatcher, clock=lambda: NOW)
    requests = [signed(BODY) for _ in range(5)]
    for request in requests:
        post(app.test_client(), request)
    dispatcher.flush()
    ids = [event_id_of(engine, request.headers["svix-id"]) for request in requests]
    batches = queued_arguments(real_redis, redis_prefix)
    assert sorted(i for batch in batches for i in ([batch] if isinstance(batch, str) else batch)) == sorted(
        ids
    )
    assert all(isinstance(batch, str) or len(batch) <= 3 for batch in batches)


def test_healthz_ok_when_database_and_broker_answer(database_url: str, engine: Engine) -> None:
    app = create_app(
        settings_for(database_url), engine=engine, dispatcher=CeleryPublisher(broker_url=REDIS_URL)
    )
    response = app.test_client().get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok", "database": "ok", "broker": "ok"})


def test_healthz_names_what_is_down(database_url: str) -> None:
    settings = settings_for(f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing")
    dispatcher = CeleryPublisher(broker_url=f"redis://127.0.0.1:{closed_port()}/0")
    response = create_app(settings, dispatcher=dispatcher).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unavailable", "broker": "unavailable"}


def test_create_app_without_a_secret_refuses_to_start(database_url: str) -> None:
    with pytest.raises(ConfigError, match="RESEND_WEBHOOK_SECRET"):
        create_app(load_settings(database_url=database_url, resend_webhook_secret=""))


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_YQ==",
        "whsec_" + base64.b64encode(b"k" * 23).decode(),
        "whsec_" + base64.b64encode(b"k" * 65).decode(),
        "whsec_!!!not-base64",
    ],
    ids=["1-byte", "23-bytes", "65-bytes", "not-base64"],
)
def test_create_app_with_a_bad_secret_refuses_to_start_naming_the_setting(
    database_url: str, secret: str
) -> None:
    with pytest.raises(ConfigError, match="RESEND_WEBHOOK_SECRET") as info:
        create_app(load_settings(database_url=database_url, resend_webhook_secret=f"{SECRET_A} {secret}"))
    assert secret.removeprefix("whsec_") not in str(info.value)


def test_webhook_logs_never_carry_the_secret_or_the_signature(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good_request = signed(BODY)
    bad_request = signed(BODY, secret=SECRET_OTHER)
    post(client, good_request)
    post(client, bad_request)
    for value in (SECRET_A, SECRET_A.removeprefix("whsec_"), SECRET_B.removeprefix("whsec_")):
        assert value not in caplog.text
    for request in (good_request, bad_request):
        assert sig_of(request) not in caplog.text
    assert "no matching signature" in caplog.text
