"""Cost of one hour+day rate-limit check, next to a bare PING and the `limits` library.

Measured in the same run against the same Redis (``REDIS_URL``), with 1 client process and with 8:
checks per second and p50/p99 latency of

- ``PING``, on a client made as the limiter makes its own (:func:`dedicated_client`: one connection);
- ours: ``RateLimiter.acquire_emails(connector, 1, ConnectorLimits(N, M))``, one EVALSHA, with the
  limiter built as the worker builds it;
- ``limits``' Redis moving window checking "N/hour" and "M/day" the way its users do,
  ``hit(hour) and hit(day)``: two round trips while granted, one when the hour limit denies.

For reference, ``PING pooled`` is a PING on a default (pooled) redis-py client: it checks a
connection out of the pool for every command, which costs more than the command (see
:func:`dedicated_client`).

Each is measured while requests are granted (limits far above what the run can use) and while
they are denied (limits of 1, spent during warm-up). The contenders take turns in short slots,
every client process on the same contender at once (a barrier starts each slot), so that load
from other work on a shared machine falls on all of them alike. Throughput is the median over
rounds; latency percentiles pool every slot. Figures are printed, never asserted.

    .venv/bin/python tests/benchmarks/bench_rate_limit.py [--slot 0.25] [--rounds 12]
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import statistics
import time
import uuid
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import redis
from limits import RateLimitItemPerDay, RateLimitItemPerHour
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from shared.rate_limit import MAX_LIMIT, ConnectorLimits, RateLimiter, dedicated_client
from shared.settings import load_settings

WARMUP_CALLS = 200
CONTENDERS = ["PING", "ours allowed", "ours denied", "limits allowed", "limits denied", "PING pooled"]
CLIENT_COUNTS = [1, 8]
TARGET_P50 = 1.3
TARGET_THROUGHPUT = 0.75
TARGET_VERSUS_LIMITS = 1.8

#: Per contender: (calls, seconds) of each round, and every call's latency in ns.
Outcome = dict[str, tuple[list[tuple[int, float]], bytes]]


@dataclass(frozen=True)
class Sample:
    per_second: float
    p50_us: float
    p99_us: float


def make_check(name: str, url: str, run_id: str) -> Callable[[], object]:
    """The callable one client process repeats for ``name``, on connections of its own."""
    size = MAX_LIMIT if name.endswith("allowed") else 1
    if name == "PING":
        return dedicated_client(url)().ping
    if name == "PING pooled":
        return redis.Redis.from_url(url).ping
    if name.startswith("ours"):
        limiter = RateLimiter(dedicated_client(url), key_prefix=f"bench-{run_id}:")
        limits = ConnectorLimits(per_hour=size, per_day=size)
        connector = name.replace(" ", "-")
        return lambda: limiter.acquire_emails(connector, 1, limits).granted
    moving = MovingWindowRateLimiter(RedisStorage(url, key_prefix=f"bench-{run_id}-limits"))
    hour, day = RateLimitItemPerHour(size), RateLimitItemPerDay(size)
    identifier = name.replace(" ", "-")
    return lambda: moving.hit(hour, identifier) and moving.hit(day, identifier)


def client_process(
    url: str, run_id: str, slot: float, rounds: int, barrier: Barrier, results: Queue[Outcome]
) -> None:
    """Warm every contender up, then run each for ``slot`` seconds per round, timing every call."""
    checks = {name: make_check(name, url, run_id) for name in CONTENDERS}
    for check in checks.values():
        for _ in range(WARMUP_CALLS):
            check()
    slots: dict[str, list[tuple[int, float]]] = {name: [] for name in CONTENDERS}
    latencies = {name: array("q") for name in CONTENDERS}
    clock = time.perf_counter_ns
    for round_ in range(rounds):
        # Rotate the order so that no contender always follows the same one.
        for name in CONTENDERS[round_ % len(CONTENDERS) :] + CONTENDERS[: round_ % len(CONTENDERS)]:
            check, record = checks[name], latencies[name].append
            barrier.wait()
            start = now = clock()
            deadline = start + int(slot * 1e9)
            calls = 0
            while now < deadline:
                before = now
                check()
                now = clock()
                record(now - before)
                calls += 1
            slots[name].append((calls, (now - start) / 1e9))
    results.put({name: (slots[name], latencies[name].tobytes()) for name in CONTENDERS})


def measure(clients: int, url: str, run_id: str, slot: float, rounds: int) -> dict[str, Sample]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(clients)
    results: Queue[Outcome] = context.Queue()
    processes = [
        context.Process(target=client_process, args=(url, run_id, slot, rounds, barrier, results))
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    outcomes = [collect(results, processes) for _ in processes]
    for process in processes:
        process.join()
    return {name: summarize([outcome[name] for outcome in outcomes], rounds) for name in CONTENDERS}


def summarize(per_process: list[tuple[list[tuple[int, float]], bytes]], rounds: int) -> Sample:
    """Median over rounds of the summed per-process rates; percentiles over every call."""
    rates = [sum(slots[r][0] / slots[r][1] for slots, _ in per_process) for r in range(rounds)]
    latencies = array("q")
    for _, raw in per_process:
        latencies.frombytes(raw)
    ordered = sorted(latencies)
    return Sample(
        per_second=statistics.median(rates),
        p50_us=ordered[len(ordered) // 2] / 1000,
        p99_us=ordered[int(len(ordered) * 0.99)] / 1000,
    )


def collect(results: Queue[Outcome], processes: list[BaseProcess]) -> Outcome:
    """The next client's outcome; stops the run if a client died instead of waiting for it forever."""
    while True:
        try:
            return results.get(timeout=1)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in processes):
                raise SystemExit("a client process failed; see its traceback above") from None


def report(results: dict[int, dict[str, Sample]]) -> None:
    print(f"{'clients':>7}  {'check':<15} {'checks/s':>10} {'p50 µs':>8} {'p99 µs':>8}  {'vs PING':>8}")
    for clients, samples in results.items():
        ping = samples["PING"]
        for name, s in samples.items():
            figures = f"{s.per_second:>10,.0f} {s.p50_us:>8.0f} {s.p99_us:>8.0f}"
            print(f"{clients:>7}  {name:<15} {figures}  {s.per_second / ping.per_second:>7.2f}x")
        print()
    print("targets: p50 <= 1.3x PING, throughput >= 0.75x PING, >= 1.8x limits while granted")
    for clients, samples in results.items():
        ping = samples["PING"]
        for regime in ("allowed", "denied"):
            ours, theirs = samples[f"ours {regime}"], samples[f"limits {regime}"]
            p50 = ours.p50_us / ping.p50_us
            throughput = ours.per_second / ping.per_second
            versus = ours.per_second / theirs.per_second
            versus_mark = mark(versus >= TARGET_VERSUS_LIMITS) if regime == "allowed" else "no target"
            print(
                f"  {clients} client(s), {regime:<7}: p50 {p50:.2f}x PING [{mark(p50 <= TARGET_P50)}], "
                f"throughput {throughput:.2f}x PING [{mark(throughput >= TARGET_THROUGHPUT)}], "
                f"{versus:.2f}x limits [{versus_mark}]"
            )


def mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def cleanup(url: str, run_id: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"*bench-{run_id}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--slot", type=float, default=0.25, help="seconds per contender per round")
    parser.add_argument("--rounds", type=int, default=12, help="rounds (every contender once each)")
    args = parser.parse_args()
    url = load_settings().redis_url
    run_id = uuid.uuid4().hex[:10]
    print(f"{args.rounds} rounds of {args.slot:g} s per contender; the machine may be shared\n")
    try:
        results = {n: measure(n, url, run_id, args.slot, args.rounds) for n in CLIENT_COUNTS}
    finally:
        cleanup(url, run_id)
    report(results)


if __name__ == "__main__":
    main()
