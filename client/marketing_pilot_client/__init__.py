"""The typed client of Marketing Pilot connectors for upstream apps (Celery and pydantic only).

``PilotClient`` sends; the payload models, the JSON Schemas and the outcome events are the contract
the worker itself validates and publishes against.
"""

from __future__ import annotations

from marketing_pilot_client.client import PilotClient
from marketing_pilot_client.contract import CANCEL, OUTCOME, SEND_BATCH, SEND_EMAIL, Priority
from marketing_pilot_client.outcomes import OutcomeEvent, OutcomeKind, iter_outcomes, register_outcome_handler
from marketing_pilot_client.payloads import CancelPayload, EmailFields, SendBatchPayload, SendEmailPayload
from marketing_pilot_client.schema import task_schemas

__all__ = [
    "CANCEL",
    "OUTCOME",
    "SEND_BATCH",
    "SEND_EMAIL",
    "CancelPayload",
    "EmailFields",
    "OutcomeEvent",
    "OutcomeKind",
    "PilotClient",
    "Priority",
    "SendBatchPayload",
    "SendEmailPayload",
    "iter_outcomes",
    "register_outcome_handler",
    "task_schemas",
]
