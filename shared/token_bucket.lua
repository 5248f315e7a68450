-- token_bucket.lua: take (or peek at) n tokens from one or more token buckets atomically.
--
-- Loaded once by shared/rate_limit.py with register_script; one EVALSHA per check.
--
-- KEYS[1..k]  bucket states, one string per bucket (k = (#ARGV - 4) / 2): "d t p" with
--               d  deficit: tokens missing from a full bucket, in token*ms units of the bucket's
--                  period (one token missing from an hour bucket is d = 3600000)
--               t  Redis time in ms when d was computed
--               p  the period d is scaled by (d is rescaled if the bucket's period changes)
--             A missing key is a full bucket and each key expires when its bucket would be full
--             again, unless ARGV[4] says otherwise (see there).
--             Strings rather than hashes: one MGET reads every bucket and one SET ... PX writes and
--             expires one: TIME, MGET and two SETs per hour+day take, instead of 7 calls with hashes.
-- KEYS[k+1]   optional cooldown key: while it exists nothing is granted; the wait is its PTTL.
-- KEYS[k+2]   optional hash {capacity, period_ms} overriding ARGV's capacity/period for bucket 1
--             (the request rate learnt from Resend's ratelimit-limit header, shared by all workers).
--
-- ARGV[1]     "take" (debit every bucket or none) or "peek" (compute only, write nothing)
-- ARGV[2]     n, the number of tokens (integer >= 1)
-- ARGV[3]     now in ms, or "" to use Redis TIME (the override exists for tests only)
-- ARGV[4]     "" (a missing key is a full bucket), or keep_ms: a missing key is UNKNOWN (Redis lost
--             its data, or the bucket was never written) and the script answers status -2 without
--             writing anything; the caller rebuilds the state from its own records and asks again.
--             Keys are then kept at least keep_ms, so an idle bucket is not rebuilt at every use.
-- ARGV[5+2i], ARGV[6+2i]   capacity (integer tokens) and period_ms of bucket i+1: the bucket refills
--             capacity tokens per period, continuously.
--
-- Returns {status, a, b, d_1, ..., d_k}:
--   status 1  granted (take: debited; peek: would be granted), a = 0, b = 0
--   status 0  denied, nothing debited; a = wait in ms until n tokens are in every bucket and the
--             cooldown is over, b = index of the bucket that blocked longest (k+1: the cooldown)
--   status -1 n exceeds bucket b's capacity a: it can never be granted
--   status -2 bucket b's state is missing and ARGV[4] asked to be told (nothing written)
--   d_i       each bucket's deficit after refill (and after the debit when granted by "take")
--
-- Arithmetic is exact: every quantity is an integer below 2^53 (deficits are at most
-- capacity * period_ms, e.g. 10^8 tokens/day * 86400000 ms < 2^53), so no rounding can ever
-- grant more tokens than a bucket holds.

local floor, tonumber, match = math.floor, tonumber, string.match
local mode, n, k = ARGV[1], tonumber(ARGV[2]), (#ARGV - 4) / 2
local keep = tonumber(ARGV[4])

local now
if ARGV[3] == '' then
    -- Redis time, not the workers' clocks, which may differ.
    local time = redis.call('TIME')
    now = time[1] * 1000 + floor(time[2] / 1000)
else
    now = tonumber(ARGV[3])
end

local override
if #KEYS >= k + 2 then
    override = redis.call('HMGET', KEYS[k + 2], 'capacity', 'period_ms')
    if not (override[1] and override[2]) then override = nil end
end
local states = redis.call('MGET', unpack(KEYS, 1, k))

-- result = {status, wait, blocker, deficit_1 .. deficit_k}; bucket = {capacity, period, stamp} * k.
local result, bucket = {1, 0, 0}, {}
for i = 1, k do
    local c, p
    if i == 1 and override then
        c, p = tonumber(override[1]), tonumber(override[2])
    else
        c, p = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
    end
    if n > c then
        return {-1, c, i}
    end
    local d, t = 0, now
    local state = states[i]
    if keep and not state then
        return {-2, 0, i}
    end
    if state then
        local sd, st, sp = match(state, '^(%d+) (%d+) (%d+)$')
        d, t, sp = tonumber(sd), tonumber(st), tonumber(sp)
        if sp ~= p then
            -- The period changed (a new request rate): rescale, rounding the deficit up.
            local scaled = d * p
            d = floor(scaled / sp)
            if d * sp < scaled then d = d + 1 end
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
        -- Whole milliseconds until the refill covers what is missing (ceiling division).
        local wait = floor(missing / c)
        if wait * c < missing then wait = wait + 1 end
        if wait > result[2] then
            result[1], result[2], result[3] = 0, wait, i
        end
    end
    result[3 + i] = d
    bucket[3 * i - 2], bucket[3 * i - 1], bucket[3 * i] = c, p, t
end
if #KEYS >= k + 1 then
    local cooldown = redis.call('PTTL', KEYS[k + 1])
    if cooldown > result[2] then
        result[1], result[2], result[3] = 0, cooldown, k + 1
    end
end

-- Debit every bucket, or none.
if result[1] == 1 and mode == 'take' then
    for i = 1, k do
        local c, p, t = bucket[3 * i - 2], bucket[3 * i - 1], bucket[3 * i]
        local d = result[3 + i] + n * p
        result[3 + i] = d
        -- Expire when full again (ceil(d / c) ms after t): an idle bucket costs no memory, and a
        -- missing one is full.
        local full_in = floor(d / c)
        if full_in * c < d then full_in = full_in + 1 end
        local ttl = full_in + t - now
        if keep and keep > ttl then ttl = keep end
        redis.call('SET', KEYS[i], string.format('%d %d %d', d, t, p), 'PX', ttl)
    end
end
return result
