-- POST /generate with one payload (LR_BODY) on every request: state that
-- does not change once the first call stored it.
local f = assert(io.open(os.getenv("LR_BODY"), "rb"))
wrk.method = "POST"
wrk.path = "/generate"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/json"
f:close()
-- With LR_TOKEN (bench/auth.py): the request carries it as a bearer token.
local token = os.getenv("LR_TOKEN")
if token and token ~= "" then
	wrk.headers["Authorization"] = "Bearer " .. token
end
