-- Argo CD health check for mailfleet.io EmailRelay and SenderDomain (same script for both).
-- Healthy: Ready=True, written for the current generation. Degraded: Degraded=True for the
-- current generation. Progressing: everything else (not yet observed, rolling out, waiting).
-- Lua 5.1 subset (Argo CD runs gopher-lua).
local hs = { status = "Progressing", message = "Waiting for the MailFleet operator" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local function current(c)
  return c.observedGeneration == nil or generation == nil or c.observedGeneration == generation
end
local ready = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Degraded" and c.status == "True" and current(c) then
    hs.status = "Degraded"
    hs.message = c.message or c.reason or "Degraded"
    return hs
  end
  if c.type == "Ready" then
    ready = c
  end
end
if ready ~= nil and ready.status == "True" and current(ready) then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = ready.message
end
return hs
