"""Contract: every body the client can send validates against Resend's official OpenAPI schemas.

The spec is an unmodified copy of ``resend.yaml`` (resend/resend-openapi @ fd6f395f) in
``tests/fixtures``, so CI needs nothing outside the repository. Its schemas allow unknown properties;
the strict variant closes them, so a field name we invent (or misspell) fails here too.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from shared.resend_client import ResendClient
from shared.resend_schemas import SendEmailRequest
from tests.fake_resend import FakeResend

SPEC_PATH = Path(__file__).parent.parent / "fixtures" / "resend-openapi.yaml"
#: sha256 of the upstream file this fixture was copied from.
SPEC_SHA256 = "636624a01ce2009c9034fe4bf3cb2f3d30b0f9077784c017022a65a24f1a80dc"
SPEC_URI = "urn:resend-openapi"
#: Schemas whose properties we close for the strict check.
CLOSED_SCHEMAS = ("SendEmailRequest", "Attachment", "Tag")

OPTIONAL_FIELDS: dict[str, Any] = {
    "html": "<p>Hi</p>",
    "text": "Hi",
    "cc": ["cc@acme.test"],
    "bcc": ["bcc@acme.test"],
    "reply_to": ["reply@acme.test"],
    "headers": {"X-Task-ID": "t-1", "List-Unsubscribe": "<mailto:u@acme.test>"},
    "attachments": [
        {"filename": "a.txt", "content": "aGk=", "content_type": "text/plain"},
        {"path": "https://acme.test/logo.png", "filename": "logo.png", "content_id": "logo"},
    ],
    "tags": [{"name": "task_id", "value": "t-1"}, {"name": "message_id", "value": "m-1"}],
    "scheduled_at": "2026-08-05T11:52:01.858Z",
}
REQUIRED_FIELDS: dict[str, Any] = {
    "from": "Acme <news@acme.test>",
    "to": ["delivered@resend.dev"],
    "subject": "S",
}


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return loaded


def validator(schema: dict[str, Any], *, strict: bool) -> Draft202012Validator:
    """A validator for ``schema`` whose ``$ref``s resolve into the (optionally closed) spec."""
    document = copy.deepcopy(spec())
    if strict:
        for name in CLOSED_SCHEMAS:
            document["components"]["schemas"][name]["additionalProperties"] = False
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return Draft202012Validator(schema, registry=registry)


def ref(pointer: str) -> dict[str, Any]:
    return {"$ref": f"{SPEC_URI}#{pointer}"}


def send_body_schema() -> dict[str, Any]:
    return ref("/paths/~1emails/post/requestBody/content/application~1json/schema")


def batch_body_schema() -> dict[str, Any]:
    return ref("/paths/~1emails~1batch/post/requestBody/content/application~1json/schema")


def every_combination() -> Iterator[dict[str, Any]]:
    """Each subset of the optional fields that makes a valid single-send request (2^9 - 1 of them)."""
    names = list(OPTIONAL_FIELDS)
    for size in range(len(names) + 1):
        for chosen in itertools.combinations(names, size):
            if "html" in chosen or "text" in chosen:
                yield {**REQUIRED_FIELDS, **{name: OPTIONAL_FIELDS[name] for name in chosen}}


def sent_bodies(fields_list: list[dict[str, Any]], *, batch: bool) -> list[Any]:
    """What the client actually put on the wire for these requests."""
    resend = FakeResend()
    client = ResendClient(http=resend.client(), api_key="re_contract_test")
    requests = [SendEmailRequest.model_validate(fields) for fields in fields_list]
    if batch:
        client.send_batch(requests, idempotency_key="contract")
    else:
        for request in requests:
            client.send_email(request, idempotency_key="contract")
    return [json.loads(request.content) for request in resend.requests]


def test_spec_fixture_is_the_unmodified_upstream_file() -> None:
    assert hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest() == SPEC_SHA256


@pytest.mark.parametrize("strict", [False, True], ids=["spec", "closed"])
def test_every_single_send_body_matches_the_spec(strict: bool) -> None:
    check = validator(send_body_schema(), strict=strict)
    bodies = sent_bodies(list(every_combination()), batch=False)
    assert len(bodies) == 384
    for body in bodies:
        check.validate(body)


@pytest.mark.parametrize("strict", [False, True], ids=["spec", "closed"])
def test_batch_bodies_match_the_spec(strict: bool) -> None:
    without_attachments = [fields for fields in every_combination() if "attachments" not in fields]
    check = validator(batch_body_schema(), strict=strict)
    for start in range(0, len(without_attachments), 100):
        (body,) = sent_bodies(without_attachments[start : start + 100], batch=True)
        check.validate(body)


def test_a_stored_mapping_is_sent_in_a_spec_valid_form() -> None:
    stored = SendEmailRequest.model_validate({**REQUIRED_FIELDS, **OPTIONAL_FIELDS}).to_wire()
    resend = FakeResend()
    ResendClient(http=resend.client(), api_key="re_contract_test").send_email(stored, idempotency_key="k")
    validator(send_body_schema(), strict=True).validate(resend.last_json())


def test_the_closed_check_catches_an_invented_field() -> None:
    body = {**REQUIRED_FIELDS, "text": "t", "reply-to": "x@acme.test"}
    assert not validator(send_body_schema(), strict=True).is_valid(body)


@pytest.mark.parametrize(
    ("schema", "answer"),
    [
        ("SendEmailResponse", {"id": "email-0001"}),
        ("CreateBatchEmailsResponse", {"data": [{"id": "email-0001"}, {"id": "email-0002"}]}),
    ],
)
def test_the_fakes_default_answers_match_the_spec(schema: str, answer: dict[str, Any]) -> None:
    validator(ref(f"/components/schemas/{schema}"), strict=False).validate(answer)
