-- token_bucket.lua: take (or peek at) n tokens from one or more token buckets atomically.
--
-- Loaded once by shared/rate_limit.py with register_script; one EVALSHA per check.
--
-- KEYS[1..k]  bucket states, one string per bucket (k = (#ARGV - 3) / 2): "d t p" with
--               d  deficit: tokens missing from a full bucket, in token*ms units of the bucket's
--                  period (one token missing from an hour bucket is d = 3600000)
--               t  Redis time in ms when d was computed
--               p  the period d is scaled by (d is rescaled if the bucket's period changes)
--             A missing key is a full bucket; each key expires when its bucket would be full again.
--             Strings rather than hashes: one MGET reads every bucket and one SET ... PX writes and
--             expires one, 4 Redis calls per take instead of 7.
-- KEYS[k+1]   optional cooldown key: while it exists nothing is granted; the wait is its PTTL.
-- KEYS[k+2]   optional hash {capacity, period_ms} overriding ARGV's capacity/period for bucket 1
--             (the request rate learnt from Resend's ratelimit-limit header, shared by all workers).
--
-- ARGV[1]     "take" (debit every bucket or none) or "peek" (compute only, write nothing)
-- ARGV[2]     n, the number of tokens (integer >= 1)
-- ARGV[3]     now in ms, or "" to use Redis TIME (the override exists for tests only)
-- ARGV[4+2i], ARGV[5+2i]   capacity (integer tokens) and period_ms of bucket i+1: the bucket refills
--             capacity tokens per period, continuously.
--
-- Returns {status, a, b, d_1, ..., d_k}:
--   status 1  granted (take: debited; peek: would be granted), a = 0, b = 0
--   status 0  denied, nothing debited; a = wait in ms until n tokens are in every bucket and the
--             cooldown is over, b = index of the bucket that blocked longest (k+1: the cooldown)
--   status -1 n exceeds bucket b's capacity a: it can never be granted
--   d_i       each bucket's deficit after refill (and after the debit when granted by "take")
--
-- Arithmetic is exact: every quantity is an integer below 2^53 (deficits are at most
-- capacity * period_ms, e.g. 10^8 tokens/day * 86400000 ms < 2^53), so no rounding can ever
-- grant more tokens than a bucket holds.

local floor, tonumber, match = math.floor, tonumber, string.match
local mode, n, k = ARGV[1], tonumber(ARGV[2]), (#ARGV - 3) / 2

-- Ceiling of a / b for integers a >= 0, b > 0 (float division corrected both ways).
local function ceil_div(a, b)
    local q = floor(a / b)
    if q * b > a then q = q - 1 end
    if q * b < a then q = q + 1 end
    return q
end

local now
if ARGV[3] == '' then
    -- Redis time, not the workers' clocks, which may differ.
    local time = redis.call('TIME')
    now = tonumber(time[1]) * 1000 + floor(tonumber(time[2]) / 1000)
else
    now = tonumber(ARGV[3])
end

local override
if #KEYS >= k + 2 then
    override = redis.call('HMGET', KEYS[k + 2], 'capacity', 'period_ms')
end
local states = redis.call('MGET', unpack(KEYS, 1, k))

-- Refill every bucket to now and find the longest wait; nothing is written yet.
local wait, blocker = 0, 0
local capacity, period, deficit, stamp = {}, {}, {}, {}
for i = 1, k do
    local c, p = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
    if i == 1 and override and override[1] and override[2] then
        c, p = tonumber(override[1]), tonumber(override[2])
    end
    if n > c then
        return {-1, c, i}
    end
    local d, t = 0, now
    if states[i] then
        local sd, st, sp = match(states[i], '^(%d+) (%d+) (%d+)$')
        d, t, sp = tonumber(sd), tonumber(st), tonumber(sp)
        if sp ~= p then
            d = ceil_div(d * p, sp)
        end
        -- A limit lowered below the tokens taken leaves the bucket empty, not overdrawn.
        if d > c * p then d = c * p end
        local elapsed = now - t
        -- Redis time went back (failover to a replica with another clock): refill nothing until
        -- it catches up rather than refill the same span twice. A whole period refills any
        -- bucket, and the cap keeps elapsed * c below 2^53.
        if elapsed < 0 then
            elapsed = 0
        elseif elapsed > p then
            elapsed = p
        end
        d = d - elapsed * c
        if d < 0 then d = 0 end
        if t < now then t = now end
    end
    local missing = d + (n - c) * p
    if missing > 0 then
        local bucket_wait = ceil_div(missing, c)
        if bucket_wait > wait then
            wait, blocker = bucket_wait, i
        end
    end
    capacity[i], period[i], deficit[i], stamp[i] = c, p, d, t
end
if #KEYS >= k + 1 then
    local cooldown = redis.call('PTTL', KEYS[k + 1])
    if cooldown > wait then
        wait, blocker = cooldown, k + 1
    end
end

-- Debit every bucket, or none.
if wait == 0 and mode == 'take' then
    for i = 1, k do
        local d, p = deficit[i] + n * period[i], period[i]
        deficit[i] = d
        -- Expire when full again: an idle bucket costs no memory, and a missing one is full.
        local ttl = ceil_div(d, capacity[i]) + stamp[i] - now
        redis.call('SET', KEYS[i], string.format('%d %d %d', d, stamp[i], p), 'PX', ttl)
    end
end
return {wait > 0 and 0 or 1, wait, blocker, unpack(deficit)}
