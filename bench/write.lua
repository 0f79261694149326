-- POST /generate so that every call writes: each wrk thread has a table of
-- its own ("<table>-t<N>"), and every request moves the first running
-- container to a new address (a counter), so no call finds the state it
-- asks for. The payload is LR_BODY_A; run.py counts the writes from the
-- store's table versions and reports the share.
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local head, tail
local n = 0

function init(args)
  local f = assert(io.open(os.getenv("LR_BODY_A"), "rb"))
  local s = f:read("*a")
  f:close()
  -- The table name is the first "table" member of the payload.
  s = s:gsub('"table"%s*:%s*"([^"]*)"', '"table":"%1-t' .. tostring(tid) .. '"', 1)
  -- Split around the first "ip" value, the one the counter replaces.
  local a, b = s:find('"ip"%s*:%s*"[^"]*"')
  head = s:sub(1, a - 1) .. '"ip":"'
  tail = '"' .. s:sub(b + 1)
end

function request()
  n = n + 1
  local ip = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256,
                           math.floor(n / 256) % 256, n % 256)
  return wrk.format("POST", "/generate", {["Content-Type"] = "application/json"},
                    head .. ip .. tail)
end
