"""One logger name: a module's ``logging.getLogger(__name__)`` is called ``logger`` everywhere."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "worker", "webhook_receiver", "sandbox", "migrations", "tests")


def logger_names(source: str) -> list[str]:
    """The names that ``logging.getLogger(__name__)`` is assigned to in ``source``."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        is_get_logger = isinstance(call.func, ast.Attribute) and call.func.attr == "getLogger"
        of_module = [ast.unparse(argument) for argument in call.args] == ["__name__"]
        if is_get_logger and of_module:
            names += [target.id for target in node.targets if isinstance(target, ast.Name)]
    return names


def test_every_module_logger_is_called_logger() -> None:
    offenders = {
        str(path.relative_to(ROOT)): names
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (names := [name for name in logger_names(path.read_text(encoding="utf-8")) if name != "logger"])
    }

    assert offenders == {}


def test_the_check_finds_another_name() -> None:
    assert logger_names("import logging\nlog = logging.getLogger(__name__)\n") == ["log"]
