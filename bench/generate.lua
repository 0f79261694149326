-- POST /generate with one payload (LR_BODY) on every request: state that
-- does not change once the first call stored it.
local f = assert(io.open(os.getenv("LR_BODY"), "rb"))
wrk.method = "POST"
wrk.path = "/generate"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/json"
f:close()
