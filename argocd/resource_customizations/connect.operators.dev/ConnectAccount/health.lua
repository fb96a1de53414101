-- Argo CD health check for connect.operators.dev/v1alpha1 ConnectAccount.
--
-- An account has one condition, Ready: whether its credentials work (the role assumed, if
-- any, then STS GetCallerIdentity).
--   being deleted                               -> Progressing ("Deleting: ..."; the
--                                                  finalizer waits for the instances using it)
--   no status, or observedGeneration behind     -> Progressing
--   Ready written for an older generation       -> Progressing (stale: says which generation)
--   Ready=True                                  -> Healthy
--   Ready=False, AssumeRoleFailed or AccessDenied
--                                               -> Degraded (its message; a human must fix
--                                                  the trust policy, the external id or the
--                                                  operator's IAM role)
--   Ready=False, AwsError (STS unreachable,
--   throttled, a 5xx), or anything else         -> Progressing (its message; the operator
--                                                  retries by itself)
--
-- AwsError is Progressing, not Degraded: it is transient, and a sync should wait for the
-- retry rather than fail. If it persists, the message says why.
--
-- Argo CD runs argocd-cm health scripts with only the base, table, os and package
-- libraries: this script must use nothing else (no methods called on text values).

local health = {}

-- The reasons of Ready=False that only a human can fix.
local needsHuman = {
  AssumeRoleFailed = true,
  AccessDenied = true,
}

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

local function hasFinalizer(metadata, name)
  if type(metadata.finalizers) ~= "table" then
    return false
  end
  for _, finalizer in ipairs(metadata.finalizers) do
    if finalizer == name then
      return true
    end
  end
  return false
end

local metadata = obj.metadata or {}
local status = obj.status
local conditions = nil
if status ~= nil then
  conditions = status.conditions
end
local ready = findCondition(conditions, "Ready")

if metadata.deletionTimestamp ~= nil then
  -- The operator keeps the finalizer while any ConnectInstance refers to the account (their
  -- deletion needs its credentials); its AccountInUse event lists them.
  health.status = "Progressing"
  if hasFinalizer(metadata, "connect.operators.dev/account-in-use") then
    health.message = "Deleting: waits until no ConnectInstance uses the account (see its AccountInUse event)"
  else
    health.message = "Deleting"
  end
  return health
end

if status == nil or status.observedGeneration == nil then
  health.status = "Progressing"
  health.message = "Waiting for the operator to verify the ConnectAccount's credentials"
  return health
end

if metadata.generation ~= nil and status.observedGeneration ~= metadata.generation then
  health.status = "Progressing"
  health.message = "Waiting for the operator to observe generation " .. tostring(metadata.generation) ..
    " (status is for generation " .. tostring(status.observedGeneration) .. ")"
  return health
end

-- status.observedGeneration can be current while Ready is not (a status written in parts,
-- or by an older operator): a Ready for the previous spec says nothing about this one.
if isStale(ready, metadata.generation) then
  health.status = "Progressing"
  health.message = "Waiting for the operator to observe generation " .. tostring(metadata.generation) ..
    " (the Ready condition is for generation " .. tostring(ready.observedGeneration) .. ")"
  return health
end

if ready ~= nil and ready.status == "True" then
  health.status = "Healthy"
  health.message = describe(ready, "CredentialsVerified")
  return health
end

if ready ~= nil and ready.status == "False" and needsHuman[ready.reason] then
  health.status = "Degraded"
  health.message = describe(ready, ready.reason)
  return health
end

health.status = "Progressing"
health.message = describe(ready, "Waiting for the operator to verify the ConnectAccount's credentials")
return health
