"""The plans PostgreSQL chooses for the statements real code sends (``EXPLAIN (FORMAT JSON)``).

The code runs as it is; the statements it sends are captured (SQL and parameters) and explained
afterwards on the same session, so a test or a benchmark never keeps a copy of a query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import event
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
