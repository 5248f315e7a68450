"""task counters: ledger statuses and delivery figures kept incrementally, no recount on the hot path

Revision ID: 0016
Revises: 0015
Status counts: triggers note each statement's changes per task and status (transaction-local), and
add them to ``tasks.execution_result['sends']`` at commit, one task at a time in id order. Delivery
figures: ``delivery_marks`` remembers which kinds of event each ledger row has counted. Existing
tasks are recounted and every row's mark built from its metric rows.

Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The pending changes live in a transaction-local setting, {"<task id> <status>": n}: no table is
# written until commit, and a rolled-back statement or transaction takes its changes with it.
_NOTE = """
CREATE FUNCTION pilot_task_sends_note() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pending jsonb := coalesce(nullif(current_setting('pilot.task_sends', true), ''), '{}');
    changed jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_object_agg(key, n) INTO changed FROM (
            SELECT task_id::text || ' ' || status AS key, count(*) AS n
            FROM new_rows WHERE task_id IS NOT NULL GROUP BY 1) AS c;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT jsonb_object_agg(key, n) INTO changed FROM (
            SELECT key, sum(n) AS n FROM (
                SELECT task_id::text || ' ' || status AS key, 1 AS n FROM new_rows WHERE task_id IS NOT NULL
                UNION ALL
                SELECT task_id::text || ' ' || status, -1 FROM old_rows WHERE task_id IS NOT NULL) AS d
            GROUP BY key HAVING sum(n) <> 0) AS c;
    ELSE
        SELECT jsonb_object_agg(key, -n) INTO changed FROM (
            SELECT task_id::text || ' ' || status AS key, count(*) AS n
            FROM old_rows WHERE task_id IS NOT NULL GROUP BY 1) AS c;
    END IF;
    IF changed IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(jsonb_object_agg(key, n), '{}') INTO pending FROM (
        SELECT key, sum(value::bigint) AS n
        FROM (SELECT * FROM jsonb_each_text(pending) UNION ALL SELECT * FROM jsonb_each_text(changed)) AS e
        GROUP BY key HAVING sum(value::bigint) <> 0) AS s;
    PERFORM set_config('pilot.task_sends', pending::text, true);
    RETURN NULL;
END $$;
"""

# Fired (deferred) at commit by every row of a task whose status changed: the first firing adds
# everything noted, the others find nothing. Tasks are locked in id order first, and the new statement then reads their counts.
_APPLY = """
CREATE FUNCTION pilot_task_sends_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pending jsonb := nullif(nullif(current_setting('pilot.task_sends', true), ''), '{}');
    touched uuid[];
BEGIN
    IF pending IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('pilot.task_sends', '', true);
    SELECT array_agg(DISTINCT split_part(key, ' ', 1)::uuid) INTO touched FROM jsonb_each_text(pending);
    PERFORM 1 FROM tasks WHERE id = ANY(touched) ORDER BY id FOR NO KEY UPDATE;
    UPDATE tasks AS t SET execution_result = CASE
        WHEN s.total = 0 THEN t.execution_result - 'sends'
        ELSE t.execution_result || jsonb_build_object('sends', s.counts || jsonb_build_object('total', s.total))
    END
    FROM (
        SELECT task_id, coalesce(jsonb_object_agg(status, n) FILTER (WHERE n <> 0), '{}') AS counts,
               sum(n)::bigint AS total
        FROM (
            SELECT task_id, status, sum(n)::bigint AS n FROM (
                SELECT split_part(key, ' ', 1)::uuid AS task_id, split_part(key, ' ', 2) AS status,
                       value::bigint AS n
                FROM jsonb_each_text(pending)
                UNION ALL
                SELECT k.id, c.key, c.value::bigint
                FROM tasks AS k, jsonb_each_text(coalesce(k.execution_result -> 'sends', '{}')) AS c
                WHERE k.id = ANY(touched) AND c.key <> 'total') AS u
            GROUP BY task_id, status) AS v
        GROUP BY task_id) AS s
    WHERE t.id = s.task_id;
    RETURN NULL;
END $$;
"""

_TRIGGERS = """
CREATE TRIGGER email_messages_task_sends_insert AFTER INSERT ON email_messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pilot_task_sends_note();
CREATE TRIGGER email_messages_task_sends_update AFTER UPDATE ON email_messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pilot_task_sends_note();
CREATE TRIGGER email_messages_task_sends_delete AFTER DELETE ON email_messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION pilot_task_sends_note();
CREATE CONSTRAINT TRIGGER email_messages_task_sends_apply_insert AFTER INSERT ON email_messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.task_id IS NOT NULL)
    EXECUTE FUNCTION pilot_task_sends_apply();
CREATE CONSTRAINT TRIGGER email_messages_task_sends_apply_update AFTER UPDATE OF status, task_id ON email_messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN ((OLD.status IS DISTINCT FROM NEW.status OR OLD.task_id IS DISTINCT FROM NEW.task_id)
          AND (OLD.task_id IS NOT NULL OR NEW.task_id IS NOT NULL))
    EXECUTE FUNCTION pilot_task_sends_apply();
CREATE CONSTRAINT TRIGGER email_messages_task_sends_apply_delete AFTER DELETE ON email_messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.task_id IS NOT NULL)
    EXECUTE FUNCTION pilot_task_sends_apply();
"""
#: The deferred triggers that add the noted changes (``SET CONSTRAINTS ... IMMEDIATE`` adds them now).
APPLY_TRIGGERS = ("apply_insert", "apply_update", "apply_delete")

# Bit i of a mark: the i-th kind (the order of shared.counters.delivery.MARKS).
_KINDS = {
    "sent": "event = 'sent'",
    "delivered": "event = 'delivered'",
    "opened_unique": "event = 'opened'",
    "clicked_unique": "event = 'clicked'",
    "bounced": "event = 'bounced'",
    "complained": "event = 'complained'",
    "delayed": "event = 'delivery_delayed'",
    "suppressed": "event = 'suppressed'",
    "failed": "event = 'failed'",
    "bounced_hard": "event = 'bounced' AND metadata ->> 'bounce_type' = 'Permanent'",
    "unsubscribed": "event = 'unsubscribed'",
}
_MARK_BITS = " | ".join(
    f"CASE WHEN {condition} THEN {1 << bit} ELSE 0 END" for bit, condition in enumerate(_KINDS.values())
)
_BUILD_MARKS = f"""
INSERT INTO delivery_marks (message_id, kinds)
SELECT message_id, bit_or({_MARK_BITS}) FROM email_metrics
WHERE message_id IS NOT NULL AND task_id IS NOT NULL
GROUP BY message_id
"""
_RECOUNT_SENDS = """
WITH counted AS (
    SELECT task_id, status, count(*) AS n FROM email_messages WHERE task_id IS NOT NULL GROUP BY task_id, status
), sends AS (
    SELECT task_id, jsonb_object_agg(status, n) || jsonb_build_object('total', sum(n)) AS sends
    FROM counted GROUP BY task_id
)
UPDATE tasks AS t SET execution_result = t.execution_result || jsonb_build_object('sends', sends.sends)
FROM sends WHERE t.id = sends.task_id
"""
_UNIQUE = (
    "sent",
    "delivered",
    "opened_unique",
    "clicked_unique",
    "bounced",
    "complained",
    "delayed",
    "suppressed",
    "failed",
    "bounced_hard",
)
_COUNT_DELIVERY = (
    "SELECT task_id, "
    + ", ".join(f"count(DISTINCT message_id) FILTER (WHERE {_KINDS[name]})" for name in _UNIQUE)
    + ", count(*) FILTER (WHERE event = 'opened'), count(*) FILTER (WHERE event = 'clicked'), count(*)"
    + " FROM email_metrics WHERE task_id IS NOT NULL GROUP BY task_id"
)
_UNSUBSCRIBED = "FROM email_metrics WHERE task_id IS NOT NULL AND event = 'unsubscribed'"
_COUNT_UNSUBSCRIBED = f"SELECT task_id, count(DISTINCT metadata ->> 'message_id') {_UNSUBSCRIBED} GROUP BY 1"
_COUNT_BY_TOPIC = (
    f"SELECT task_id, metadata ->> 'email_topic', count(DISTINCT metadata ->> 'message_id') {_UNSUBSCRIBED}"
    " GROUP BY 1, 2"
)
_RATES = {
    "delivery_rate": ("delivered", "sent"),
    "bounce_rate": ("bounced", "sent"),
    "complaint_rate": ("complained", "delivered"),
    "open_rate": ("opened_unique", "delivered"),
    "click_rate": ("clicked_unique", "delivered"),
    "click_to_open_rate": ("clicked_unique", "opened_unique"),
}
_STORE_DELIVERY = (
    "UPDATE tasks SET execution_result = execution_result || jsonb_build_object('delivery', CAST(:figures AS jsonb))"
    " WHERE id = :task"
)


def _delivery_figures(bind: sa.Connection) -> None:
    """Every task's delivery figures recounted from its metric rows, as the worker stores them."""
    totals = {task_id: int(count) for task_id, count in bind.execute(sa.text(_COUNT_UNSUBSCRIBED))}
    by_topic: dict[object, dict[str, int]] = {}
    for task_id, topic, count in bind.execute(sa.text(_COUNT_BY_TOPIC)):
        if topic:
            by_topic.setdefault(task_id, {})[topic] = int(count)
    names = (*_UNIQUE, "opened_total", "clicked_total", "events")
    for task_id, *values in bind.execute(sa.text(_COUNT_DELIVERY)).all():
        counts = {name: int(value) for name, value in zip(names, values, strict=True)}
        rates = {}
        for rate, (numerator, denominator) in _RATES.items():
            below = counts[denominator]
            value = round(counts[numerator] / below, 4) if below else None
            rates[rate] = {"value": value, "numerator": numerator, "denominator": denominator}
        figures = {
            **counts,
            "rates": rates,
            "source": "email_metrics",
            "unsubscribed": totals.get(task_id, 0),
            "unsubscribed_by_topic": by_topic.get(task_id, {}),
        }
        bind.execute(sa.text(_STORE_DELIVERY), {"task": task_id, "figures": json.dumps(figures)})


def upgrade() -> None:
    op.create_table(
        "delivery_marks",
        sa.Column("message_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("kinds", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["email_messages.id"],
            name="fk_delivery_marks_message_id_email_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name="pk_delivery_marks"),
    )
    bind = op.get_bind()
    # Counted before the triggers exist, so nothing is added twice.
    op.execute(_BUILD_MARKS)
    op.execute(_RECOUNT_SENDS)
    _delivery_figures(bind)
    op.execute(_NOTE)
    op.execute(_APPLY)
    op.execute(_TRIGGERS)


def downgrade() -> None:
    for name in (*APPLY_TRIGGERS, "delete", "update", "insert"):
        op.execute(f"DROP TRIGGER email_messages_task_sends_{name} ON email_messages")
    op.execute("DROP FUNCTION pilot_task_sends_apply()")
    op.execute("DROP FUNCTION pilot_task_sends_note()")
    op.drop_table("delivery_marks")
