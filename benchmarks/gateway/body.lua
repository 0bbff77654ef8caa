-- wrk script of the body-size benchmark (benchmarks/gateway/bodies.py): every request is the
-- same chat-completion POST whose body is the file BENCH_BODY_FILE (up to megabytes), with
-- the gateway key BENCH_TOKEN. The upstream and the hop get the same request; they ignore
-- the headers.
local file = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
local body = file:read("*a")
file:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
wrk.headers["X-Gateway-Variables"] = '{"product": "bench"}'
wrk.body = body
