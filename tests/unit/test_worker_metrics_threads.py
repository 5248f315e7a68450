"""The worker's metrics are built once per process even when many threads ask at the same moment."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from worker import metrics


def test_instruments_built_once_under_concurrent_first_use() -> None:
    metrics._build_instruments.cache_clear()
    from prometheus_client import REGISTRY

    for collector in list(REGISTRY._collector_to_names):  # type: ignore[attr-defined]
        if any(name.startswith("pilot_") for name in REGISTRY._collector_to_names[collector]):  # type: ignore[attr-defined]
            REGISTRY.unregister(collector)
    start = threading.Barrier(16)

    def first_use(_: int) -> int:
        start.wait()
        return id(metrics.instruments())

    with ThreadPoolExecutor(16) as pool:
        assert len(set(pool.map(first_use, range(16)))) == 1
