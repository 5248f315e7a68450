"""The data model (SQLAlchemy 2 typed ORM). PostgreSQL is the source of truth for every send.

Tables: organizations, connectors, tasks, email_messages (the send ledger), email_requests (its
request bodies), email_metrics, suppression_list, webhook_events, connector_usage, audit_logs,
dead_letters, email_attachments, metric_rollups, ledger_rollups, message_marks, and the reputation
guard's tables. email_messages (with message_marks), email_requests, email_metrics and webhook_events
are partitioned by time (shared.partitions); no foreign key points at the ledger (docs/architecture.md).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from marketing_pilot_client.contract import PRIORITIES as PRIORITIES
from marketing_pilot_client.contract import Priority as Priority
from marketing_pilot_client.outcomes import OutcomeKind as OutcomeKind

#: Constraint names are deterministic so migrations can name what they drop.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ConnectorStatus(StrEnum):
    """Whether a connector may send: ``active`` and ``rate_limited`` may (its buckets decide how
    much); ``paused`` by an operator; ``error`` since Resend refused its key (until a check passes)."""

    ACTIVE = "active"
    PAUSED = "paused"
    ERROR = "error"
    RATE_LIMITED = "rate_limited"


CONNECTOR_STATUSES = tuple(status.value for status in ConnectorStatus)
#: Statuses in which a connector may send.
SENDABLE_STATUSES = frozenset({ConnectorStatus.ACTIVE, ConnectorStatus.RATE_LIMITED})


class MessageStatus(StrEnum):
    """Where a ledger row (one email to one mailbox) stands.

    ``scheduled`` waits for its ``scheduled_at`` (held in ``next_attempt_at``) and is then queued;
    ``queued`` waits for its API key's next request, ``deferred`` until ``next_attempt_at`` (a spent
    budget, a paused connector, a quota); ``sending`` went out (or is going out) under its
    ``attempt_key``, with ``next_attempt_at`` as its lease or retry time while the outcome is unknown.
    ``cancelled`` was withdrawn before it left. The rest are outcomes: webhook events move a sent row
    along the lattice, never back.
    """

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    DEFERRED = "deferred"
    SENDING = "sending"
    SENT = "sent"
    DELIVERY_DELAYED = "delivery_delayed"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"


MESSAGE_STATUSES = tuple(status.value for status in MessageStatus)
#: Statuses of a row the sender may still act on (its Resend id may not be committed yet); every
#: other status is final for the sender.
OPEN_STATUSES = frozenset(
    {MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING}
)
#: Statuses of a row that has not left and may still be cancelled (nothing of it is in flight).
CANCELLABLE_STATUSES = frozenset({MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.DEFERRED})


# Priority and PRIORITIES: the send classes are part of the wire contract (marketing_pilot_client).
OUTCOME_KINDS = tuple(kind.value for kind in OutcomeKind)


class SuppressionReason(StrEnum):
    """Why an address is on an organization's suppression list."""

    HARD_BOUNCE = "hard_bounce"
    SPAM_COMPLAINT = "spam_complaint"
    PROVIDER_SUPPRESSED = "provider_suppressed"  # Resend's own suppression list (email.suppressed)
    SOFT_BOUNCE = "soft_bounce"  # repeated soft bounces; expires
    MANUAL = "manual"
    UNSUBSCRIBED = "unsubscribed"
    ERASED = "erased"  # the person was erased (pilot erase): the entry holds the address's hash


SUPPRESSION_REASONS = tuple(reason.value for reason in SuppressionReason)


class DeadLetterReason(StrEnum):
    """Why a worker refused a broker message (the ``reason`` of a dead letter, a metric label)."""

    CONTENT_TYPE = "content_type"  # not application/json (pickle, YAML, text...)
    UNDECODABLE = "undecodable"  # not valid JSON or not valid UTF-8
    MALFORMED = "malformed"  # not the shape of a Celery task message
    UNKNOWN_TASK = "unknown_task"  # no task of that name is registered
    ARGUMENTS = "arguments"  # the arguments do not fit the task's signature
    UNEXPECTED = "unexpected"  # Celery could not accept it for a reason the check did not foresee


DEAD_LETTER_REASONS = tuple(reason.value for reason in DeadLetterReason)


class ReputationScope(StrEnum):
    """What a reputation rate is kept for: an organization, a connector, a campaign (one task id)."""

    ORGANIZATION = "organization"
    CONNECTOR = "connector"
    CAMPAIGN = "campaign"


REPUTATION_SCOPES = tuple(scope.value for scope in ReputationScope)


class ReputationState(StrEnum):
    """Where a scope stands with the reputation guard. ``paused`` holds its bulk rows (``deferred``)
    until an operator resumes it; ``warning`` only records; both are set by the rates, never lifted
    by them (a warning drops back to ``ok`` when the rates do)."""

    OK = "ok"
    WARNING = "warning"
    PAUSED = "paused"


REPUTATION_STATES = tuple(state.value for state in ReputationState)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _updated_at() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class Base(DeclarativeBase):
    """Declarative base with the project's naming convention and JSONB for dicts."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONB, uuid.UUID: UUID(as_uuid=True)}


class Organization(Base):
    """A customer account; suppression lists are scoped to it."""

    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()


class Connector(Base):
    """An email provider account of an organization, with its encrypted API key and limits."""

    __tablename__ = "connectors"
    __table_args__ = (
        CheckConstraint(_in("status", CONNECTOR_STATUSES), name="status"),
        UniqueConstraint("organization_id", "name"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(Text, server_default="resend")
    name: Mapped[str] = mapped_column(Text)
    credentials_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    credentials_key_version: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(Text, server_default=ConnectorStatus.ACTIVE.value)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()

    organization: Mapped[Organization] = relationship(lazy="raise")

    def __repr__(self) -> str:
        # The ciphertext stays out of reprs along with everything else secret.
        return f"<Connector {self.id} {self.type} {self.name!r} {self.status}>"


class Task(Base):
    """A unit of upstream work (a campaign, a send request) and its aggregated delivery metrics."""

    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text, server_default="")
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    execution_result: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


#: Recipients are matched case-insensitively, by the expression the lookups use.
_LOWER_RECIPIENT = text("lower(recipient)")


class EmailMessage(Base):
    """The send ledger: one row per recipient, keyed by its deterministic idempotency key.

    Partitioned by month of ``created_at`` (shared.partitions), so its primary key includes it.
    """

    __tablename__ = "email_messages"
    __table_args__ = (
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint(_in("priority", PRIORITIES), name="priority"),
        # Every index is written again at each status change (one is never a HOT update): only the
        # look-ups below have one; docs/architecture.md, "Indexes", names the statement of each.
        # A cancel by idempotency key (with its connector), and the connector's cascade.
        Index("ix_email_messages_connector_id", "connector_id"),
        # An event found by its Resend email id, and a unit's rows whatever became of them: both
        # are set only once a row goes out, so a waiting row has no entry.
        Index(
            "ix_email_messages_resend_email_id_not_null",
            "resend_email_id",
            postgresql_where=text("resend_email_id IS NOT NULL"),
        ),
        Index(
            "ix_email_messages_attempt_key_not_null",
            "attempt_key",
            postgresql_where=text("attempt_key IS NOT NULL"),
        ),
        # A recipient's messages, case-insensitively, in its organization (the soft-bounce history,
        # worker.events.suppression); the leading column serves every lookup by organization alone,
        # its foreign key's cascade included.
        Index("ix_email_messages_organization_id_lower_recipient", "organization_id", _LOWER_RECIPIENT),
        # A task's rows (recount, cancel by task, the foreign key's SET NULL): one posting list per
        # task. A recipient in its task only among rows Resend has not named yet: an event found by
        # its tags only (worker.events.processing) is of such a row, as one with an email id is
        # found by it; a row leaves this index once it is named.
        Index("ix_email_messages_task_id", "task_id"),
        Index(
            "ix_email_messages_task_id_lower_recipient_no_email_id",
            "task_id",
            _LOWER_RECIPIENT,
            postgresql_where=text("resend_email_id IS NULL"),
        ),
        # The send queue of an API key: its queued rows oldest first and its deferred rows by the
        # time they are due, each class apart (transactional rows leave first), and its units
        # (``sending``) by the time they are due.
        Index(
            "ix_email_messages_dispatch_key_priority_queued",
            "dispatch_key",
            "priority",
            "created_at",
            postgresql_where=text("status = 'queued'"),
        ),
        Index(
            "ix_email_messages_dispatch_key_priority_deferred",
            "dispatch_key",
            "priority",
            "next_attempt_at",
            postgresql_where=text("status = 'deferred'"),
        ),
        # Scheduled rows by their time: what beat's release looks at every second.
        Index(
            "ix_email_messages_scheduled",
            "next_attempt_at",
            postgresql_where=text("status = 'scheduled'"),
        ),
        # A cancel by the caller's idempotency key (``<key>/<recipient hash>``) reads its prefix, per
        # connector. The worker's own keys (``pilot/...``) are left out; a caller's key beginning so
        # is found without the index.
        Index(
            "ix_email_messages_connector_id_caller_key",
            "connector_id",
            "idempotency_key",
            postgresql_ops={"idempotency_key": "text_pattern_ops"},
            postgresql_where=text("idempotency_key NOT LIKE 'pilot/%'"),
        ),
        Index(
            "ix_email_messages_dispatch_key_sending",
            "dispatch_key",
            "next_attempt_at",
            postgresql_where=text("status = 'sending'"),
        ),
        # Open rows only, so each costs what the waiting rows cost, never the history: deferred rows
        # by their time (beat's release) and by connector (the rows parked ahead of new ones), queued
        # rows by their last change (beat's sweep), a connector's rows in flight by their last change
        # (the budget rebuild).
        Index("ix_email_messages_deferred", "next_attempt_at", postgresql_where=text("status = 'deferred'")),
        Index(
            "ix_email_messages_connector_id_priority_deferred",
            "connector_id",
            "priority",
            "next_attempt_at",
            postgresql_where=text("status = 'deferred'"),
        ),
        Index(
            "ix_email_messages_queued_updated_at", "updated_at", postgresql_where=text("status = 'queued'")
        ),
        Index(
            "ix_email_messages_connector_id_sending",
            "connector_id",
            "updated_at",
            postgresql_where=text("status = 'sending'"),
        ),
        # A day's rows for its rollup (shared.partitions.ledger_rollups). Rows are appended in
        # created_at order (and move, when updated, within minutes of it), so a summary per block
        # range is a few pages for the whole ledger and a status change rarely touches it. A range
        # not summarized yet matches every day: autosummarize has autovacuum summarize each range
        # once the next one starts, instead of at the next vacuum (weeks apart on an append-only table).
        Index(
            "ix_email_messages_created_at_brin",
            "created_at",
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},
        ),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )
    # The id, derived from the idempotency key, is unique on its own (shared.sending.ledger_keys keeps
    # it so across partitions): the ORM knows a row by it, as before partitioning.
    __mapper_args__ = {"primary_key": ["id"]}

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    connector_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("connectors.id", ondelete="CASCADE"))
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    #: Unique through the primary key: a row's id is derived from it (``rendering.message_id_for``).
    idempotency_key: Mapped[str] = mapped_column(Text)
    recipient: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, server_default="")
    #: The email's topic, if it has one: suppression entries for it stop the email.
    topic: Mapped[str | None] = mapped_column(Text)
    #: The caller's own tags of its request (none reserved), kept for outcome events after the
    #: request body (``email_requests``) is dropped.
    tags: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, server_default="queued")
    resend_email_id: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    #: The idempotency key the first attempt went out under (the row's own, or its batch's). Once
    #: set, the row is only ever sent again in that same unit, so Resend can recognise the retry.
    attempt_key: Mapped[str | None] = mapped_column(Text)
    #: The API key the row is sent with (its hash, as the request buckets name it): rows of one key
    #: leave together, whatever their connector or task. Set when the row is queued.
    dispatch_key: Mapped[str | None] = mapped_column(Text)
    #: Transactional rows leave their key's queue before bulk ones and may use the reserve.
    priority: Mapped[str] = mapped_column(Text, server_default=Priority.BULK.value)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    #: The caller's queue for this row's outcome events (``outbox``: triggers write ``outcome_events``).
    outcomes_queue: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the caller asked the email to leave (``scheduled_at``); kept after it is released.
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The sha256 digests of the attachment bytes its request names (``email_attachments``).
    attachment_digests: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    #: The partition key: a month per partition, dropped whole past retention (shared.partitions).
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    updated_at: Mapped[datetime] = _updated_at()


class EmailRequest(Base):
    """The rendered Resend request body of one ledger row, sent byte-identically on every retry.

    Partitioned by day of ``stored_at``: a day is dropped once past retention, the bodies of rows that
    may still leave carried into the current day first (shared.partitions).
    """

    __tablename__ = "email_requests"
    __table_args__ = ({"postgresql_partition_by": "RANGE (stored_at)"},)

    #: Its ledger row's id (no foreign key to the partitioned ledger; deleted with the row by trigger).
    message_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    stored_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    request: Mapped[dict[str, Any]] = mapped_column()

    @classmethod
    def of_message(cls) -> ColumnElement[bool]:
        """The join to its ledger row (one body per row: a carried body replaces its old copy)."""
        return cls.message_id == EmailMessage.id


class EmailAttachment(Base):
    """Attachment bytes, stored once per distinct content (keyed by their sha256) however many rows
    name them; retention removes bytes no waiting row needs."""

    __tablename__ = "email_attachments"

    sha256: Mapped[str] = mapped_column(Text, primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _created_at()
    #: Refreshed each time a send names the bytes, so retention never removes what a send just named.
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EmailMetric(Base):
    """One delivery event of one message (from a webhook), the source of a task's metrics.

    Partitioned by month of ``occurred_at`` (shared.partitions), so its keys include it.
    """

    __tablename__ = "email_metrics"
    __table_args__ = (
        # One row per webhook event: a replayed event has the same occurred_at, so it adds none.
        UniqueConstraint("webhook_event_id", "occurred_at"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )
    # Random ids are unique on their own: the ORM knows a row by its id, as before partitioning.
    __mapper_args__ = {"primary_key": ["id"]}

    id: Mapped[uuid.UUID] = _uuid_pk()
    #: Its ledger row's id (no foreign key to the partitioned ledger; deleted with the row by trigger).
    message_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    connector_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("connectors.id", ondelete="SET NULL"), index=True
    )
    #: The webhook event this row came from (no foreign key: the event's body is dropped long before
    #: the metric, and both tables are partitioned).
    webhook_event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    event: Mapped[str] = mapped_column(Text, index=True)
    recipient: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", server_default=text("'{}'::jsonb"))
    #: The event's own time (payload ``created_at``): ordering never depends on arrival.
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    created_at: Mapped[datetime] = _created_at()


class RollupScope(StrEnum):
    """What a metric rollup counts for: one task or one connector."""

    TASK = "task"
    CONNECTOR = "connector"


ROLLUP_SCOPES = tuple(scope.value for scope in RollupScope)


class MetricRollup(Base):
    """A day's ``email_metrics`` rows of one task or connector and event, written before their
    partition is dropped: ``events`` rows, ``messages`` distinct emails among them."""

    __tablename__ = "metric_rollups"
    __table_args__ = (CheckConstraint(_in("scope", ROLLUP_SCOPES), name="scope"),)

    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    scope_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    event: Mapped[str] = mapped_column(Text, primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)
    messages: Mapped[int] = mapped_column(BigInteger)


class LedgerRollup(Base):
    """How many ledger rows created on one UTC day, of one organization, connector and task (``None``:
    sends outside a task), stood in one status when the day was last rolled up (``rolled_up_at``).
    Rewritten day by day from the ledger (shared.partitions.ledger_rollups) and kept after retention
    drops the rows. No foreign keys: the totals outlive what they count."""

    __tablename__ = "ledger_rollups"
    __table_args__ = (
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        # One row per key, sends outside a task (a null task) included: a day rewritten twice can
        # never hold its rows twice. A primary key cannot hold a null; a sentinel task id would be
        # a fake task that every reader has to know about.
        UniqueConstraint(
            "day",
            "organization_id",
            "connector_id",
            "task_id",
            "status",
            name="uq_ledger_rollups_key",
            postgresql_nulls_not_distinct=True,
        ),
    )
    __mapper_args__ = {"primary_key": ["day", "organization_id", "connector_id", "task_id", "status"]}

    day: Mapped[date] = mapped_column(Date)
    organization_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    connector_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    task_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(Text)
    emails: Mapped[int] = mapped_column(BigInteger)
    rolled_up_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutcomeEvent(Base):
    """The outbox of outcome events: written by triggers in the status change's own transaction
    (migration 0009), published to ``queue`` as ``pilot.outcome`` by ``pilot.publish_outcomes``.
    Partitioned by day of ``created_at`` (migration 0021), dropped a while after publishing."""

    __tablename__ = "outcome_events"
    __table_args__ = (
        CheckConstraint(_in("kind", OUTCOME_KINDS), name="kind"),
        Index("ix_outcome_events_unpublished", "created_at", postgresql_where=text("published_at IS NULL")),
        CheckConstraint("message_id IS NOT NULL OR organization_id IS NOT NULL", name="subject"),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    #: Stable: derived from the status change or the webhook metric it reports. Unique across
    #: partitions because every writer inserts only an id found in none (``NOT EXISTS``), serialized
    #: by the row whose change it reports; the key also holds ``created_at``, the partition key.
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    #: The recipient's row; None for a reputation event (``organization_id`` and ``scope`` instead).
    #: No foreign key to the partitioned ledger: deleted with the row by trigger.
    message_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    queue: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)
    #: The partition key: a day per partition (shared.partitions).
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=func.now()
    )
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    scope: Mapped[str | None] = mapped_column(Text)
    scope_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    rates: Mapped[dict[str, Any] | None] = mapped_column()


class Suppression(Base):
    """An address an organization must not send to, for one topic or (``topic`` '') for every email.
    Addresses are stored lower-cased, or hashed (:mod:`shared.address_hashing`) for an erased person;
    see :mod:`shared.unsubscribe.topics`."""

    __tablename__ = "suppression_list"
    __table_args__ = (
        UniqueConstraint("organization_id", "email", "topic"),
        CheckConstraint("email = lower(email)", name="email_normalized"),
        CheckConstraint(_in("reason", SUPPRESSION_REASONS), name="reason"),
        CheckConstraint("topic = '' OR topic ~ '^[A-Za-z0-9_-]{1,64}$'", name="topic"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(Text)
    #: The topic it stops; '' stops every email.
    topic: Mapped[str] = mapped_column(Text, server_default="")
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()


#: How ``webhook_events.error`` starts for an event kept as an orphan (its email never found).
ORPHAN_PREFIX = "orphan: "
#: ``webhook_events.occurred_at`` of an event whose payload names no usable time (its default partition).
UNDATED_EVENT = datetime(1970, 1, 1, tzinfo=UTC)


class WebhookEvent(Base):
    """A verified webhook delivery, stored raw before it is acknowledged.

    Partitioned by day of ``occurred_at``, the payload's own ``created_at``: every redelivery of one
    event carries the same body, so ``(svix_id, occurred_at)`` stores it once.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("svix_id", "occurred_at"),
        Index(
            "ix_webhook_events_unprocessed",
            "received_at",
            postgresql_where=text("processed_at IS NULL"),
        ),
        # Events with an error: failing ones and orphans (``pilot status``, ``events replay --orphans``).
        Index("ix_webhook_events_with_error", "received_at", postgresql_where=text("error IS NOT NULL")),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )
    __mapper_args__ = {"primary_key": ["id"]}

    id: Mapped[uuid.UUID] = _uuid_pk()
    #: The payload's ``created_at`` (``UNDATED_EVENT`` when it has none): the partition key.
    occurred_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), primary_key=True, server_default=text("'1970-01-01 00:00:00+00'")
    )
    svix_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)

    @classmethod
    def orphaned(cls) -> ColumnElement[bool]:
        """The events kept as orphans (processed; their email never found in the ledger)."""
        return cls.error.startswith(ORPHAN_PREFIX, autoescape=True)


class ConnectorUsage(Base):
    """Emails and requests a connector used in one hour, for history and reports."""

    __tablename__ = "connector_usage"

    connector_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connectors.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    emails_sent: Mapped[int] = mapped_column(BigInteger, server_default="0")
    requests: Mapped[int] = mapped_column(BigInteger, server_default="0")


class AuditLog(Base):
    """An append-only record of a connector action: when, who, what, on what, result, why.

    No foreign keys: the record outlives what it describes. A trigger refuses UPDATE and DELETE.
    """

    __tablename__ = "audit_logs"
    __table_args__ = (CheckConstraint("result IN ('success', 'failure', 'denied')", name="result"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    connector_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text, index=True)
    target: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()


class DeadLetter(Base):
    """A broker message a worker refused, kept with its reason so nothing is lost silently.

    The body is kept up to a cap; ``body_size`` and ``body_sha256`` describe the whole of it. A
    message recorded twice (a redelivery) is one row: unique on the message id and the body digest.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        CheckConstraint(_in("reason", DEAD_LETTER_REASONS), name="reason"),
        UniqueConstraint("message_id", "body_sha256", postgresql_nulls_not_distinct=True),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    reason: Mapped[str] = mapped_column(Text)
    #: What was wrong, naming the field (never the values: bodies carry recipient addresses).
    detail: Mapped[str] = mapped_column(Text)
    #: The task name and message id as the message gave them (sanitised), if it gave them.
    task_name: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(Text)
    #: The routing key it was delivered with (our queues are bound under their own names).
    queue: Mapped[str | None] = mapped_column(Text)
    exchange: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(Text)
    content_encoding: Mapped[str | None] = mapped_column(Text)
    #: The message headers made JSON-safe (any JSON value: a broken message may carry a non-mapping).
    headers: Mapped[Any] = mapped_column(JSONB, nullable=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_size: Mapped[int] = mapped_column(BigInteger)
    body_sha256: Mapped[str] = mapped_column(Text)
    #: When the worker refused it; ``recorded_at`` is when the row was written.
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    recorded_at: Mapped[datetime] = _created_at()


class MessageMark(Base):
    """What one ledger row has counted: which kinds of delivery event in its task's figures (bit i of
    ``kinds``: the i-th of :data:`shared.counters.delivery.MARKS`), so each is counted once per row;
    and what it added to the reputation counts (so an event applied again adds nothing).

    Partitioned by month of its ledger row's ``created_at`` (``message_created_at``), so that a month
    of marks goes with its month of the ledger (shared.partitions), never row by row. ``bucket`` is
    the day (days since 1970-01-01) of the row's creation, set once the row counts for reputation
    (None: it never did); it never moves, whatever order the row's events arrive in.
    """

    __tablename__ = "message_marks"
    __table_args__ = ({"postgresql_partition_by": "RANGE (message_created_at)"},)

    #: Its ledger row's id (no foreign key to the partitioned ledger; deleted with the row by trigger).
    message_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    #: Its ledger row's ``created_at``: the partition key (one row per message, as the id is).
    message_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    kinds: Mapped[int] = mapped_column(Integer, server_default="0")
    bucket: Mapped[int | None] = mapped_column(Integer)
    counted: Mapped[bool] = mapped_column(server_default=text("false"))
    hard_bounce: Mapped[bool] = mapped_column(server_default=text("false"))
    complaint: Mapped[bool] = mapped_column(server_default=text("false"))
    #: The campaign slice the row counts in (``1 + n // 100`` for its campaign's ``n``-th counted
    #: recipient), or None (no campaign).
    campaign_bucket: Mapped[int | None] = mapped_column(Integer)


class ReputationCount(Base):
    """Recipients with a known outcome, hard bounces and complaints of one scope in one bucket.

    Organizations and connectors count per day (the rolling window sums the last days); a campaign
    counts in bucket 0 (its recipients so far) and in slices of 100 recipients (buckets 1, 2...), in
    the order their outcomes became known (its window sums the last slices).
    """

    __tablename__ = "reputation_counts"
    __table_args__ = (CheckConstraint(_in("scope", REPUTATION_SCOPES), name="scope"),)

    scope_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    recipients: Mapped[int] = mapped_column(BigInteger, server_default="0")
    hard_bounces: Mapped[int] = mapped_column(BigInteger, server_default="0")
    complaints: Mapped[int] = mapped_column(BigInteger, server_default="0")


class ReputationStatus(Base):
    """The guard's state of one scope (organization, connector or campaign), with its last rates.

    A resume keeps ``resumed_at`` (rows created before it are never held by this scope again) and the
    counts of ``resume_bucket`` at that moment (``offset_*``): the rates start afresh from there.
    """

    __tablename__ = "reputation_states"
    __table_args__ = (
        CheckConstraint(_in("scope", REPUTATION_SCOPES), name="scope"),
        CheckConstraint(_in("state", REPUTATION_STATES), name="state"),
        Index("ix_reputation_states_organization_id", "organization_id"),
    )

    scope_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(Text, server_default=ReputationState.OK.value)
    reason: Mapped[str | None] = mapped_column(Text)
    #: The last evaluation: recipients, hard bounces, complaints and rates of the window.
    rates: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resume_bucket: Mapped[int | None] = mapped_column(Integer)
    offset_recipients: Mapped[int] = mapped_column(BigInteger, server_default="0")
    offset_hard_bounces: Mapped[int] = mapped_column(BigInteger, server_default="0")
    offset_complaints: Mapped[int] = mapped_column(BigInteger, server_default="0")
    #: The outcome-event queues its counted rows named: its state changes are published there.
    outcome_queues: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    updated_at: Mapped[datetime] = _updated_at()


class ReputationPolicy(Base):
    """An organization's own thresholds (each ``None``: the operator's default), within the
    operator's limits."""

    __tablename__ = "reputation_policies"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    warn_bounce_rate: Mapped[float | None] = mapped_column()
    pause_bounce_rate: Mapped[float | None] = mapped_column()
    warn_complaint_rate: Mapped[float | None] = mapped_column()
    pause_complaint_rate: Mapped[float | None] = mapped_column()
    min_volume: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = _updated_at()
