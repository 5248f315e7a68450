"""Is a broker message a task message Celery's consumer can take? A cheap structural check.

Celery unpacks a message in the worker's *main* process, where a shape it does not expect stops the
whole worker (and, redelivered, the next one). :func:`check_task_message` first looks at everything
unpacking relies on and names what is wrong in a :class:`Refusal`, never a value. The accepted
shapes: docs/architecture.md, "Broker message hardening".
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from celery.utils.time import maybe_iso8601

from shared import task_names
from shared.errors import PayloadInvalid
from shared.models import DeadLetterReason

JSON_CONTENT_TYPE = "application/json"
#: Longest given value (a task name, a content type) quoted in a refusal's detail.
QUOTE_LIMIT = 120

#: Tasks that take any positional and keyword arguments and record bad ones as a failed send
#: naming the field, so no argument is refused here.
SELF_CHECKING_TASKS = frozenset({task_names.SEND_EMAIL, task_names.SEND_BATCH})
ANY_ARGUMENTS = inspect.Signature(
    [
        inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
        inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
    ]
)


#: Checks one field's value (null is always allowed); raises :class:`PayloadInvalid` naming the field.
FieldCheck = Callable[[Any, str], None]


@dataclass(frozen=True)
class Refusal:
    """Why a message is refused: the reason (a bounded label) and what was wrong, naming the field."""

    reason: DeadLetterReason
    detail: str


def task_signatures(tasks: Mapping[str, Any]) -> dict[str, inspect.Signature]:
    """The signature each registered task's arguments must bind to, by task name."""
    signatures: dict[str, inspect.Signature] = {}
    for name, task in tasks.items():
        if name in SELF_CHECKING_TASKS:
            signatures[name] = ANY_ARGUMENTS
            continue
        try:
            signatures[name] = inspect.signature(task.run)
        except (TypeError, ValueError):  # a callable inspect cannot read: leave it to the task
            signatures[name] = ANY_ARGUMENTS
    return signatures


def check_task_message(message: Any, signatures: Mapping[str, inspect.Signature]) -> Refusal | None:
    """``None`` when Celery's consumer can take ``message`` (a ``kombu.Message``); else why not.

    ``message.payload`` decodes the body once; Celery reuses the decoded body.
    """
    headers = message.headers
    if not isinstance(headers, Mapping):
        return Refusal(DeadLetterReason.MALFORMED, f"headers: expected a mapping, got {describe(headers)}")
    if message.content_type != JSON_CONTENT_TYPE:
        return Refusal(
            DeadLetterReason.CONTENT_TYPE,
            f"content type: expected {JSON_CONTENT_TYPE}, got {quoted(message.content_type)}",
        )
    try:
        payload = message.payload
    except Exception as exc:
        return Refusal(DeadLetterReason.UNDECODABLE, f"body: {decode_problem(exc)}")
    try:
        name, args, kwargs = unpack(headers, payload)
    except PayloadInvalid as problem:
        return Refusal(DeadLetterReason.MALFORMED, str(problem))
    signature = signatures.get(name)
    if signature is None:
        return Refusal(DeadLetterReason.UNKNOWN_TASK, f"task: {quoted(name)} is not a registered task")
    if signature is ANY_ARGUMENTS:
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return Refusal(DeadLetterReason.ARGUMENTS, f"arguments of {quoted(name)}: {printable(str(exc))}")
    return None


def decode_problem(exc: BaseException) -> str:
    """What kind of undecodable body ``exc`` (raised by kombu's decoding) reports."""
    cause = exc.__cause__ or exc.__context__ or exc
    if isinstance(exc, UnicodeDecodeError) or isinstance(cause, UnicodeDecodeError):
        return "not valid UTF-8"
    return f"not valid JSON ({type(cause).__name__})"


def unpack(headers: Mapping[str, Any], payload: Any) -> tuple[str, list[Any], dict[str, Any]]:
    """The task name, args and kwargs of a message; raises :class:`PayloadInvalid` naming the field."""
    if "task" in headers and not isinstance(payload, Mapping):
        return _unpack_protocol_2(headers, payload)
    if not isinstance(payload, Mapping):
        raise PayloadInvalid(
            f"headers.task: missing, and the body is not a protocol 1 task mapping (got {describe(payload)})"
        )
    return _unpack_mapping(headers, payload)


def _unpack_protocol_2(headers: Mapping[str, Any], body: Any) -> tuple[str, list[Any], dict[str, Any]]:
    if not isinstance(body, list | tuple) or len(body) != 3:
        raise PayloadInvalid(f"body: expected [args, kwargs, embed], got {describe(body)}")
    args, kwargs, embed = body
    _expect(args, list, "body[0] (args)", "a list")
    _expect(kwargs, Mapping, "body[1] (kwargs)", "a mapping")
    if embed is not None:
        _expect(embed, Mapping, "body[2] (embed)", "a mapping or null")
        _check_fields(embed, "body[2] (embed)", _CANVAS_FIELDS)
    _check_fields(headers, "headers", _REQUEST_FIELDS)
    _require_identity(headers, "headers")
    return headers["task"], args, dict(kwargs)


def _unpack_mapping(
    headers: Mapping[str, Any], body: Mapping[str, Any]
) -> tuple[str, list[Any], dict[str, Any]]:
    # Protocol 1, or "hybrid" (protocol 2 headers, protocol 1 body). Celery overlays the headers on
    # the body's fields when the body has "args"; without it, it reads the body alone, and with
    # protocol 2 headers it does not read it at all (it crashes).
    hybrid = "task" in headers
    if hybrid and "args" not in body:
        raise PayloadInvalid("body: expected [args, kwargs, embed], got a mapping without 'args'")
    overlay = headers if "args" in body else {}
    _check_fields(overlay, "headers", _REQUEST_FIELDS)
    _check_fields({k: v for k, v in body.items() if k not in overlay}, "body", _REQUEST_FIELDS)
    fields = {**body, **overlay}
    _check_fields(body, "body", _CANVAS_FIELDS)
    _require_identity(fields, "headers" if hybrid else "body")
    return fields["task"], *_arguments(body)


def _arguments(body: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    args = body.get("args", [])
    kwargs = body.get("kwargs", {})
    _expect(args, list, "body.args", "a list")
    _expect(kwargs, Mapping, "body.kwargs", "a mapping")
    return args, dict(kwargs)


def _require_identity(fields: Mapping[str, Any], where: str) -> None:
    for key in ("task", "id"):
        if key not in fields:
            raise PayloadInvalid(f"{where}.{key}: missing")
        value = fields[key]
        _expect(value, str, f"{where}.{key}", "a string")
        if not value:
            raise PayloadInvalid(f"{where}.{key}: empty")


def _expect(value: Any, kind: type | Any, field: str, expected: str) -> None:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise PayloadInvalid(f"{field}: expected {expected}, got {describe(value)}")


def _of_type(kind: type | Any, expected: str) -> FieldCheck:
    def check(value: Any, field: str) -> None:
        _expect(value, kind, field, f"{expected} or null")

    return check


def _time_limits(value: Any, field: str) -> None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise PayloadInvalid(f"{field}: expected [hard, soft] seconds, got {describe(value)}")
    for limit in value:
        if limit is not None:
            _expect(limit, int | float, field, "[hard, soft] seconds or nulls")


def _timestamp(value: Any, field: str) -> None:
    _expect(value, str, field, "an ISO 8601 time or null")
    try:
        parsed = maybe_iso8601(value)
        if parsed is not None and parsed.tzinfo is not None:
            parsed.astimezone(UTC)
    except (ValueError, OverflowError, TypeError):
        raise PayloadInvalid(f"{field}: not an ISO 8601 time") from None


def _check_fields(fields: Mapping[str, Any], where: str, checks: Mapping[str, FieldCheck]) -> None:
    for key, value in fields.items():
        check = checks.get(key)
        if check is not None and value is not None:
            check(value, f"{where}.{key}")


_text = _of_type(str, "a string")
#: Fields of a task request (protocol 2 headers, protocol 1 body) that Celery's consumer reads.
_REQUEST_FIELDS: dict[str, FieldCheck] = {
    **dict.fromkeys(
        ("root_id", "parent_id", "group", "taskset", "shadow", "lang", "origin", "argsrepr", "kwargsrepr"),
        _text,
    ),
    "retries": _of_type(int, "an integer"),
    "timelimit": _time_limits,
    "eta": _timestamp,
    "expires": _timestamp,
    "ignore_result": _of_type(bool, "a boolean"),
    "utc": _of_type(bool, "a boolean"),
}
#: Canvas fields (protocol 2 embed, protocol 1 body) the pool reads after running the task.
_CANVAS_FIELDS: dict[str, FieldCheck] = {
    **dict.fromkeys(("callbacks", "errbacks", "chain"), _of_type(list, "a list")),
    "chord": _of_type(Mapping, "a mapping"),
}


def describe(value: Any) -> str:
    """The kind of ``value`` in words ("a string", "a list of 2 items"), never the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    if isinstance(value, list | tuple):
        if not value:
            return "an empty list"
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__}"


def quoted(value: Any) -> str:
    """``value`` quoted, short and printable: for names that help (a task name, a content type)."""
    if value is None:
        return "none"
    return repr(printable(value if isinstance(value, str) else describe(value)))


def printable(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, each unprintable one (newlines too) shown as "?"."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    return shown + ("..." if len(text) > limit else "")
