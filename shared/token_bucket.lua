-- token_bucket.lua: take (or peek at) n tokens from one or more token buckets atomically.
--
-- Loaded once by shared/rate_limit.py with register_script; one EVALSHA per check.
--
-- KEYS[1..k]  bucket hashes, one per bucket (k = (#ARGV - 3) / 2). Fields:
--               d  deficit: tokens missing from a full bucket, in token*ms units of the bucket's
--                  period (a deficit of one token in an hour bucket is 3600000)
--               t  Redis time in ms when d was computed
--               p  the period d is scaled by (d is rescaled if the period changes)
--             A missing hash is a full bucket. Each hash expires when its bucket would be full.
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

local mode = ARGV[1]
local n = tonumber(ARGV[2])
local k = (#ARGV - 3) / 2

-- Ceiling of a / b for non-negative integers a, positive integer b, corrected for float division.
local function ceil_div(a, b)
    local q = math.floor(a / b)
    if q * b > a then q = q - 1 end
    if q * b < a then q = q + 1 end
    return q
end

local function now_ms()
    if ARGV[3] ~= '' then
        return tonumber(ARGV[3])
    end
    -- Redis time, not the workers' clocks, which may differ.
    local time = redis.call('TIME')
    return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local now = now_ms()

local capacity, period = {}, {}
for i = 1, k do
    capacity[i] = tonumber(ARGV[2 + 2 * i])
    period[i] = tonumber(ARGV[3 + 2 * i])
end
if #KEYS >= k + 2 then
    local override = redis.call('HMGET', KEYS[k + 2], 'capacity', 'period_ms')
    if override[1] and override[2] then
        capacity[1] = tonumber(override[1])
        period[1] = tonumber(override[2])
    end
end

for i = 1, k do
    if n > capacity[i] then
        return {-1, capacity[i], i}
    end
end

-- The deficit of bucket i now, and the time to store with it.
local function refill(i)
    local state = redis.call('HMGET', KEYS[i], 'd', 't', 'p')
    local d = tonumber(state[1]) or 0
    local t = tonumber(state[2]) or now
    local p = tonumber(state[3]) or period[i]
    if p ~= period[i] then
        d = ceil_div(d * period[i], p)
    end
    local full = capacity[i] * period[i]
    -- A limit lowered below the tokens taken leaves the bucket empty, not overdrawn.
    if d > full then d = full end
    local elapsed = now - t
    -- Redis time went back (failover to a replica with another clock): refill nothing until it
    -- catches up, rather than refill the same span twice.
    if elapsed < 0 then elapsed = 0 end
    -- A whole period refills any bucket; the cap keeps the product below 2^53.
    if elapsed > period[i] then elapsed = period[i] end
    d = d - elapsed * capacity[i]
    if d < 0 then d = 0 end
    return d, math.max(t, now)
end

local deficit, stamp = {}, {}
local wait, blocker = 0, 0
for i = 1, k do
    deficit[i], stamp[i] = refill(i)
    local missing = deficit[i] + n * period[i] - capacity[i] * period[i]
    if missing > 0 then
        local bucket_wait = ceil_div(missing, capacity[i])
        if bucket_wait > wait then
            wait, blocker = bucket_wait, i
        end
    end
end
if #KEYS >= k + 1 then
    local cooldown = redis.call('PTTL', KEYS[k + 1])
    if cooldown > wait then
        wait, blocker = cooldown, k + 1
    end
end

local result = {wait > 0 and 0 or 1, wait, blocker}
if wait == 0 and mode == 'take' then
    for i = 1, k do
        deficit[i] = deficit[i] + n * period[i]
        redis.call('HSET', KEYS[i],
            'd', string.format('%d', deficit[i]),
            't', string.format('%d', stamp[i]),
            'p', string.format('%d', period[i]))
        -- Expire when full again: an idle bucket costs no memory, and a missing one is full.
        redis.call('PEXPIRE', KEYS[i], ceil_div(deficit[i], capacity[i]) + stamp[i] - now)
    end
end
for i = 1, k do
    result[3 + i] = deficit[i]
end
return result
