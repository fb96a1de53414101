-- Argo CD health check for connect.operators.dev/v1alpha1 ConnectInstance.
--
-- Follows kstatus, so Argo CD, Flux and `kubectl wait` agree:
--   being deleted                               -> Progressing ("Deleting")
--   Paused=True (the paused annotation)         -> Suspended (its message)
--   no status, or observedGeneration behind     -> Progressing
--   Ready, Reconciling or Stalled written for an
--   older generation (its observedGeneration)   -> Progressing (stale: says which generation)
--   Reconciling=True                            -> Progressing (its message)
--   Stalled=True                                -> Degraded (its message; needs a human)
--   Ready=True                                  -> Healthy
--   anything else                               -> Progressing (Ready's message)
--
-- Argo CD runs argocd-cm health scripts with only the base, table, os and package
-- libraries: this script must use nothing else (no methods called on text values).

local health = {}

-- The condition of the given type, or nil.
local function findCondition(conditions, conditionType)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function isTrue(condition)
  return condition ~= nil and condition.status == "True"
end

-- Whether a condition was written for an older generation than the object's: it describes
-- a spec that is no longer the one asked for. Without observedGeneration it cannot tell.
local function isStale(condition, generation)
  return condition ~= nil and type(condition.observedGeneration) == "number" and
    type(generation) == "number" and condition.observedGeneration < generation
end

-- A condition's message, else its reason, else the fallback.
local function describe(condition, fallback)
  if condition ~= nil then
    if condition.message ~= nil and condition.message ~= "" then
      return condition.message
    end
    if condition.reason ~= nil and condition.reason ~= "" then
      return condition.reason
    end
  end
  return fallback
end

local metadata = obj.metadata or {}
local status = obj.status
local conditions = nil
if status ~= nil then
  conditions = status.conditions
end
local ready = findCondition(conditions, "Ready")
local reconciling = findCondition(conditions, "Reconciling")
local stalled = findCondition(conditions, "Stalled")
local paused = findCondition(conditions, "Paused")

if metadata.deletionTimestamp ~= nil then
  -- The finalizer holds the object until AWS confirms the instance is gone (or the
  -- deletionPolicy is Retain). A stalled deletion (e.g. the 30-day attempt limit) says why.
  local detail = nil
  if isTrue(stalled) then
    detail = describe(stalled, nil)
  elseif isTrue(reconciling) then
    detail = describe(reconciling, nil)
  else
    detail = describe(ready, nil)
  end
  health.status = "Progressing"
  if detail ~= nil then
    health.message = "Deleting: " .. detail
  else
    health.message = "Deleting"
  end
  return health
end

-- A paused object is neither progressing nor failing: the operator leaves it alone until
-- the annotation is removed (its Ready is the last one seen, possibly for an older spec).
if isTrue(paused) then
  health.status = "Suspended"
  health.message = describe(paused, "Paused")
  return health
end

if status == nil or status.observedGeneration == nil then
  health.status = "Progressing"
  health.message = "Waiting for the operator to reconcile the ConnectInstance"
  return health
end

if metadata.generation ~= nil and status.observedGeneration ~= metadata.generation then
  health.status = "Progressing"
  health.message = "Waiting for the operator to observe generation " .. tostring(metadata.generation) ..
    " (status is for generation " .. tostring(status.observedGeneration) .. ")"
  return health
end

-- status.observedGeneration can be current while a condition is not (a status written in
-- parts, or by an older operator): a Ready=True for the previous spec is not Healthy, a
-- Stalled=True for it not Degraded.
local staleChecks = {
  { condition = ready, name = "Ready" },
  { condition = reconciling, name = "Reconciling" },
  { condition = stalled, name = "Stalled" },
}
for _, check in ipairs(staleChecks) do
  if isStale(check.condition, metadata.generation) then
    health.status = "Progressing"
    health.message = "Waiting for the operator to observe generation " .. tostring(metadata.generation) ..
      " (the " .. check.name .. " condition is for generation " ..
      tostring(check.condition.observedGeneration) .. ")"
    return health
  end
end

if isTrue(reconciling) then
  health.status = "Progressing"
  health.message = describe(reconciling, "Reconciling")
  return health
end

if isTrue(stalled) then
  health.status = "Degraded"
  health.message = describe(stalled, "Stalled")
  return health
end

if isTrue(ready) then
  health.status = "Healthy"
  health.message = describe(ready, "Available")
  return health
end

health.status = "Progressing"
health.message = describe(ready, "Waiting for the instance to become ready")
return health
