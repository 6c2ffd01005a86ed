// The GCRA decision as one Lua script: atomic, one round trip, and timed by the Redis
// server's clock (TIME) so every relay of a fleet agrees whatever their own clocks say.
// Mirrors gcraDecide() in gcra.ts. Redis >= 5 replicates script effects, not the script,
// so calling TIME before writing is allowed.
// KEYS[i]: one per period. ARGV[1]: cost; ARGV[2i], ARGV[2i+1]: interval ms, burst of period i.
// Returns {allowed (0|1), retryAfterMs, remaining}.
export const gcraLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local cost = tonumber(ARGV[1])
local retry = 0
local remaining = -1
local newTats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = now
  local v = redis.call('GET', KEYS[i])
  if v then
    local stored = tonumber(v)
    if stored and stored > now then tat = stored end
  end
  local newTat = tat + cost * interval
  local allowAt = newTat - burst * interval
  if now < allowAt then
    if allowAt - now > retry then retry = allowAt - now end
  else
    local r = math.floor((now - allowAt) / interval + 1e-9)
    if remaining < 0 or r < remaining then remaining = r end
  end
  newTats[i] = newTat
end
if retry > 0 then
  return {0, math.ceil(retry), 0}
end
for i = 1, #KEYS do
  -- The key lives as long as its state differs from a fresh key's, plus a margin.
  redis.call('SET', KEYS[i], string.format('%.3f', newTats[i]), 'PX', math.ceil(newTats[i] - now) + 1000)
end
return {1, 0, remaining}
`;
