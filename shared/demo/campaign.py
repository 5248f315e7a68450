"""The demo campaign: who receives it, and how it is enqueued (by task name, as upstream apps do)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shared import task_names
from shared.task_producer import TaskSender, publish
from shared.unsubscribe.links import PLACEHOLDER

#: Resend's test addresses and ordinary readers.
ORDINARY_READERS = 244
DELIVERED_TEST = 20
BOUNCED_TEST = 15
COMPLAINED_TEST = 10
UNSUBSCRIBED = 10  # already on our suppression list before the campaign
BATCH_SIZE = 100
#: The campaign's topic: a one-click unsubscribe leaves it, not the shop's other mail.
TOPIC = "spring-offers"
#: Readers whose mailbox provider performs the one-click unsubscribe after the campaign.
ONE_CLICK_READERS = 5
#: The shop's own queue for outcome events: every demo send names it.
OUTCOMES_QUEUE = "demo-shop.outcomes"


@dataclass(frozen=True)
class Audience:
    """The campaign's recipients, and which of them are suppressed before it starts."""

    recipients: list[str]
    pre_suppressed: list[str]

    @property
    def bounced(self) -> list[str]:
        return [r for r in self.recipients if r.startswith("bounced+")]

    @property
    def complained(self) -> list[str]:
        return [r for r in self.recipients if r.startswith("complained+")]


def demo_audience() -> Audience:
    """About three hundred recipients mixing readers, test addresses and unsubscribed people."""
    readers = [f"reader{n:03d}@example.com" for n in range(ORDINARY_READERS)]
    delivered = [f"delivered+demo{n}@resend.dev" for n in range(DELIVERED_TEST)]
    bounced = [f"bounced+demo{n}@resend.dev" for n in range(BOUNCED_TEST)]
    complained = [f"complained+demo{n}@resend.dev" for n in range(COMPLAINED_TEST)]
    # Mixed case on purpose: suppression matching ignores letter case.
    unsubscribed = [f"Former.Reader{n}@Example.com" for n in range(UNSUBSCRIBED)]
    # Test addresses first: they fit in the hourly budget, so their bounces and complaints show;
    # the last readers are the ones the budget defers.
    recipients = [*delivered, *bounced, *complained, "suppressed@resend.dev", *unsubscribed, *readers]
    return Audience(recipients=recipients, pre_suppressed=[u.lower() for u in unsubscribed])


def email_for(recipient: str, index: int) -> dict[str, Any]:
    """One campaign email (the ``emails`` item of ``pilot.send_batch``)."""
    return {
        "to": recipient,
        "subject": "Spring collection: 20% off this week",
        "html": (
            f"<p>Hello reader #{index},</p><p>Our spring collection is here.</p>"
            f'<p><a href="{PLACEHOLDER}">Unsubscribe from spring offers</a></p>'
        ),
        "text": f"Hello reader #{index}, our spring collection is here.\n\nUnsubscribe: " + PLACEHOLDER,
        "metadata": {"campaign": "spring-demo"},
        "topic": TOPIC,
    }


def enqueue_batches(
    broker: TaskSender,
    *,
    connector_id: uuid.UUID,
    organization_id: uuid.UUID,
    task_id: uuid.UUID,
    recipients: list[str],
) -> int:
    """Publish ``pilot.send_batch`` tasks of up to :data:`BATCH_SIZE` emails; return how many tasks."""
    batches = [recipients[i : i + BATCH_SIZE] for i in range(0, len(recipients), BATCH_SIZE)]
    for offset, batch in zip(range(0, len(recipients), BATCH_SIZE), batches, strict=True):
        publish(
            broker,
            task_names.SEND_BATCH,
            kwargs={
                "connector_id": str(connector_id),
                "organization_id": str(organization_id),
                "task_id": str(task_id),
                "emails": [email_for(r, offset + i) for i, r in enumerate(batch)],
                "outcomes_queue": OUTCOMES_QUEUE,
            },
        )
    return len(batches)
