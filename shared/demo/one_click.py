"""The demo's mailbox provider: a few readers press "Unsubscribe", so it posts RFC 8058 one-clicks.

It reads each email's ``List-Unsubscribe`` header as sent (the stored request) and posts
``List-Unsubscribe=One-Click`` to it, as Gmail or Yahoo would; the first one is posted twice, to
show that a repeat changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.models import EmailMessage, EmailRequest, MessageStatus, Suppression
from shared.unsubscribe.links import LIST_UNSUBSCRIBE, LIST_UNSUBSCRIBE_POST, ONE_CLICK

#: Statuses of an email that reached its reader.
_RECEIVED = (MessageStatus.SENT, MessageStatus.DELIVERED)


def simulate(
    session: Session, *, task_id: uuid.UUID, organization_id: uuid.UUID, readers: int, topic: str
) -> dict[str, Any]:
    """Post the one-click of ``readers`` received emails of the task; what the report shows."""
    rows = session.execute(
        select(EmailMessage.recipient, EmailRequest.request)
        .join(EmailRequest, EmailRequest.of_message())
        .where(
            EmailMessage.task_id == task_id,
            EmailMessage.status.in_(_RECEIVED),
            EmailMessage.recipient.startswith("reader"),
        )
        .order_by(EmailMessage.recipient)
        .limit(readers)
    ).all()
    posts: list[dict[str, Any]] = []
    example: dict[str, str] = {}
    with httpx.Client(timeout=5.0, follow_redirects=False) as client:
        for index, (recipient, request) in enumerate(rows):
            headers = request.get("headers", {})
            if not example:
                example = {name: headers.get(name, "") for name in (LIST_UNSUBSCRIBE, LIST_UNSUBSCRIBE_POST)}
            url = headers.get(LIST_UNSUBSCRIBE, "").strip("<>")
            for _ in range(2 if index == 0 else 1):
                answer = client.post(
                    url, content=ONE_CLICK, headers={"Content-Type": "application/x-www-form-urlencoded"}
                )
                posts.append({"recipient": recipient, "status": answer.status_code})
    left = session.scalar(
        select(func.count()).where(Suppression.organization_id == organization_id, Suppression.topic == topic)
    )
    return {"topic": topic, "header": example, "posts": posts, "left_topic": int(left or 0)}
