"""shared.sending.batching: fixed chunks of at most 100, fan-out flattening, de-duplication, counts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shared.sending.batching import chunks, count_by, flatten, unique_by_key


@pytest.mark.parametrize(
    ("n", "sizes"), [(0, []), (1, [1]), (100, [100]), (101, [100, 1]), (250, [100, 100, 50])]
)
def test_chunks_cut_at_100_in_order(n: int, sizes: list[int]) -> None:
    parts = chunks(list(range(n)))

    assert [len(p) for p in parts] == sizes
    assert flatten(parts) == list(range(n))


def test_chunks_refuse_a_size_below_one() -> None:
    with pytest.raises(ValueError, match="chunk size"):
        chunks([1], 0)


def test_flatten_keeps_the_order_of_fanned_out_groups() -> None:
    assert flatten([["a1", "a2"], ["b1"], []]) == ["a1", "a2", "b1"]


@dataclass(frozen=True)
class Item:
    key: str
    n: int


def test_unique_by_key_keeps_the_first_of_each_key() -> None:
    items = [Item("x", 1), Item("y", 2), Item("x", 3)]

    assert unique_by_key(items, "key") == [Item("x", 1), Item("y", 2)]


def test_count_by_counts_each_status() -> None:
    assert count_by(["sent", "failed", "sent"]) == {"failed": 1, "sent": 2}
