"""Malformed and hostile requests over raw sockets (RELIABILITY.md, section A and the
HTTP-level rows of F): each gets its status and OpenAI's error JSON
{"error": {"message", "type", "param", "code"}} naming the parameter, and the server goes on
answering a normal request afterwards (checked after every test).

The server runs the tiny fixture (vocabulary 512, context 256, no tokenizer). The request
validator runs before the tokenizer is needed, so chat bodies are validated there too.
"""

import json
import select
import socket
import time

import pytest

from daemon import Response, TINY_MODEL, assert_openai_error

BODY_LIMIT = 2 << 20   # --max-request-body-bytes: room for a 1 MB stop string and 10k stops
HEADER_LIMIT = 8192    # --max-header-bytes
VOCAB = 512
CONTEXT = 256


@pytest.fixture(scope="module")
def srv(serve_module):
    return serve_module(TINY_MODEL, "--threads", "1", "--max-request-body-bytes", BODY_LIMIT,
                        "--max-header-bytes", HEADER_LIMIT)


@pytest.fixture(autouse=True)
def still_serving(srv):
    yield
    assert srv.alive(), f"the server died:\n{srv.log_tail()}"
    r = srv.post("/v1/completions", {"prompt": [2, 17], "max_tokens": 2, "ignore_eos": True},
                 timeout=15)
    assert r.status == 200, r
    assert len(r.json()["choices"][0]["token_ids"]) == 2


def raw_http(srv, data, timeout=10.0):
    """Sends `data` as is on a fresh connection; the response (read to its Content-Length,
    or to the close)."""
    with socket.create_connection((srv.host, srv.port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse before reading it all; its answer is still there
        return read_response(s)


class ResponseReader:
    """Reads HTTP/1.1 responses off one socket in order, keeping the bytes of the next
    response that arrive with the end of this one (pipelined answers can share a recv)."""

    def __init__(self, s):
        self.s = s
        self.buf = b""

    def _fill(self):
        chunk = self.s.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def read(self):
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise AssertionError(f"connection closed before a response; got {self.buf!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = _Headers()
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length and self._fill():
            pass
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(status, headers, body)


def read_response(s):
    return ResponseReader(s).read()


class _Headers(dict):
    def get(self, key, default=None):
        return super().get(key.lower(), default)


def post_raw(srv, path, body, extra_headers=b""):
    if isinstance(body, str):
        body = body.encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + extra_headers + b"\r\n"
    return raw_http(srv, head + body)


def completions(**fields):
    return json.dumps({"prompt": [2, 17], "max_tokens": 2, **fields})


def chat(**fields):
    return json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
                       **fields})


# (id, endpoint, body, param, code): param "any" is not checked, None is JSON null; code is
# checked only where it is a string.
C, H = "/v1/completions", "/v1/chat/completions"
ARGS = '"prompt": [2, 17], "max_tokens": 2'
CASES = [
    # Not a JSON object.
    ("not-json", C, "this is not json", None, "any"),
    ("empty-body", C, "", None, "any"),
    ("truncated", C, '{"prompt": [2, 17', "any", "any"),
    ("top-level-array", C, "[]", None, "any"),
    ("top-level-string", C, '"x"', None, "any"),
    ("top-level-null", C, "null", None, "any"),
    ("duplicate-key", C, '{"prompt": [2], "prompt": [3]}', "prompt", "any"),
    ("deep-nesting", C, '{"prompt": [2], "x": ' + "[" * 100000 + "]" * 100000 + "}", None,
     "any"),
    ("nul-in-string", C, '{"prompt": "a\\u0000b"}', "prompt", "any"),
    ("lone-surrogate", C, '{"prompt": "\\ud800x"}', "prompt", "any"),
    ("invalid-utf8", C, b'{"prompt": "\xff\xfe\xfd", "max_tokens": 2}', "prompt", "any"),
    ("invalid-utf8-overlong", H,
     b'{"messages": [{"role": "user", "content": "\xc0\xaf"}]}', "messages[0].content", "any"),
    ("invalid-utf8-key", C, b'{"\xc3": 1, "prompt": [2]}', "any", "any"),
    ("nan-literal", C, f'{{{ARGS}, "temperature": NaN}}', "temperature", "any"),
    ("infinity-literal", C, f'{{{ARGS}, "temperature": Infinity}}', "temperature", "any"),
    ("minus-infinity-literal", C, f'{{{ARGS}, "top_p": -Infinity}}', "top_p", "any"),
    ("penalty-nan", C, f'{{{ARGS}, "presence_penalty": NaN}}', "presence_penalty", "any"),
    ("number-overflow", C, f'{{{ARGS}, "temperature": 1e999}}', "temperature", "any"),
    # Wrong types (strict, as OpenAI's).
    ("max_tokens-string", C, completions(max_tokens="5"), "max_tokens", None),
    ("max_tokens-float", C, completions(max_tokens=5.0), "max_tokens", None),
    ("max_tokens-bool", C, completions(max_tokens=True), "max_tokens", None),
    ("temperature-string", C, completions(temperature="hot"), "temperature", None),
    ("n-float", C, completions(n=1.5), "n", None),
    ("stream-string", C, completions(stream="yes"), "stream", None),
    ("prompt-object", C, json.dumps({"prompt": {}}), "prompt", None),
    ("prompt-empty", C, json.dumps({"prompt": []}), "prompt", None),
    ("prompt-empty-inner", C, json.dumps({"prompt": [[]]}), "prompt[0]", None),
    ("prompt-mixed", C, json.dumps({"prompt": [2, "x"]}), "prompt[1]", None),
    ("prompt-float-id", C, json.dumps({"prompt": [1.5]}), "prompt[0]", None),
    ("stop-number", C, completions(stop=5), "stop", None),
    ("stop-element-number", C, completions(stop=[1]), "stop[0]", None),
    ("logit_bias-array", C, completions(logit_bias=[]), "logit_bias", None),
    ("logit_bias-string-value", C, completions(logit_bias={"5": "x"}), "logit_bias", None),
    ("seed-string", C, completions(seed="1"), "seed", None),
    ("seed-float", C, completions(seed=1.5), "seed", None),
    ("model-number", C, completions(model=5), "model", None),
    ("stream_options-without-stream", C, completions(stream_options={"include_usage": True}),
     "stream_options", None),
    ("messages-string", H, json.dumps({"messages": "hi"}), "messages", None),
    # Ranges: rejected, never clamped.
    ("max_tokens-negative", C, completions(max_tokens=-1), "max_tokens", None),
    ("max_tokens-zero", C, completions(max_tokens=0), "max_tokens", None),
    ("max_tokens-2^31", C, completions(max_tokens=2**31), "max_tokens", None),
    ("max_tokens-2^63", C, completions(max_tokens=2**63), "max_tokens", None),
    ("max_tokens-2^64", C, completions(max_tokens=2**64), "max_tokens", None),
    ("max_tokens-1e30", C, completions(max_tokens=10**30), "max_tokens", None),
    ("max_tokens-1e9", C, completions(max_tokens=10**9), "prompt", "context_length_exceeded"),
    ("chat-max_tokens-huge", H, chat(max_tokens=10**9), "any", "any"),
    ("n-zero", C, completions(n=0), "n", None),
    ("n-negative", C, completions(n=-1), "n", None),
    ("n-17", C, completions(n=17), "n", None),
    ("n-1e9", C, completions(n=10**9), "n", None),
    ("n-2^31", C, completions(n=2**31), "n", None),
    ("chat-n-1e9", H, chat(n=10**9), "n", None),
    ("temperature-negative", C, completions(temperature=-1), "temperature", None),
    ("temperature-above-2", C, completions(temperature=2.0001), "temperature", None),
    ("top_p-zero", C, completions(top_p=0), "top_p", None),
    ("top_p-1.5", C, completions(top_p=1.5), "top_p", None),
    ("top_k-negative", C, completions(top_k=-5), "top_k", None),
    ("top_k-zero", C, completions(top_k=0), "top_k", None),
    ("min_p-1.5", C, completions(min_p=1.5), "min_p", None),
    ("presence_penalty-1e9", C, completions(presence_penalty=1e9), "presence_penalty", None),
    ("frequency_penalty--3", C, completions(frequency_penalty=-3), "frequency_penalty", None),
    ("repetition_penalty-zero", C, completions(repetition_penalty=0), "repetition_penalty",
     None),
    ("repetition_penalty-2.5", C, completions(repetition_penalty=2.5), "repetition_penalty",
     None),
    ("seed-2^64", C, completions(seed=2**64), "seed", None),
    ("seed-below-int64", C, completions(seed=-(2**63) - 1), "seed", None),
    ("token-id-negative", C, json.dumps({"prompt": [-1]}), "prompt[0]", None),
    ("token-id-vocab", C, json.dumps({"prompt": [2, VOCAB]}), "prompt[1]", None),
    ("token-id-2^31", C, json.dumps({"prompt": [2, 2**31]}), "prompt[1]", None),
    ("token-id-2^64", C, json.dumps({"prompt": [2, 2**64]}), "prompt[1]", None),
    ("token-id-nested", C, json.dumps({"prompt": [[2], [2, VOCAB]]}), "prompt[1][1]", None),
    ("logit_bias-id-negative", C, completions(logit_bias={"-1": 1}), "logit_bias", None),
    ("logit_bias-id-vocab", C, completions(logit_bias={str(VOCAB): 1}), "logit_bias", None),
    ("logit_bias-id-2^40", C, completions(logit_bias={str(2**40): 1}), "logit_bias", None),
    ("logit_bias-not-decimal", C, completions(logit_bias={"05": 1}), "logit_bias", None),
    ("logit_bias-value-101", C, completions(logit_bias={"5": 101}), "logit_bias", None),
    ("logit_bias-value--100.5", C, completions(logit_bias={"5": -100.5}), "logit_bias", None),
    ("logit_bias-301-entries", C, completions(logit_bias={str(i): 1 for i in range(301)}),
     "logit_bias", None),
    ("logprobs-1e6", C, completions(logprobs=10**6), "logprobs", None),
    ("logprobs-negative", C, completions(logprobs=-1), "logprobs", None),
    ("logprobs-21", C, completions(logprobs=21), "logprobs", None),
    ("top_logprobs-1e6", H, chat(logprobs=True, top_logprobs=10**6), "top_logprobs", None),
    ("top_logprobs-without-logprobs", H, chat(top_logprobs=2), "top_logprobs", None),
    ("stop-10000-strings", C, completions(stop=[f"s{i}" for i in range(10000)]), "stop", None),
    ("stop-17-strings", C, completions(stop=[f"s{i}" for i in range(17)]), "stop", None),
    ("stop-1MB-string", C, completions(stop="x" * (1 << 20)), "stop", None),
    ("stop-empty-string", C, completions(stop=""), "stop", None),
    ("stop_token_ids-vocab", C, completions(stop_token_ids=[VOCAB]), "stop_token_ids[0]", None),
    ("min_tokens-over-max_tokens", C, completions(min_tokens=5, max_tokens=2), "min_tokens",
     None),
    # Not implemented: refused rather than ignored.
    ("best_of", C, completions(best_of=2), "best_of", None),
    ("suffix", C, completions(suffix="x"), "suffix", None),
    ("tools", H, chat(tools=[{"type": "function", "function": {"name": "f"}}]), "tools", None),
    ("response_format", H, chat(response_format={"type": "json_object"}), "response_format",
     None),
    ("chat_template", H, chat(chat_template="{{ x }}"), "chat_template", None),
    # Chat messages.
    ("messages-empty", H, json.dumps({"messages": []}), "messages", None),
    ("messages-missing", H, json.dumps({"max_tokens": 2}), "messages", None),
    ("messages-element-number", H, json.dumps({"messages": [1]}), "messages[0]", None),
    ("role-unknown", H, json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}),
     "messages[0].role", None),
    ("role-missing", H, json.dumps({"messages": [{"content": "hi"}]}), "messages[0].role", None),
    ("content-missing", H, json.dumps({"messages": [{"role": "user"}]}),
     "messages[0].content", None),
    ("content-empty-parts", H, json.dumps({"messages": [{"role": "user", "content": []}]}),
     "messages[0].content", None),
    ("content-image", H, json.dumps({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/"}}]}]}),
     "messages[0].content[0].type", None),
    ("tool-without-call-id", H, json.dumps({"messages": [{"role": "tool", "content": "x"}]}),
     "messages[0].tool_call_id", None),
    # Contexts.
    ("context-exceeded", C, json.dumps({"prompt": [2] * 250, "max_tokens": 100}), "prompt",
     "context_length_exceeded"),
    ("prompt-100k-ids", C, json.dumps({"prompt": [2] * 100000}), "prompt",
     "context_length_exceeded"),
    # No tokenizer on this model: text needs one.
    ("text-prompt-no-tokenizer", C, json.dumps({"prompt": "hello"}), "prompt", None),
    ("stop-string-no-tokenizer", C, completions(stop="x"), "stop", None),
    ("chat-no-tokenizer", H, chat(), "messages", None),
]


@pytest.mark.parametrize("endpoint,body,param,code", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rejected_with_400(srv, endpoint, body, param, code):
    r = post_raw(srv, endpoint, body)
    assert_openai_error(r, 400, param, code or "any")


def test_context_message_wording(srv):
    r = post_raw(srv, C, json.dumps({"prompt": [2] * 250, "max_tokens": 100}))
    err = assert_openai_error(r, 400, "prompt", "context_length_exceeded")
    assert err["message"].startswith(
        f"This model's maximum context length is {CONTEXT} tokens. However, you requested 350 "
        "tokens (250 in the prompt, 100 in the completion).")


def test_error_messages_echo_no_raw_bytes(srv):
    # A long hostile value is quoted at most in part, and never as invalid UTF-8 (json()
    # above would fail on it).
    r = post_raw(srv, H, json.dumps({"messages": [{"role": "x" * 100000, "content": "hi"}]}))
    err = assert_openai_error(r, 400, "messages[0].role")
    assert len(err["message"]) < 1000


def test_unknown_model(srv):
    r = post_raw(srv, C, completions(model="no-such-model"))
    assert_openai_error(r, 404, "model", "model_not_found")
    r = post_raw(srv, H, chat(model="x" * 5000))
    err = assert_openai_error(r, 404, "model", "model_not_found")
    assert len(err["message"]) < 500


def test_error_carries_the_client_request_id(srv):
    r = post_raw(srv, C, "nope", b"X-Request-Id: my-id-123\r\n")
    assert r.status == 400 and r.headers.get("x-request-id") == "my-id-123"
    # Not a sane token: replaced by the server's own.
    r = post_raw(srv, C, "nope", b"X-Request-Id: bad id\x7f\r\n")
    assert r.status == 400 and r.headers.get("x-request-id") not in (None, "bad id\x7f")


# ---- HTTP level ---------------------------------------------------------------------------

def test_body_over_the_limit_refused_at_the_header(srv):
    # Content-Length says 1 GiB and no body byte is sent: the 413 comes anyway.
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nContent-Length: 1073741824\r\n\r\n{\"prompt\": [")
        r = read_response(s)
    assert_openai_error(r, 413, None)


def test_body_over_the_limit_with_expect_continue(srv):
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 1073741824\r\n\r\n")
        r = read_response(s)
    # The refusal, not "100 Continue".
    assert_openai_error(r, 413, None)


def test_body_over_the_limit_sent_whole(srv):
    r = post_raw(srv, C, json.dumps({"prompt": [2], "pad": " " * (BODY_LIMIT + 10)}))
    assert_openai_error(r, 413, None)


def test_chunked_body_over_the_limit_refused_while_arriving(srv):
    piece = b"x" * 65536
    sent = 0
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        # Send 64 KiB chunks until the answer is there: it must come soon after the limit.
        while sent < 8 * BODY_LIMIT:
            if select.select([s], [], [], 0)[0]:
                break
            try:
                s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        deadline = time.monotonic() + 5
        while not select.select([s], [], [], 0.1)[0] and time.monotonic() < deadline:
            pass
        r = read_response(s)
    assert_openai_error(r, 413, None)
    # The server reads at most a little past the limit before answering (socket buffers add
    # some more before the answer is seen here).
    assert sent <= BODY_LIMIT + (4 << 20), sent


def test_header_over_the_limit(srv):
    r = raw_http(srv, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (2 * HEADER_LIMIT) +
                 b"\r\n\r\n")
    assert_openai_error(r, 431, None)


def test_ten_thousand_headers(srv):
    r = raw_http(srv, b"GET /health HTTP/1.1\r\nHost: x\r\n" +
                 b"".join(b"X-H%d: v\r\n" % i for i in range(10000)) + b"\r\n")
    assert_openai_error(r, 431, None)


def test_request_line_over_the_limit(srv):
    r = raw_http(srv, b"GET /v1/" + b"a" * (2 * HEADER_LIMIT) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_openai_error(r, 431, None)


@pytest.mark.parametrize("method,path", [("GET", "/v1/nope"), ("POST", "/v1/nope"),
                                         ("GET", "/"), ("GET", "/v1/completions/x"),
                                         ("GET", "/v1/../v1/models"), ("GET", "/v1/models/")])
def test_unknown_route_404(srv, method, path):
    r = srv.request(method, path, "{}" if method == "POST" else None)
    assert_openai_error(r, 404, None)


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/v1/completions", "POST"), ("GET", "/v1/chat/completions", "POST"),
    ("DELETE", "/v1/models", "GET"), ("POST", "/health", "GET"), ("PUT", "/metrics", "GET"),
    ("GET", "/tokenize", "POST")])
def test_wrong_method_405(srv, method, path, allow):
    r = srv.request(method, path, "{}" if method in ("POST", "PUT") else None)
    assert_openai_error(r, 405, None)
    assert r.headers.get("Allow") == allow


@pytest.mark.parametrize("data", [
    b"HELLO\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
    b"GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n",
], ids=["garbage", "bad-version", "bad-content-length", "two-content-lengths", "bad-header"])
def test_malformed_http_400(srv, data):
    r = raw_http(srv, data)
    assert_openai_error(r, 400, None)


def test_pipelined_requests_are_answered_in_order(srv):
    body = completions().encode()
    one = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
           b"X-Request-Id: p%%d\r\n\r\n" % len(body)) + body
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"".join(one.replace(b"%d", b"%d" % i) for i in range(3)))
        reader = ResponseReader(s)
        ids = [reader.read().headers.get("x-request-id") for _ in range(3)]
    assert ids == ["p0", "p1", "p2"]


def test_wrong_content_type_still_json(srv):
    # The body is what is validated; a client that omits Content-Type is served.
    r = raw_http(srv, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                 % len(completions()) + completions().encode())
    assert r.status == 200, r
