"""JSON Schemas of the task kwargs (``pilot.send_email``, ``pilot.send_batch``, ``pilot.cancel``) and of
``pilot.outcome``,
generated from the models. The repository commits them under ``schemas/``; ``pilot schema`` prints them.
"""

from __future__ import annotations

import json
from typing import Any

from marketing_pilot_client.contract import CANCEL, OUTCOME, SEND_BATCH, SEND_EMAIL
from marketing_pilot_client.outcomes import OutcomeEvent
from marketing_pilot_client.payloads import CancelPayload, EmailFields, SendBatchPayload, SendEmailPayload

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def task_schemas() -> dict[str, dict[str, Any]]:
    """Each task name's JSON Schema (its kwargs), in a stable order."""
    return {
        SEND_EMAIL: _titled(SendEmailPayload.model_json_schema(by_alias=True), SEND_EMAIL),
        SEND_BATCH: _titled(_batch_schema(), SEND_BATCH),
        CANCEL: _titled(CancelPayload.model_json_schema(by_alias=True), CANCEL),
        OUTCOME: _titled(OutcomeEvent.model_json_schema(by_alias=True), OUTCOME),
    }


def schema_text(name: str) -> str:
    """The committed file's text for task ``name``: indented JSON, keys in model order, final newline."""
    return json.dumps(task_schemas()[name], indent=2, ensure_ascii=False) + "\n"


def _batch_schema() -> dict[str, Any]:
    # The worker validates each email alone (one bad email is refused alone), so the model types
    # ``emails`` loosely; the published schema names their shape.
    schema = SendBatchPayload.model_json_schema(by_alias=True)
    email = EmailFields.model_json_schema(by_alias=True)
    defs = {**schema.get("$defs", {}), **email.pop("$defs", {}), "Email": email}
    schema["properties"]["emails"]["items"] = {"$ref": "#/$defs/Email"}
    schema["$defs"] = dict(sorted(defs.items()))
    return schema


def _titled(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$schema": _DIALECT, "$id": f"{name}.schema.json", **schema, "title": name}
