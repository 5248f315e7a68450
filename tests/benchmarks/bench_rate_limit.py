"""Cost of one hour+day rate-limit check, next to a bare PING and the `limits` library.

Measured in the same run against the same Redis (``REDIS_URL``), with 1 client process and with 8:
checks per second and p50/p99 latency of

- ``PING``;
- ours: ``RateLimiter.acquire_emails(connector, 1, ConnectorLimits(N, M))``, one EVALSHA;
- ``limits``' Redis moving window checking "N/hour" and "M/day" the way its users do,
  ``hit(hour) and hit(day)``: two round trips while granted, one when the hour limit denies.

Each is measured while requests are granted (limits far above what the run can use) and while they
are denied (limits of 1, already spent). Every figure is the median of ``--rounds`` rounds; rounds
interleave the contenders so that noise from a shared machine falls on all of them alike. Figures are
printed, never asserted.

    .venv/bin/python tests/benchmarks/bench_rate_limit.py [--seconds 2] [--rounds 3]
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

from shared.rate_limit import ConnectorLimits, RateLimiter
from shared.settings import load_settings

#: Far more than a run can take: every check is granted.
ROOMY = 10**8
WARMUP_CALLS = 200
CONTENDERS = ["PING", "ours allowed", "ours denied", "limits allowed", "limits denied"]
CLIENT_COUNTS = [1, 8]


@dataclass(frozen=True)
class Sample:
    per_second: float
    p50_us: float
    p99_us: float


def make_check(name: str, url: str, run_id: str) -> Callable[[], object]:
    """The callable one client process repeats for ``name``; each builds its own connections."""
    client = redis.Redis.from_url(url)
    if name == "PING":
        return client.ping
    if name.startswith("ours"):
        limiter = RateLimiter(client, key_prefix=f"bench-{run_id}:")
        size = ROOMY if name.endswith("allowed") else 1
        limits = ConnectorLimits(per_hour=size, per_day=size)
        connector = f"{name.replace(' ', '-')}"
        return lambda: limiter.acquire_emails(connector, 1, limits).granted
    moving = MovingWindowRateLimiter(RedisStorage(url, key_prefix=f"bench-{run_id}-limits"))
    size = ROOMY if name.endswith("allowed") else 1
    hour, day = RateLimitItemPerHour(size), RateLimitItemPerDay(size)
    identifier = name.replace(" ", "-")
    return lambda: moving.hit(hour, identifier) and moving.hit(day, identifier)


def client_process(
    name: str,
    url: str,
    run_id: str,
    seconds: float,
    barrier: Barrier,
    results: Queue[tuple[int, float, bytes]],
) -> None:
    """Warm up (script loads, connections; spends the 1-token budgets), then time every call."""
    check = make_check(name, url, run_id)
    for _ in range(WARMUP_CALLS):
        check()
    latencies = array("q")
    barrier.wait()
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + int(seconds * 1e9)
    now = start
    while now < deadline:
        before = now
        check()
        now = clock()
        latencies.append(now - before)
    results.put((len(latencies), (now - start) / 1e9, latencies.tobytes()))


def measure(name: str, clients: int, url: str, run_id: str, seconds: float) -> Sample:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(clients)
    results: Queue[tuple[int, float, bytes]] = context.Queue()
    processes = [
        context.Process(target=client_process, args=(name, url, run_id, seconds, barrier, results))
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    outcomes = [collect(results, processes) for _ in processes]
    for process in processes:
        process.join()
    latencies = array("q")
    for _, _, raw in outcomes:
        latencies.frombytes(raw)
    ordered = sorted(latencies)
    return Sample(
        per_second=sum(count / elapsed for count, elapsed, _ in outcomes),
        p50_us=ordered[len(ordered) // 2] / 1000,
        p99_us=ordered[int(len(ordered) * 0.99)] / 1000,
    )


def collect(
    results: Queue[tuple[int, float, bytes]], processes: list[BaseProcess]
) -> tuple[int, float, bytes]:
    """The next client's outcome; stops the run if a client died instead of waiting for it forever."""
    while True:
        try:
            return results.get(timeout=1)
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in processes):
                raise SystemExit("a client process failed; see its traceback above") from None


def median_sample(samples: list[Sample]) -> Sample:
    return Sample(
        per_second=statistics.median(s.per_second for s in samples),
        p50_us=statistics.median(s.p50_us for s in samples),
        p99_us=statistics.median(s.p99_us for s in samples),
    )


def report(results: dict[tuple[str, int], Sample], rounds: int, seconds: float) -> None:
    print(f"medians of {rounds} rounds of {seconds:g} s per figure; the machine may be shared\n")
    print(f"{'clients':>7}  {'check':<15} {'checks/s':>10} {'p50 µs':>8} {'p99 µs':>8}  {'vs PING':>8}")
    for clients in CLIENT_COUNTS:
        ping = results[("PING", clients)]
        for name in CONTENDERS:
            s = results[(name, clients)]
            ratio = s.per_second / ping.per_second
            figures = f"{s.per_second:>10,.0f} {s.p50_us:>8.0f} {s.p99_us:>8.0f}"
            print(f"{clients:>7}  {name:<15} {figures}  {ratio:>7.2f}x")
        print()
    print("targets (allowed regime; denied shown for reference):")
    for clients in CLIENT_COUNTS:
        ping = results[("PING", clients)]
        for regime in ("allowed", "denied"):
            ours, theirs = results[(f"ours {regime}", clients)], results[(f"limits {regime}", clients)]
            p50 = ours.p50_us / ping.p50_us
            throughput = ours.per_second / ping.per_second
            versus = ours.per_second / theirs.per_second
            print(
                f"  {clients} client(s), {regime:<7}: p50 {p50:.2f}x PING [{mark(p50 <= 1.3)} <= 1.3], "
                f"throughput {throughput:.2f}x PING [{mark(throughput >= 0.75)} >= 0.75], "
                f"{versus:.2f}x limits [{mark(versus >= 1.8)} >= 1.8]"
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
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per figure")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; figures are their medians")
    args = parser.parse_args()
    url = load_settings().redis_url
    run_id = uuid.uuid4().hex[:10]
    samples: dict[tuple[str, int], list[Sample]] = {}
    try:
        for _ in range(args.rounds):
            for clients in CLIENT_COUNTS:
                for name in CONTENDERS:
                    sample = measure(name, clients, url, run_id, args.seconds)
                    samples.setdefault((name, clients), []).append(sample)
    finally:
        cleanup(url, run_id)
    report({key: median_sample(value) for key, value in samples.items()}, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
