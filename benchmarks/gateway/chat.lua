-- wrk script for the gateway benchmark: every request is the same chat-completion POST.
-- Environment: BENCH_TOKEN (the gateway key), BENCH_CHANNEL (default bench-prod), and
-- BENCH_STREAM=1 to ask for a stream. The floors (upstream, nginx, bare hop) get the same
-- request; they ignore the headers. Used by benchmarks/gateway/run.py; by hand:
--   BENCH_TOKEN=... wrk -t2 -c16 -d8s --latency -s benchmarks/gateway/chat.lua \
--     http://127.0.0.1:PORT/v1/chat/completions
local token = os.getenv("BENCH_TOKEN") or ""
local channel = os.getenv("BENCH_CHANNEL") or "bench-prod"
local stream = ""
if os.getenv("BENCH_STREAM") == "1" then
  stream = ',"stream":true'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["X-Gateway-Variables"] = '{"product": "bench"}'
wrk.body = '{"model":"' .. channel .. '","messages":[{"role":"user","content":"hi"}]' .. stream .. '}'
