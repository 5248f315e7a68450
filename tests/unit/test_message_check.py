"""worker.broker.message_check: which broker messages Celery's consumer may take, and how refusals read."""

from __future__ import annotations

import inspect
import json
import pickle
from typing import Any

import pytest
from kombu.message import Message
from kombu.utils.json import dumps

import worker.beat.tasks
import worker.broker.tasks
import worker.events.tasks
import worker.tasks  # noqa: F401  (registers the tasks whose signatures are checked)
from shared import task_names
from shared.models import DeadLetterReason
from worker.broker.message_check import Refusal, check_task_message, describe, task_signatures
from worker.celery_app import app

JSON = "application/json"
SEND, EVENT, SWEEP = task_names.SEND_EMAIL, task_names.PROCESS_WEBHOOK_EVENT, task_names.SWEEP
MALFORMED, ARGUMENTS = DeadLetterReason.MALFORMED, DeadLetterReason.ARGUMENTS


@pytest.fixture(scope="module")
def signatures() -> dict[str, inspect.Signature]:
    return task_signatures(app.tasks)


def message(body: bytes | str, headers: Any = None, content_type: str | None = JSON) -> Message:
    """A message as the Redis transport hands it over (the worker accepts JSON only)."""
    raw = body.encode() if isinstance(body, str) else body
    msg = Message(body=raw, content_type=content_type, content_encoding="utf-8", headers={})
    msg.headers = headers  # kombu turns a missing mapping into {}; the transport may give anything
    msg.accept = {JSON}
    return msg


def v2(task: str, **extra: Any) -> dict[str, Any]:
    return {"task": task, "id": "6f1c1a9e-3f9b-4a53-a0a4-8c6bb9e0b1a1", **extra}


MALFORMED_SHAPES: list[tuple[str, Message, Refusal]] = [
    (
        "string body",
        message('"just a string"', v2(SEND)),
        Refusal(MALFORMED, "body: expected [args, kwargs, embed], got a string"),
    ),
    (
        "two-item body",
        message("[[], {}]", v2(SEND)),
        Refusal(MALFORMED, "body: expected [args, kwargs, embed], got a list of 2 items"),
    ),
    (
        "number body",
        message("5", v2(SEND)),
        Refusal(MALFORMED, "body: expected [args, kwargs, embed], got a number"),
    ),
    (
        "null body",
        message("null", v2(SEND)),
        Refusal(MALFORMED, "body: expected [args, kwargs, embed], got null"),
    ),
    (
        "mapping body without args",
        message("{}", v2(SEND)),
        Refusal(MALFORMED, "body: expected [args, kwargs, embed], got a mapping without 'args'"),
    ),
    (
        "args not a list",
        message('["x", {}, {}]', v2(SEND)),
        Refusal(MALFORMED, "body[0] (args): expected a list, got a string"),
    ),
    (
        "kwargs not a mapping",
        message("[[], [], {}]", v2(SEND)),
        Refusal(MALFORMED, "body[1] (kwargs): expected a mapping, got an empty list"),
    ),
    (
        "embed not a mapping",
        message("[[], {}, 5]", v2(SEND)),
        Refusal(MALFORMED, "body[2] (embed): expected a mapping or null, got a number"),
    ),
    (
        "embed callbacks not a list",
        message('[[], {}, {"callbacks": "x"}]', v2(SEND)),
        Refusal(MALFORMED, "body[2] (embed).callbacks: expected a list or null, got a string"),
    ),
    (
        "headers not a mapping",
        message("[[], {}, {}]", [SEND]),
        Refusal(MALFORMED, "headers: expected a mapping, got a list of 1 item"),
    ),
    (
        "headers missing",
        message("[[], {}, {}]", {}),
        Refusal(
            MALFORMED,
            "headers.task: missing, and the body is not a protocol 1 task mapping (got a list of 3 items)",
        ),
    ),
    ("id header missing", message("[[], {}, {}]", {"task": SEND}), Refusal(MALFORMED, "headers.id: missing")),
    (
        "id header a number",
        message("[[], {}, {}]", {"task": SEND, "id": 7}),
        Refusal(MALFORMED, "headers.id: expected a string, got a number"),
    ),
    (
        "id header empty",
        message("[[], {}, {}]", {"task": SEND, "id": ""}),
        Refusal(MALFORMED, "headers.id: empty"),
    ),
    (
        "task header a list",
        message("[[], {}, {}]", v2(SEND) | {"task": ["x"]}),
        Refusal(MALFORMED, "headers.task: expected a string, got a list of 1 item"),
    ),
    (
        "time limit a string",
        message("[[], {}, {}]", v2(SEND, timelimit="soon")),
        Refusal(MALFORMED, "headers.timelimit: expected [hard, soft] seconds, got a string"),
    ),
    (
        "time limit of strings",
        message("[[], {}, {}]", v2(SEND, timelimit=["a", None])),
        Refusal(MALFORMED, "headers.timelimit: expected [hard, soft] seconds or nulls, got a string"),
    ),
    (
        "retries a boolean",
        message("[[], {}, {}]", v2(SEND, retries=True)),
        Refusal(MALFORMED, "headers.retries: expected an integer or null, got a boolean"),
    ),
    (
        "eta not a time",
        message("[[], {}, {}]", v2(SEND, eta="tomorrow")),
        Refusal(MALFORMED, "headers.eta: not an ISO 8601 time"),
    ),
    (
        "expires a number",
        message("[[], {}, {}]", v2(SEND, expires=5)),
        Refusal(MALFORMED, "headers.expires: expected an ISO 8601 time or null, got a number"),
    ),
    (
        "shadow not a string",
        message("[[], {}, {}]", v2(SEND, shadow={})),
        Refusal(MALFORMED, "headers.shadow: expected a string or null, got a mapping"),
    ),
    (
        "hybrid kwargs not a mapping",
        message('{"args": [], "kwargs": [1]}', v2(EVENT)),
        Refusal(MALFORMED, "body.kwargs: expected a mapping, got a list of 1 item"),
    ),
    (
        "hybrid without id",
        message('{"args": ["e"], "kwargs": {}}', {"task": EVENT}),
        Refusal(MALFORMED, "headers.id: missing"),
    ),
    (
        "protocol 1 args not a list",
        message(json.dumps({"task": EVENT, "id": "x", "args": "abc"}), {}),
        Refusal(MALFORMED, "body.args: expected a list, got a string"),
    ),
    (
        "protocol 1 kwargs null",
        message(json.dumps({"task": SWEEP, "id": "x", "args": [], "kwargs": None}), {}),
        Refusal(MALFORMED, "body.kwargs: expected a mapping, got null"),
    ),
    (
        "protocol 1 without id",
        message(json.dumps({"task": SWEEP, "args": [], "kwargs": {}}), {}),
        Refusal(MALFORMED, "body.id: missing"),
    ),
    (
        "protocol 1 without task",
        message(json.dumps({"id": "x", "args": []}), {}),
        Refusal(MALFORMED, "body.task: missing"),
    ),
    (
        "protocol 1 chord not a mapping",
        message(json.dumps({"task": SWEEP, "id": "x", "chord": []}), {}),
        Refusal(MALFORMED, "body.chord: expected a mapping or null, got an empty list"),
    ),
    (
        "plain text",
        message("hello", v2(SEND), "text/plain"),
        Refusal(DeadLetterReason.CONTENT_TYPE, "content type: expected application/json, got 'text/plain'"),
    ),
    (
        "YAML",
        message("task: x", v2(SEND), "application/x-yaml"),
        Refusal(
            DeadLetterReason.CONTENT_TYPE, "content type: expected application/json, got 'application/x-yaml'"
        ),
    ),
    (
        "pickle",
        message(pickle.dumps(([], {}, {})), v2(SEND), "application/x-python-serialize"),
        Refusal(
            DeadLetterReason.CONTENT_TYPE,
            "content type: expected application/json, got 'application/x-python-serialize'",
        ),
    ),
    (
        "no content type",
        message("[[], {}, {}]", v2(SEND), None),
        Refusal(DeadLetterReason.CONTENT_TYPE, "content type: expected application/json, got none"),
    ),
    (
        "invalid UTF-8",
        message(b'[["\xff"], {}, {}]', v2(SEND)),
        Refusal(DeadLetterReason.UNDECODABLE, "body: not valid UTF-8"),
    ),
    (
        "not JSON",
        message('{"task": ', v2(SEND)),
        Refusal(DeadLetterReason.UNDECODABLE, "body: not valid JSON (JSONDecodeError)"),
    ),
    (
        "task name typo",
        message("[[], {}, {}]", v2("pilot.send_mail")),
        Refusal(DeadLetterReason.UNKNOWN_TASK, "task: 'pilot.send_mail' is not a registered task"),
    ),
    (
        "missing argument",
        message("[[], {}, {}]", v2(EVENT)),
        Refusal(
            ARGUMENTS, "arguments of 'pilot.process_webhook_event': missing a required argument: 'event_ids'"
        ),
    ),
    (
        "too many arguments",
        message("[[1], {}, {}]", v2(SWEEP)),
        Refusal(ARGUMENTS, "arguments of 'pilot.sweep': too many positional arguments"),
    ),
    (
        "unexpected keyword",
        message('[[], {"force": true}, {}]', v2(SWEEP)),
        Refusal(ARGUMENTS, "arguments of 'pilot.sweep': got an unexpected keyword argument 'force'"),
    ),
]


@pytest.mark.parametrize(
    ("shape", "msg", "refusal"), MALFORMED_SHAPES, ids=[shape for shape, _, _ in MALFORMED_SHAPES]
)
def test_check_task_message_refuses_a_malformed_shape_naming_what_is_wrong(
    signatures: dict[str, inspect.Signature], shape: str, msg: Message, refusal: Refusal
) -> None:
    assert check_task_message(msg, signatures) == refusal


def test_check_task_message_accepts_protocol_2_as_celery_publishes_it(
    signatures: dict[str, inspect.Signature],
) -> None:
    task = app.amqp.as_task_v2("4d1e4b7a-5d0c-4c56-9a53-47c1a1c4f2de", EVENT, args=["e1"], kwargs={})

    assert check_task_message(message(dumps(task.body), task.headers), signatures) is None


def test_check_task_message_accepts_protocol_1_as_celery_publishes_it(
    signatures: dict[str, inspect.Signature],
) -> None:
    task = app.amqp.as_task_v1("4d1e4b7a-5d0c-4c56-9a53-47c1a1c4f2de", SWEEP, args=(), kwargs={})

    assert check_task_message(message(dumps(task.body), task.headers), signatures) is None


def test_check_task_message_accepts_a_hybrid_body_with_protocol_2_headers(
    signatures: dict[str, inspect.Signature],
) -> None:
    msg = message(json.dumps({"args": ["e1"], "kwargs": {}, "retries": 0}), v2(EVENT))

    assert check_task_message(msg, signatures) is None


@pytest.mark.parametrize("task", [SEND, task_names.SEND_BATCH])
def test_check_task_message_leaves_any_send_arguments_to_the_send_task(
    signatures: dict[str, inspect.Signature], task: str
) -> None:
    msg = message('[["positional"], {"unknown": 1}, null]', v2(task))

    assert check_task_message(msg, signatures) is None


def test_check_task_message_refusal_never_quotes_body_values(
    signatures: dict[str, inspect.Signature],
) -> None:
    msg = message('[["ada@example.com"], {}, "grace@example.com"]', v2(SEND))

    refusal = check_task_message(msg, signatures)

    assert refusal is not None and "example.com" not in refusal.detail


def test_check_task_message_quotes_a_task_name_printably(signatures: dict[str, inspect.Signature]) -> None:
    msg = message("[[], {}, {}]", v2("pilot.send\nFAKE LOG LINE"))

    refusal = check_task_message(msg, signatures)

    assert refusal == Refusal(
        DeadLetterReason.UNKNOWN_TASK, "task: 'pilot.send?FAKE LOG LINE' is not a registered task"
    )


def test_task_signatures_cover_every_registered_pilot_task(signatures: dict[str, inspect.Signature]) -> None:
    assert set(task_names.TASK_QUEUES) <= set(signatures)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "null"),
        (True, "a boolean"),
        (1.5, "a number"),
        ("x", "a string"),
        ([], "an empty list"),
        ({}, "a mapping"),
    ],
)
def test_describe_names_the_kind_of_a_value(value: Any, words: str) -> None:
    assert describe(value) == words
