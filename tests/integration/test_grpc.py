"""The gRPC API of `sluice serve` (proto/sluice/v1/inference.proto and grpc.health.v1.Health)
against a real daemon started with --grpc-port 0.

Python stubs are generated at test time from the repository's .proto files with
grpc_tools.protoc into a temporary folder, together with the standard health protocol (the
daemon serves gRPC's built-in implementation of it; its messages are written out below).

The tiny fixture has no tokenizer, so it takes token-id prompts only; text, chat and
Tokenize run on the default 270M model and are skipped without it. The tiny model generates
a whole context in a fraction of a second, so tests that need a request to stay in flight
(cancel, deadline, Abort, drain) first load the daemon with "filler" streams: some hundred
long sequences in one batch make every engine step, and so every request, slow.
"""

import importlib
import re
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

from daemon import SLUICE_BIN, SOURCE_DIR, TINY_MODEL, TINY_NAME, wait_for

HEALTH_PROTO = """
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
"""

_GRPC_ON = re.compile(r"gRPC on (\S+):(\d+)")
TINY_VOCAB = 512
TINY_CONTEXT = 256


class Stubs:
    """The generated modules: pb (sluice.v1 messages), pb_grpc (InferenceStub), health,
    health_grpc (HealthStub)."""

    def __init__(self, out_dir):
        sys.path.insert(0, str(out_dir))
        self.pb = importlib.import_module("sluice.v1.inference_pb2")
        self.pb_grpc = importlib.import_module("sluice.v1.inference_pb2_grpc")
        self.health = importlib.import_module("sluice_test_health.health_pb2")
        self.health_grpc = importlib.import_module("sluice_test_health.health_pb2_grpc")


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("grpc_stubs")
    # The health service's proto package is grpc.health.v1 (what goes on the wire); its
    # Python module gets a name of its own, clear of the installed `grpc` package.
    (out / "sluice_test_health").mkdir()
    (out / "sluice_test_health" / "health.proto").write_text(HEALTH_PROTO)
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{SOURCE_DIR / 'proto'}", f"-I{out}",
           f"--python_out={out}", f"--grpc_python_out={out}",
           "sluice/v1/inference.proto", "sluice_test_health/health.proto"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}{r.stderr}"
    s = Stubs(out)
    yield s
    sys.path.remove(str(out))


class GrpcClient:
    """A channel to one daemon's gRPC port, with both services' stubs."""

    def __init__(self, daemon, stubs, timeout=60.0):
        match = wait_for(lambda: _GRPC_ON.search(daemon.log_text()), timeout,
                         lambda: f"no 'gRPC on HOST:PORT' line:\n{daemon.log_tail()}")
        self.address = f"{match.group(1)}:{match.group(2)}"
        self.channel = grpc.insecure_channel(self.address)
        grpc.channel_ready_future(self.channel).result(timeout=timeout)
        self.pb = stubs.pb
        self.inference = stubs.pb_grpc.InferenceStub(self.channel)
        self.health_pb = stubs.health
        self.health = stubs.health_grpc.HealthStub(self.channel)
        self.daemon = daemon

    def generate(self, request=None, timeout=60.0, metadata=None, **fields):
        """The whole stream as a list of GenerateResponse (raises grpc.RpcError): `request`,
        or one made of `fields`."""
        if request is None:
            request = self.pb.GenerateRequest(**fields)
        return list(self.inference.Generate(request, timeout=timeout, metadata=metadata))

    def load(self):
        return self.inference.GetLoad(self.pb.GetLoadRequest(), timeout=10.0)

    def wait_idle(self, timeout=5.0):
        """GetLoad until nothing runs or waits and no KV block is in use."""
        def idle():
            r = self.load()
            ok = (r.running_requests == 0 and r.waiting_requests == 0 and
                  all(g.blocks_used == 0 for g in r.kv_groups) and r.kv_usage == 0)
            return r if ok else None
        return wait_for(idle, timeout, lambda: f"not idle after {timeout} s: {self.load()}")

    def health_status(self, service=""):
        r = self.health.Check(self.health_pb.HealthCheckRequest(service=service), timeout=10.0)
        return r.status

    def close(self):
        self.channel.close()


def choices_of(responses):
    """{index: {"ids": [...], "text": str, "logprobs": [...], "finish": enum}} merged."""
    out = {}
    for r in responses:
        for c in r.choices:
            ch = out.setdefault(c.index, {"ids": [], "text": "", "logprobs": [], "finish": 0})
            assert ch["finish"] == 0, f"choice {c.index} got output after its finish reason"
            ch["ids"] += list(c.token_ids)
            ch["text"] += c.text
            ch["logprobs"] += list(c.logprobs)
            ch["finish"] = c.finish_reason
    return out


def rpc_error(fn, *args, **kwargs):
    """The grpc.RpcError that fn(...) raises (a stream is read to its end)."""
    with pytest.raises(grpc.RpcError) as info:
        r = fn(*args, **kwargs)
        if hasattr(r, "__iter__") and not isinstance(r, (str, bytes)):
            list(r)
    return info.value


def long_request(pb, **extra):
    """One choice of a whole context (ignore_eos)."""
    fields = dict(token_ids=[2, 5, 6, 7], max_tokens=TINY_CONTEXT - 4, ignore_eos=True,
                  temperature=1.0, seed=1)
    fields.update(extra)
    return pb.GenerateRequest(**fields)


def abort_count(daemon):
    return daemon.metrics().get('vllm:request_success_total{finished_reason="abort"}', 0.0)


class Fillers:
    """`count` streams of 16 long choices each, read (and dropped) on threads of their own,
    so that the engine runs a big batch meanwhile: on the tiny model a request then takes
    seconds instead of milliseconds. The constructor returns once `min_running` of them run.
    cancel() ends those still running; join() waits for them to end by themselves; both
    return how many ended OK."""

    def __init__(self, client, count=8, min_running=4):
        pb = client.pb
        self.calls = [client.inference.Generate(
            long_request(pb, n=16, seed=100 + i, request_id=f"filler-{i}"), timeout=120.0)
            for i in range(count)]
        self.ok = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._drain, args=(c,), daemon=True)
                        for c in self.calls]
        for t in self.threads:
            t.start()
        # Running in the engine (its stats lag a step behind submission).
        wait_for(lambda: client.load().running_requests >= min_running, 10.0,
                 lambda: f"fillers not running: {client.load()}")

    def _drain(self, call):
        try:
            for _ in call:
                pass
            with self.lock:
                self.ok += 1
        except grpc.RpcError:
            pass

    def join(self, timeout=120.0):
        for t in self.threads:
            t.join(timeout)
        return self.ok

    def cancel(self):
        for c in self.calls:
            c.cancel()
        return self.join()


@pytest.fixture(scope="module")
def tiny_grpc(serve_module, stubs):
    d = serve_module(TINY_MODEL, "--threads", "1", "--grpc-port", "0")
    c = GrpcClient(d, stubs)
    yield c
    c.close()


@pytest.fixture(scope="module")
def busy_grpc(serve_module, stubs):
    """A tiny daemon that takes many sequences at once (for Fillers)."""
    d = serve_module(TINY_MODEL, "--threads", "1", "--grpc-port", "0", "--max-num-seqs", "256")
    c = GrpcClient(d, stubs)
    yield c
    c.close()


# ---- ListModels, GetLoad, Health ----

def test_list_models(tiny_grpc):
    r = tiny_grpc.inference.ListModels(tiny_grpc.pb.ListModelsRequest(), timeout=10.0)
    assert [m.id for m in r.models] == [TINY_NAME]
    m = r.models[0]
    assert m.owned_by == "sluice"
    assert m.max_model_len == TINY_CONTEXT
    assert m.created > 1_600_000_000


def test_get_load_idle(tiny_grpc):
    r = tiny_grpc.wait_idle()
    assert len(r.kv_groups) >= 1
    assert [g.group for g in r.kv_groups] == list(range(len(r.kv_groups)))
    for g in r.kv_groups:
        assert g.blocks_total > 0 and g.blocks_used == 0
    assert r.running_sequences == 0 and r.waiting_sequences == 0


def test_health(tiny_grpc):
    serving = tiny_grpc.health_pb.HealthCheckResponse.SERVING
    assert tiny_grpc.health_status("") == serving
    assert tiny_grpc.health_status("sluice.v1.Inference") == serving
    err = rpc_error(tiny_grpc.health.Check,
                    tiny_grpc.health_pb.HealthCheckRequest(service="no.such.Service"), timeout=10.0)
    assert err.code() == grpc.StatusCode.NOT_FOUND


# ---- Generate ----

def test_generate_token_ids(tiny_grpc):
    pb = tiny_grpc.pb
    rs = tiny_grpc.generate(token_ids=[2, 10, 20], max_tokens=8, temperature=0.0, ignore_eos=True)
    assert rs[0].request_id.startswith("grpc-") and rs[0].model == TINY_NAME
    assert all(r.request_id == "" for r in rs[1:])
    assert all(not r.HasField("usage") for r in rs[:-1]) and rs[-1].HasField("usage")
    ch = choices_of(rs)
    assert list(ch) == [0]
    assert len(ch[0]["ids"]) == 8 and all(0 <= t < TINY_VOCAB for t in ch[0]["ids"])
    assert ch[0]["text"] == ""  # no tokenizer
    assert ch[0]["finish"] == pb.FINISH_REASON_LENGTH
    u = rs[-1].usage
    assert (u.prompt_tokens, u.completion_tokens) == (3, 8)
    assert u.cached_tokens >= 0

    # Greedy: the same ids again, and the same as the HTTP API gives (one validator, one job).
    again = choices_of(tiny_grpc.generate(token_ids=[2, 10, 20], max_tokens=8, temperature=0.0,
                                          ignore_eos=True))
    assert again[0]["ids"] == ch[0]["ids"]
    http = tiny_grpc.daemon.post("/v1/completions", {
        "prompt": [2, 10, 20], "max_tokens": 8, "temperature": 0, "ignore_eos": True})
    assert http.status == 200, http
    assert http.json()["choices"][0]["token_ids"] == ch[0]["ids"]


def test_generate_choices_and_logprobs(tiny_grpc):
    pb = tiny_grpc.pb
    rs = tiny_grpc.generate(token_ids=[2, 3, 4, 5], max_tokens=5, n=3, seed=7, logprobs=4,
                            ignore_eos=True, request_id="my-request.1")
    assert rs[0].request_id == "my-request.1"
    ch = choices_of(rs)
    assert sorted(ch) == [0, 1, 2]
    for c in ch.values():
        assert len(c["ids"]) == 5 and c["finish"] == pb.FINISH_REASON_LENGTH
        assert len(c["logprobs"]) == 5
        for tok, lp in zip(c["ids"], c["logprobs"]):
            assert lp.chosen.token_id == tok and lp.chosen.logprob <= 0.0
            assert len(lp.top) == 4
            values = [t.logprob for t in lp.top]
            assert values == sorted(values, reverse=True)
            assert lp.top[0].logprob >= lp.chosen.logprob
    assert rs[-1].usage.completion_tokens == 15 and rs[-1].usage.prompt_tokens == 4


def test_generate_stop_token(tiny_grpc):
    pb = tiny_grpc.pb
    first = choices_of(tiny_grpc.generate(token_ids=[2, 10, 20], max_tokens=6, temperature=0.0,
                                          ignore_eos=True))[0]["ids"]
    stop_at = first[2]
    rs = tiny_grpc.generate(token_ids=[2, 10, 20], max_tokens=6, temperature=0.0, ignore_eos=True,
                            stop_token_ids=[stop_at])
    ch = choices_of(rs)[0]
    assert ch["finish"] == pb.FINISH_REASON_STOP
    assert ch["ids"][-1] == stop_at and len(ch["ids"]) == first.index(stop_at) + 1


# ---- errors ----

def test_invalid_arguments(tiny_grpc):
    def check(field, **fields):
        err = rpc_error(tiny_grpc.generate, **fields)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (fields, err)
        assert field in err.details(), (field, err.details())
        return err

    err = check("temperature", token_ids=[2, 3], temperature=-1.0)
    assert ("sluice-error-param", "temperature") in (err.trailing_metadata() or ())
    err = check("token_ids", token_ids=[2, TINY_VOCAB])
    param = dict(err.trailing_metadata() or ()).get("sluice-error-param", "")
    assert param.startswith("token_ids"), err.trailing_metadata()
    check("token_ids", token_ids=[2, -1])
    check("top_p", token_ids=[2, 3], top_p=0.0)
    check("n", token_ids=[2, 3], n=0)
    check("max_tokens", token_ids=[2, 3], max_tokens=0)
    check("logprobs", token_ids=[2, 3], logprobs=1000)
    check("logit_bias", token_ids=[2, 3], logit_bias={TINY_VOCAB + 1: 1.0})
    check("text", max_tokens=4)  # no prompt at all
    check("text", token_ids=[2, 3], text="both")
    check("text", text="no tokenizer here")
    check("messages", messages=[tiny_grpc.pb.ChatMessage(role="user", content="hi")])
    check("request_id", token_ids=[2, 3], request_id="has spaces")
    # The context: prompt plus max_tokens over --max-model-len.
    err = check("token_ids", token_ids=[2, 3], max_tokens=TINY_CONTEXT)
    assert "maximum context length" in err.details()
    tiny_grpc.wait_idle()


def test_unknown_model(tiny_grpc):
    err = rpc_error(tiny_grpc.generate, token_ids=[2, 3], model="no-such-model")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-model" in err.details()
    err = rpc_error(tiny_grpc.inference.Tokenize,
                    tiny_grpc.pb.TokenizeRequest(text="x", model="no-such-model"), timeout=10.0)
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_tokenize_without_tokenizer(tiny_grpc):
    err = rpc_error(tiny_grpc.inference.Tokenize, tiny_grpc.pb.TokenizeRequest(text="x"),
                    timeout=10.0)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_admin_is_not_served(tiny_grpc):
    call = tiny_grpc.channel.unary_unary("/sluice.v1.Admin/Drain")
    err = rpc_error(call, b"", timeout=10.0)
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED


# ---- cancel, deadline, Abort ----

def test_cancel_mid_stream(busy_grpc):
    pb = busy_grpc.pb
    aborts = abort_count(busy_grpc.daemon)
    fillers = Fillers(busy_grpc)
    try:
        call = busy_grpc.inference.Generate(long_request(pb, request_id="cancel-me"), timeout=120.0)
        assert next(call).request_id == "cancel-me"
        got = 0
        for r in call:  # until tokens flow: the request is running
            got += sum(len(c.token_ids) for c in r.choices)
            if got >= 2:
                break
        assert got >= 2
        load = busy_grpc.load()
        assert load.running_requests >= 2  # it and fillers
        assert any(g.blocks_used > 0 for g in load.kv_groups) and load.kv_usage > 0
        call.cancel()
        assert call.code() == grpc.StatusCode.CANCELLED
        # The engine request ended as aborted (one unfinished choice) while fillers still run.
        wait_for(lambda: abort_count(busy_grpc.daemon) >= aborts + 1, 5.0,
                 lambda: f"no abort counted: {abort_count(busy_grpc.daemon)} vs {aborts}")
        assert busy_grpc.load().running_requests >= 1, "the fillers ended too soon to tell"
    finally:
        fillers.cancel()
    # Cancelled streams give back every KV block.
    busy_grpc.wait_idle(timeout=5.0)


def test_deadline_exceeded(busy_grpc):
    pb = busy_grpc.pb
    aborts = abort_count(busy_grpc.daemon)
    fillers = Fillers(busy_grpc)
    try:
        t0 = time.monotonic()
        err = rpc_error(busy_grpc.generate, long_request(pb), timeout=0.5)
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 5.0
        wait_for(lambda: abort_count(busy_grpc.daemon) >= aborts + 1, 5.0,
                 lambda: f"no abort counted: {abort_count(busy_grpc.daemon)} vs {aborts}")
    finally:
        fillers.cancel()
    busy_grpc.wait_idle(timeout=5.0)


def test_abort(busy_grpc):
    pb = busy_grpc.pb
    aborts = abort_count(busy_grpc.daemon)
    fillers = Fillers(busy_grpc)
    try:
        call = busy_grpc.inference.Generate(long_request(pb, request_id="abort-me"), timeout=120.0)
        assert next(call).request_id == "abort-me"
        # The id is taken while the stream runs.
        err = rpc_error(busy_grpc.generate, token_ids=[2, 3], max_tokens=2, request_id="abort-me")
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS
        r = busy_grpc.inference.Abort(pb.AbortRequest(request_id="abort-me"), timeout=10.0)
        assert r.found
        with pytest.raises(grpc.RpcError) as info:
            for _ in call:
                pass
        assert info.value.code() == grpc.StatusCode.CANCELLED
        assert "abort-me" in info.value.details()
        wait_for(lambda: abort_count(busy_grpc.daemon) >= aborts + 1, 5.0,
                 lambda: f"no abort counted: {abort_count(busy_grpc.daemon)} vs {aborts}")
        found = busy_grpc.inference.Abort(pb.AbortRequest(request_id="abort-me"), timeout=10.0)
        assert not found.found
        assert not busy_grpc.inference.Abort(pb.AbortRequest(request_id="never-was"),
                                             timeout=10.0).found
        # Any running stream can be aborted by its id, a filler's too.
        assert busy_grpc.inference.Abort(pb.AbortRequest(request_id="filler-0"), timeout=10.0).found
    finally:
        fillers.cancel()
    busy_grpc.wait_idle(timeout=5.0)


def test_queue_full(serve, stubs):
    """--max-queued-requests: once that many wait, Generate gets RESOURCE_EXHAUSTED."""
    d = serve(TINY_MODEL, "--threads", "1", "--grpc-port", "0", "--max-num-seqs", "16",
              "--max-queued-requests", "1")
    c = GrpcClient(d, stubs)
    fillers = None
    try:
        fillers = Fillers(c, count=6, min_running=1)  # one runs (16 sequences), the others wait
        wait_for(lambda: c.load().waiting_requests >= 1, 10.0, lambda: f"none waiting: {c.load()}")
        err = rpc_error(c.generate, token_ids=[2, 3], max_tokens=2)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        if fillers:
            fillers.cancel()
        c.close()


def test_many_streams_at_once(tiny_grpc):
    """Concurrent streams on gRPC's callback threads: each gets its own, whole output."""
    results, errors = {}, []

    def run(i):
        try:
            rs = tiny_grpc.generate(token_ids=[2, 3 + i], max_tokens=12, temperature=0.0,
                                    ignore_eos=True, request_id=f"many-{i}")
            results[i] = (rs[0].request_id, choices_of(rs)[0]["ids"])
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(results) == list(range(12))
    for i, (rid, ids) in results.items():
        assert rid == f"many-{i}" and len(ids) == 12
    tiny_grpc.wait_idle()


def test_grpc_port_in_use(tiny_grpc):
    """A second daemon on a gRPC port that is taken fails to start (no SO_REUSEPORT sharing)."""
    port = tiny_grpc.address.rsplit(":", 1)[1]
    r = subprocess.run([str(SLUICE_BIN), "serve", "--model", str(TINY_MODEL), "--port", "0",
                        "--threads", "1", "--grpc-port", port],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in r.stderr, r.stderr


# ---- auth ----

def test_api_key(serve, stubs):
    d = serve(TINY_MODEL, "--threads", "1", "--grpc-port", "0", "--api-key", "sekrit")
    c = GrpcClient(d, stubs)
    try:
        pb = c.pb
        for metadata in (None, [("authorization", "Bearer wrong")], [("authorization", "sekrit")]):
            err = rpc_error(c.inference.ListModels, pb.ListModelsRequest(), timeout=10.0,
                            metadata=metadata)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            err = rpc_error(c.generate, token_ids=[2, 3], max_tokens=2, metadata=metadata)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            err = rpc_error(c.inference.GetLoad, pb.GetLoadRequest(), timeout=10.0, metadata=metadata)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        good = [("authorization", "Bearer sekrit")]
        assert c.inference.ListModels(pb.ListModelsRequest(), timeout=10.0, metadata=good).models
        rs = c.generate(token_ids=[2, 3], max_tokens=2, metadata=good)
        assert rs[-1].usage.completion_tokens >= 1
        # Health is open.
        assert c.health_status() == c.health_pb.HealthCheckResponse.SERVING
    finally:
        c.close()


# ---- drain ----

def test_drain(serve, stubs):
    """SIGTERM: Health turns NOT_SERVING and new Generate calls get UNAVAILABLE while running
    streams go on to their end; then the process exits 0."""
    d = serve(TINY_MODEL, "--threads", "1", "--grpc-port", "0", "--max-num-seqs", "256",
              "--drain-timeout", "60")
    c = GrpcClient(d, stubs)
    try:
        pb = c.pb
        fillers = Fillers(c, count=4, min_running=2)
        call = c.inference.Generate(long_request(pb, n=4), timeout=120.0)
        next(call)
        d.signal(signal.SIGTERM)
        not_serving = c.health_pb.HealthCheckResponse.NOT_SERVING
        wait_for(lambda: c.health_status() == not_serving, 5.0,
                 lambda: f"health still {c.health_status()}")
        assert c.health_status("sluice.v1.Inference") == not_serving
        err = rpc_error(c.generate, token_ids=[2, 3], max_tokens=2)
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        ch = choices_of(list(call))
        assert sorted(ch) == [0, 1, 2, 3]
        assert all(x["finish"] == pb.FINISH_REASON_LENGTH and len(x["ids"]) == TINY_CONTEXT - 4
                   for x in ch.values())
        assert fillers.join() == 4
        assert d.wait(30.0) == 0, d.log_tail()
    finally:
        c.close()


def test_drain_timeout_ends_streams(serve, stubs):
    """Streams still running when --drain-timeout passes end with UNAVAILABLE (their engine
    requests aborted), and the process still exits 0."""
    d = serve(TINY_MODEL, "--threads", "1", "--grpc-port", "0", "--max-num-seqs", "256",
              "--drain-timeout", "0.5")
    c = GrpcClient(d, stubs)
    try:
        pb = c.pb
        calls = [c.inference.Generate(long_request(pb, n=16, seed=i), timeout=120.0)
                 for i in range(12)]
        for call in calls:
            next(call)
        wait_for(lambda: c.load().running_requests >= 6, 10.0, lambda: f"not running: {c.load()}")
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        codes = set()
        for call in calls:
            try:
                for _ in call:
                    pass
                codes.add(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.add(e.code())
        assert grpc.StatusCode.UNAVAILABLE in codes, codes
        assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
        assert d.wait(30.0) == 0, d.log_tail()
        assert time.monotonic() - t0 < 10.0
    finally:
        c.close()


# ---- the 270M: text, chat, Tokenize ----

@pytest.fixture(scope="module")
def gemma_grpc(serve_module, stubs, model_270m):
    d = serve_module(model_270m, "--grpc-port", "0", "--max-model-len", "1024")
    c = GrpcClient(d, stubs)
    yield c
    c.close()


def test_text_270m(gemma_grpc):
    pb = gemma_grpc.pb
    prompt = "The capital of France is"
    rs = gemma_grpc.generate(text=prompt, max_tokens=8, temperature=0.0)
    ch = choices_of(rs)[0]
    assert ch["text"].strip() and ch["finish"] in (pb.FINISH_REASON_LENGTH, pb.FINISH_REASON_STOP)
    u = rs[-1].usage
    tok = gemma_grpc.inference.Tokenize(pb.TokenizeRequest(text=prompt), timeout=10.0)
    assert u.prompt_tokens == len(tok.token_ids) and u.completion_tokens == len(ch["ids"])
    http = gemma_grpc.daemon.post("/v1/completions", {"prompt": prompt, "max_tokens": 8,
                                                      "temperature": 0})
    assert http.status == 200, http
    assert http.json()["choices"][0]["text"] == ch["text"]
    http_tok = gemma_grpc.daemon.post("/tokenize", {"prompt": prompt})
    assert http_tok.json()["tokens"] == list(tok.token_ids)
    assert tok.max_model_len == 1024


def test_chat_270m(gemma_grpc):
    pb = gemma_grpc.pb
    messages = [pb.ChatMessage(role="user", content="Say hello in one word.")]
    rs = gemma_grpc.generate(messages=messages, max_tokens=10, temperature=0.0, logprobs=2)
    ch = choices_of(rs)[0]
    assert ch["text"].strip()
    assert len(ch["logprobs"]) == len(ch["ids"]) and all(len(lp.top) == 2 for lp in ch["logprobs"])
    http = gemma_grpc.daemon.post("/v1/chat/completions", {
        "messages": [{"role": "user", "content": "Say hello in one word."}], "max_tokens": 10,
        "temperature": 0})
    assert http.status == 200, http
    assert http.json()["choices"][0]["message"]["content"] == ch["text"]
    tok = gemma_grpc.inference.Tokenize(pb.TokenizeRequest(messages=messages), timeout=10.0)
    assert rs[-1].usage.prompt_tokens == len(tok.token_ids)
    # A bad role is the validator's error, naming the field.
    err = rpc_error(gemma_grpc.generate, messages=[pb.ChatMessage(role="robot", content="x")])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "messages[0].role" in err.details()


def test_stop_string_270m(gemma_grpc):
    pb = gemma_grpc.pb
    base = choices_of(gemma_grpc.generate(text="One, two, three, four, five,", max_tokens=12,
                                          temperature=0.0))[0]["text"]
    assert len(base) > 4
    stop = base[2:4]
    ch = choices_of(gemma_grpc.generate(text="One, two, three, four, five,", max_tokens=12,
                                        temperature=0.0, stop=[stop]))[0]
    assert ch["finish"] == pb.FINISH_REASON_STOP
    assert stop not in ch["text"] and base.startswith(ch["text"])
