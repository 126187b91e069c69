#!/usr/bin/env python3
"""What ptxas gives each CUDA kernel of kernels/cuda: registers, shared memory, stack and
spills, per architecture, without a GPU.

Recompiles every kernels/cuda/*.cu with the exact nvcc command of a configured build
(its compile_commands.json) plus --resource-usage, for the build's architecture or the
ones named, and prints one row per kernel entry:

    tools/cuda_resource_usage.py build-gpu                 # the build's own (sm_90a)
    tools/cuda_resource_usage.py build-gpu --arch 80 90a   # any list
    tools/cuda_resource_usage.py build-gpu --spills-only   # the rows that spill

A kernel whose registers times its launch bound exceeds 64 K cannot launch ("too many
resources requested"); ptxas caps registers at __launch_bounds__ so that never happens
for the block sizes the bounds state, and spills instead: the spill columns are where to
look after a kernel change. Exit status 0; the table is the output.
"""

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ENTRY = re.compile(r"Compiling entry function '(\S+)' for '(\S+)'")
FUNC = re.compile(r"Function properties for (\S+)")
PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    short = []
    for n in out.stdout.splitlines():
        n = re.sub(r"sluice::kernels::cuda::(moe_internal::)?(\(anonymous namespace\)::)?", "", n)
        n = re.sub(r"_INTERNAL_\w+::", "", n)
        short.append(n)
    return short


def kernel_commands(build):
    db = json.loads((build / "compile_commands.json").read_text())
    for entry in db:
        f = entry["file"]
        if f.endswith(".cu") and "/kernels/cuda/" in f:
            yield Path(f), entry


def usage(entry, arch, obj):
    args = shlex.split(entry["command"])
    args[args.index("-o") + 1] = obj
    if arch:
        args = [a for a in args if not a.startswith("--generate-code") and
                not a.startswith("-gencode")]
        args += [f"--generate-code=arch=compute_{arch},code=[sm_{arch}]"]
    args += ["--resource-usage"]
    r = subprocess.run(args, capture_output=True, text=True, cwd=entry["directory"])
    if r.returncode != 0:
        sys.exit(f"nvcc failed on {entry['file']}:\n{r.stderr}")
    # Entries report "Function properties" (stack, spills) then "Used" (registers, smem);
    # non-inlined device functions report their properties alone (registers: -1).
    entries, props, arch_of, pending = [], {}, {}, None
    for line in (r.stdout + r.stderr).splitlines():
        if m := ENTRY.search(line):
            entries.append(m.group(1))
            arch_of[m.group(1)] = m.group(2)
        elif m := FUNC.search(line):
            pending = m.group(1)
        elif pending and (m := PROPS.search(line)):
            props[pending] = tuple(int(x) for x in m.groups())
            pending = None
        elif entries and (m := USED.search(line)):
            arch_of[entries[-1]] = (arch_of[entries[-1]], int(m.group(1)), int(m.group(2) or 0))
    rows = []
    for e in entries:
        a, regs, smem = arch_of[e]
        rows.append((e, a, regs, smem) + props.get(e, (0, 0, 0)))
    callee_arch = rows[-1][1] if rows else "?"
    for f, p in props.items():
        if f not in arch_of:
            rows.append((f, callee_arch, -1, 0) + p)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", type=Path, help="a configured build with CUDA (compile_commands.json)")
    ap.add_argument("--arch", nargs="*", default=[None], help="e.g. 80 90a (default: the build's)")
    ap.add_argument("--spills-only", action="store_true")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path, entry in sorted(kernel_commands(a.build)):
            for arch in a.arch:
                for r in usage(entry, arch, str(Path(tmp) / "k.o")):
                    rows.append((path.name,) + r)
    if not rows:
        sys.exit(f"no kernels/cuda/*.cu in {a.build}/compile_commands.json (configured with CUDA?)")
    names = demangle([r[1] for r in rows])
    print(f"{'file':22} {'arch':7} {'regs':>4} {'smem':>6} {'stack':>5} {'spill st':>8} "
          f"{'spill ld':>8}  kernel")
    for r, name in zip(rows, names):
        file, _, arch, regs, smem, stack, st, ld = r
        if a.spills_only and st == 0 and ld == 0:
            continue
        regs = "-" if regs < 0 else str(regs)
        print(f"{file:22} {arch:7} {regs:>4} {smem:6d} {stack:5d} {st:8d} {ld:8d}  {name}")


if __name__ == "__main__":
    main()
