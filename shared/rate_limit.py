"""Distributed token buckets in Redis: one budget shared by every worker, one round trip per check.

Per connector an hour and a day bucket, taken together; per API key a request bucket and a 429
cooldown; all run atomically by ``token_bucket.lua`` on Redis ``TIME``. The only module that knows
``redis.*`` errors: they become ``RateLimitBackendUnavailable``, and callers fail closed. Deficits and
the rebuild after Redis lost its state: docs/architecture.md, "Rate limiting".
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple
from uuid import UUID

import redis
from redis import Redis
from redis.exceptions import NoScriptError

from shared.errors import PayloadInvalid, RateLimitBackendUnavailable, RequestExceedsCapacity

if TYPE_CHECKING:
    from shared.settings import Settings

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: Resend's default request rate per team; ``ratelimit-limit`` adjusts it at run time.
DEFAULT_REQUESTS_PER_SECOND = 2.0
#: Share of the announced request rate actually used (see :func:`request_bucket_shape`).
REQUEST_RATE_PACE = 0.8
#: A learnt request rate is forgotten after a day without news, so idle API keys cost no memory.
REQUEST_RATE_TTL_MS = DAY_MS
#: Fail closed quickly when Redis does not answer.
DEFAULT_SOCKET_TIMEOUT_S = 2.0
#: The largest limit the script's exact integer arithmetic allows: capacity * period_ms < 2^53.
MAX_LIMIT = 100_000_000
#: Characters of the API key's sha256 hex digest used in key names (80 bits: no collisions in practice).
API_KEY_HASH_CHARS = 20

Period = Literal["hour", "day"]
#: Emails a connector sent (or is sending) within the last hour and the last day, from durable records.
UsageSource = Callable[[str], tuple[int, int]]
#: With a usage source, connector buckets are kept this long even when full (a day bucket refills
#: within a day), so only a loss or a day of idleness makes a rebuild necessary.
REBUILT_BUCKET_KEEP_MS = DAY_MS + HOUR_MS


@dataclass(frozen=True)
class ConnectorLimits:
    """A connector's email budget: at most ``per_hour`` an hour and ``per_day`` a day.

    ``reserve_per_hour`` and ``reserve_per_day`` are kept for takes that ask for it
    (``keep_reserve``: bulk mail): those may only draw each bucket down to its reserve.
    """

    per_hour: int
    per_day: int
    reserve_per_hour: int = 0
    reserve_per_day: int = 0

    def __post_init__(self) -> None:
        for name in ("per_hour", "per_day"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_LIMIT:
                raise PayloadInvalid(
                    f"ConnectorLimits.{name} must be an integer from 1 to {MAX_LIMIT}, got {value!r}"
                )
        for name, limit in (("reserve_per_hour", self.per_hour), ("reserve_per_day", self.per_day)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
                raise PayloadInvalid(
                    f"ConnectorLimits.{name} must be an integer from 0 to {limit - 1}, got {value!r}"
                )

    def reserve(self, period: Period) -> int:
        """The tokens of the ``"hour"`` or ``"day"`` bucket kept from takes that keep the reserve."""
        return self.reserve_per_hour if period == "hour" else self.reserve_per_day


class Decision(NamedTuple):
    """The answer to a take: granted, or how long until it would be and which bucket blocked.

    ``blocked_by`` is ``"hour"``, ``"day"``, ``"requests"`` or ``"cooldown"`` on denial, else None.
    A named tuple: made on every denial, and a frozen dataclass costs three times as much to make.
    """

    granted: bool
    wait_seconds: float
    blocked_by: str | None


@dataclass(frozen=True)
class UsageStats:
    """A bucket seen as a budget: tokens ``used`` of ``limit``, and seconds until it is full again.

    ``reserved`` of the ``remaining`` tokens are kept for transactional mail: bulk mail may use
    ``bulk_remaining``.
    """

    used: int
    limit: int
    remaining: int
    resets_in: float
    reserved: int = 0

    @property
    def bulk_remaining(self) -> int:
        """The tokens a take that keeps the reserve may still use."""
        return max(0, self.remaining - self.reserved)


#: Bucket names in the order the script sees them (one Redis key holds a group's buckets).
_CONNECTOR_BUCKETS = ("hour", "day")
_REQUEST_BUCKETS = ("requests",)
_PAUSED_BUCKETS = ("paused",)

GRANTED = Decision(granted=True, wait_seconds=0.0, blocked_by=None)
_GRANTED_TAKE: tuple[Decision, Sequence[int]] = (GRANTED, ())


class RateLimiter:
    """Token buckets for connectors and Resend API keys, shared by every process using ``redis``.

    ``redis`` is a client, or a function making one (see :func:`dedicated_client`): the limiter
    then makes its client at first use in each process, so a limiter inherited across a fork never
    shares its parent's connection. ``clock_ms`` is for tests only: it replaces Redis ``TIME`` with
    an injected clock (ms).
    ``usage_source(connector_id)`` → ``(emails in the last hour, in the last day)`` rebuilds connector
    buckets Redis lost (see the module doc); without it a missing bucket is a full one.
    """

    def __init__(
        self,
        redis: redis.Redis | Callable[[], redis.Redis],
        *,
        key_prefix: str = "pilot:",
        requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
        clock_ms: Callable[[], int] | None = None,
        usage_source: UsageSource | None = None,
    ) -> None:
        self._prefix = key_prefix
        self._default_request_rate = request_bucket_shape(requests_per_second)
        self._clock_ms = clock_ms
        self._usage_source = usage_source
        self._connector_keep = "" if usage_source is None else str(REBUILT_BUCKET_KEEP_MS)
        self._connect_lock = threading.Lock()
        self._redis: Redis | None = None
        if callable(redis):
            self._make_client = redis
        else:
            self._make_client = functools.partial(_same_client, redis)
            self._use(redis)

    @classmethod
    def from_settings(cls, settings: Settings, *, usage_source: UsageSource | None = None) -> RateLimiter:
        """A limiter with a connection of its own to ``REDIS_URL``, opened at first use."""
        return cls(
            dedicated_client(settings.redis_url),
            key_prefix=settings.pilot_redis_prefix,
            requests_per_second=settings.resend_requests_per_second,
            usage_source=usage_source,
        )

    # Connector email budget -------------------------------------------------------------------

    def acquire_emails(
        self, connector_id: str | UUID, n: int, limits: ConnectorLimits, *, keep_reserve: bool = False
    ) -> Decision:
        """Take ``n`` tokens from the connector's hour and day buckets: both, or neither on denial.

        ``keep_reserve``: leave each bucket's reserve (``limits.reserve_per_hour``/``_per_day``)
        untouched; a bulk take is refused when it would eat into it. Raises
        :class:`RequestExceedsCapacity` if ``n`` exceeds what either bucket can ever give this take.
        """
        return self._connector_run("take", n, connector_id, limits, keep_reserve)[0]

    def can_execute(
        self, connector_id: str | UUID, limits: ConnectorLimits, n: int = 1, *, keep_reserve: bool = False
    ) -> bool:
        """Whether ``acquire_emails`` would grant ``n`` now; debits nothing (and raises as it does)."""
        return self.peek_emails(connector_id, n, limits, keep_reserve=keep_reserve).granted

    def peek_emails(
        self, connector_id: str | UUID, n: int, limits: ConnectorLimits, *, keep_reserve: bool = False
    ) -> Decision:
        """What ``acquire_emails`` would answer now (the wait and the blocking bucket); debits nothing."""
        return self._connector_run("peek", n, connector_id, limits, keep_reserve)[0]

    def get_usage_stats(
        self, connector_id: str | UUID, period: Period, limits: ConnectorLimits
    ) -> UsageStats:
        """Usage of the connector's ``"hour"`` or ``"day"`` bucket; debits nothing."""
        if period == "hour":
            index, capacity, period_ms = 0, limits.per_hour, HOUR_MS
        elif period == "day":
            index, capacity, period_ms = 1, limits.per_day, DAY_MS
        else:
            raise PayloadInvalid(f"period must be 'hour' or 'day', got {period!r}")
        deficit = self._connector_run("peek", 1, connector_id, limits)[1][index]
        return usage_from_deficit(deficit, capacity, period_ms, reserved=limits.reserve(period))

    # A paused organization's transactional mail ---------------------------------------------------

    def acquire_paused_emails(self, organization_id: str | UUID, n: int, *, per_minute: int) -> Decision:
        """Take ``n`` tokens from the bucket of a paused organization's transactional mail, which
        refills ``per_minute`` tokens a minute: all, or none on denial."""
        keys = (f"{self._prefix}paused:{organization_id}",)
        return self._run("take", n, keys, (per_minute, MINUTE_MS), _PAUSED_BUCKETS)[0]

    def peek_paused_emails(self, organization_id: str | UUID, *, per_minute: int) -> tuple[Decision, int]:
        """That bucket now, debiting nothing: what a take of one token would answer (its wait), and
        how many tokens it holds."""
        keys = (f"{self._prefix}paused:{organization_id}",)
        decision, deficits = self._run("peek", 1, keys, (per_minute, MINUTE_MS), _PAUSED_BUCKETS)
        return decision, usage_from_deficit(deficits[0], per_minute, MINUTE_MS).remaining

    def give_back_paused_emails(self, organization_id: str | UUID, n: int, *, per_minute: int) -> None:
        """Return ``n`` tokens taken from that bucket for rows that did not go after all (the bucket
        holds at most ``per_minute``)."""
        if type(n) is not int or n < 1:
            raise PayloadInvalid(f"token count n must be a positive integer, got {n!r}")
        now = "" if self._clock_ms is None else str(int(self._clock_ms()))
        try:
            self._client().eval(_GIVE_BACK, 1, f"{self._prefix}paused:{organization_id}", n, per_minute, now)
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc

    # Resend API key request rate --------------------------------------------------------------

    def acquire_request_for(self, key_hash: str, *, n: int = 1) -> Decision:
        """Take ``n`` request tokens for the API key named ``key_hash`` (its :func:`api_key_hash`);
        denied while its cooldown lasts. The rate is the one last set with :meth:`set_request_rate` by
        any worker, else the default."""
        keys = (self._request_key(key_hash), self._cooldown_key(key_hash), self._request_rate_key(key_hash))
        return self._run("take", n, keys, self._default_request_rate, _REQUEST_BUCKETS)[0]

    # Dispatch reservations --------------------------------------------------------------------------

    def reserve_dispatch(self, key_hash: str, at_ms: int, *, keep_ms: int) -> bool:
        """Note that a dispatch of ``key_hash``'s queue is scheduled for ``at_ms`` (unix ms).

        True when the caller should publish it: no dispatch was scheduled, or only a later one (the
        earlier one wins; the later one still runs, finds less to do, and is harmless). The note
        expires ``keep_ms`` after ``at_ms``, so a lost dispatch never blocks the queue for long.
        """
        try:
            reply = self._client().eval(
                _RESERVE_DISPATCH, 1, self._dispatch_key(key_hash), at_ms, at_ms + keep_ms
            )
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc
        return bool(reply)

    def release_dispatch(self, key_hash: str, started_ms: int) -> None:
        """A dispatch of ``key_hash``'s queue started at ``started_ms`` (unix ms): it fulfils every
        dispatch scheduled up to then (one that was lost too), so a later need may schedule another.
        A dispatch scheduled for later stays noted."""
        try:
            self._client().eval(_RELEASE_DISPATCH, 1, self._dispatch_key(key_hash), started_ms)
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc

    def set_request_rate(self, api_key: str, per_second: float) -> None:
        """Set the request rate for ``api_key`` for every worker (from Resend's ``ratelimit-limit``)."""
        capacity, period_ms = request_bucket_shape(per_second)
        key = self._request_rate_key(api_key_hash(api_key))
        try:
            pipe = self._client().pipeline(transaction=True)
            pipe.hset(key, mapping={"capacity": capacity, "period_ms": period_ms})
            pipe.pexpire(key, REQUEST_RATE_TTL_MS)
            pipe.execute()
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc

    def start_cooldown(self, api_key: str, seconds: float) -> None:
        """Deny every request for ``api_key`` for ``seconds`` (after a 429); never shortens one."""
        if not math.isfinite(seconds) or seconds <= 0:
            raise PayloadInvalid(f"cooldown seconds must be a positive number, got {seconds!r}")
        ms = math.ceil(seconds * 1000)
        key = self._cooldown_key(api_key_hash(api_key))
        try:
            pipe = self._client().pipeline(transaction=True)
            pipe.set(key, 1, px=ms, nx=True)
            pipe.pexpire(key, ms, gt=True)  # extends a shorter cooldown another worker started
            pipe.execute()
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc

    # Rebuilding lost buckets ----------------------------------------------------------------------

    def _connector_run(
        self,
        mode: str,
        n: int,
        connector_id: str | UUID,
        limits: ConnectorLimits,
        keep_reserve: bool = False,
    ) -> tuple[Decision, Sequence[int]]:
        """Run the script over the connector's hour and day buckets; rebuild them if Redis lost them.

        Returns the decision and the (hour, day) deficits after it.
        """
        keys = (connector_bucket_key(self._prefix, connector_id),)
        shape: tuple[int, ...] = (limits.per_hour, HOUR_MS, limits.per_day, DAY_MS)
        if keep_reserve and (limits.reserve_per_hour or limits.reserve_per_day):
            shape += (limits.reserve_per_hour, limits.reserve_per_day)
        try:
            return self._run(mode, n, keys, shape, _CONNECTOR_BUCKETS, self._connector_keep)
        except _StateUnknown:
            self._rebuild(str(connector_id), keys[0], limits)
        try:
            return self._run(mode, n, keys, shape, _CONNECTOR_BUCKETS, self._connector_keep)
        except _StateUnknown:  # lost again meanwhile: fail closed, the caller waits and tries later
            raise RateLimitBackendUnavailable("rate-limit buckets lost again while being rebuilt") from None

    def _rebuild(self, connector_id: str, key: str, limits: ConnectorLimits) -> None:
        """Write the connector's buckets from its recorded usage, unless another worker did first."""
        assert self._usage_source is not None  # only asked for when there is one
        used = self._usage_source(connector_id)
        try:
            client = self._client()
            now = self._clock_ms() if self._clock_ms is not None else _redis_time_ms(client)
            client.set(key, rebuilt_state(used, limits, now), px=REBUILT_BUCKET_KEEP_MS, nx=True)
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc

    # Client addresses (the receiver's unsubscribe pages) ----------------------------------------------

    def acquire_client(
        self, bucket: str, client: str, *, capacity: int, period_ms: int, take: bool = True
    ) -> Decision:
        """Take one token (or with ``take`` False, only look) from ``client``'s bucket ``bucket``,
        which refills ``capacity`` tokens per ``period_ms``. The address is hashed in the key."""
        digest = hashlib.sha256(client.encode()).hexdigest()[:API_KEY_HASH_CHARS]
        keys = (f"{self._prefix}clients:{bucket}:{digest}",)
        return self._run("take" if take else "peek", 1, keys, (capacity, period_ms), (bucket,))[0]

    # Internals ------------------------------------------------------------------------------------

    def _run(
        self,
        mode: str,
        n: int,
        keys: tuple[str, ...],
        shape: tuple[int, ...],
        names: tuple[str, ...],
        keep: str = "",
    ) -> tuple[Decision, Sequence[int]]:
        """Run the script over the buckets named ``names`` (their keys first, then any extra keys).

        Returns the decision and, for a peek, each bucket's deficit (a take's shorter reply leaves
        them out: nothing needs them). This is the hot path: one EVALSHA, and no more Python than
        needed around it (with 8 client processes on 2 cores, a microsecond more shows in the p50).
        ``keep`` is the script's ARGV[4]; with it a missing bucket raises :class:`_StateUnknown`.
        """
        if type(n) is not int or n < 1:
            raise PayloadInvalid(f"token count n must be a positive integer, got {n!r}")
        now = "" if self._clock_ms is None else str(int(self._clock_ms()))
        reply: int | list[int]
        try:
            client = self._redis
            if client is None:
                client = self._client()
            try:
                # execute_command is what evalsha calls, two Python frames further down.
                reply = client.execute_command(  # type: ignore[no-untyped-call]
                    "EVALSHA", self._sha, len(keys), *keys, mode, n, now, keep, *shape
                )
            except NoScriptError:  # first use on this server, or after SCRIPT FLUSH / a restart
                reply = self._script(keys=keys, args=(mode, n, now, keep, *shape))
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc
        if isinstance(reply, int):  # a take's answer: 1, or -(wait_ms * 10 + bucket) on denial
            if reply == 1:
                return _GRANTED_TAKE
            amount, bucket = divmod(-reply, 10)
            deficits: Sequence[int] = ()
        else:
            status, amount, bucket, deficits = reply[0], reply[1], reply[2], reply[3:]
            if status == 1:
                return GRANTED, deficits
            if status == -2:
                raise _StateUnknown()
            if status == -1:
                raise RequestExceedsCapacity(
                    f"{n} tokens requested but the {names[bucket - 1]} bucket holds at most {amount}"
                )
        # Denied: bucket is 1-based, one past the buckets is the cooldown.
        blocked_by = names[bucket - 1] if bucket <= len(names) else "cooldown"
        return Decision(False, amount / 1000, blocked_by), deficits

    def _client(self) -> redis.Redis:
        """This process's client, made at first use (and again in a forked child)."""
        with self._connect_lock:
            if self._redis is not None:
                return self._redis
            try:
                return self._use(self._make_client())
            except redis.RedisError as exc:
                raise _unavailable(exc) from exc

    def _use(self, client: redis.Redis) -> redis.Redis:
        self._script = client.register_script(_script_source())
        self._sha = self._script.sha
        self._redis = client
        _forget_clients_in_forked_children(self)
        return client

    def _forget_client(self) -> None:
        """In a forked child: the client is the parent's (its socket too); make another at next use."""
        self._connect_lock = threading.Lock()  # another thread may have held it at the fork
        self._redis = None

    def _request_key(self, digest: str) -> str:
        return f"{self._prefix}requests:{digest}:bucket"

    def _request_rate_key(self, digest: str) -> str:
        return f"{self._prefix}requests:{digest}:rate"

    def _cooldown_key(self, digest: str) -> str:
        return f"{self._prefix}cooldown:{digest}"

    def _dispatch_key(self, digest: str) -> str:
        return f"{self._prefix}dispatch:{digest}"


#: Give ARGV[1] tokens back to the one-bucket group in KEYS[1] ("t d p", as token_bucket.lua writes
#: it) of capacity ARGV[2]: its deficit drops by ARGV[1] * p, to empty at most, and the key expires when
#: the bucket would be full again (at once if it is). ARGV[3]: now in ms, or "" for Redis TIME. A
#: missing key is a full bucket: nothing to give back.
_GIVE_BACK = """
local state = redis.call('GET', KEYS[1])
if not state then return 0 end
local t, d, p = string.match(state, '^(%d+) (%d+) (%d+)$')
if not t then
    return redis.error_reply('token bucket state ' .. KEYS[1] .. ' is malformed: ' .. state)
end
t, d, p = tonumber(t), tonumber(d), tonumber(p)
local c, now = tonumber(ARGV[2]), tonumber(ARGV[3])
if not now then
    local time = redis.call('TIME')
    now = time[1] * 1000 + math.floor(time[2] / 1000)
end
d = d - tonumber(ARGV[1]) * p
if d < 0 then d = 0 end
local full_in = math.floor(d / c)
if full_in * c < d then full_in = full_in + 1 end
local ttl = full_in + t - now
if ttl <= 0 then
    redis.call('DEL', KEYS[1])
else
    redis.call('SET', KEYS[1], string.format('%d %d %d', t, d, p), 'PX', ttl)
end
return 1
"""
#: KEYS[1] holds the unix ms of the dispatch scheduled for an API key's queue. ARGV[1] is the time
#: asked for, ARGV[2] when the note expires. Set (answer 1) unless an earlier dispatch is scheduled.
_RESERVE_DISPATCH = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current <= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
"""
#: Delete the note if the dispatch it names was due by the time one started (ARGV[1]).
_RELEASE_DISPATCH = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
return 0
"""


def dedicated_client(url: str) -> Callable[[], redis.Redis]:
    """A function making a client that holds one connection to ``url`` (it connects when made).

    A pooled client checks a connection out for every command and first polls it for stray data,
    which costs a non-blocking read, two ``ioctl`` and two ``getpid`` calls: on the hot path that
    is a third of a check's client time. One connection skips it (8 client processes on 2 cores:
    45k PINGs/s against 31k pooled); redis-py serializes the threads of a process on it.
    """
    return functools.partial(
        redis.Redis.from_url,
        url,
        single_connection_client=True,
        socket_timeout=DEFAULT_SOCKET_TIMEOUT_S,
        socket_connect_timeout=DEFAULT_SOCKET_TIMEOUT_S,
    )


#: Limiters that made or were given a client in this process (see ``_forget_clients_in_forked_children``).
_LIMITERS_WITH_CLIENTS: weakref.WeakSet[RateLimiter] = weakref.WeakSet()


def _forget_clients_in_forked_children(limiter: RateLimiter) -> None:
    """Have ``limiter`` drop its client in a forked child, without a ``getpid`` call per check."""
    _LIMITERS_WITH_CLIENTS.add(limiter)
    _register_fork_hook()


@functools.cache
def _register_fork_hook() -> None:
    os.register_at_fork(after_in_child=_forget_inherited_clients)


def _forget_inherited_clients() -> None:
    for limiter in list(_LIMITERS_WITH_CLIENTS):
        limiter._forget_client()


def _same_client(client: redis.Redis) -> redis.Redis:
    """The client a limiter was given, in every process (its pool reconnects after a fork)."""
    return client


class _StateUnknown(Exception):
    """The script found a connector bucket missing while a usage source can rebuild it."""


@functools.lru_cache(maxsize=4096)  # on every check; a cache hit costs no Python frame
def connector_bucket_key(prefix: str, connector_id: str | UUID) -> str:
    """The Redis key holding the connector's hour and day buckets."""
    cid = str(connector_id)
    if not cid:
        raise PayloadInvalid("connector_id must not be empty")
    return f"{prefix}bucket:{cid}"


def rebuilt_state(used: tuple[int, int], limits: ConnectorLimits, now_ms: int) -> str:
    """The connector buckets' state (the script's ``"t d_hour p_hour d_day p_day"``) after ``used``.

    ``used`` is (emails in the last hour, in the last day), counted as spent just now, so they refill
    over the next period: never more lenient than the buckets Redis lost (whose tokens were spent
    earlier and had partly refilled). ``(0, 0)`` is a pair of full buckets.
    """
    parts = [str(now_ms)]
    for spent, capacity, period_ms in zip(
        used, (limits.per_hour, limits.per_day), (HOUR_MS, DAY_MS), strict=True
    ):
        parts += [str(min(max(spent, 0), capacity) * period_ms), str(period_ms)]
    return " ".join(parts)


def _redis_time_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()  # type: ignore[misc]
    return int(seconds) * 1000 + int(micros) // 1000


def api_key_hash(api_key: str) -> str:
    """A stable, irreversible name for ``api_key`` in Redis keys: the key itself never appears."""
    if not api_key:
        raise PayloadInvalid("api_key must not be empty")
    return hashlib.sha256(api_key.encode()).hexdigest()[:API_KEY_HASH_CHARS]


def request_bucket_shape(per_second: float) -> tuple[int, int]:
    """(capacity, period_ms) of the request bucket for a limit of ``per_second`` requests a second.

    One request at a time (capacity 1) every ``1 / (per_second * REQUEST_RATE_PACE)`` seconds. A
    burst capacity c would let c + per_second - 1 requests into one second (2 at once, then one
    more as the bucket refills: 3 against Resend's 2), and the pace leaves room for the jitter
    between taking a token and the request reaching Resend: 2.0 → (1, 625), 0.5 → (1, 2500).
    """
    if isinstance(per_second, bool) or not math.isfinite(per_second) or not 0 < per_second <= MAX_LIMIT:
        raise PayloadInvalid(f"request rate must be a positive number per second, got {per_second!r}")
    return 1, max(1, math.ceil(1000 / (per_second * REQUEST_RATE_PACE)))


def usage_from_deficit(deficit: int, capacity: int, period_ms: int, *, reserved: int = 0) -> UsageStats:
    """A bucket's usage from its deficit (tokens missing, in token*ms units of its period)."""
    remaining = (capacity * period_ms - deficit) // period_ms
    # The bucket refills capacity tokens per period_ms, i.e. capacity deficit units per ms.
    resets_in_ms = -(-deficit // capacity)
    return UsageStats(
        used=capacity - remaining,
        limit=capacity,
        remaining=remaining,
        resets_in=resets_in_ms / 1000,
        reserved=reserved,
    )


def _unavailable(exc: redis.RedisError) -> RateLimitBackendUnavailable:
    """The domain error for a Redis failure: callers fail closed and send nothing."""
    return RateLimitBackendUnavailable(f"rate-limit backend (Redis) unavailable: {type(exc).__name__}: {exc}")


@functools.cache
def _script_source() -> str:
    # Beside this module, whether ``shared`` is installed as a package, editable or a namespace.
    return Path(__file__).with_name("token_bucket.lua").read_text(encoding="utf-8")
