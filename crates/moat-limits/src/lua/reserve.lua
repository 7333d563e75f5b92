
-- reserve: check every configured limit; charge all of them or none.
-- KEYS[1] account hash
-- ARGV: now, rpm, tpm, tpd (-1 = not configured), cost, new_gen, slack_ms, inflight_ttl_ms
-- Returns {1, gen, day} when admitted,
--         {0, kind, retry_ms, remaining, exceeds} when refused
--         (kind 1 = requests/min, 2 = tokens/min, 3 = tokens/day).
local key = KEYS[1]
local now = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local tpd = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local slack = tonumber(ARGV[7])
local inflight_ttl = tonumber(ARGV[8])

local s, exists = load(key)

-- keep the refusal with the highest priority: unsatisfiable first, then the longest wait
local refused = nil
local function refuse(r, kind)
  if r == nil then return end
  r[4] = kind
  if refused == nil or r[3] > refused[3] or (r[3] == refused[3] and r[1] > refused[1]) then
    refused = r
  end
end

if rpm >= 0 then refuse(bucket_check(s, 'rq', rpm, 1, now), 1) end
if tpm >= 0 then refuse(bucket_check(s, 'tk', tpm, cost, now), 2) end
if tpd >= 0 then refuse(day_check(s, tpd, cost, now), 3) end

if refused then
  -- like the in-process state: an existing account keeps the drained/rolled
  -- state of the checks; a refused first contact creates nothing
  if exists then save(key, s, now, slack, inflight_ttl) end
  return {0, refused[4], refused[1], refused[2], refused[3]}
end

if rpm >= 0 then s.rq_held = s.rq_held + 1 end
if tpm >= 0 then s.tk_held = s.tk_held + cost end
if tpd >= 0 then s.day_used = s.day_used + cost end
s.in_flight = s.in_flight + 1
day_roll(s, now)
if not exists then s.gen = tonumber(ARGV[6]) end
save(key, s, now, slack, inflight_ttl)
return {1, s.gen, s.day}
