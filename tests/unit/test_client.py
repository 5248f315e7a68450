"""The client upstream apps install: light imports, the worker's own models, the right queue, the
task id back, and JSON Schemas committed under ``schemas/`` that never drift from the models."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

import marketing_pilot_client.payloads as client_payloads
import shared.sending.payloads as worker_payloads
from marketing_pilot_client import CANCEL, OUTCOME, SEND_BATCH, SEND_EMAIL, PilotClient, task_schemas
from marketing_pilot_client.schema import schema_text
from shared.cli import cli

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
CONNECTOR = str(uuid.uuid4())


class RecordingApp:
    """A Celery app's ``send_task``, recorded."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def send_task(self, name: str, kwargs: dict[str, Any], queue: str) -> Any:
        self.calls.append({"name": name, "kwargs": kwargs, "queue": queue})
        return type("Result", (), {"id": f"celery-{len(self.calls)}"})()


@pytest.fixture
def app() -> RecordingApp:
    return RecordingApp()


@pytest.fixture
def client(app: RecordingApp) -> PilotClient:
    return PilotClient(app)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [SEND_EMAIL, SEND_BATCH, CANCEL, OUTCOME])
def test_committed_schema_matches_the_models(name: str) -> None:
    committed = (SCHEMAS / f"{name}.schema.json").read_text()

    assert committed == schema_text(name), f"schemas/{name}.schema.json drifted: run `pilot schema {name}`"


def test_pilot_schema_prints_each_committed_file() -> None:
    result = CliRunner().invoke(cli, ["schema", SEND_EMAIL])

    assert result.exit_code == 0
    assert result.output == (SCHEMAS / f"{SEND_EMAIL}.schema.json").read_text()


def test_pilot_schema_without_a_task_prints_all_of_them() -> None:
    result = CliRunner().invoke(cli, ["schema"])

    assert json.loads(result.output) == task_schemas()


def test_the_schemas_accept_a_full_payload_and_refuse_an_unknown_field() -> None:
    email = {
        "to": ["ada@example.com"],
        "subject": "Your invoice",
        "html": "<p>Thanks!</p>",
        "from": "Billing <billing@example.com>",
        "metadata": {"invoice": "4711"},
        "idempotency_key": "invoice/4711",
    }
    send_email = json.loads((SCHEMAS / f"{SEND_EMAIL}.schema.json").read_text())
    send_batch = json.loads((SCHEMAS / f"{SEND_BATCH}.schema.json").read_text())

    jsonschema.validate({"connector_id": CONNECTOR, "priority": "transactional", **email}, send_email)
    jsonschema.validate({"connector_id": CONNECTOR, "emails": [email]}, send_batch)
    with pytest.raises(jsonschema.ValidationError, match="subjct"):
        jsonschema.validate({"connector_id": CONNECTOR, "emails": [{**email, "subjct": "x"}]}, send_batch)


def test_the_worker_validates_against_the_clients_models() -> None:
    assert worker_payloads.CancelPayload is client_payloads.CancelPayload
    assert worker_payloads.SendEmailPayload is client_payloads.SendEmailPayload
    assert worker_payloads.SendBatchPayload is client_payloads.SendBatchPayload
    assert worker_payloads.EmailFields is client_payloads.EmailFields


def test_importing_the_client_loads_none_of_the_service_or_its_heavy_dependencies() -> None:
    heavy = ["shared", "worker", "sqlalchemy", "psycopg", "flask", "pydantic_settings", "httpx", "alembic"]
    code = f"import sys, marketing_pilot_client; print([m for m in {heavy!r} if m in sys.modules])"

    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert loaded.strip() == "[]"


def test_a_small_send_email_goes_to_the_priority_queue_with_wire_names(app, client) -> None:
    task_id = client.send_email(
        CONNECTOR, to="ada@example.com", subject="Reset", html="<p>x</p>", from_="a@example.com"
    )

    assert task_id == "celery-1"
    [call] = app.calls
    assert (call["name"], call["queue"]) == (SEND_EMAIL, "pilot.sends.priority")
    assert call["kwargs"] == {
        "connector_id": CONNECTOR,
        "to": ["ada@example.com"],
        "subject": "Reset",
        "html": "<p>x</p>",
        "from": "a@example.com",
    }


def test_a_send_email_marked_bulk_and_every_batch_go_to_the_bulk_queue(app, client) -> None:
    client.send_email(CONNECTOR, to="ada@example.com", subject="News", html="<p>x</p>", priority="bulk")
    client.send_batch(CONNECTOR, [{"to": "ada@example.com", "subject": "News", "text": "x"}])

    assert [(call["name"], call["queue"]) for call in app.calls] == [
        (SEND_EMAIL, "pilot.sends"),
        (SEND_BATCH, "pilot.sends"),
    ]
    assert app.calls[1]["kwargs"]["emails"] == [{"to": ["ada@example.com"], "subject": "News", "text": "x"}]


def test_an_invalid_send_is_refused_before_publishing_naming_the_field(app, client) -> None:
    with pytest.raises(ValidationError, match="idempotency_key"):
        client.send_email(CONNECTOR, to="ada@example.com", subject="S", html="h", idempotency_key="a b")
    with pytest.raises(ValidationError, match="to"):
        client.send_batch(CONNECTOR, [{"to": "not an address", "subject": "S", "text": "x"}])

    assert app.calls == []


def test_an_upstream_worker_can_handle_outcome_events_as_a_celery_task() -> None:
    from celery import Celery

    from marketing_pilot_client import OutcomeEvent, register_outcome_handler

    app = Celery("upstream-test", set_as_current=False)
    received: list[OutcomeEvent] = []
    register_outcome_handler(app, received.append)
    event = {
        "event_id": str(uuid.uuid4()),
        "kind": "delivered",
        "occurred_at": "2026-12-06T10:00:00Z",
        "message_id": str(uuid.uuid4()),
        "recipient": "ada@example.com",
        "connector_id": CONNECTOR,
        "metadata": {"order": "4711"},
    }

    app.tasks[OUTCOME](**event)

    assert [(e.kind.value, e.metadata) for e in received] == [("delivered", {"order": "4711"})]


def test_a_cancel_by_idempotency_key_goes_to_the_priority_queue(app, client) -> None:
    task_id = client.cancel(connector_id=CONNECTOR, idempotency_key="newsletter/2026-12")

    assert task_id == "celery-1"
    assert app.calls == [
        {
            "name": CANCEL,
            "kwargs": {"connector_id": CONNECTOR, "idempotency_key": "newsletter/2026-12"},
            "queue": "pilot.sends.priority",
        }
    ]


def test_a_cancel_naming_an_unknown_field_is_refused_before_anything_is_published(app, client) -> None:
    with pytest.raises(ValidationError, match="idempotency"):
        client.cancel(connector_id=CONNECTOR, idempotency="newsletter/2026-12")

    assert app.calls == []
