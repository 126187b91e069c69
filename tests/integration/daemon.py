"""A real `sluice serve` process for the integration suite, and small raw-HTTP helpers.

Daemon starts `$SLUICE_BIN serve --model M --port 0 [flags]` on 127.0.0.1, reads the bound
port from its "serving NAME on http://HOST:PORT" log line, and stops it with SIGTERM,
returning the exit code. Everything here speaks HTTP/1.1 with the standard library only
(http.client, socket), so a test sees exactly the bytes the server sent.
"""

import ctypes
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("SLUICE_SOURCE_DIR", Path(__file__).resolve().parents[2]))
SLUICE_BIN = Path(os.environ.get("SLUICE_BIN", SOURCE_DIR / "build" / "bin" / "sluice"))
TINY_MODEL = SOURCE_DIR / "tests" / "fixtures" / "gemma3_tiny"
TINY_NAME = "gemma3_tiny"
MODEL_270M = SOURCE_DIR / "models" / "gemma-3-270m-q4_k_m.gguf"
NAME_270M = "gemma-3-270m-q4_k_m"

# Start-up includes loading the weights: the 270M GGUF takes seconds on a busy 2-core box.
START_TIMEOUT_S = 60.0
_SERVING = re.compile(r"serving (\S+) on http://([0-9.]+):(\d+)")


_GRPC_FLAG = []


def _has_grpc_port():
    """Whether this build's `sluice serve` takes --grpc-port (asked once)."""
    if not _GRPC_FLAG:
        help_text = subprocess.run([str(SLUICE_BIN), "serve", "--help"], capture_output=True,
                                   text=True, timeout=30).stdout
        _GRPC_FLAG.append("--grpc-port" in help_text)
    return _GRPC_FLAG[0]


def _die_with_parent():
    # In the child before exec: SIGKILL it if the test process dies first (a ctest timeout),
    # so that no daemon outlives its test.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Daemon:
    """One `sluice serve` process. Its combined stdout and stderr go to a file (log_text())."""

    def __init__(self, model, *flags, name=None):
        if not SLUICE_BIN.is_file():
            raise RuntimeError(f"{SLUICE_BIN} does not exist: build the sluice target, or set "
                               "SLUICE_BIN")
        self.model = Path(model)
        self.flags = [str(f) for f in flags]
        # gRPC listens on a fixed port by default: several daemons at once need their own.
        if "--grpc-port" not in self.flags and _has_grpc_port():
            self.flags += ["--grpc-port", "0"]
        self._log = tempfile.NamedTemporaryFile(prefix="sluice-serve-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)
        self.proc = subprocess.Popen(
            [str(SLUICE_BIN), "serve", "--model", str(self.model), "--port", "0", *self.flags],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        self.pid = self.proc.pid
        self.returncode = None
        deadline = time.monotonic() + START_TIMEOUT_S
        match = None
        while time.monotonic() < deadline:
            match = _SERVING.search(self.log_text())
            if match or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not match:
            self.kill()
            raise RuntimeError(f"sluice serve did not start (exit {self.proc.returncode}):\n"
                               f"{self.log_text()}")
        self.served_name = name or match.group(1)
        self.host = match.group(2)
        self.port = int(match.group(3))
        self.base_url = f"http://{self.host}:{self.port}"

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """The exit code, or None while still running after `timeout` seconds."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=30.0):
        """SIGTERM (a drain), then the exit code; SIGKILL and None when it does not exit."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.returncode = self.proc.returncode

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        self._log.close()
        try:
            self.log_path.unlink()
        except FileNotFoundError:
            pass

    # ---- process figures (Linux /proc) ----

    def rss_bytes(self):
        """VmRSS from /proc/PID/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def num_fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def num_threads(self):
        return len(os.listdir(f"/proc/{self.pid}/task"))

    # ---- HTTP ----

    def request(self, method, path, body=None, headers=None, timeout=60.0):
        return request(self.host, self.port, method, path, body, headers, timeout)

    def post(self, path, obj, headers=None, timeout=60.0):
        return self.request("POST", path, json.dumps(obj), headers, timeout)

    def metrics(self):
        return metrics(self.host, self.port)

    def wait_idle(self, timeout=5.0):
        """Waits until nothing runs or waits and no KV block is in use; the last metrics."""
        def probe():
            m = self.metrics()
            return m if is_idle(m) else None

        return wait_for(probe, timeout,
                        lambda: f"not idle after {timeout} s: {idle_figures(self.metrics())}")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive get()
        self.body = body        # bytes

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def request(host, port, method, path, body=None, headers=None, timeout=60.0):
    """One request on a fresh connection; the whole response."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, r.headers, r.read())
    finally:
        conn.close()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text into {series: value}. A series is the metric name alone when its only
    label is model_name (vllm:kv_cache_usage_perc), else the name and its other labels in
    sent order: 'vllm:request_success_total{finished_reason="length"}'."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"unparsable metrics line: {line!r}")
        labels = [(k, v) for k, v in _LABEL.findall(m.group(3) or "") if k != "model_name"]
        key = m.group(1)
        if labels:
            key += "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"
        out[key] = float(m.group(4))
    return out


def metrics(host, port):
    r = request(host, port, "GET", "/metrics", timeout=10.0)
    assert r.status == 200, r
    return parse_metrics(r.body.decode())


def is_idle(m):
    return (m["vllm:num_requests_running"] == 0 and m["vllm:num_requests_waiting"] == 0 and
            m["vllm:kv_cache_usage_perc"] == 0)


def idle_figures(m):
    return {k: m[k] for k in ("vllm:num_requests_running", "vllm:num_requests_waiting",
                              "vllm:kv_cache_usage_perc")}


def wait_for(probe, timeout, describe=None, interval=0.05):
    """Calls probe() until it returns something truthy (returned), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(describe() if describe else f"timed out after {timeout} s")
        time.sleep(interval)


def assert_openai_error(r, status, param="any", code="any", type_=None):
    """r has this status and OpenAI's error body, exactly the four keys; param and code are
    checked unless "any" (None means JSON null). The type defaults from the status."""
    assert r.status == status, r
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    assert r.headers.get("X-Request-Id"), "no X-Request-Id"
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    if type_ is None:
        type_ = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error",
                 500: "server_error", 503: "service_unavailable"}.get(status,
                                                                      "invalid_request_error")
    assert err["type"] == type_, err
    assert err["param"] is None or isinstance(err["param"], str), err
    assert err["code"] is None or isinstance(err["code"], str), err
    if param != "any":
        assert err["param"] == param, err
    if code != "any":
        assert err["code"] == code, err
    return err


# ---- Server-Sent Events over a raw socket ----

class RawStream:
    """A streamed POST on its own socket, read by hand: the test decides when to read and
    when to hang up. rcvbuf shrinks the socket's receive buffer first, so that a client that
    stops reading soon makes the server's writes wait (the request stays in flight)."""

    def __init__(self, host, port, path, obj, headers=None, rcvbuf=None, timeout=60.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        body = json.dumps(obj).encode()
        head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self.buf = b""
        self.status = None
        self.headers = {}
        self._chunked = False
        self._raw = b""   # de-chunked body bytes not yet split into events
        self.done = False  # the terminating zero chunk arrived

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        return self.status

    def _dechunk(self):
        """Moves whole chunks from buf to _raw; True once the last chunk came."""
        while True:
            if b"\r\n" not in self.buf:
                return False
            size_line, rest = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.done = True
                return True
            if len(rest) < size + 2:
                return False
            self._raw += rest[:size]
            self.buf = rest[size + 2:]

    def next_event(self):
        """The next `data:` payload as a string ('[DONE]' included); None at the body's end."""
        if self.status is None:
            self.read_head()
        while True:
            if b"\n\n" in self._raw:
                event, self._raw = self._raw.split(b"\n\n", 1)
                for line in event.decode().split("\n"):
                    if line.startswith("data: "):
                        return line[len("data: "):]
                continue
            if self.done:
                return None
            if self._chunked:
                if self._dechunk():
                    continue
            else:
                self._raw += self.buf
                self.buf = b""
            self._recv()

    def read_body(self):
        """The whole body (de-chunked) as bytes, for a response that is not a stream."""
        if self.status is None:
            self.read_head()
        if self._chunked:
            while not self._dechunk():
                self._recv()
            return self._raw
        length = int(self.headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._recv()
        return self.buf[:length]

    def read_all(self):
        events = []
        while (e := self.next_event()) is not None:
            events.append(e)
        return events

    def close(self):
        self.sock.close()


def sse_events(body):
    """The data payloads of a whole SSE body (bytes)."""
    out = []
    for event in body.decode().split("\n\n"):
        for line in event.split("\n"):
            if line.startswith("data: "):
                out.append(line[len("data: "):])
    return out
