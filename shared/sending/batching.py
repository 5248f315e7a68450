"""Pure helpers for batches: fixed chunk boundaries, flattening fan-outs, counting results.

Chunk boundaries are fixed over the whole ordered list of ledger rows of a task, so a retry of the
same task forms the same chunks (and so the same chunk keys) from whatever is still unsent in each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from shared.resend_schemas import MAX_BATCH_SIZE

_T = TypeVar("_T")


def chunks(items: Sequence[_T], size: int = MAX_BATCH_SIZE) -> list[list[_T]]:
    """``items`` cut into consecutive lists of at most ``size``, in order."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def flatten(groups: Iterable[Iterable[_T]]) -> list[_T]:
    """One list of every item of every group, in order (a batch of fanned-out emails)."""
    return [item for group in groups for item in group]


def unique_by_key(items: Iterable[_T], key: str) -> list[_T]:
    """``items`` without later repeats of the same ``getattr(item, key)``, in order."""
    seen: set[object] = set()
    kept = []
    for item in items:
        value = getattr(item, key)
        if value not in seen:
            seen.add(value)
            kept.append(item)
    return kept


def count_by(values: Iterable[str]) -> dict[str, int]:
    """How many times each value occurs, sorted by value."""
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))
