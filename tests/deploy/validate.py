#!/usr/bin/env python3
"""Validates the deploy files: deploy/Dockerfile and deploy/k8s.

Run with the project's venv (scripts/install-deps.sh installs kubernetes-validate and
yamllint into it); needs no network (kubernetes-validate ships its schemas):

    .venv/bin/python tests/deploy/validate.py [--sluice build/bin/sluice] [--self-test]

Checks, each printed as PASS / FAIL / SKIP / NOTE:
  - yamllint (strict, deploy/.yamllint) on every YAML file under deploy/;
  - every object in deploy/k8s, as written and as `kubectl kustomize` renders each
    kustomization (when kubectl is on PATH), against the Kubernetes JSON schemas of
    kubernetes-validate in strict mode (unknown fields fail) for K8S_VERSIONS; custom
    resources against tests/deploy/schemas/<kind>.<group>-<version>.json; a kind with
    neither fails;
  - what the schemas cannot see, on each rendered kustomization: the server config's keys
    are flags of docs/INTERFACES.md, ports/probes/preStop/grace period agree with it, the
    tenants Secret parses as a tenants file, the GPU count matches the config, the
    Service/PDB/HPA/ServiceMonitor point at the Deployment's pods;
  - deploy/Dockerfile: stages, COPY sources exist and pass the ignore file, the scripts a
    RUN calls exist (and were copied first), the install-deps.sh package list extracts,
    every CMake subdirectory the build needs is copied, a non-root USER, EXPOSE, HEALTHCHECK;
  - deploy/README.md: the commands for each overlay and the prometheus-adapter rule that
    publishes the HPA's metric.

--sluice BIN also lists config keys that `BIN serve --help` does not know yet (NOTE only:
docs/INTERFACES.md is the contract the config is checked against).
--self-test breaks copies of the files in several ways and fails unless every break is
caught: the proof that this validator can fail.

Exit status: 0 all passed, 1 a check failed, 77 the venv lacks a package (ctest: skipped).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import jsonschema
    import kubernetes_validate.utils as kv
    import yaml
    from yamllint import linter as yamllint_linter
    from yamllint.config import YamlLintConfig
except ImportError as e:  # pragma: no cover - depends on the environment
    print(f"SKIP deploy validation: {e.name} is not installed; run scripts/install-deps.sh "
          "(it installs kubernetes-validate and yamllint into .venv)")
    sys.exit(77)

# The oldest Kubernetes minor the manifests promise to work on, and the newest schema set.
K8S_VERSIONS = ("1.30", kv.latest_version())
# Schemas are large JSON files read on every call; the contents never change in a run.
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)

DEFAULT_DRAIN_TIMEOUT_S = 30  # sluice serve --drain-timeout default (INTERFACES.md)
DEFAULT_GRACE_PERIOD_S = 30  # Kubernetes' terminationGracePeriodSeconds default
MIN_STARTUP_BUDGET_S = 120  # a startupProbe allowing less cannot cover a model load


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passes = 0

    def ok(self, what: str) -> None:
        self.passes += 1
        print(f"PASS {what}")

    def fail(self, what: str) -> None:
        self.failures.append(what)
        print(f"FAIL {what}")

    def check(self, cond: bool, what: str, why: str = "") -> bool:
        if cond:
            self.ok(what)
        else:
            self.fail(f"{what}: {why}" if why else what)
        return cond

    @staticmethod
    def skip(what: str) -> None:
        print(f"SKIP {what}")

    @staticmethod
    def note(what: str) -> None:
        print(f"NOTE {what}")


# ---------------------------------------------------------------------------- YAML lint


def lint_yaml(root: Path, rep: Report) -> None:
    conf_path = root / "deploy/.yamllint"
    if not conf_path.is_file():
        rep.fail("yamllint: deploy/.yamllint is missing")
        return
    conf = YamlLintConfig(file=str(conf_path))
    files = sorted(p for p in (root / "deploy").rglob("*") if p.suffix in (".yaml", ".yml") or
                   p.name == ".yamllint")
    for path in files:
        rel = path.relative_to(root)
        problems = list(yamllint_linter.run(path.read_text(), conf, str(rel)))
        rep.check(not problems, f"yamllint {rel}",
                  "; ".join(f"{p.line}:{p.column} {p.level} {p.desc} ({p.rule})" for p in problems))


# ---------------------------------------------------------------------------- schemas


def local_schema_path(root: Path, obj: dict) -> Path:
    group_version = obj["apiVersion"]
    group, _, version = group_version.rpartition("/")
    return root / "tests/deploy/schemas" / f"{obj['kind'].lower()}.{group or 'core'}-{version}.json"


def validate_object(root: Path, obj: object, where: str, rep: Report) -> None:
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        rep.fail(f"{where}: not a Kubernetes object (no apiVersion/kind)")
        return
    name = (obj.get("metadata") or {}).get("name")
    label = f"{where} {obj['kind']}/{name}"
    if not name:
        rep.fail(f"{label}: metadata.name is missing")
        return
    errors: list[str] = []
    custom = False
    for version in K8S_VERSIONS:
        try:
            kv.validate(obj, version, strict=True)
        except kv.SchemaNotFoundError:
            custom = True
            break
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(root)"
            errors.append(f"k8s {version}: {path}: {e.message}")
    if custom:
        schema_path = local_schema_path(root, obj)
        if not schema_path.is_file():
            rep.fail(f"{label}: no Kubernetes schema for {obj['apiVersion']} and no "
                     f"{schema_path.relative_to(root)}")
            return
        schema = json.loads(schema_path.read_text())
        validator = jsonschema.Draft202012Validator(schema)
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.path)):
            path = ".".join(str(p) for p in e.path) or "(root)"
            errors.append(f"{schema_path.name}: {path}: {e.message}")
        against = schema_path.name
    else:
        against = "k8s " + ", ".join(K8S_VERSIONS) + " (strict)"
    rep.check(not errors, f"schema {label} against {against}", "; ".join(errors))


def load_docs(text: str) -> list:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def validate_sources(root: Path, rep: Report) -> None:
    k8s = root / "deploy/k8s"
    for path in sorted(k8s.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue  # not an object; checked through its rendering
        rel = path.relative_to(root)
        try:
            docs = load_docs(path.read_text())
        except yaml.YAMLError as e:
            rep.fail(f"{rel}: YAML: {e}")
            continue
        for doc in docs:
            validate_object(root, doc, str(rel), rep)


def render(root: Path, kdir: Path) -> tuple[list | None, str]:
    proc = subprocess.run(["kubectl", "kustomize", str(kdir)], capture_output=True, text=True,
                          cwd=root, timeout=120)
    if proc.returncode != 0:
        return None, proc.stderr.strip()
    return load_docs(proc.stdout), ""


# ---------------------------------------------------------------------------- contract


def interface_flags(root: Path) -> set[str]:
    """Long flag names `sluice serve` takes per docs/INTERFACES.md (the Common and serve
    bullets of "Binaries and the command line")."""
    text = (root / "docs/INTERFACES.md").read_text()
    section = text.split("## Binaries and the command line", 1)[1].split("\n## ", 1)[0]
    bullets = re.split(r"\n- ", section)
    flags: set[str] = set()
    for b in bullets:
        if b.startswith("Common:") or b.startswith("`serve` adds:"):
            flags |= set(re.findall(r"--([a-z][a-z0-9-]*)", b))
    return flags


def help_flags(sluice: str) -> set[str]:
    out = subprocess.run([sluice, "serve", "--help"], capture_output=True, text=True, timeout=30)
    return set(re.findall(r"--([a-z][a-z0-9-]*)", out.stdout + out.stderr))


def find(docs: list, kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def subset(small: dict | None, big: dict | None) -> bool:
    return bool(small) and all((big or {}).get(k) == v for k, v in small.items())


def prestop_seconds(container: dict) -> int:
    pre = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre:
        return int(pre["sleep"].get("seconds", 0))
    cmd = (pre.get("exec") or {}).get("command") or []
    if len(cmd) == 2 and cmd[0].endswith("sleep"):
        return int(cmd[1])
    return 0


def check_rendered(root: Path, label: str, docs: list, flags: set[str], readme: str,
                   help_known: set[str] | None, rep: Report) -> None:
    deps = find(docs, "Deployment")
    if not rep.check(len(deps) == 1, f"{label}: one Deployment", f"found {len(deps)}"):
        return
    dep = deps[0]
    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"].get("labels") or {}
    containers = {c["name"]: c for c in pod["containers"]}
    if not rep.check("sluice" in containers, f"{label}: container 'sluice'"):
        return
    c = containers["sluice"]
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}

    # The server config: `--config FILE` from a ConfigMap volume.
    args = c.get("args") or []
    cfg_file = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    rep.check("serve" in args, f"{label}: container runs `sluice serve`", f"args {args}")
    if not rep.check(cfg_file is not None, f"{label}: container runs with --config FILE"):
        return
    cfg_dir, cfg_key = os.path.split(cfg_file)
    mount = mounts.get(cfg_dir)
    vol = volumes.get(mount["name"]) if mount else None
    cm_name = ((vol or {}).get("configMap") or {}).get("name")
    cms = find(docs, "ConfigMap", cm_name) if cm_name else []
    if not rep.check(bool(cms) and cfg_key in (cms[0].get("data") or {}),
                     f"{label}: {cfg_file} comes from a ConfigMap in the rendering",
                     f"mount {cfg_dir} -> volume {mount and mount['name']} -> ConfigMap {cm_name}"):
        return
    try:
        config = yaml.safe_load(cms[0]["data"][cfg_key])
    except yaml.YAMLError as e:
        rep.fail(f"{label}: {cfg_key} is not YAML: {e}")
        return
    if not rep.check(isinstance(config, dict), f"{label}: {cfg_key} is a mapping"):
        return
    nested = [k for k, v in config.items() if isinstance(v, dict) or v is None]
    rep.check(not nested, f"{label}: config is flat (no nested mappings or nulls)", ", ".join(nested))
    unknown = sorted(set(config) - flags)
    rep.check(not unknown, f"{label}: config keys are flags of docs/INTERFACES.md",
              "unknown: " + ", ".join(unknown))
    if help_known is not None:
        pending = sorted(set(config) - help_known)
        if pending:
            rep.note(f"{label}: config keys `sluice serve --help` does not list yet: {', '.join(pending)}")
    rep.check(config.get("host") == "0.0.0.0", f"{label}: config host is 0.0.0.0",
              f"host {config.get('host')!r} is unreachable from other pods")
    rep.check(config.get("port", 8000) == ports.get("http"), f"{label}: config port = containerPort http",
              f"{config.get('port', 8000)} vs {ports.get('http')}")
    rep.check(config.get("grpc-port", 50051) == ports.get("grpc"),
              f"{label}: config grpc-port = containerPort grpc",
              f"{config.get('grpc-port', 50051)} vs {ports.get('grpc')}")
    model = str(config.get("model", ""))
    rep.check(any(model.startswith(p.rstrip("/") + "/") for p in mounts), f"{label}: model path is on a mounted volume",
              f"{model!r} is under none of {sorted(mounts)}")

    # Probes and shutdown.
    def probe_path(name: str) -> str | None:
        return (((c.get(name) or {}).get("httpGet")) or {}).get("path")

    rep.check(probe_path("startupProbe") == "/health", f"{label}: startupProbe GET /health")
    rep.check(probe_path("readinessProbe") == "/ready", f"{label}: readinessProbe GET /ready")
    rep.check(probe_path("livenessProbe") == "/health", f"{label}: livenessProbe GET /health")
    sp = c.get("startupProbe") or {}
    budget = sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3)
    rep.check(budget >= MIN_STARTUP_BUDGET_S, f"{label}: startupProbe allows {budget} s for model load",
              f"less than {MIN_STARTUP_BUDGET_S} s")
    drain = float(config.get("drain-timeout", DEFAULT_DRAIN_TIMEOUT_S))
    pre = prestop_seconds(c)
    grace = pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD_S)
    rep.check(pre > 0, f"{label}: preStop hook delays SIGTERM", "no preStop sleep")
    rep.check(grace > pre + drain, f"{label}: terminationGracePeriodSeconds {grace} > preStop {pre} + drain-timeout {drain:g}",
              "the kubelet would kill requests still draining")

    # Hardening.
    psc = pod.get("securityContext") or {}
    csc = c.get("securityContext") or {}
    rep.check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, f"{label}: pod runs as non-root")
    rep.check(csc.get("readOnlyRootFilesystem") is True, f"{label}: read-only root filesystem")
    rep.check(csc.get("allowPrivilegeEscalation") is False, f"{label}: no privilege escalation")
    tmp = mounts.get("/tmp")
    rep.check(bool(tmp) and "emptyDir" in volumes.get(tmp["name"], {}), f"{label}: /tmp is an emptyDir")
    for ic in pod.get("initContainers") or []:
        isc = ic.get("securityContext") or {}
        rep.check(isc.get("readOnlyRootFilesystem") is True and isc.get("allowPrivilegeEscalation") is False,
                  f"{label}: init container {ic['name']} is hardened too")

    # Tenants: the file the config names must come from a Secret that parses as one.
    if "tenants" in config:
        tpath = str(config["tenants"])
        tdir, tkey = os.path.split(tpath)
        tmount = mounts.get(tdir)
        tvol = volumes.get(tmount["name"]) if tmount else None
        sname = ((tvol or {}).get("secret") or {}).get("secretName")
        secrets = find(docs, "Secret", sname) if sname else []
        content = None
        if secrets:
            s = secrets[0]
            content = (s.get("stringData") or {}).get(tkey)
            if content is None and tkey in (s.get("data") or {}):
                import base64
                content = base64.b64decode(s["data"][tkey]).decode()
        if rep.check(content is not None, f"{label}: tenants file {tpath} comes from a Secret in the rendering",
                     f"mount {tdir} -> Secret {sname}"):
            schema = json.loads((root / "tests/deploy/schemas/sluice-tenants.json").read_text())
            try:
                tenants = yaml.safe_load(content)
                errs = [f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}"
                        for e in jsonschema.Draft202012Validator(schema).iter_errors(tenants)]
                ids = [t.get("id") for t in (tenants or {}).get("tenants", []) if isinstance(t, dict)]
                if len(ids) != len(set(ids)):
                    errs.append("tenant ids are not unique")
            except yaml.YAMLError as e:
                errs = [str(e)]
            rep.check(not errs, f"{label}: tenants file matches INTERFACES.md \"Tenants file\"", "; ".join(errs))

    # Accelerators: the pod's GPUs and the config must agree. The API server (not the
    # schema) rejects an extended resource whose request differs from its limit.
    limits = (c.get("resources") or {}).get("limits") or {}
    requests = (c.get("resources") or {}).get("requests") or {}
    for res in sorted(k for k in set(limits) | set(requests) if "/" in k):
        rep.check(res in limits and str(requests.get(res, limits[res])) == str(limits[res]),
                  f"{label}: {res} requests equal limits", f"requests {requests.get(res)} limits {limits.get(res)}")
    gpus = int(limits.get("nvidia.com/gpu", 0))
    device = config.get("device", "auto")
    if device == "cuda":
        tp = int(config.get("tensor-parallel-size", 1))
        rep.check(gpus == tp, f"{label}: nvidia.com/gpu limit {gpus} = tensor-parallel-size {tp}")
        gmu = config.get("gpu-memory-utilization")
        rep.check(isinstance(gmu, (int, float)) and 0 < gmu <= 1,
                  f"{label}: gpu-memory-utilization in (0, 1]", f"{gmu!r}")
    else:
        rep.check(gpus == 0, f"{label}: no GPU requested for device {device}",
                  f"nvidia.com/gpu {gpus} with device {device}")

    # Everything that selects the pods selects these pods.
    for svc in find(docs, "Service"):
        sp_ = svc["spec"]
        rep.check(subset(sp_.get("selector"), pod_labels), f"{label}: Service {svc['metadata']['name']} selects the pods")
        for p in sp_.get("ports") or []:
            tp_ = p.get("targetPort", p["port"])
            rep.check(tp_ in ports or tp_ in ports.values(), f"{label}: Service port {p['name']} targets a container port")
            want = {"http": "http", "grpc": "kubernetes.io/h2c"}.get(p["name"])
            if want:
                rep.check(p.get("appProtocol") == want, f"{label}: Service port {p['name']} appProtocol {want}",
                          f"{p.get('appProtocol')!r}")
    for pdb in find(docs, "PodDisruptionBudget"):
        rep.check(subset(pdb["spec"]["selector"].get("matchLabels"), pod_labels),
                  f"{label}: PodDisruptionBudget selects the pods")
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        rep.check(ref.get("kind") == "Deployment" and ref.get("name") == dep["metadata"]["name"],
                  f"{label}: HPA scales the Deployment")
        adapter = adapter_metrics(readme)
        for m in hpa["spec"].get("metrics") or []:
            if m["type"] == "Pods":
                name = m["pods"]["metric"]["name"]
                rep.check(name in adapter, f"{label}: HPA metric {name} is published by the adapter rule in deploy/README.md",
                          f"the README's rules publish {sorted(adapter) or 'nothing'}")
    services = find(docs, "Service")
    for sm in find(docs, "ServiceMonitor"):
        sel = sm["spec"]["selector"].get("matchLabels")
        hits = [s for s in services if subset(sel, s["metadata"].get("labels"))]
        rep.check(bool(hits), f"{label}: ServiceMonitor selects a Service")
        names = {p["name"] for s in hits for p in s["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            rep.check(ep.get("port") in names and ep.get("path", "/metrics") == "/metrics",
                      f"{label}: ServiceMonitor scrapes /metrics on port {ep.get('port')}")


def adapter_metrics(readme: str) -> dict[str, str]:
    """The custom-metric names the prometheus-adapter rules in the README's YAML blocks
    publish, mapped to their series query."""
    found: dict[str, str] = {}
    for block in re.findall(r"```yaml\n(.*?)```", readme, re.S):
        try:
            data = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        stack = [data]
        while stack:
            x = stack.pop()
            if isinstance(x, dict):
                if "seriesQuery" in x and isinstance(x.get("name"), dict) and "as" in x["name"]:
                    found[x["name"]["as"]] = x["seriesQuery"]
                stack.extend(x.values())
            elif isinstance(x, list):
                stack.extend(x)
    return found


def validate_kustomizations(root: Path, flags: set[str], help_known: set[str] | None, rep: Report) -> None:
    readme_path = root / "deploy/README.md"
    readme = readme_path.read_text() if readme_path.is_file() else ""
    kdirs = sorted(p.parent for p in (root / "deploy/k8s").rglob("kustomization.yaml"))
    if not shutil.which("kubectl"):
        rep.skip("kustomize renderings: kubectl is not on PATH (sources were still validated)")
        return
    base_docs = None
    for kdir in kdirs:
        rel = kdir.relative_to(root)
        docs, err = render(root, kdir)
        if not rep.check(docs is not None, f"kubectl kustomize {rel}", err):
            continue
        for doc in docs:
            validate_object(root, doc, f"{rel} (rendered)", rep)
        check_rendered(root, str(rel), docs, flags, readme, help_known, rep)
        if rel.name == "base":
            base_docs = docs
    # The InferencePool example must select the base's pods on their HTTP port.
    pools = [d for p in sorted((root / "deploy/k8s/examples").glob("*.yaml")) for d in load_docs(p.read_text())
             if d.get("kind") == "InferencePool"]
    if base_docs and pools:
        dep = find(base_docs, "Deployment")[0]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        http = {p["name"]: p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}["http"]
        for pool in pools:
            spec = pool.get("spec") or {}
            rep.check(subset((spec.get("selector") or {}).get("matchLabels"), labels)
                      and [p.get("number") for p in spec.get("targetPorts") or []] == [http],
                      f"InferencePool {pool['metadata']['name']} selects the base pods on port {http}")


# ---------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str, int]]:
    out, buf, start = [], "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not buf:
            start = n
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip(), start))
        buf = ""
    return out


def ignore_matcher(patterns: list[str]):
    compiled = []
    for raw in patterns:
        neg = raw.startswith("!")
        pat = raw[1:] if neg else raw
        pat = pat.strip().strip("/")
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif pat.startswith("**", i):
                rx += ".*"
                i += 2
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(pat[i])
                i += 1
        compiled.append((neg, re.compile(rx + r"\Z")))

    def included(path: str) -> bool:
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        keep = True
        for neg, rx in compiled:
            if any(rx.match(p) for p in prefixes):
                keep = neg
        return keep

    return included


def check_dockerfile(root: Path, rep: Report) -> None:
    path = root / "deploy/Dockerfile"
    if not rep.check(path.is_file(), "deploy/Dockerfile exists"):
        return
    ins = dockerfile_instructions(path.read_text())
    ignore_path = root / "deploy/Dockerfile.dockerignore"
    patterns = [l.strip() for l in ignore_path.read_text().splitlines()
                if l.strip() and not l.strip().startswith("#")] if ignore_path.is_file() else []
    rep.check(bool(patterns), "deploy/Dockerfile.dockerignore has patterns")
    included = ignore_matcher(patterns)

    global_args: dict[str, str] = {}
    stages: list[dict] = []
    for word, rest, line in ins:
        where = f"Dockerfile:{line}"
        if word == "ARG" and not stages:
            k, _, v = rest.partition("=")
            global_args[k.strip()] = v.strip().strip('"')
        elif word == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            image = re.sub(r"\$\{(\w+)\}", lambda g: global_args.get(g.group(1), ""), m.group(1))
            rep.check(image.startswith("debian:12"), f"{where}: FROM {image} is Debian 12")
            stages.append({"name": m.group(2), "image": image, "copied": [], "user": None,
                           "expose": set(), "health": None, "entry": None})
        elif not stages:
            continue
        elif word in ("COPY", "ADD"):
            toks = json.loads(rest) if rest.startswith("[") else rest.split()
            opts = [t for t in toks if t.startswith("--")]
            paths = [t for t in toks if not t.startswith("--")]
            srcs = paths[:-1]
            frm = next((o.split("=", 1)[1] for o in opts if o.startswith("--from=")), None)
            if frm is not None:
                names = [s["name"] for s in stages[:-1]]
                rep.check(frm in names, f"{where}: COPY --from={frm} names an earlier stage", f"stages: {names}")
                continue
            for s in srcs:
                src = s.rstrip("/") or "."
                ok = (root / src).exists()
                rep.check(ok, f"{where}: COPY source {s} exists")
                if ok:
                    files = [src] if (root / src).is_file() else [
                        str(p.relative_to(root)) for p in (root / src).rglob("*") if p.is_file()][:2000]
                    dropped = [f for f in files if not included(f)]
                    rep.check(not dropped, f"{where}: COPY source {s} is in the build context",
                              f"Dockerfile.dockerignore drops {dropped[:3]}")
                stages[-1]["copied"].append(src)
        elif word == "RUN":
            for script in sorted(set(re.findall(r"(?<![\w/])(scripts/[\w.-]+)", rest))):
                exists = (root / script).is_file() and os.access(root / script, os.X_OK)
                rep.check(exists, f"{where}: RUN calls {script}, an executable file")
                copied = any(script == c or script.startswith(c + "/") or c == "." for c in stages[-1]["copied"])
                rep.check(copied, f"{where}: {script} is copied before the RUN that calls it")
            m = re.search(r"eval \"\$\((sed -n '[^']*' (scripts/[\w.-]+))\)\"", rest)
            if m:
                proc = subprocess.run(["bash", "-c", f'eval "$({m.group(1)})"; printf "%s\\n" "${{APT_PACKAGES[@]}}"'],
                                      cwd=root, capture_output=True, text=True)
                pkgs = proc.stdout.split()
                rep.check(proc.returncode == 0 and {"cmake", "ninja-build"} <= set(pkgs),
                          f"{where}: APT_PACKAGES extracts from {m.group(2)} ({len(pkgs)} packages)",
                          proc.stderr.strip() or f"got {pkgs}")
            if "scripts/build.sh" in rest:
                stages[-1]["build_run"] = rest
        elif word == "USER":
            stages[-1]["user"] = rest.split(":")[0]
        elif word == "EXPOSE":
            stages[-1]["expose"] |= {p.split("/")[0] for p in rest.split()}
        elif word == "HEALTHCHECK":
            stages[-1]["health"] = rest
        elif word in ("ENTRYPOINT", "CMD"):
            stages[-1]["entry"] = (stages[-1]["entry"] or "") + rest

    if not rep.check(len(stages) >= 2, "Dockerfile: a build stage and a runtime stage"):
        return
    build = next((s for s in stages if "build_run" in s), None)
    if rep.check(build is not None, "Dockerfile: a stage runs scripts/build.sh"):
        top = (root / "CMakeLists.txt").read_text()
        for sub in re.findall(r"add_subdirectory\((\w+)\)", top):
            if sub in ("tests", "benchmarks"):
                flag = f"-DSLUICE_BUILD_{sub.upper()}=OFF"
                rep.check(flag in build["build_run"], f"Dockerfile: {sub}/ is not copied, so the build passes {flag}")
            else:
                rep.check(sub in build["copied"], f"Dockerfile: CMake subdirectory {sub}/ is copied")
        for inc in sorted(set(re.findall(r"include\((cmake/[\w.]+)\)", top))):
            rep.check(any(inc.startswith(c + "/") for c in build["copied"]), f"Dockerfile: {inc} is copied")
    final = stages[-1]
    rep.check(final["user"] not in (None, "0", "root"), "Dockerfile: runtime stage runs as a non-root USER",
              f"USER {final['user']}")
    rep.check({"8000", "50051"} <= final["expose"], "Dockerfile: EXPOSE 8000 50051", f"{sorted(final['expose'])}")
    rep.check(bool(final["health"]) and "/health" in final["health"], "Dockerfile: HEALTHCHECK on /health")
    rep.check(bool(final["entry"]) and "sluice" in final["entry"], "Dockerfile: the entry point is sluice")
    rep.check(not final["copied"], "Dockerfile: the runtime stage copies from the build stage only",
              f"copies {final['copied']} from the context")


def check_readme(root: Path, rep: Report) -> None:
    path = root / "deploy/README.md"
    if not rep.check(path.is_file(), "deploy/README.md exists"):
        return
    text = path.read_text()
    for o in sorted(p.name for p in (root / "deploy/k8s/overlays").iterdir() if p.is_dir()):
        cmd = f"kubectl apply -k deploy/k8s/overlays/{o}"
        rep.check(cmd in text, f"deploy/README.md shows `{cmd}`")
    rep.check("docker build -f deploy/Dockerfile" in text, "deploy/README.md shows the image build")


# ---------------------------------------------------------------------------- driver


def run_all(root: Path, sluice: str | None) -> Report:
    rep = Report()
    help_known = None
    if sluice and os.access(sluice, os.X_OK):
        help_known = help_flags(sluice)
    elif sluice:
        rep.skip(f"--sluice {sluice}: not an executable (not built yet?); no --help comparison")
    flags = interface_flags(root)
    if not rep.check(len(flags) > 10, "docs/INTERFACES.md lists the serve flags", f"found {sorted(flags)}"):
        return rep
    for step in (lambda: lint_yaml(root, rep), lambda: validate_sources(root, rep),
                 lambda: validate_kustomizations(root, flags, help_known, rep),
                 lambda: check_dockerfile(root, rep), lambda: check_readme(root, rep)):
        try:
            step()
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            # A file broken past what the schemas report (a string where a number
            # belongs) may trip the cross-checks themselves: that is a failure too.
            rep.fail(f"could not finish a check, the files are malformed: {type(e).__name__}: {e}")
    return rep


# Each break must make the validator fail, with a failure line containing the hint.
BREAKS = [
    ("deploy/k8s/base/deployment.yaml", "containerPort: 8000", 'containerPort: "8000"', "containerPort"),
    ("deploy/k8s/base/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", "readOnlyRootFileSystem"),
    ("deploy/k8s/base/service.yaml", "    - name: grpc\n", "    - name: grpc\n   bad: indent\n", "yamllint"),
    ("deploy/k8s/base/servicemonitor.yaml", "interval: 15s", "interval: 15 seconds", "interval"),
    ("deploy/k8s/base/hpa.yaml", "name: vllm_num_requests_waiting", "name: vllm_requests_waiting", "adapter rule"),
    ("deploy/k8s/base/configmap.yaml", "    log-format: json\n", "    log-format: json\n    max-num-seq: 64\n", "max-num-seq"),
    ("deploy/k8s/base/secret-tenants.yaml", '"1111111111111111111111111111111111111111111111111111111111111111"',
     '"11111111"', "tenants file"),
    ("deploy/k8s/examples/inferencepool.yaml", "number: 8000", "number: 80000", "number"),
    ("deploy/k8s/overlays/gpu/kustomization.yaml", "          drain-timeout: 30", "          drain-timeout: 90",
     "terminationGracePeriodSeconds"),
    ("deploy/k8s/overlays/gpu/kustomization.yaml", "nvidia.com/gpu: 1\n                  limits", "nvidia.com/gpu: 2\n                  limits",
     "requests"),
    ("deploy/k8s/overlays/cpu-demo/kustomization.yaml", "failureThreshold: 18", "failureThreshold: many", "failureThreshold"),
    ("deploy/Dockerfile", "COPY server/ server/", "COPY srv/ srv/", "srv/"),
    ("deploy/Dockerfile", "COPY frontend/ frontend/\n", "", "frontend"),
    ("deploy/Dockerfile", "USER 10001:10001", "USER root", "non-root"),
]


def self_test(root: Path) -> int:
    failed = 0
    copied = ["deploy", "tests/deploy", "docs/INTERFACES.md", "scripts", "CMakeLists.txt"]
    for i, (rel, old, new, hint) in enumerate(BREAKS):
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            for entry in root.iterdir():
                if entry.name not in ("deploy", "tests", "docs", "scripts", "CMakeLists.txt"):
                    (t / entry.name).symlink_to(entry)
            for c in copied:
                src, dst = root / c, t / c
                dst.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
            target = t / rel
            text = target.read_text()
            if old not in text:
                print(f"SELFTEST {i}: FAIL: {rel} no longer contains {old!r}; update BREAKS")
                failed += 1
                continue
            target.write_text(text.replace(old, new, 1))
            with open(os.devnull, "w") as null:
                saved = sys.stdout
                sys.stdout = null
                try:
                    rep = run_all(t, None)
                finally:
                    sys.stdout = saved
            caught = [f for f in rep.failures if hint in f]
            if caught:
                print(f"SELFTEST {i}: caught {rel}: {old.strip()!r} -> {new.strip()!r}: {caught[0][:160]}")
            else:
                failed += 1
                print(f"SELFTEST {i}: FAIL: not caught: {rel}: {old.strip()!r} -> {new.strip()!r} "
                      f"(failures: {rep.failures[:3]})")
    print(f"self-test: {len(BREAKS) - failed} of {len(BREAKS)} breaks caught")
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2], help="repository root")
    ap.add_argument("--sluice", help="a built sluice binary: note config keys its `serve --help` lacks")
    ap.add_argument("--self-test", action="store_true", help="prove that broken files fail")
    args = ap.parse_args()
    root = args.root.resolve()
    if args.self_test:
        return self_test(root)
    rep = run_all(root, args.sluice)
    print(f"\n{rep.passes} passed, {len(rep.failures)} failed")
    for f in rep.failures:
        print(f"  FAIL {f}")
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
