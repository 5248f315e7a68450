"""No module imports another module's ``_private`` name: what a module hides stays its own."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "worker", "webhook_receiver", "sandbox", "tests", "migrations")
OURS = {"shared", "worker", "webhook_receiver", "sandbox", "tests"}


def private_imports(path: Path) -> list[str]:
    """``module: name`` for each private name ``path`` imports from one of our modules."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if node.module.split(".")[0] not in OURS:
            continue
        found += [
            f"{node.module}: {alias.name}"
            for alias in node.names
            if alias.name.startswith("_") and not alias.name.startswith("__")
        ]
    return found


def test_no_module_imports_a_private_name_of_another() -> None:
    offenders = {
        str(path.relative_to(ROOT)): names
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (names := private_imports(path))
    }

    assert offenders == {}


def test_the_check_finds_a_private_import(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("from shared.sending.dispatch import _Plan, Dispatcher\n", encoding="utf-8")

    assert private_imports(module) == ["shared.sending.dispatch: _Plan"]
