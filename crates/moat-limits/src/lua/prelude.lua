-- moat-limits: shared part of the reserve / settle / release scripts.
--
-- A port of the integer state transitions of src/bucket.rs, src/day.rs and
-- src/account.rs. One hash per account (KEYS[1]); every value is an integer
-- below 2^53, so Lua doubles hold it exactly. Numbers are handed to
-- redis.call as Lua numbers: Redis itself converts them ('%.17g', or its exact
-- integer printer since 7.2), which is exact for such integers, whereas Lua's
-- own tostring / '..' ('%.14g') would round integers of 15+ digits.
--
-- Clock: `now` comes from the calling replica. A `now` older than a stored
-- timestamp never refills anything (drain only moves forward, `*_last` keeps
-- the newest time seen) and never moves the day window back (a day counter
-- only rolls to a later day); a reservation's settle for a day that is no
-- longer current is dropped. So clock skew between replicas can only make a
-- decision stricter by the skew, never admit more.

local W = 60000          -- bucket units per request/token (1 unit = 1/60 000)
local DAY = 86400000     -- ms per UTC day
local MAX_TTL = 3 * DAY  -- hard cap on a key's TTL

local FIELDS = {'rq_level', 'rq_held', 'rq_rate', 'rq_last',
                'tk_level', 'tk_held', 'tk_rate', 'tk_last',
                'day', 'day_used', 'in_flight', 'gen'}

-- Field names of the two buckets, built once per call (no string building in the hot path).
local B = {
  rq = {level = 'rq_level', held = 'rq_held', rate = 'rq_rate', last = 'rq_last'},
  tk = {level = 'tk_level', held = 'tk_held', rate = 'tk_rate', last = 'tk_last'},
}

-- Load the account state; absent fields read as 0 (a fresh state).
-- Returns the state table and whether the hash exists.
local function load(key)
  local v = redis.call('HMGET', key, unpack(FIELDS))
  local s = {}
  for i, f in ipairs(FIELDS) do
    s[f] = tonumber(v[i]) or 0
  end
  return s, v[12] ~= false
end

-- floor(a / b) for integers (b > 0), exact even where a / b rounds.
local function fdiv(a, b)
  local q = math.floor(a / b)
  while q * b > a do q = q - 1 end
  while (q + 1) * b <= a do q = q + 1 end
  return q
end

-- ceil(a / b) for integers (b > 0).
local function cdiv(a, b)
  local q = fdiv(a, b)
  if q * b < a then q = q + 1 end
  return q
end

-- Bucket.drain: settled usage drains at `rate` units per ms, forwards only.
local function drain(s, p, now)
  local last = s[B[p].last]
  if now > last then
    local lv = s[B[p].level] - (now - last) * s[B[p].rate]
    if lv < 0 then lv = 0 end
    s[B[p].level] = lv
    s[B[p].last] = now
  end
end

-- Bucket.check: nil if `cost` fits under `limit`/min, else {retry_ms, remaining, exceeds}.
local function bucket_check(s, p, limit, cost, now)
  drain(s, p, now)
  s[B[p].rate] = limit
  local cap = limit * W
  local used = s[B[p].level] + s[B[p].held] * W
  local need = used + cost * W
  if need <= cap then return nil end
  local remaining = 0
  if cap > used then remaining = fdiv(cap - used, W) end
  if cost > limit or limit == 0 then return {W, remaining, 1} end
  return {cdiv(need - cap, limit), remaining, 0}
end

-- DayCounter.roll: move to the UTC day of `now` if it is later.
local function day_roll(s, now)
  local today = fdiv(now, DAY)
  if today > s.day then
    s.day = today
    s.day_used = 0
  end
end

-- DayCounter.check.
local function day_check(s, limit, cost, now)
  day_roll(s, now)
  if s.day_used + cost <= limit then return nil end
  local retry = (s.day + 1) * DAY - now
  if retry < 0 then retry = 0 end
  local remaining = limit - s.day_used
  if remaining < 0 then remaining = 0 end
  local exceeds = 0
  if cost > limit then exceeds = 1 end
  return {retry, remaining, exceeds}
end

-- DayCounter.settle: replace `reserved` by `actual` if `day` is still open.
local function day_settle(s, day, reserved, actual, now)
  day_roll(s, now)
  if day == s.day then
    local u = s.day_used - reserved
    if u < 0 then u = 0 end
    s.day_used = u + actual
  end
end

-- Milliseconds until the state equals a fresh one (AccountState.is_idle),
-- plus `slack`; `inflight_ttl` while anything is in flight.
local function ttl(s, now, slack, inflight_ttl)
  local t = 0
  for _, p in ipairs({'rq', 'tk'}) do
    local lv = s[B[p].level]
    if lv > 0 then
      local rate = s[B[p].rate]
      local d = MAX_TTL
      if rate > 0 then d = cdiv(lv, rate) + s[B[p].last] - now end
      if d > t then t = d end
    end
  end
  if s.day_used > 0 then
    local d = (s.day + 1) * DAY - now
    if d > t then t = d end
  end
  if (s.in_flight > 0 or s.rq_held > 0 or s.tk_held > 0) and inflight_ttl > t then
    t = inflight_ttl
  end
  t = t + slack
  if t > MAX_TTL then t = MAX_TTL end
  if t < 1 then t = 1 end
  return t
end

-- Write the whole state back and refresh the TTL.
local function save(key, s, now, slack, inflight_ttl)
  local args = {}
  for _, f in ipairs(FIELDS) do
    args[#args + 1] = f
    args[#args + 1] = s[f]
  end
  redis.call('HSET', key, unpack(args))
  redis.call('PEXPIRE', key, ttl(s, now, slack, inflight_ttl))
end
