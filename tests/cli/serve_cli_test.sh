#!/usr/bin/env bash
# `sluice serve` end to end over real sockets with curl: the tiny fixture (no tokenizer:
# token-id prompts on /v1/completions), then the default 270M model when the set-up placed
# it (text and chat, a client disconnect, a drain on SIGTERM). Each server binds --port 0
# and the port is read from its "serving ... on http://HOST:PORT" log line.
# Usage: serve_cli_test.sh SLUICE_BINARY SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
# shellcheck source=scripts/lib/wait_serving.sh
. "$src/scripts/lib/wait_serving.sh"
# shellcheck source=tests/cli/lib.sh
. "$src/tests/cli/lib.sh"

# start_server LOG ARGS...: starts `sluice serve ARGS --port 0`, sets pid and base.
start_server() {
  local log=$1
  shift
  "$bin" serve "$@" --port 0 --grpc-port 0 >"$log" 2>&1 &
  pid=$!
  if base=$(wait_serving "$log" "$pid"); then return 0; fi
  echo "server did not start:"
  cat "$log"
  return 1
}

# stop_server NAME [signalled]: SIGTERM (unless already sent: a second one would skip the
# drain), then the exit code must be 0 within 20 s.
stop_server() {
  local name=$1
  if [ "${2:-}" != signalled ]; then kill -TERM "$pid"; fi
  local rc=""
  for _ in $(seq 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      rc=$?
      break
    fi
    sleep 0.1
  done
  if [ "$rc" = "0" ]; then ok "$name: exits 0 on SIGTERM"; else bad "$name: exit code '$rc' after SIGTERM"; fi
  pid=""
}

# req METHOD PATH [BODY] [CURL ARGS...]: status into $code, body into $tmp/body, headers
# into $tmp/headers.
req() {
  local method=$1 path=$2
  shift 2
  local data=()
  if [ $# -gt 0 ]; then
    data=(--data-binary "$1")
    shift
  fi
  code=$(curl -s -m 60 -X "$method" -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' \
    -H 'Content-Type: application/json' "${data[@]}" "$@" "$base$path")
}

has() { grep -q -- "$1" "$tmp/body"; }
header_has() { grep -qi -- "$1" "$tmp/headers"; }
is() { [ "$code" = "$1" ]; }
# An OpenAI error body with this status, type and param ("null" for none).
is_error() {
  is "$1" && has "\"type\":\"$2\"" && { [ "$3" = null ] && has '"param":null' || has "\"param\":\"$3\""; } &&
    header_has '^X-Request-Id: '
}

tiny=$src/tests/fixtures/gemma3_tiny_d256
if start_server "$tmp/tiny.log" --model "$tiny" --threads 1 --max-request-body-bytes 4096 \
  --max-header-bytes 2048 --idle-timeout 1; then
  req GET /health
  check "health 200 with X-Request-Id" eval 'is 200 && header_has "^X-Request-Id: req-"'
  req GET /health "" -H 'X-Request-Id: client-id-42'
  check "client X-Request-Id echoed" header_has '^X-Request-Id: client-id-42'
  req GET /ready
  check "ready 200" is 200
  req GET /version
  check "version" eval 'is 200 && has "\"version\":"'
  req GET /v1/models
  check "models list" eval 'is 200 && has "\"object\":\"list\"" && has "\"id\":\"gemma3_tiny_d256\""'
  req GET /v1/models/gemma3_tiny_d256
  check "model card" eval 'is 200 && has "\"object\":\"model\""'
  req GET /v1/models/nope
  check "unknown model 404" eval 'is_error 404 invalid_request_error model && has model_not_found'

  # ignore_eos: the fixture's EOS (id 1) could end a sampled run early.
  req POST /v1/completions '{"prompt": [2, 17, 300], "max_tokens": 4, "ignore_eos": true}'
  check "completion: 200, text_completion" eval 'is 200 && has "\"object\":\"text_completion\"" && has "\"id\":\"cmpl-"'
  check "completion: finish_reason length" has '"finish_reason":"length"'
  check "completion: usage" has '"usage":{"completion_tokens":4,"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":0},"total_tokens":7}'
  check "completion: 4 token ids, empty text" eval 'grep -Eq "\"text\":\"\",\"token_ids\":\[[0-9]+,[0-9]+,[0-9]+,[0-9]+\]" "$tmp/body"'
  req POST /v1/completions '{"prompt": [2, 17, 300], "max_tokens": 6, "temperature": 0}'
  cp "$tmp/body" "$tmp/greedy1"
  req POST /v1/completions '{"prompt": [2, 17, 300], "max_tokens": 6, "temperature": 0}'
  check "greedy completions agree" eval 'diff <(grep -o "\"token_ids\":\[[0-9,]*\]" "$tmp/greedy1") <(grep -o "\"token_ids\":\[[0-9,]*\]" "$tmp/body") >/dev/null'
  req POST /v1/completions '{"prompt": [[2, 17], [2, 5, 9]], "max_tokens": 3, "n": 2, "ignore_eos": true}'
  check "2 prompts x n=2: 4 choices, usage" eval 'is 200 && has "\"index\":3" && has "\"prompt_tokens\":5" && has "\"completion_tokens\":12"'

  req POST /v1/completions '{"prompt": [2, 17, 300], "max_tokens": 4, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}}' -N
  check "stream: event-stream" eval 'is 200 && header_has "^Content-Type: text/event-stream"'
  check "stream: ends with [DONE]" eval '[ "$(grep -v "^$" "$tmp/body" | tail -n1)" = "data: [DONE]" ]'
  check "stream: finish_reason length" has '"finish_reason":"length"'
  check "stream: usage chunk" has '"choices":\[\],.*"usage":{"completion_tokens":4,"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":0},"total_tokens":7}'
  check "stream: every event is data:" eval '! grep -v "^$" "$tmp/body" | grep -qv "^data: "'

  # Errors: OpenAI JSON, the right status, and the server goes on answering.
  req POST /v1/completions 'this is not json'
  check "non-JSON: 400" is_error 400 invalid_request_error null
  req POST /v1/nope '{}'
  check "unknown route: 404" is_error 404 invalid_request_error null
  req GET /v1/completions
  check "GET on a POST route: 405 with Allow" eval 'is_error 405 invalid_request_error null && header_has "^Allow: POST"'
  req POST /v1/completions '{"prompt": [2, 17], "temperature": -1}'
  check "temperature -1: 400 naming it" is_error 400 invalid_request_error temperature
  req POST /v1/completions '{"prompt": [2, 17], "max_tokens": "5"}'
  check "max_tokens as a string: 400" is_error 400 invalid_request_error max_tokens
  req POST /v1/completions '{"prompt": [2, 99999]}'
  check "token id out of range: 400" eval 'is 400 && has "\"param\":\"prompt"'
  req POST /v1/completions '{"prompt": [2, 17], "max_tokens": 1000}'
  check "over the context: context_length_exceeded" eval 'is_error 400 invalid_request_error prompt && has context_length_exceeded'
  req POST /v1/completions '{"prompt": "text", "max_tokens": 2}'
  check "text prompt without a tokenizer: 400" is_error 400 invalid_request_error prompt
  req POST /v1/chat/completions '{"messages": [{"role": "user", "content": "hi"}]}'
  check "chat without a tokenizer: 400" is_error 400 invalid_request_error messages
  req POST /v1/completions '{"model": "other", "prompt": [2]}'
  check "unknown model in the body: 404" is_error 404 invalid_request_error model
  big=$(head -c 5000 /dev/zero | tr '\0' ' ')
  req POST /v1/completions "{\"prompt\": [2], \"pad\": \"$big\"}"
  check "body over the limit: 413" is_error 413 invalid_request_error null
  req POST /v1/completions "{\"prompt\": [2], \"pad\": \"$big\"}" -H 'Expect:'
  check "body over the limit, sent at once: 413" is_error 413 invalid_request_error null
  req GET /health "" -H "X-Pad: $(head -c 3000 /dev/zero | tr '\0' 'a')"
  check "headers over the limit: 431" is_error 431 invalid_request_error null
  req GET /health
  check "still answering after the errors" is 200

  # A connection that sends nothing is closed after --idle-timeout (1 s here).
  start=$(date +%s%N)
  hostport=${base#http://}
  timeout 10 bash -c "exec 3<>/dev/tcp/${hostport%:*}/${hostport##*:}; cat <&3 >/dev/null" 2>/dev/null
  elapsed_ms=$((($(date +%s%N) - start) / 1000000))
  check "idle connection closed after --idle-timeout ($elapsed_ms ms)" eval '[ "$elapsed_ms" -ge 900 ] && [ "$elapsed_ms" -lt 5000 ]'

  req GET /metrics
  check "metrics: vllm:num_requests_running" has 'vllm:num_requests_running{model_name="gemma3_tiny_d256"} 0'
  check "metrics: request_success counted" eval 'grep -Eq "vllm:request_success_total\{model_name=\"gemma3_tiny_d256\",finished_reason=\"length\"\} [1-9]" "$tmp/body"'
  check "metrics: cache_config_info" has 'vllm:cache_config_info{'
  stop_server tiny
else
  bad "tiny fixture server start"
fi

# --api-key and --max-queued-requests (one sequence at a time, one waiting request allowed).
if start_server "$tmp/key.log" --model "$tiny" --threads 1 --api-key sk-test-1 --max-num-seqs 1 \
  --max-queued-requests 1; then
  req GET /health
  check "api key: /health open" is 200
  req GET /v1/models
  check "api key: missing -> 401" is_error 401 authentication_error null
  req GET /v1/models "" -H 'Authorization: Bearer sk-test-2'
  check "api key: wrong -> 401" is_error 401 authentication_error null
  req GET /v1/models "" -H 'Authorization: Bearer sk-test-1'
  check "api key: right -> 200" is 200
  cpids=()
  for _ in $(seq 40); do
    curl -s -m 60 -o /dev/null -w '%{http_code}\n' -H 'Authorization: Bearer sk-test-1' "$base/v1/completions" \
      -d '{"prompt": [2], "max_tokens": 250, "ignore_eos": true}' >>"$tmp/codes" &
    cpids+=($!)
  done
  wait "${cpids[@]}"  # not a bare wait: the server is a child too
  check "queue limit: some 503, the rest 200 ($(sort "$tmp/codes" | uniq -c | tr -s ' \n' ' '))" \
    eval 'grep -q "^503$" "$tmp/codes" && grep -q "^200$" "$tmp/codes" && ! grep -qv "^\(200\|503\)$" "$tmp/codes"'
  stop_server api-key
else
  bad "api-key server start"
fi

model=$src/models/gemma-3-270m-q4_k_m.gguf
if [ -f "$model" ]; then
  if start_server "$tmp/270m.log" --model "$model" --threads 2; then
    req POST /v1/completions '{"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}'
    check "270m text completion" eval 'is 200 && has "\"finish_reason\":\"length\"" && has "\"completion_tokens\":8" && ! has "\"text\":\"\""'
    text=$(grep -o '"text":"[^"]*"' "$tmp/body" | sed 's/"text":"//; s/"$//')
    # A stop string taken from the middle of that greedy text: the text ends right before it.
    stop=${text:4:6}
    prefix=${text%%"$stop"*}
    req POST /v1/completions "{\"prompt\": \"The capital of France is\", \"max_tokens\": 8, \"temperature\": 0, \"stop\": [\"$stop\"]}"
    check "270m stop string: text cut before it, finish_reason stop" eval 'is 200 && has "\"finish_reason\":\"stop\"" && has "\"text\":\"$prefix\""'
    req POST /v1/completions "{\"prompt\": \"The capital of France is\", \"max_tokens\": 8, \"temperature\": 0, \"stream\": true, \"stop\": [\"$stop\"]}" -N
    streamed=$(grep -o '"text":"[^"]*"' "$tmp/body" | sed 's/"text":"//; s/"$//' | tr -d '\n')
    check "270m stop string, streamed: same text" eval '[ "$streamed" = "$prefix" ] && has "\"finish_reason\":\"stop\""'
    req POST /v1/chat/completions '{"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 6, "temperature": 0}'
    check "270m chat completion" eval 'is 200 && has "\"object\":\"chat.completion\"" && has "\"role\":\"assistant\"" && has "\"completion_tokens\":"'
    req POST /v1/chat/completions '{"messages": [{"role": "user", "content": "Count to ten."}], "max_tokens": 6, "temperature": 0, "stream": true}' -N
    check "270m chat stream: role first, [DONE] last" eval 'has "\"delta\":{\"content\":\"[^\"]*\",\"role\":\"assistant\"}" && [ "$(grep -v "^$" "$tmp/body" | tail -n1)" = "data: [DONE]" ]'
    req POST /tokenize '{"prompt": "Hello world", "add_special_tokens": false}'
    check "270m tokenize" eval 'is 200 && has "\"count\":" && has "\"tokens\":\["'
    tokens=$(grep -o '"tokens":\[[0-9,]*\]' "$tmp/body" | sed 's/"tokens"://')
    req POST /detokenize "{\"tokens\": $tokens}"
    check "270m detokenize round trip" eval 'is 200 && has "\"prompt\":\"Hello world\""'
    req POST /detokenize '{"tokens": [-1]}'
    check "detokenize: bad id 400" is_error 400 invalid_request_error tokens
    # A client that goes away mid-stream and one that waits for a non-streamed answer: both
    # requests are aborted in the engine (running back to 0 long before 2000 tokens).
    curl -sN -m 1 -o /dev/null "$base/v1/completions" -d '{"prompt": "Once", "max_tokens": 2000, "ignore_eos": true, "stream": true}'
    curl -s -m 1 -o /dev/null "$base/v1/completions" -d '{"prompt": "Once", "max_tokens": 2000, "ignore_eos": true}'
    sleep 0.5
    req GET /metrics
    check "disconnects abort: nothing running" has 'vllm:num_requests_running{model_name="gemma-3-270m-q4_k_m"} 0'
    check "disconnects abort: logged" eval '[ "$(grep -c "aborted by the client" "$tmp/270m.log")" = 2 ]'
    # Drain: a stream in flight when SIGTERM arrives still finishes; meanwhile /ready and new
    # requests get 503 with Retry-After, /health stays 200.
    curl -sN -m 60 -o "$tmp/drain" "$base/v1/completions" -d '{"prompt": "Once", "max_tokens": 32, "ignore_eos": true, "stream": true}' &
    cpid=$!
    sleep 0.3
    kill -TERM "$pid"
    sleep 0.2
    req GET /ready
    check "drain: /ready 503" eval 'is 503 && header_has "^Retry-After: "'
    req POST /v1/completions '{"prompt": "Once", "max_tokens": 2}'
    check "drain: a new request gets 503" eval 'is_error 503 service_unavailable null && header_has "^Retry-After: "'
    req GET /health
    check "drain: /health 200" is 200
    stop_server 270m signalled
    wait "$cpid"
    check "drain: the in-flight stream completed" eval '[ "$(grep -v "^$" "$tmp/drain" | tail -n1)" = "data: [DONE]" ] && grep -q "\"finish_reason\":\"length\"" "$tmp/drain"'
  else
    bad "270m server start"
  fi
else
  echo "skip: $model not present (the 270M checks)"
fi

# A CPU KV budget beyond the memory left is a start-up error (the cache is committed as it
# fills, so it would otherwise start and meet the OOM killer under load).
out=$("$bin" serve --model "$src/tests/fixtures/gemma3_tiny" --port 0 --grpc-port 0 \
  --kv-cache-memory-bytes 1000000000000 2>&1)
rc=$?
if [ "$rc" = 2 ] && echo "$out" | grep -q "kv-cache-memory-bytes 1000000000000 is more than the"; then
  ok "a KV budget beyond the memory left: one-line error, exit 2"
else
  bad "a KV budget beyond the memory left: exit $rc, output: $(echo "$out" | tail -2)"
fi

finish
