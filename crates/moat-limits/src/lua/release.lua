
-- release: give the reservation back in full (request slot and tokens).
-- KEYS[1] account hash
-- ARGV: now, gen, rpm_charged, tpm_charged, tpd_charged (0/1), tokens, day,
--       slack_ms, inflight_ttl_ms
-- Returns 1 when applied, 0 when the state is gone or was re-created (ignored).
local key = KEYS[1]
local now = tonumber(ARGV[1])
local tokens = tonumber(ARGV[6])

local s, exists = load(key)
if not exists or s.gen ~= tonumber(ARGV[2]) then return 0 end

if ARGV[3] == '1' then s.rq_held = math.max(s.rq_held - 1, 0) end
if ARGV[4] == '1' then s.tk_held = math.max(s.tk_held - tokens, 0) end
if ARGV[5] == '1' then day_settle(s, tonumber(ARGV[7]), tokens, 0, now) end
s.in_flight = math.max(s.in_flight - 1, 0)
save(key, s, now, tonumber(ARGV[8]), tonumber(ARGV[9]))
return 1
