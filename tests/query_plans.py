"""The plans PostgreSQL chooses for the statements real code sends (``EXPLAIN (FORMAT JSON)``).

The code runs as it is; the statements it sends are captured (SQL and parameters) and explained
afterwards on the same session, so a test or a benchmark never keeps a copy of a query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import psycopg
from sqlalchemy import event, text
from sqlalchemy.orm import Session

Plan = dict[str, Any]
Statement = tuple[str, Any]


def statements_of(session: Session, action: Callable[[], object], *, matching: str) -> list[Statement]:
    """The statements ``action`` sends through ``session``'s engine whose SQL contains ``matching``."""
    captured: list[Statement] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if matching in statement:
            captured.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return captured


class _Recording:
    """A psycopg connection that notes each statement it runs (``execute``) and does the rest as is."""

    def __init__(self, conn: psycopg.Connection[Any], matching: str) -> None:
        self._conn, self._matching = conn, matching
        self.captured: list[Statement] = []

    def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
        if self._matching in str(query):
            self.captured.append((str(query), params))
        return self._conn.execute(query, params, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def raw_statements_of(
    conn: psycopg.Connection[Any], action: Callable[[psycopg.Connection[Any]], object], *, matching: str
) -> list[Statement]:
    """The statements ``action`` runs on (a stand-in for) ``conn`` whose SQL contains ``matching``."""
    recording = _Recording(conn, matching)
    action(cast(psycopg.Connection[Any], recording))
    return recording.captured


def raw_plans_of(
    conn: psycopg.Connection[Any], action: Callable[[psycopg.Connection[Any]], object], *, matching: str
) -> list[Plan]:
    """The plans of the statements ``action`` runs on ``conn`` whose SQL contains ``matching``."""
    plans = []
    for sql, params in raw_statements_of(conn, action, matching=matching):
        found = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
        assert found is not None
        plans.append(found[0][0]["Plan"])
    return plans


def explain(session: Session, statement: Statement, *, analyze: bool = False) -> dict[str, Any]:
    """``EXPLAIN (FORMAT JSON)`` of ``statement``: the top object (``Plan``, and timings with ``analyze``)."""
    sql, parameters = statement
    options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
    result: dict[str, Any] = (
        session.connection().exec_driver_sql(f"EXPLAIN ({options}) {sql}", parameters).scalar_one()[0]
    )
    return result


def plans_of(session: Session, action: Callable[[], object], *, matching: str) -> list[Plan]:
    """The plans of the statements ``action`` sends whose SQL contains ``matching``."""
    return [
        explain(session, statement)["Plan"] for statement in statements_of(session, action, matching=matching)
    ]


def walk(plan: Plan) -> Iterator[Plan]:
    """``plan`` and every node below it."""
    yield plan
    for child in plan.get("Plans", []):
        yield from walk(child)


def access_paths(plan: Plan) -> set[tuple[str, str]]:
    """``(table, index name)`` of every table read, or ``(table, node type)`` without an index."""
    paths = set()
    for node in walk(plan):
        table = node.get("Relation Name")
        if table is None:
            continue
        if node["Node Type"] == "Bitmap Heap Scan":
            paths |= {(table, child["Index Name"]) for child in walk(node) if "Index Name" in child}
        else:
            paths.add((table, node.get("Index Name", node["Node Type"])))
    return paths


def partitions_folded(session: Session, paths: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """``paths`` with each partition (and its index) named by its partitioned table (and index), and
    empty partitions, which the planner may scan for nothing, left out."""
    parent = text("SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = to_regclass(:name)")
    folded = set()
    for table, how in paths:
        table_parent = session.execute(parent, {"name": table}).scalar()
        if table_parent is None:
            folded.add((table, how))
        elif session.execute(text(f"SELECT EXISTS (SELECT FROM {table})")).scalar():
            folded.add((table_parent, session.execute(parent, {"name": how}).scalar() or how))
    return folded
