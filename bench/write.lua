-- POST /generate so that every call writes: two payloads (LR_BODY_A and
-- LR_BODY_B, which differ in one container's address) alternate, and each
-- wrk thread has a table of its own ("<table>-t<N>"). A thread's connections
-- share its table, so two calls could still arrive out of turn; run.py
-- counts the writes from the store's table versions and reports the share.
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local bodies = {}
local n = 0

function init(args)
  local suffix = "-t" .. tostring(tid)
  for i, name in ipairs({"LR_BODY_A", "LR_BODY_B"}) do
    local s = slurp(os.getenv(name))
    -- The table name is the first "table" member of the payload.
    bodies[i] = s:gsub('"table"%s*:%s*"([^"]*)"', '"table":"%1' .. suffix .. '"', 1)
  end
end

function request()
  n = n + 1
  return wrk.format("POST", "/generate", {["Content-Type"] = "application/json"},
                    bodies[n % 2 + 1])
end
