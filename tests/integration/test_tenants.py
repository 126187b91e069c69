"""Multi-tenancy of `sluice serve --tenants FILE` against real daemons on the tiny fixture
(token-id prompts only): the auth matrix over every HTTP route and RPC, 403 versus 404,
429 with Retry-After at the configured request rate, each tenant's /v1/models, SIGHUP and
Admin.Reload (a good file, then a bad one that changes nothing), prefix-cache isolation
between tenants, the per-tenant metrics, Admin.TenantUsage and Admin.Drain.

Keys are plain strings here; the tenants file holds their SHA-256 digests.
"""

import hashlib
import importlib
import re
import shutil
import signal
import subprocess
import sys
import time

import grpc
import pytest

from daemon import SLUICE_BIN, SOURCE_DIR, TINY_MODEL, TINY_NAME, assert_openai_error, parse_metrics, \
    request, wait_for

ADMIN_KEY = "admin-secret"
KEYS = {"alpha": "alpha-key", "beta": "beta-key", "restricted": "restricted-key",
        "limited": "limited-key", "capped": "capped-key"}
LIMITED_RPM = 3
CAPPED = {"max_tokens_per_request": 4, "max_prompt_tokens": 8, "tokens_per_minute": 30}
_GRPC_ON = re.compile(r"gRPC on (\S+):(\d+)")


def digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


def tenants_yaml(keys=None, admin=ADMIN_KEY, extra=""):
    keys = keys or KEYS
    lines = []
    if admin:
        lines.append(f'admin_api_key_sha256: "{digest(admin)}"')
    lines.append("tenants:")
    for tid, key in keys.items():
        lines += [f"  - id: {tid}", f'    api_key_sha256: ["{digest(key)}"]']
        if tid == "restricted":
            lines.append('    models: ["some-other-model"]')
        if tid == "limited":
            lines += ["    limits:", f"      requests_per_minute: {LIMITED_RPM}"]
        if tid == "capped":
            lines += ["    limits:"] + [f"      {k}: {v}" for k, v in CAPPED.items()]
    return "\n".join(lines) + "\n" + extra


def bearer(key):
    return {"Authorization": f"Bearer {key}"} if key is not None else {}


def md(key):
    return [("authorization", f"Bearer {key}")] if key is not None else None


def completion(key, prompt=(2, 5, 6, 7), max_tokens=2, model=None, d=None, **extra):
    body = {"prompt": list(prompt), "max_tokens": max_tokens, "temperature": 0}
    if model is not None:
        body["model"] = model
    body.update(extra)
    return d.post("/v1/completions", body, headers=bearer(key))


# ---- gRPC stubs (inference and admin), generated at test time ----

@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("tenant_stubs")
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{SOURCE_DIR / 'proto'}",
           f"--python_out={out}", f"--grpc_python_out={out}",
           "sluice/v1/inference.proto", "sluice/v1/admin.proto"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}{r.stderr}"
    sys.path.insert(0, str(out))
    try:
        # test_grpc may have imported sluice.v1 from another folder: take ours.
        for name in [m for m in sys.modules if m == "sluice" or m.startswith("sluice.")]:
            del sys.modules[name]
        mods = {n: importlib.import_module(f"sluice.v1.{n}")
                for n in ("inference_pb2", "inference_pb2_grpc", "admin_pb2", "admin_pb2_grpc")}
        yield mods
    finally:
        sys.path.remove(str(out))


class Client:
    def __init__(self, daemon, stubs):
        match = wait_for(lambda: _GRPC_ON.search(daemon.log_text()), 30.0,
                         lambda: f"no gRPC line:\n{daemon.log_tail()}")
        self.channel = grpc.insecure_channel(f"{match.group(1)}:{match.group(2)}")
        grpc.channel_ready_future(self.channel).result(timeout=30.0)
        self.pb = stubs["inference_pb2"]
        self.apb = stubs["admin_pb2"]
        self.inference = stubs["inference_pb2_grpc"].InferenceStub(self.channel)
        self.admin = stubs["admin_pb2_grpc"].AdminStub(self.channel)

    def close(self):
        self.channel.close()


def rpc_code(fn, *args, **kwargs):
    """The status code of a call: OK, or the error's code (a stream is read to its end)."""
    try:
        r = fn(*args, **kwargs)
        if hasattr(r, "__iter__") and not hasattr(r, "SerializeToString"):
            list(r)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


@pytest.fixture(scope="module")
def tenants_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("tenants") / "tenants.yaml"
    p.write_text(tenants_yaml())
    return p


@pytest.fixture(scope="module")
def td(serve_module, tenants_file):
    """The shared daemon: four tenants and an admin key, block size 4."""
    return serve_module(TINY_MODEL, "--threads", "1", "--grpc-port", "0", "--block-size", "4",
                        "--tenants", str(tenants_file))


@pytest.fixture(scope="module")
def tc(td, stubs):
    c = Client(td, stubs)
    yield c
    c.close()


# ---- the HTTP auth matrix ----

OPEN_ROUTES = [("GET", "/health", None), ("GET", "/ready", None), ("GET", "/version", None),
               ("GET", "/metrics", None)]
KEYED_ROUTES = [
    ("GET", "/v1/models", None),
    ("GET", f"/v1/models/{TINY_NAME}", None),
    ("POST", "/tokenize", {"prompt": "hi"}),
    ("POST", "/detokenize", {"tokens": [2, 3]}),
    ("POST", "/v1/completions", {"prompt": [2, 3], "max_tokens": 1}),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}),
]


def call(d, method, path, body, key):
    import json as _json
    return d.request(method, path, None if body is None else _json.dumps(body), headers=bearer(key))


def test_http_auth_matrix(td):
    for method, path, body in OPEN_ROUTES:
        for key in (None, "wrong", KEYS["alpha"], ADMIN_KEY):
            r = call(td, method, path, body, key)
            assert r.status == 200, (path, key, r)
    for method, path, body in KEYED_ROUTES:
        for key in (None, "wrong", f"{KEYS['alpha']}x"):
            r = call(td, method, path, body, key)
            assert_openai_error(r, 401, code="invalid_api_key")
        # The admin key manages; it does not generate.
        assert_openai_error(call(td, method, path, body, ADMIN_KEY), 403)
        r = call(td, method, path, body, KEYS["alpha"])
        # The tiny model has no tokenizer: text routes are a 400, never an auth error.
        assert r.status in (200, 400), (path, r)
        if r.status == 400:
            assert "tokenizer" in r.json()["error"]["message"], (path, r)
    # A malformed Authorization header is no key.
    r = td.request("GET", "/v1/models", headers={"Authorization": KEYS["alpha"]})
    assert_openai_error(r, 401)


def test_grpc_auth_matrix(td, tc, stubs):
    pb, apb = tc.pb, tc.apb
    inference = [
        (tc.inference.Generate, pb.GenerateRequest(token_ids=[2, 3], max_tokens=1)),
        (tc.inference.Abort, pb.AbortRequest(request_id="nope")),
        (tc.inference.ListModels, pb.ListModelsRequest()),
        (tc.inference.GetLoad, pb.GetLoadRequest()),
        (tc.inference.Tokenize, pb.TokenizeRequest(text="hi")),
    ]
    admin = [(tc.admin.TenantUsage, apb.TenantUsageRequest()), (tc.admin.Reload, apb.ReloadRequest())]
    for fn, req in inference + admin:
        for key in (None, "wrong"):
            assert rpc_code(fn, req, timeout=30.0, metadata=md(key)) == grpc.StatusCode.UNAUTHENTICATED, fn
    for fn, req in inference:
        assert rpc_code(fn, req, timeout=30.0, metadata=md(ADMIN_KEY)) == grpc.StatusCode.PERMISSION_DENIED
        code = rpc_code(fn, req, timeout=30.0, metadata=md(KEYS["alpha"]))
        # Tokenize needs a tokenizer, which the tiny model lacks.
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (fn, code)
    for fn, req in admin + [(tc.admin.Drain, apb.DrainRequest())]:
        assert rpc_code(fn, req, timeout=30.0, metadata=md(KEYS["alpha"])) == grpc.StatusCode.PERMISSION_DENIED
    for fn, req in admin:
        assert rpc_code(fn, req, timeout=30.0, metadata=md(ADMIN_KEY)) == grpc.StatusCode.OK
    # The model list follows the tenant.
    assert [m.id for m in tc.inference.ListModels(pb.ListModelsRequest(), timeout=10.0,
                                                   metadata=md(KEYS["alpha"])).models] == [TINY_NAME]
    assert list(tc.inference.ListModels(pb.ListModelsRequest(), timeout=10.0,
                                        metadata=md(KEYS["restricted"])).models) == []
    err = rpc_code(tc.inference.Generate, pb.GenerateRequest(token_ids=[2, 3], max_tokens=1),
                   timeout=30.0, metadata=md(KEYS["restricted"]))
    assert err == grpc.StatusCode.PERMISSION_DENIED


def test_abort_reaches_only_the_own_tenant(tc):
    pb = tc.pb
    call = tc.inference.Generate(
        pb.GenerateRequest(token_ids=[2, 5, 6, 7], max_tokens=252, n=16, ignore_eos=True,
                           request_id="shared-id"), timeout=60.0, metadata=md(KEYS["alpha"]))
    assert next(call).request_id == "shared-id"
    # Another tenant neither finds the id nor is kept from using it.
    r = tc.inference.Abort(pb.AbortRequest(request_id="shared-id"), timeout=10.0, metadata=md(KEYS["beta"]))
    assert not r.found
    other = list(tc.inference.Generate(pb.GenerateRequest(token_ids=[2, 3], max_tokens=1, request_id="shared-id"),
                                       timeout=60.0, metadata=md(KEYS["beta"])))
    assert other[-1].usage.completion_tokens == 1
    r = tc.inference.Abort(pb.AbortRequest(request_id="shared-id"), timeout=10.0, metadata=md(KEYS["alpha"]))
    try:
        list(call)
        code = grpc.StatusCode.OK
    except grpc.RpcError as e:
        code = e.code()
    # Found while it ran: cancelled; otherwise it had already finished.
    assert code == (grpc.StatusCode.CANCELLED if r.found else grpc.StatusCode.OK), (r.found, code)


# ---- models ----

def test_403_versus_404(td):
    restricted = KEYS["restricted"]
    a = assert_openai_error(completion(restricted, d=td, model=TINY_NAME), 403)
    b = assert_openai_error(completion(restricted, d=td, model="no-such-model"), 403)
    # The same words whether or not the model exists.
    assert a["message"].replace(TINY_NAME, "X") == b["message"].replace("no-such-model", "X")
    assert_openai_error(completion(restricted, d=td), 403)  # the default model
    assert_openai_error(td.request("GET", f"/v1/models/{TINY_NAME}", headers=bearer(restricted)), 403)
    assert_openai_error(td.request("GET", "/v1/models/no-such-model", headers=bearer(restricted)), 403)
    # A tenant allowed "*" learns that a model does not exist.
    assert_openai_error(completion(KEYS["alpha"], d=td, model="no-such-model"), 404, code="model_not_found")
    assert_openai_error(td.request("GET", "/v1/models/no-such-model", headers=bearer(KEYS["alpha"])), 404)
    r = completion(KEYS["alpha"], d=td, model=TINY_NAME)
    assert r.status == 200, r


def test_models_list_per_tenant(td):
    r = td.request("GET", "/v1/models", headers=bearer(KEYS["alpha"]))
    assert r.status == 200 and [m["id"] for m in r.json()["data"]] == [TINY_NAME], r
    r = td.request("GET", "/v1/models", headers=bearer(KEYS["restricted"]))
    assert r.status == 200 and r.json()["data"] == [], r
    r = td.request("GET", f"/v1/models/{TINY_NAME}", headers=bearer(KEYS["beta"]))
    assert r.status == 200 and r.json()["id"] == TINY_NAME, r


# ---- limits ----

def test_rate_limit_429_with_retry_after(td):
    key = KEYS["limited"]
    for i in range(LIMITED_RPM):
        r = completion(key, d=td)
        assert r.status == 200, (i, r)
    r = completion(key, d=td)
    err = assert_openai_error(r, 429, code="rate_limit_exceeded")
    assert "requests per minute" in err["message"], err
    retry = int(r.headers["Retry-After"])
    # One request every 60/3 = 20 s; a little of it has passed already.
    assert 1 <= retry <= 60 // LIMITED_RPM, retry
    # Other tenants are not limited by it.
    assert completion(KEYS["alpha"], d=td).status == 200
    m = td.metrics()
    assert m['sluice_tenant_rejections_total{tenant="limited",reason="rate_limit"}'] >= 1
    assert m['sluice_tenant_requests_total{tenant="limited"}'] == LIMITED_RPM


def test_rate_limit_grpc_resource_exhausted(td, tc):
    # The HTTP test above spent the bucket (module order); make sure it is spent either way.
    pb = tc.pb
    codes = [rpc_code(tc.inference.Generate, pb.GenerateRequest(token_ids=[2, 3], max_tokens=1),
                      timeout=30.0, metadata=md(KEYS["limited"])) for _ in range(LIMITED_RPM)]
    with pytest.raises(grpc.RpcError) as info:
        list(tc.inference.Generate(pb.GenerateRequest(token_ids=[2, 3], max_tokens=1), timeout=30.0,
                                   metadata=md(KEYS["limited"])))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, codes
    trailing = dict(info.value.trailing_metadata() or ())
    assert 1 <= int(trailing["retry-after"]) <= 60 // LIMITED_RPM, trailing


def test_token_limits(td):
    key = KEYS["capped"]
    err = assert_openai_error(completion(key, d=td, max_tokens=5), 400, param="max_tokens",
                              code="max_tokens_exceeded")
    assert "at most 4" in err["message"], err
    assert_openai_error(completion(key, d=td, prompt=[2] + [7] * 8, max_tokens=1), 400, param="prompt",
                        code="prompt_too_long")
    # prompt 4 + max_tokens 4 reserved, all of it used (ignore_eos): 30 a minute fit 3 such.
    for i in range(3):
        r = completion(key, d=td, max_tokens=4, ignore_eos=True)
        assert r.status == 200, (i, r)
    r = completion(key, d=td, max_tokens=4, ignore_eos=True)
    assert_openai_error(r, 429, code="tokens_limit_exceeded")
    assert int(r.headers["Retry-After"]) >= 1
    # More than a minute's tokens at once can never pass: a 400, not a 429.
    assert_openai_error(completion(key, d=td, max_tokens=4, n=8), 400, code="tokens_limit_exceeded")
    m = td.metrics()
    for reason in ("max_tokens", "prompt_too_long", "tokens_limit"):
        assert m[f'sluice_tenant_rejections_total{{tenant="capped",reason="{reason}"}}'] >= 1, reason


# ---- prefix cache isolation ----

def test_cross_tenant_replay_does_not_hit_the_cache(td):
    # Four blocks of 4 tokens and one more, ids no other test uses.
    prompt = [2] + list(range(300, 316))
    def cached(key):
        r = completion(key, d=td, prompt=prompt, max_tokens=1)
        assert r.status == 200, r
        return r.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached(KEYS["alpha"]) == 0
    assert cached(KEYS["beta"]) == 0          # another tenant's namespace
    hit = cached(KEYS["alpha"])               # the same tenant
    assert hit >= 12, hit
    assert cached(KEYS["beta"]) >= 12         # beta's own copy now
    m = td.metrics()
    assert m['sluice_tenant_cached_tokens_total{tenant="alpha"}'] >= hit


# ---- metrics ----

def test_per_tenant_metrics(td):
    assert completion(KEYS["alpha"], d=td).status == 200
    r = td.request("GET", "/metrics")
    text = r.body.decode()
    m = parse_metrics(text)
    for name in ("requests_total", "prompt_tokens_total", "generation_tokens_total", "cached_tokens_total"):
        assert f'sluice_tenant_{name}{{tenant="alpha"}}' in m, name
    assert m['sluice_tenant_requests_total{tenant="alpha"}'] >= 1
    assert m['sluice_tenant_prompt_tokens_total{tenant="alpha"}'] >= 4
    assert m['sluice_tenant_time_to_first_token_seconds_count{tenant="alpha"}'] >= 1
    assert m['sluice_tenant_e2e_request_latency_seconds_count{tenant="alpha"}'] >= 1
    assert 'sluice_tenant_rejections_total{tenant="restricted",reason="model_forbidden"}' in m
    for reason in ("rate_limit", "tokens_limit", "concurrency_limit", "max_tokens", "prompt_too_long",
                   "model_forbidden"):
        assert f'sluice_tenant_rejections_total{{tenant="beta",reason="{reason}"}}' in m, reason
    for line in text.splitlines():
        if line.startswith("vllm:"):
            assert "tenant=" not in line, line
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if shutil.which(promtool):
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        lint = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
        assert p.returncode in (0, 3), lint
        assert all("should not contain ':'" in l for l in lint), lint


def test_admin_tenant_usage(td, tc):
    assert completion(KEYS["beta"], d=td).status == 200
    r = tc.admin.TenantUsage(tc.apb.TenantUsageRequest(), timeout=10.0, metadata=md(ADMIN_KEY))
    by_id = {t.tenant_id: t for t in r.tenants}
    assert set(by_id) == set(KEYS)
    beta = by_id["beta"]
    assert beta.requests >= 1 and beta.prompt_tokens >= 4 and beta.completion_tokens >= 1
    assert set(beta.rejections) == {"rate_limit", "tokens_limit", "concurrency_limit", "max_tokens",
                                    "prompt_too_long", "model_forbidden"}
    assert by_id["restricted"].rejections["model_forbidden"] >= 1
    assert by_id["restricted"].rejected_requests == sum(by_id["restricted"].rejections.values())
    one = tc.admin.TenantUsage(tc.apb.TenantUsageRequest(tenant_id="alpha"), timeout=10.0,
                               metadata=md(ADMIN_KEY))
    assert [t.tenant_id for t in one.tenants] == ["alpha"]
    assert rpc_code(tc.admin.TenantUsage, tc.apb.TenantUsageRequest(tenant_id="nobody"), timeout=10.0,
                    metadata=md(ADMIN_KEY)) == grpc.StatusCode.NOT_FOUND


# ---- reload ----

def test_sighup_and_admin_reload(serve, stubs, tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(tenants_yaml(keys={"alpha": "old-key"}))
    d = serve(TINY_MODEL, "--threads", "1", "--grpc-port", "0", "--tenants", str(path))
    c = Client(d, stubs)
    try:
        assert d.request("GET", "/v1/models", headers=bearer("old-key")).status == 200
        # A good file: the new key works, the old one no longer does.
        path.write_text(tenants_yaml(keys={"alpha": "new-key", "beta": "beta-key"}))
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.request("GET", "/v1/models", headers=bearer("new-key")).status == 200, 10.0,
                 lambda: d.log_tail())
        assert d.request("GET", "/v1/models", headers=bearer("old-key")).status == 401
        assert d.request("GET", "/v1/models", headers=bearer("beta-key")).status == 200
        # A bad file: one log line, and the tenants in force stay.
        path.write_text(tenants_yaml(keys={"alpha": "bad-key"}, extra="bogus_key: 1\n"))
        d.signal(signal.SIGHUP)
        wait_for(lambda: "reload rejected" in d.log_text(), 10.0, lambda: d.log_tail())
        lines = [l for l in d.log_text().splitlines() if "reload rejected" in l]
        assert len(lines) == 1 and "bogus_key" in lines[0], lines
        assert d.request("GET", "/v1/models", headers=bearer("new-key")).status == 200
        assert d.request("GET", "/v1/models", headers=bearer("bad-key")).status == 401
        # Admin.Reload says why, and changes nothing either.
        with pytest.raises(grpc.RpcError) as info:
            c.admin.Reload(c.apb.ReloadRequest(), timeout=10.0, metadata=md(ADMIN_KEY))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "bogus_key" in info.value.details()
        assert d.request("GET", "/v1/models", headers=bearer("new-key")).status == 200
        path.write_text(tenants_yaml(keys={"alpha": "third-key"}))
        r = c.admin.Reload(c.apb.ReloadRequest(), timeout=10.0, metadata=md(ADMIN_KEY))
        assert r.tenants == 1
        assert d.request("GET", "/v1/models", headers=bearer("third-key")).status == 200
        assert d.alive()
    finally:
        c.close()


# ---- daemons of their own ----

def test_metrics_require_key(serve, tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(tenants_yaml())
    d = serve(TINY_MODEL, "--threads", "1", "--grpc-port", "0", "--tenants", str(path),
              "--metrics-require-key")
    assert_openai_error(d.request("GET", "/metrics"), 401)
    assert_openai_error(d.request("GET", "/metrics", headers=bearer("wrong")), 401)
    assert d.request("GET", "/metrics", headers=bearer(KEYS["beta"])).status == 200
    assert d.request("GET", "/metrics", headers=bearer(ADMIN_KEY)).status == 200
    assert d.request("GET", "/health").status == 200


def test_open_daemon_warns_and_refuses_admin(serve, stubs):
    d = serve(TINY_MODEL, "--threads", "1", "--grpc-port", "0")
    assert "no --tenants and no --api-key" in d.log_text()
    c = Client(d, stubs)
    try:
        for key in (None, "anything"):
            for fn, req in ((c.admin.TenantUsage, c.apb.TenantUsageRequest()),
                            (c.admin.Reload, c.apb.ReloadRequest()), (c.admin.Drain, c.apb.DrainRequest())):
                assert rpc_code(fn, req, timeout=10.0, metadata=md(key)) == grpc.StatusCode.UNIMPLEMENTED
        assert d.request("GET", "/v1/models").status == 200
    finally:
        c.close()


def test_tenants_file_without_admin_key_refuses_admin(serve, stubs, tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(tenants_yaml(admin=None))
    d = serve(TINY_MODEL, "--threads", "1", "--grpc-port", "0", "--tenants", str(path))
    c = Client(d, stubs)
    try:
        for key in (None, KEYS["alpha"], ADMIN_KEY):
            for fn, req in ((c.admin.TenantUsage, c.apb.TenantUsageRequest()),
                            (c.admin.Reload, c.apb.ReloadRequest()), (c.admin.Drain, c.apb.DrainRequest())):
                assert rpc_code(fn, req, timeout=10.0, metadata=md(key)) == grpc.StatusCode.PERMISSION_DENIED
    finally:
        c.close()


def test_admin_drain(serve, stubs, tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(tenants_yaml())
    d = serve(TINY_MODEL, "--threads", "1", "--grpc-port", "0", "--tenants", str(path))
    c = Client(d, stubs)
    try:
        c.admin.Drain(c.apb.DrainRequest(timeout_seconds=5.0), timeout=10.0, metadata=md(ADMIN_KEY))
        assert d.wait(30.0) == 0, d.log_tail()
    finally:
        c.close()


@pytest.mark.parametrize("text, expect", [
    ("tenants:\n  - id: a\n    api_key_sha256: nothex\n", "is not a SHA-256 digest"),
    ("tenants:\n  - id: a\n    api_key_sha256: [\"" + "0" * 64 + "\"]\n    wieght: 2\n", "unknown key 'wieght'"),
])
def test_bad_tenants_file_is_a_startup_error(tmp_path, text, expect):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = subprocess.run([str(SLUICE_BIN), "serve", "--model", str(TINY_MODEL), "--port", "0",
                        "--tenants", str(path)], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and expect in lines[0] and str(path) in lines[0], lines
