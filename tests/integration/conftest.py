"""Fixtures: real `sluice serve` processes on 127.0.0.1 (see daemon.py).

- `serve`: a factory, `serve(model, *flags)` -> Daemon; each one it started is stopped at the
  end of the test with SIGTERM and must exit 0 (unless the test stopped it itself).
- `tiny`: the tiny fixture model (no tokenizer: token-id prompts on /v1/completions only),
  one server per test module.
- `model_270m`: the default model's path; the test is skipped when the set-up did not
  place it (models/ is filled by scripts/install-deps.sh).
"""

import os

# Before any test module imports grpc: without this, grpcio installs fork handlers that
# restart its poller in the child of every subprocess.Popen, and when Popen then closes the
# child's inherited descriptors (close_fds) that poller dies on its closed epoll fd and
# aborts the child before it can exec `sluice serve` (seen as "sluice serve did not start
# (exit -6)" with grpc's "epoll_wait error: Bad file descriptor" as the only log line). The
# tests never use gRPC across a fork.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

import pytest  # noqa: E402

from daemon import MODEL_270M, TINY_MODEL, Daemon  # noqa: E402


class _Servers:
    def __init__(self):
        self.started = []

    def __call__(self, model, *flags):
        d = Daemon(model, *flags)
        self.started.append(d)
        return d

    def stop_all(self):
        failures = []
        for d in self.started:
            if d.returncode is None:
                rc = d.stop(timeout=30.0)
                if rc != 0:
                    failures.append(f"{d.model.name} {' '.join(d.flags)}: exit code {rc} after "
                                    f"SIGTERM; log tail:\n{d.log_tail()}")
            d.close()
        assert not failures, "\n".join(failures)


@pytest.fixture
def serve():
    servers = _Servers()
    yield servers
    servers.stop_all()


@pytest.fixture(scope="module")
def serve_module():
    servers = _Servers()
    yield servers
    servers.stop_all()


@pytest.fixture(scope="module")
def tiny(serve_module):
    return serve_module(TINY_MODEL, "--threads", "1")


@pytest.fixture(scope="session")
def model_270m():
    if not MODEL_270M.is_file():
        pytest.skip(f"{MODEL_270M} is absent (scripts/install-deps.sh places it)")
    return MODEL_270M


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the tail of each server log it used."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name in ("serve", "serve_module"):
        servers = item.funcargs.get(name)
        for d in getattr(servers, "started", []):
            report.sections.append((f"sluice serve {d.model.name} log", d.log_tail(60)))
