"""Load on the tiny fixture (RELIABILITY.md, F 26 and 39 at the scale of a 2-core box): 200
concurrent streaming clients over raw HTTP finish without an error, and afterwards nothing
runs or waits, no KV block is in use, and the daemon's memory, descriptors and threads are
back near where they were.
"""

import json
import random
import threading

import pytest

from daemon import RawStream, TINY_MODEL, wait_for

CLIENTS = 200
MAX_TOKENS = 64
# VmRSS after a round of 200 clients may exceed the warmed-up figure before it by at most
# this: allocator arenas and per-connection buffers grow with concurrency, but not by tens
# of MiB on a model whose whole KV for 200 such requests is under 10 MiB.
RSS_GROWTH_BOUND = 64 << 20
# A second identical round may add at most this: growth there is a leak, not warm-up.
RSS_LEAK_BOUND = 16 << 20
SETTLE_S = 10.0


@pytest.fixture(scope="module")
def srv(serve_module):
    return serve_module(TINY_MODEL, "--threads", "1")


def prompt_for(i):
    # Seven shared 33-token prefixes (two whole blocks each, so the prefix cache is hit
    # under load) and a distinct tail.
    return [2] + [10 + i % 7] * 32 + [3 + i % 500, 4 + i % 400]


def run_round(srv, hang_up=lambda i: None):
    """CLIENTS streaming requests started together. hang_up(i): None to read client i to
    the end, or after how many events it closes (0: right after sending). The errors."""
    errors = []
    start = threading.Barrier(CLIENTS)

    def client(i):
        try:
            start.wait(timeout=30)
            s = RawStream(srv.host, srv.port, "/v1/completions",
                          {"prompt": prompt_for(i), "max_tokens": MAX_TOKENS, "ignore_eos": True,
                           "stream": True, "stream_options": {"include_usage": True},
                           "seed": i},
                          {"X-Request-Id": f"load-{i}"}, timeout=120)
            try:
                limit = hang_up(i)
                if limit == 0:
                    return
                status = s.read_head()
                if status != 200:
                    errors.append(f"client {i}: status {status}: {s.read_body()[:200]!r}")
                    return
                events = []
                while (e := s.next_event()) is not None:
                    events.append(e)
                    if limit is not None and len(events) >= limit:
                        return
                if events[-1:] != ["[DONE]"]:
                    errors.append(f"client {i}: no [DONE] at the end: {events[-2:]}")
                    return
                chunks = [json.loads(e) for e in events[:-1]]
                if any("error" in c for c in chunks):
                    errors.append(f"client {i}: {chunks[-1]}")
                    return
                ids = sum(len(ch["token_ids"]) for c in chunks for ch in c["choices"])
                usage = chunks[-1]["usage"]
                if ids != MAX_TOKENS or usage["completion_tokens"] != MAX_TOKENS or \
                        usage["prompt_tokens"] != len(prompt_for(i)):
                    errors.append(f"client {i}: {ids} ids, usage {usage}")
            finally:
                s.close()
        except Exception as e:  # noqa: BLE001 - every client failure is reported
            errors.append(f"client {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "clients still running after 180 s"
    return errors


def figures(srv):
    return {"rss": srv.rss_bytes(), "fds": srv.num_fds(), "threads": srv.num_threads()}


def wait_fds(srv, at_most):
    # The server closes a kept-alive connection when it reads the client's FIN: soon, not at
    # once.
    wait_for(lambda: srv.num_fds() <= at_most, SETTLE_S,
             lambda: f"{srv.num_fds()} descriptors open, {at_most} before")


def test_200_streaming_clients(srv):
    # Warm up first: the first requests size the engine's and the allocator's buffers.
    # (ignore_eos: each must finish by length, which the count below relies on; the tiny
    # model samples its EOS often enough to end one early now and then.)
    for i in range(8):
        assert srv.post("/v1/completions", {"prompt": prompt_for(i), "max_tokens": 4,
                                            "ignore_eos": True}).status == 200
    srv.wait_idle(SETTLE_S)
    before = figures(srv)

    errors = run_round(srv)
    assert not errors, f"{len(errors)} clients failed, e.g.:\n" + "\n".join(errors[:10])
    m = srv.wait_idle(SETTLE_S)
    assert m['vllm:request_success_total{finished_reason="length"}'] >= CLIENTS + 8
    assert m["vllm:prefix_cache_hits_total"] > 0, "no prefix-cache hit among shared prefixes"
    wait_fds(srv, before["fds"])
    after = figures(srv)
    assert after["rss"] - before["rss"] <= RSS_GROWTH_BOUND, (before, after)
    assert after["threads"] <= before["threads"], (before, after)

    errors = run_round(srv)
    assert not errors, f"second round: {len(errors)} clients failed:\n" + "\n".join(errors[:10])
    srv.wait_idle(SETTLE_S)
    wait_fds(srv, before["fds"])
    again = figures(srv)
    assert again["rss"] - after["rss"] <= RSS_LEAK_BOUND, (after, again)


def test_200_clients_some_hanging_up(srv):
    fds = srv.num_fds()
    rng = random.Random(7)
    # A third read to the end, a third hang up after a few events, a third right after
    # sending (while queued or in prefill).
    plan = [rng.choice([None, rng.randrange(1, 10), 0]) for _ in range(CLIENTS)]
    errors = run_round(srv, hang_up=lambda i: plan[i])
    assert not errors, f"{len(errors)} clients failed:\n" + "\n".join(errors[:10])
    srv.wait_idle(SETTLE_S)
    wait_fds(srv, fds)
    r = srv.post("/v1/completions", {"prompt": [2, 17], "max_tokens": 3, "ignore_eos": True})
    assert r.status == 200 and len(r.json()["choices"][0]["token_ids"]) == 3
