"""Svix / Standard Webhooks signing and verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import standardwebhooks

from shared.errors import WebhookVerificationError
from shared.webhook_signature import decode_secret, sign, signature_headers, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
V1_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
V1_TS = 1614265330
V1_BODY = b'{"test": 2432232314}'
V1_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
V1_NEG_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
V1_WS_BODY = b'{"test":2432232314}'
V1_WS_SIG = "v1,Vif40peJBP7Iyl0XGmu61n4MwdrcHov5CFREBpE0svs="
V2_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
V2_TS = 1674087231
V2_BODY = (
    b'{"type":"email.delivered","created_at":"2026-02-22T23:41:12.126Z","data":{"created_at":'
    b'"2026-02-22T23:41:11.894Z","email_id":"56761188-7520-42d8-8898-ff6fc54ce618","from":'
    b'"Acme <onboarding@resend.dev>","to":["delivered@resend.dev"],"subject":"Sending this example",'
    b'"tags":{"task_id":"t-123"}}}'
)
V2_SIG = "v1,It708dtTKRW+dwpFUctebAUwPwnBfPUXFuQL2LOAHs4="


def v1_headers(signature: str = V1_SIG, prefix: str = "svix") -> dict[str, str]:
    return {f"{prefix}-id": V1_ID, f"{prefix}-timestamp": str(V1_TS), f"{prefix}-signature": signature}


# --- known-answer vectors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "body", "expected"),
    [(V1_ID, V1_TS, V1_BODY, V1_SIG), (V1_ID, V1_TS, V1_WS_BODY, V1_WS_SIG), (V2_ID, V2_TS, V2_BODY, V2_SIG)],
    ids=["V1", "V1-ws", "V2"],
)
def test_sign_matches_resend_vectors(msg_id: str, timestamp: int, body: bytes, expected: str) -> None:
    assert sign(SECRET, msg_id, timestamp, body) == expected


def test_verify_accepts_vector_v1_and_returns_message_id() -> None:
    assert verify(V1_BODY, v1_headers(), [SECRET], now=V1_TS) == V1_ID


def test_verify_accepts_vector_v2() -> None:
    headers = {"svix-id": V2_ID, "svix-timestamp": str(V2_TS), "svix-signature": V2_SIG}
    assert verify(V2_BODY, headers, [SECRET], now=V2_TS + 10) == V2_ID


def test_verify_rejects_vector_v1_neg() -> None:
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(V1_BODY, v1_headers(V1_NEG_SIG), [SECRET], now=V1_TS)


def test_verify_is_byte_sensitive_vector_v1_ws() -> None:
    with pytest.raises(WebhookVerificationError):
        verify(V1_WS_BODY, v1_headers(), [SECRET], now=V1_TS)


# --- accepted variants ----------------------------------------------------------------------------


def test_verify_accepts_secret_without_whsec_prefix() -> None:
    assert verify(V1_BODY, v1_headers(), [SECRET.removeprefix("whsec_")], now=V1_TS) == V1_ID


def test_verify_accepts_raw_key_bytes() -> None:
    assert verify(V1_BODY, v1_headers(), [decode_secret(SECRET)], now=V1_TS) == V1_ID


def test_verify_accepts_unbranded_webhook_headers() -> None:
    assert verify(V1_BODY, v1_headers(prefix="webhook"), [SECRET], now=V1_TS) == V1_ID


def test_verify_looks_headers_up_case_insensitively() -> None:
    headers = {"Svix-Id": V1_ID, "SVIX-TIMESTAMP": str(V1_TS), "svix-Signature": V1_SIG}
    assert verify(V1_BODY, headers, [SECRET], now=V1_TS) == V1_ID


def test_verify_accepts_any_of_several_secrets() -> None:
    assert verify(V1_BODY, v1_headers(), [OTHER_SECRET, SECRET], now=V1_TS) == V1_ID


def test_verify_accepts_valid_entry_among_decoys() -> None:
    decoys = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    header = f"{decoys} {V1_SIG} v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    assert verify(V1_BODY, v1_headers(header), [SECRET], now=V1_TS) == V1_ID


@pytest.mark.parametrize(
    "header",
    [
        f"v1 {V1_SIG}",
        f" {V1_SIG}",
        f"v1,a  {V1_SIG}",
        f"v1,@@@ {V1_SIG}",
        f"v1,a,b {V1_SIG}",
        f"v1,K5oZf {V1_SIG}",
        f"{V1_SIG}, v1,K5oZf",
        f"v1,K5oZf, {V1_SIG}",
        f"v1,é {V1_SIG}",
    ],
    ids=[
        "no-comma",
        "leading-space",
        "double-space",
        "non-base64",
        "three-parts",
        "truncated",
        "joined-lines-first",
        "joined-lines-second",
        "non-ascii",
    ],
)
def test_verify_skips_unparseable_entries(header: str) -> None:
    assert verify(V1_BODY, v1_headers(header), [SECRET], now=V1_TS) == V1_ID


@pytest.mark.parametrize("offset", [-300, 300], ids=["300s-old", "300s-ahead"])
def test_verify_accepts_timestamps_at_the_tolerance(offset: int) -> None:
    assert verify(V1_BODY, v1_headers(), [SECRET], now=V1_TS - offset) == V1_ID


def test_verify_uses_the_given_tolerance() -> None:
    assert verify(V1_BODY, v1_headers(), [SECRET], now=V1_TS + 3600, tolerance=3600) == V1_ID


# --- malformed and forged requests: WebhookVerificationError and nothing else ---------------------

Mutation = Callable[[dict[str, str]], tuple[bytes, dict[str, str]]]


def _replace(name: str, value: str) -> Mutation:
    return lambda headers: (V1_BODY, {**headers, name: value})


def _drop(name: str) -> Mutation:
    return lambda headers: (V1_BODY, {k: v for k, v in headers.items() if k != name})


def _body(body: bytes) -> Mutation:
    return lambda headers: (body, headers)


def _forged_with(key: bytes) -> Mutation:
    raw = hmac.new(key, f"{V1_ID}.{V1_TS}.".encode() + V1_BODY, hashlib.sha256).digest()
    return _replace("svix-signature", "v1," + base64.b64encode(raw).decode())


MALFORMED: dict[str, Mutation] = {
    "missing-id": _drop("svix-id"),
    "missing-timestamp": _drop("svix-timestamp"),
    "missing-signature": _drop("svix-signature"),
    "empty-id": _replace("svix-id", ""),
    "blank-timestamp": _replace("svix-timestamp", "  "),
    "empty-signature": _replace("svix-signature", ""),
    "no-headers": lambda headers: (V1_BODY, {}),
    "timestamp-301s-old": _replace("svix-timestamp", str(V1_TS - 301)),
    "timestamp-301s-ahead": _replace("svix-timestamp", str(V1_TS + 301)),
    "timestamp-fraction": _replace("svix-timestamp", f"{V1_TS}.5"),
    "timestamp-ms": _replace("svix-timestamp", str(V1_TS * 1000)),
    "timestamp-negative": _replace("svix-timestamp", f"-{V1_TS}"),
    "timestamp-plus": _replace("svix-timestamp", f"+{V1_TS}"),
    "timestamp-nan": _replace("svix-timestamp", "nan"),
    "timestamp-inf": _replace("svix-timestamp", "inf"),
    "timestamp-exponent": _replace("svix-timestamp", "1e20"),
    "timestamp-arabic-digits": _replace("svix-timestamp", "١٦١٤٢٦٥٣٣٠"),
    "timestamp-hex": _replace("svix-timestamp", "0x6037a4f2"),
    "timestamp-altered": _replace("svix-timestamp", str(V1_TS + 1)),
    "id-altered": _replace("svix-id", V1_ID + "x"),
    "id-with-space": _replace("svix-id", "msg_a b"),
    "id-non-ascii": _replace("svix-id", "msg_é"),
    "id-too-long": _replace("svix-id", "m" * 257),
    "body-tampered": _body(b'{"test": 2432232315}'),
    "body-empty": _body(b""),
    "body-invalid-utf8": _body(b"\xff\xfe\x00"),
    "signature-v1-neg": _replace("svix-signature", V1_NEG_SIG),
    "signature-v1a-label": _replace("svix-signature", "v1a" + V1_SIG[2:]),
    "signature-v2-label": _replace("svix-signature", "v2" + V1_SIG[2:]),
    "signature-unlabelled": _replace("svix-signature", V1_SIG[3:]),
    "signature-partial-8": _replace("svix-signature", V1_SIG[:8]),
    "signature-prefix-only": _replace("svix-signature", "v1,"),
    "signature-no-comma": _replace("svix-signature", "v1"),
    "signature-three-parts": _replace("svix-signature", V1_SIG + ",x"),
    "signature-non-base64": _replace("svix-signature", "v1,@@@"),
    "signature-non-ascii": _replace("svix-signature", "v1,ü"),
    "signature-only-spaces-and-commas": _replace("svix-signature", " , ,, "),
    "signature-hex-digest": _replace("svix-signature", "v1," + base64.b64decode(V1_SIG[3:]).hex()),
    "signature-urlsafe-alphabet": _replace(
        "svix-signature", "v1," + base64.urlsafe_b64encode(base64.b64decode(V1_SIG[3:])).decode() + "_"
    ),
    "signature-wrong-key": _forged_with(b"x" * 32),
    "signature-empty-key-forgery": _forged_with(b""),
    "signature-duplicated-bad": _replace("svix-signature", f"{V1_NEG_SIG}, {V1_NEG_SIG}"),
    "mixed-families": lambda headers: (
        V1_BODY,
        {"svix-id": V1_ID, "webhook-timestamp": str(V1_TS), "webhook-signature": V1_SIG},
    ),
}


@pytest.mark.parametrize("mutate", MALFORMED.values(), ids=MALFORMED.keys())
def test_verify_rejects_malformed_or_forged_request(mutate: Mutation) -> None:
    body, headers = mutate(v1_headers())
    with pytest.raises(WebhookVerificationError) as caught:
        verify(body, headers, [SECRET], now=V1_TS)
    assert type(caught.value) is WebhookVerificationError
    assert caught.value.reason


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing header svix-id"),
        ({"svix-id": V1_ID}, "missing header svix-timestamp"),
        ({"webhook-id": V1_ID, "webhook-timestamp": str(V1_TS)}, "missing header webhook-signature"),
        ({**v1_headers(), "svix-timestamp": str(V1_TS - 301)}, "timestamp too old"),
        ({**v1_headers(), "svix-timestamp": str(V1_TS + 301)}, "timestamp too new"),
        ({**v1_headers(), "svix-timestamp": "1.5"}, "malformed header svix-timestamp"),
        (v1_headers(V1_NEG_SIG), "no matching signature"),
    ],
)
def test_verify_failure_names_the_reason(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(WebhookVerificationError) as caught:
        verify(V1_BODY, headers, [SECRET], now=V1_TS)
    assert caught.value.reason == reason


def test_verify_with_the_wrong_secret_fails() -> None:
    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(V1_BODY, v1_headers(), [OTHER_SECRET], now=V1_TS)


# --- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [24, 32, 64])
@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("prefixed", [True, False])
def test_decode_secret_accepts_24_to_64_bytes(size: int, padded: bool, prefixed: bool) -> None:
    key = bytes(range(size))
    text = base64.b64encode(key).decode()
    text = text if padded else text.rstrip("=")
    assert decode_secret(("whsec_" if prefixed else "") + text) == key


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "bytes"),
        ("whsec_", "bytes"),
        ("whsec_YQ==", "bytes"),
        ("whsec_YQ", "bytes"),
        ("whsec_!!!", "base64"),
        ("whsec_" + base64.b64encode(b"k" * 23).decode(), "bytes"),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), "bytes"),
        ("whsec_" + base64.b64encode(b"k" * 32).decode() + "é", "base64"),
        ("whsec_ab cd" + "A" * 40, "base64"),
    ],
    ids=[
        "empty",
        "prefix-only",
        "one-byte",
        "one-byte-unpadded",
        "non-base64",
        "23-bytes",
        "65-bytes",
        "non-ascii",
        "space",
    ],
)
def test_decode_secret_rejects_bad_secret_naming_problem_not_value(secret: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        decode_secret(secret)
    if len(secret) > len("whsec_"):
        assert secret.removeprefix("whsec_") not in str(caught.value)


def test_verify_with_a_bad_configured_secret_raises_value_error() -> None:
    with pytest.raises(ValueError, match="24-64 bytes"):
        verify(V1_BODY, v1_headers(), ["whsec_YQ=="], now=V1_TS)


def test_verify_without_any_secret_raises_value_error() -> None:
    with pytest.raises(ValueError, match="no webhook secret"):
        verify(V1_BODY, v1_headers(), [], now=V1_TS)


def test_sign_rejects_short_raw_key() -> None:
    with pytest.raises(ValueError, match="24-64 bytes"):
        sign(b"short", V1_ID, V1_TS, V1_BODY)


# --- signature_headers ----------------------------------------------------------------------------


def test_signature_headers_verify_with_given_timestamp() -> None:
    headers = signature_headers(SECRET, V1_ID, V1_BODY, timestamp=V1_TS)
    assert headers == v1_headers()


def test_signature_headers_default_to_now() -> None:
    headers = signature_headers(SECRET, "msg_now", b"{}")
    assert verify(b"{}", headers, [SECRET]) == "msg_now"


def test_signature_headers_webhook_prefix() -> None:
    assert signature_headers(SECRET, V1_ID, V1_BODY, timestamp=V1_TS, prefix="webhook") == v1_headers(
        prefix="webhook"
    )


def test_signature_headers_reject_unknown_prefix() -> None:
    with pytest.raises(ValueError, match="prefix"):
        signature_headers(SECRET, V1_ID, V1_BODY, prefix="x-svix")


# --- cross-check with the standardwebhooks library ------------------------------------------------


@pytest.mark.parametrize(("msg_id", "ts", "body"), [(V1_ID, V1_TS, V1_BODY), (V2_ID, V2_TS, V2_BODY)])
def test_sign_agrees_with_standardwebhooks(msg_id: str, ts: int, body: bytes) -> None:
    theirs = standardwebhooks.Webhook(SECRET).sign(msg_id, datetime.fromtimestamp(ts, tz=UTC), body.decode())
    assert sign(SECRET, msg_id, ts, body) == theirs


def test_standardwebhooks_verifies_our_headers() -> None:
    body = b'{"type":"email.sent","data":{"email_id":"e-1"}}'
    headers = signature_headers(SECRET, "msg_ours", body, prefix="webhook")
    standardwebhooks.Webhook(SECRET).verify(body, headers, json_parse=False)


def test_we_verify_standardwebhooks_signatures() -> None:
    body = b'{"type":"email.sent","data":{"email_id":"e-2"}}'
    now = int(time.time())
    signature = standardwebhooks.Webhook(SECRET).sign(
        "msg_theirs", datetime.fromtimestamp(now, tz=UTC), body.decode()
    )
    headers = {"webhook-id": "msg_theirs", "webhook-timestamp": str(now), "webhook-signature": signature}
    assert verify(body, headers, [SECRET], now=now) == "msg_theirs"
