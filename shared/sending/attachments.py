"""Attachment bytes stored once per distinct content, named by their sha256 in each stored request.

A stored request carries ``{"filename", "content_type"?, "content_id"?, "content_sha256"}`` in place
of the base64 ``content``; :func:`expand` puts the content back just before the request leaves, the
same text each time, so a retry sends identical bytes. Layout: docs/architecture.md, "Attachments".
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

from marketing_pilot_client.fields import Attachment
from shared.errors import PayloadInvalid
from shared.models import CANCELLABLE_STATUSES, MessageStatus

#: The key naming stored bytes in a stored request's attachment (never sent: :func:`expand` swaps it).
DIGEST_FIELD = "content_sha256"
#: Bytes unused for this long, and needed by no waiting row, are removed by :func:`remove_unneeded`.
RETENTION_GRACE = timedelta(hours=1)
#: Rows whose request may still leave: their attachments' bytes are kept. One condition per status,
#: so each reads that status's partial index (never the ledger's history).
_NEEDED_BY = " OR ".join(
    f"m.status = '{status}'" for status in sorted({*CANCELLABLE_STATUSES, MessageStatus.SENDING})
)


class AttachmentMissing(PayloadInvalid):
    """A stored request names attachment bytes that are no longer stored."""


def stored_form(attachments: Sequence[Attachment] | None) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """The attachments as a stored request holds them, and their bytes by digest (decoded once)."""
    stored: list[dict[str, Any]] = []
    blobs: dict[str, bytes] = {}
    for attachment in attachments or []:
        item = attachment.model_dump(exclude_none=True)
        content = item.pop("content", None)
        if content is not None:
            data = base64.b64decode(content, validate=True)
            digest = hashlib.sha256(data).hexdigest()
            blobs[digest] = data
            item[DIGEST_FIELD] = digest
        stored.append(item)
    return stored, blobs


def digests(request: Mapping[str, Any]) -> list[str]:
    """The digests of the stored bytes a stored request names, in order, each once."""
    named = [item.get(DIGEST_FIELD) for item in request.get("attachments") or []]
    return list(dict.fromkeys(digest for digest in named if isinstance(digest, str)))


def store(conn: psycopg.Connection[Any], blobs: Mapping[str, bytes]) -> None:
    """Store each distinct content once; content stored already is only marked used now."""
    if not blobs:
        return
    conn.execute(
        """
        INSERT INTO email_attachments (sha256, content, size)
        SELECT v.sha256, v.content, length(v.content)
        FROM unnest(%(digests)s::text[], %(contents)s::bytea[]) AS v(sha256, content)
        ON CONFLICT (sha256) DO UPDATE SET last_used_at = now()
        """,
        {"digests": list(blobs), "contents": list(blobs.values())},
    )


def expand(conn: psycopg.Connection[Any], requests: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The requests as they are sent: each stored attachment's ``content`` put back (base64).

    Raises :class:`AttachmentMissing` if the bytes a request names are no longer stored.
    """
    wanted = {digest for request in requests for digest in digests(request)}
    if not wanted:
        return list(requests)
    rows = conn.execute(
        "SELECT sha256, content FROM email_attachments WHERE sha256 = ANY(%(digests)s)",
        {"digests": sorted(wanted)},
    ).fetchall()
    texts = {digest: base64.b64encode(bytes(content)).decode("ascii") for digest, content in rows}
    missing = wanted - texts.keys()
    if missing:
        raise AttachmentMissing(f"attachments: stored content {sorted(missing)[0][:16]}... is gone")
    return [_with_content(request, texts) for request in requests]


def _with_content(request: Mapping[str, Any], texts: Mapping[str, str]) -> Mapping[str, Any]:
    if not digests(request):
        return request
    attachments = []
    for item in request["attachments"]:
        sent = {name: value for name, value in item.items() if name != DIGEST_FIELD}
        if DIGEST_FIELD in item:
            sent["content"] = texts[item[DIGEST_FIELD]]
        attachments.append(sent)
    return {**request, "attachments": attachments}


def remove_unneeded(conn: psycopg.Connection[Any], *, now: datetime) -> int:
    """Remove the bytes no waiting or in-flight row names and no send named lately; how many."""
    removed = conn.execute(_REMOVE_UNNEEDED, {"cutoff": now - RETENTION_GRACE})
    return removed.rowcount


_REMOVE_UNNEEDED = f"""
DELETE FROM email_attachments a
WHERE a.last_used_at < %(cutoff)s
  AND NOT EXISTS (
      SELECT FROM email_messages m WHERE ({_NEEDED_BY}) AND m.attachment_digests @> ARRAY[a.sha256]
  )
"""
