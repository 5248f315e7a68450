-- token_bucket.lua: take (or peek at) n tokens from a group of token buckets atomically.
--
-- Loaded once by shared/rate_limit.py with register_script; one EVALSHA per check.
--
-- A group holds one bucket (an API key's requests) or two (a connector's hour and day: k = 1 or 2).
--
-- KEYS[1]     the state of every bucket of the group, one string: "t d_1 p_1" or "t d_1 p_1 d_2 p_2" with
--               t    Redis time in ms when the deficits were computed
--               d_i  deficit of bucket i: tokens missing from a full bucket, in token*ms units of
--                    its period (one token missing from an hour bucket is d = 3600000)
--               p_i  the period d_i is scaled by (d_i is rescaled if the bucket's period changes)
--             A missing key is a group of full buckets, and the key expires when every bucket
--             would be full again, unless ARGV[4] says otherwise (see there).
--             One string for the group, so the script calls Redis only for TIME, GET and SET. Each call
--             from Lua, each string conversion and each table costs a fraction of a microsecond,
--             as much as all the arithmetic: the script keeps to locals, one match and one format,
--             and writes the arithmetic out per bucket instead of calling helper functions (with
--             them the script took 10 µs in Redis, written out 8.6).
-- KEYS[2]     optional cooldown key: while it exists nothing is granted; the wait is its PTTL.
-- KEYS[3]     optional hash {capacity, period_ms} overriding ARGV's capacity/period for bucket 1
--             (the request rate learnt from Resend's ratelimit-limit header, shared by all workers).
--
-- ARGV[1]     "take" (debit every bucket or none) or "peek" (compute only, write nothing)
-- ARGV[2]     n, the number of tokens (integer >= 1)
-- ARGV[3]     now in ms, or "" to use Redis TIME (the override exists for tests only)
-- ARGV[4]     "" (a missing key is a group of full buckets), or keep_ms: a missing key is UNKNOWN
--             (Redis lost its data, or the group was never written) and the script answers status
--             -2 without writing anything; the caller rebuilds the state from its own records and
--             asks again. The key is then kept at least keep_ms, so an idle group is not rebuilt at
--             every use.
-- ARGV[5], ARGV[6]  capacity (integer tokens) and period_ms of bucket 1: the bucket refills
--             capacity tokens per period, continuously; ARGV[7], ARGV[8] the same for bucket 2, if any.
-- ARGV[9], ARGV[10]  optional reserve of bucket 1 and 2 (integer tokens, below the capacity): this
--             take may only draw the bucket down to its reserve (bulk mail keeps a share for
--             transactional mail). The bucket refills and is debited as always; only the tokens
--             this take may use are fewer. Absent: 0, the whole bucket.
--
-- "take" returns one integer, the smallest reply (the hot path; its caller needs no deficits):
--   1         granted, every bucket debited
--   -(a * 10 + b)  denied, nothing debited, with a and b as for status 0 below
--                  (-36000001: 3600000 ms to wait for bucket 1)
-- or a table, as "peek" always does: {status, a, b, d_1, ..., d_k}:
--   status 1  would be granted, a = 0, b = 0
--   status 0  denied, nothing debited; a = wait in ms until n tokens are in every bucket and the
--             cooldown is over, b = index of the bucket that blocked longest (k + 1: the cooldown)
--   status -1 n exceeds what bucket b can ever give this take, a (its capacity less its reserve)
--   status -2 the state is missing and ARGV[4] asked to be told (nothing written)
--   d_i       each bucket's deficit after refill ("peek" only)
--
-- Arithmetic is exact: every quantity is an integer below 2^53 (deficits are at most
-- capacity * period_ms, e.g. 10^8 tokens/day * 86400000 ms < 2^53), so no rounding can ever
-- grant more tokens than a bucket holds. Numbers are written with %d: Lua's own tostring would
-- print 8.64e+15.

local floor, tonumber = math.floor, tonumber
local n, c1, p1 = tonumber(ARGV[2]), tonumber(ARGV[5]), tonumber(ARGV[6])
local c2, p2 = tonumber(ARGV[7]), tonumber(ARGV[8])
local keep = tonumber(ARGV[4])
local r1, r2 = tonumber(ARGV[9]) or 0, tonumber(ARGV[10]) or 0

local now
if ARGV[3] == '' then
    -- Redis time, not the workers' clocks, which may differ.
    local time = redis.call('TIME')
    now = time[1] * 1000 + floor(time[2] / 1000)
else
    now = tonumber(ARGV[3])
end

if KEYS[3] then
    local override = redis.call('HMGET', KEYS[3], 'capacity', 'period_ms')
    if override[1] and override[2] then
        c1, p1 = tonumber(override[1]), tonumber(override[2])
    end
end
if n > c1 - r1 then return {-1, c1 - r1, 1} end
if c2 and n > c2 - r2 then return {-1, c2 - r2, 2} end

-- Each bucket's deficit now (refilled since the saved stamp); missing state is full buckets.
local state = redis.call('GET', KEYS[1])
local d1, d2, stamp, elapsed = 0, c2 and 0, now, 0
if state then
    local t, sd1, sp1, sd2, sp2
    if c2 then
        t, sd1, sp1, sd2, sp2 = string.match(state, '^(%d+) (%d+) (%d+) (%d+) (%d+)$')
    else
        t, sd1, sp1 = string.match(state, '^(%d+) (%d+) (%d+)$')
    end
    if not t then
        return redis.error_reply('token bucket state ' .. KEYS[1] .. ' is malformed: ' .. state)
    end
    t = tonumber(t)
    elapsed = now - t
    if elapsed < 0 then
        -- Redis time went back (failover to a replica with another clock): refill nothing until
        -- it catches up rather than refill the same span twice.
        stamp, elapsed = t, 0
    end
    -- Per bucket: rescale to a changed period (a new request rate), rounding the deficit up;
    -- clamp to empty (a limit lowered below the tokens taken); refill, a whole period at most
    -- (which also keeps elapsed * c below 2^53).
    d1, sp1 = tonumber(sd1), tonumber(sp1)
    if sp1 ~= p1 then
        local scaled = d1 * p1
        d1 = floor(scaled / sp1)
        if d1 * sp1 < scaled then d1 = d1 + 1 end
    end
    if d1 > c1 * p1 then d1 = c1 * p1 end
    d1 = d1 - (elapsed < p1 and elapsed or p1) * c1
    if d1 < 0 then d1 = 0 end
    if c2 then
        d2, sp2 = tonumber(sd2), tonumber(sp2)
        if sp2 ~= p2 then
            local scaled = d2 * p2
            d2 = floor(scaled / sp2)
            if d2 * sp2 < scaled then d2 = d2 + 1 end
        end
        if d2 > c2 * p2 then d2 = c2 * p2 end
        d2 = d2 - (elapsed < p2 and elapsed or p2) * c2
        if d2 < 0 then d2 = 0 end
    end
elseif keep then
    return {-2, 0, 1}
end

-- Whole milliseconds until the missing deficit units are refilled at c per ms, rounded up with
-- floor and a correction: math.ceil of a rounded quotient could come out a millisecond short.
-- A reserve counts as tokens missing: the take needs n tokens above it.
local wait, blocker = 0, 0
local missing = d1 + (n + r1 - c1) * p1
if missing > 0 then
    wait, blocker = floor(missing / c1), 1
    if wait * c1 < missing then wait = wait + 1 end
end
if c2 then
    missing = d2 + (n + r2 - c2) * p2
    if missing > 0 then
        local wait2 = floor(missing / c2)
        if wait2 * c2 < missing then wait2 = wait2 + 1 end
        if wait2 > wait then wait, blocker = wait2, 2 end
    end
end
if KEYS[2] then
    local cooldown = redis.call('PTTL', KEYS[2])
    if cooldown > wait then wait, blocker = cooldown, (c2 and 3 or 2) end
end
local take = ARGV[1] == 'take'
if wait > 0 then
    if take then return -(wait * 10 + blocker) end
    return {0, wait, blocker, d1, d2}
end
if not take then
    return {1, 0, 0, d1, d2}
end

-- Debit every bucket, or none. The group expires once every bucket is full again (ceil(d / c) ms
-- after the stamp): idle buckets cost no memory, and missing ones are full.
d1 = d1 + n * p1
local full_in, value = floor(d1 / c1)
if full_in * c1 < d1 then full_in = full_in + 1 end
if c2 then
    d2 = d2 + n * p2
    local full_in2 = floor(d2 / c2)
    if full_in2 * c2 < d2 then full_in2 = full_in2 + 1 end
    if full_in2 > full_in then full_in = full_in2 end
    value = string.format('%d %d %d %d %d', stamp, d1, p1, d2, p2)
else
    value = string.format('%d %d %d', stamp, d1, p1)
end
local ttl = full_in + stamp - now
if keep and keep > ttl then ttl = keep end
redis.call('SET', KEYS[1], value, 'PX', ttl)
return 1
