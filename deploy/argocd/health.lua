-- Argo CD health check for ecs.image-import.dev/ImageImport.
-- Reads the kstatus conditions the operator writes (Ready, Reconciling, Stalled), so the verdict is:
--   being deleted                         -> Progressing ("deleting")
--   paused annotation                     -> Suspended
--   spec newer than what the operator saw -> Progressing
--   Stalled=True                          -> Degraded (its message: the ECS code and what it means;
--                                            a copy that failed in its region names the region)
--   Ready=True, every copy made           -> Healthy (the image, and how many copies)
--   Ready=True, copies still missing      -> Progressing (copies done out of wanted)
--   phase Uploading                       -> Progressing (the upload's percent; a stalled
--                                            upload, e.g. SourceChecksumMismatch, is Degraded above)
--   anything else                         -> Progressing (status.message)
-- Written for Lua 5.1, the dialect of Argo CD's interpreter.
local hs = {}

local function condition(type)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    if text ~= "" then
      text = text .. ": "
    end
    text = text .. c.message
  end
  return text
end

-- A stall's message starts with the exact ECS code (its reason is that code without the dots, so
-- "reason: message" would say the code twice); the reason alone when there is no message.
local function describe_stall(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or ""
end

local function status_message(fallback)
  if obj.status ~= nil and obj.status.message ~= nil and obj.status.message ~= "" then
    return obj.status.message
  end
  return fallback
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "deleting: " .. status_message("the operator is cancelling or deleting the import in ECS")
  return hs
end

local annotations = obj.metadata.annotations
if annotations ~= nil and annotations["ecs.image-import.dev/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "paused: the operator changes nothing in ECS until the annotation ecs.image-import.dev/paused is removed"
  return hs
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator"
  return hs
end

local generation = obj.metadata.generation
local ready = condition("Ready")
if generation ~= nil then
  local observed = obj.status.observedGeneration
  local behind = observed == nil or observed < generation
  if ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
    behind = true
  end
  if behind then
    hs.status = "Progressing"
    hs.message = "the operator has not reconciled generation " .. string.format("%d", generation) .. " yet"
    return hs
  end
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe_stall(stalled)
  return hs
end

-- copiesReady is "<done>/<wanted>" when the spec distributes the image to other regions.
local copies_done, copies_wanted = nil, nil
if obj.status.copiesReady ~= nil then
  local done, wanted = string.match(obj.status.copiesReady, "^(%d+)/(%d+)$")
  copies_done, copies_wanted = tonumber(done), tonumber(wanted)
end

if ready ~= nil and ready.status == "True" then
  if copies_wanted ~= nil and copies_done ~= copies_wanted then
    hs.status = "Progressing"
    hs.message = "copies " .. obj.status.copiesReady .. " done: " .. status_message("copying to other regions")
    return hs
  end
  hs.status = "Healthy"
  if obj.status.imageId ~= nil then
    hs.message = "image " .. obj.status.imageId .. " is available"
    if copies_wanted ~= nil and copies_wanted > 0 then
      hs.message = hs.message .. ", with copies in " .. string.format("%d", copies_wanted) .. " regions"
    end
  else
    hs.message = describe(ready)
  end
  return hs
end

if obj.status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = status_message("the import failed")
  return hs
end

if obj.status.phase == "Uploading" then
  hs.status = "Progressing"
  local percent = obj.status.progress
  if obj.status.upload ~= nil and obj.status.upload.percent ~= nil then
    percent = obj.status.upload.percent
  end
  hs.message = "uploading: " .. string.format("%d", percent or 0) .. "%: " .. status_message("uploading the source into OSS")
  return hs
end

hs.status = "Progressing"
local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = status_message(describe(reconciling))
else
  hs.message = status_message("waiting for the operator")
end
return hs
