"""Request and process lifecycle (RELIABILITY.md, F 26, 27 and 32): clients that go away
while queued, during prefill and mid-stream are aborted in the engine, and the KV cache and
the running count return to zero; SIGTERM drains (in-flight streams finish, new requests get
503 + Retry-After from a listener that stays open, exit 0); a second signal exits at once;
idle and dribbling connections are closed by --idle-timeout.

The tiny fixture generates 250 tokens in about 0.1 s, too fast to hang up on mid-request;
the prefill and mid-stream cases use the 270M (skipped without it). Tiny requests are kept
waiting or in flight for as long as a test needs by queuing timed work ahead of them on a
--max-num-seqs 1 server (occupy()).
"""

import json
import re
import signal
import socket
import threading
import time

import pytest

from daemon import RawStream, TINY_MODEL, assert_openai_error, idle_figures, request, wait_for

SETTLE_S = 5.0  # an abort must free everything within this


def long_request(prompt, max_tokens=250, stream=False, **extra):
    return {"prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True, "stream": stream,
            **extra}


def aborted_in_log(d, request_id):
    # The request's log line names it and says it was aborted (the wording may change).
    return re.search(rf"request {re.escape(request_id)} .*abort", d.log_text()) is not None


def finished_in_log(d, request_id):
    return f"request {request_id} done" in d.log_text()


ABORTS = 'vllm:request_success_total{finished_reason="abort"}'


def wait_aborted(d, request_id):
    wait_for(lambda: aborted_in_log(d, request_id), SETTLE_S,
             lambda: f"no abort logged for {request_id}:\n{d.log_tail()}")


def occupy(d, seconds):
    """Queues enough 250-token requests to keep a --max-num-seqs 1 engine busy for about
    `seconds` (timed on one first, so a faster machine queues more); their clients, whose
    answers are read later (read_body)."""
    t0 = time.monotonic()
    r = d.post("/v1/completions", long_request([2, 3]))
    assert r.status == 200, r
    per_request = max(time.monotonic() - t0, 0.005)
    count = min(400, int(seconds / per_request) + 1)
    clients = [RawStream(d.host, d.port, "/v1/completions", long_request([2, 4 + i % 400]))
               for i in range(count)]
    # In the engine (the figures lag a step), not merely sent.
    wait_for(lambda: d.metrics()["vllm:num_requests_waiting"] >= count // 2, SETTLE_S,
             lambda: f"{count} requests sent, not queued: {idle_figures(d.metrics())}")
    return clients


# ---- disconnects --------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_disconnect_while_queued(serve, stream):
    d = serve(TINY_MODEL, "--threads", "1", "--max-num-seqs", "1")
    queries_before = d.metrics()["vllm:prefix_cache_queries_total"]
    occupants = occupy(d, 3.0)  # seconds of work ahead of the target
    rid = f"queued-{'stream' if stream else 'plain'}"
    target = RawStream(d.host, d.port, "/v1/completions",
                       long_request(list(range(2, 39)), 200, stream=stream), {"X-Request-Id": rid})
    if stream:
        assert target.read_head() == 200  # headers go out at once, before any token
    else:
        time.sleep(0.3)  # read and queued by then
    assert d.metrics()["vllm:num_requests_waiting"] >= 2, "the target is not queued"
    target.close()
    wait_aborted(d, rid)
    for o in occupants:
        body = json.loads(o.read_body())
        assert len(body["choices"][0]["token_ids"]) == 250
        o.close()
    m = d.wait_idle(SETTLE_S)
    assert not finished_in_log(d, rid)
    # The target (37 prompt tokens) never reached the scheduler: only the 2-token prompts of
    # the occupants and of occupy()'s timing request were looked up in the prefix cache.
    assert m["vllm:prefix_cache_queries_total"] - queries_before == 2 * (len(occupants) + 1)
    assert m[ABORTS] == 1


@pytest.fixture(scope="module")
def big(serve_module, model_270m):
    # Prefill in chunks of 64 tokens: an abort takes effect at the next step boundary.
    return serve_module(model_270m, "--max-num-batched-tokens", "64")


LONG_PROMPT = "The history of the river valley, told slowly and in detail: " * 40


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_disconnect_during_prefill(big, stream):
    rid = f"prefill-{'stream' if stream else 'plain'}"
    aborts = big.metrics()[ABORTS]
    c = RawStream(big.host, big.port, "/v1/completions",
                  {"prompt": LONG_PROMPT, "max_tokens": 4, "stream": stream},
                  {"X-Request-Id": rid})
    if stream:
        assert c.read_head() == 200
    wait_for(lambda: big.metrics()["vllm:num_requests_running"] == 1, SETTLE_S,
             lambda: f"not running: {idle_figures(big.metrics())}")
    time.sleep(0.3)
    assert big.metrics()["vllm:kv_cache_usage_perc"] > 0  # prefill has blocks
    # No token yet: the prompt is still being read.
    c.sock.setblocking(False)
    try:
        early = c.sock.recv(65536)
    except BlockingIOError:
        early = b""
    assert b"data:" not in c.buf + early, "the first token came before the hang-up"
    c.close()
    wait_aborted(big, rid)
    assert big.wait_idle(SETTLE_S)[ABORTS] == aborts + 1
    assert not finished_in_log(big, rid)


def test_disconnect_mid_stream(big):
    rid = "mid-stream"
    aborts = big.metrics()[ABORTS]
    c = RawStream(big.host, big.port, "/v1/completions",
                  long_request("Once upon a time", 2000, stream=True), {"X-Request-Id": rid})
    assert c.read_head() == 200
    for _ in range(3):
        assert json.loads(c.next_event())["choices"][0]["finish_reason"] is None
    assert big.metrics()["vllm:num_requests_running"] == 1
    c.close()
    wait_aborted(big, rid)
    assert big.wait_idle(SETTLE_S)[ABORTS] == aborts + 1


def test_disconnect_while_decoding_unstreamed(big):
    rid = "mid-decode"
    aborts = big.metrics()[ABORTS]
    c = RawStream(big.host, big.port, "/v1/completions", long_request("Once upon a time", 2000),
                  {"X-Request-Id": rid})
    wait_for(lambda: big.metrics()["vllm:num_requests_running"] == 1, SETTLE_S)
    time.sleep(1.0)  # a short prompt: decoding by now
    c.close()
    wait_aborted(big, rid)
    assert big.wait_idle(SETTLE_S)[ABORTS] == aborts + 1


# ---- drain --------------------------------------------------------------------------------

SLOW_READER_RCVBUF = 4096


def slow_streams(d, count, max_tokens=250):
    """`count` streamed requests whose clients read nothing yet; their heads read (a stream
    sends its head before any token). Their small receive buffers also hold up the server's
    writes once the socket buffers fill."""
    streams = [RawStream(d.host, d.port, "/v1/completions",
                         long_request([2, 3 + i], max_tokens, stream=True),
                         {"X-Request-Id": f"drain-{i}"}, rcvbuf=SLOW_READER_RCVBUF)
               for i in range(count)]
    for s in streams:
        assert s.read_head() == 200
    return streams


def connect_or_fail(d, method, path, body=None):
    try:
        return request(d.host, d.port, method, path, body, timeout=10)
    except ConnectionRefusedError:
        pytest.fail(f"{method} {path} during the drain: connection refused (the listener must "
                    "stay open and answer 503)")


def test_sigterm_drains_in_flight_streams(serve):
    d = serve(TINY_MODEL, "--threads", "1", "--max-num-seqs", "1", "--drain-timeout", "30")
    # Queued work ahead of the 8 streams: at SIGTERM some are running, most still waiting.
    occupants = occupy(d, 1.5)
    streams = slow_streams(d, 8)
    wait_for(lambda: d.metrics()["vllm:num_requests_waiting"] >= 8, SETTLE_S,
             lambda: f"the streams are not queued: {idle_figures(d.metrics())}")
    d.signal(signal.SIGTERM)
    time.sleep(0.1)
    r = connect_or_fail(d, "POST", "/v1/completions", json.dumps({"prompt": [2], "max_tokens": 1}))
    assert_openai_error(r, 503, None)
    assert r.headers.get("Retry-After"), "503 without Retry-After"
    assert r.headers.get("Connection", "").lower() == "close"
    r = connect_or_fail(d, "GET", "/ready")
    assert r.status == 503 and r.headers.get("Retry-After")
    assert connect_or_fail(d, "GET", "/health").status == 200
    assert d.alive(), "exited with requests in flight"
    for s in streams:
        events = s.read_all()
        assert events[-1] == "[DONE]", events[-3:]
        chunks = [json.loads(e) for e in events[:-1]]
        assert sum(len(c["choices"][0]["token_ids"]) for c in chunks) == 250
        assert [c["choices"][0]["finish_reason"] for c in chunks
                if c["choices"][0]["finish_reason"]] == ["length"]
        s.close()
    for o in occupants:
        assert json.loads(o.read_body())["choices"][0]["finish_reason"] == "length"
        o.close()
    assert d.wait(15) == 0, d.log_tail()
    assert "drained; exiting" in d.log_text()


def test_second_signal_exits_at_once(serve):
    d = serve(TINY_MODEL, "--threads", "1", "--max-num-seqs", "1", "--drain-timeout", "60")
    occupants = occupy(d, 4.0)
    streams = slow_streams(d, 2)
    d.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert d.alive(), "exited with requests in flight"
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    rc = d.wait(5)
    took = time.monotonic() - t0
    for s in streams + occupants:
        s.close()
    assert rc is not None, "still running 5 s after the second signal"
    assert took < 2.0, took
    assert rc == 0, f"exit code {rc}:\n{d.log_tail()}"


def test_drain_timeout_ends_the_wait(serve):
    d = serve(TINY_MODEL, "--threads", "1", "--max-num-seqs", "1", "--drain-timeout", "1")
    occupants = occupy(d, 4.0)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    rc = d.wait(10)
    took = time.monotonic() - t0
    for o in occupants:
        o.close()
    assert rc == 0, f"exit code {rc}:\n{d.log_tail()}"
    assert 0.8 <= took < 5.0, took
    assert "drain timeout" in d.log_text()


# ---- idle and dribbling connections -------------------------------------------------------

def test_idle_and_dribbling_connections_are_closed(serve):
    d = serve(TINY_MODEL, "--threads", "1", "--idle-timeout", "1")
    fds_before = d.num_fds()
    silent = [socket.create_connection((d.host, d.port), timeout=10) for _ in range(40)]
    dribblers = [socket.create_connection((d.host, d.port), timeout=10) for _ in range(20)]
    for s in dribblers:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    stop = threading.Event()

    def dribble():
        # One header byte every 0.2 s: never a whole request.
        while not stop.is_set():
            for s in dribblers:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            stop.wait(0.2)

    t = threading.Thread(target=dribble)
    t.start()
    try:
        # Meanwhile other clients are served at once.
        t0 = time.monotonic()
        r = d.post("/v1/completions", {"prompt": [2, 17], "max_tokens": 2})
        assert r.status == 200 and time.monotonic() - t0 < 0.5
        time.sleep(2.5)
        for s in silent + dribblers:
            s.settimeout(2)
            try:
                while s.recv(4096):
                    pass  # the server may answer the dribbler with an error first
            except ConnectionResetError:
                pass
            except socket.timeout:
                pytest.fail("a connection was still open 2.5 s past --idle-timeout 1")
    finally:
        stop.set()
        t.join()
        for s in silent + dribblers:
            s.close()
    wait_for(lambda: d.num_fds() <= fds_before, SETTLE_S,
             lambda: f"descriptors: {fds_before} before, {d.num_fds()} after")
