-- wrk script for the hop benchmark: every request is the same small chat-completion POST.
-- Used by benchmarks/hop/run.py; by hand:
--   wrk -t1 -c16 -d8s --latency -s benchmarks/hop/post.lua http://127.0.0.1:PORT/v1/chat/completions
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"support-bot","messages":[{"role":"system","content":"You are a helpful support assistant."},{"role":"user","content":"Where is my order?"}],"max_tokens":64,"temperature":0.2}'
