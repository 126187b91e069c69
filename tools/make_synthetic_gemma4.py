#!/usr/bin/env python3
"""Writes a synthetic, full-size Gemma 4 checkpoint: a released variant's real shapes with
random bf16 values, sharded the way Hugging Face publishes it.

No real Gemma 4 checkpoint can be downloaded here, so this is how the loader, the memory
plan and the CPU forward are exercised at full size (docs/gemma4-plans.md, "Full-size
synthetic E4B"). The output directory gets:

  config.json, generation_config.json        copied from --config-dir
  model-0000i-of-0000n.safetensors           bf16 tensors, at most --shard-bytes each
  model.safetensors.index.json               {"metadata": {"total_size"}, "weight_map"}

Tensor names are those of Gemma4ForConditionalGeneration's text model
(`model.language_model.*`, the names engine/models/weight_binder.cpp binds), including the
k_proj/v_proj/k_norm that published checkpoints still carry on KV-shared layers (the loader
must skip them). No vision or audio tower is written.

Values: matrices uniform in +-sqrt(3 / fan_in) (unit-variance outputs for unit-variance
inputs; the embedding and PLE tables are scaled by sqrt(H) and sqrt(P) in the model, so
their rows come out with unit variance too), norm weights uniform in [0.9, 1.1],
layer_scalar uniform in [0.8, 1.0]. Every tensor draws from its own generator seeded by
(--seed, crc32(name)), so the bytes do not depend on the shard size.

Dense variants with per-layer embeddings and KV sharing (E2B, E4B), and K=V global layers,
are supported; MoE configs (26B-A4B) are refused: they would not fit this machine anyway.

Needs numpy only. Usage:
  .venv-tools/bin/python tools/make_synthetic_gemma4.py \
      --config-dir tests/fixtures/gemma4_configs/e4b --out /tmp/sluice-e4b-synthetic
"""

import argparse
import json
import os
import shutil
import struct
import sys
import time
import zlib

import numpy as np

PREFIX = "model.language_model."
CHUNK_ELEMENTS = 1 << 25  # 32 Mi elements: 128 MiB of f32 scratch per step


def text_config(config):
    return config.get("text_config", config)


def tensor_list(tc):
    """(name, shape, kind) for every text tensor, in the order they are written. kind is
    ("matrix", fan_in), ("norm",) or ("scalar",)."""
    if tc.get("enable_moe_block"):
        sys.exit("make_synthetic_gemma4: MoE configs are not supported (dense E2B/E4B/31B only)")
    if tc.get("per_layer_config"):
        sys.exit("make_synthetic_gemma4: per_layer_config overrides are not supported; give the "
                 "published layout (global_head_dim, num_global_key_value_heads)")
    H = tc["hidden_size"]
    V = tc["vocab_size"]
    L = tc["num_hidden_layers"]
    nq = tc["num_attention_heads"]
    P = tc.get("hidden_size_per_layer_input") or 0
    V_ple = tc.get("vocab_size_per_layer_input") or V
    types = tc["layer_types"]
    assert len(types) == L, "layer_types has %d entries for %d layers" % (len(types), L)
    n_shared = tc.get("num_kv_shared_layers") or 0
    first_shared = L - n_shared
    k_eq_v = bool(tc.get("attention_k_eq_v"))
    double_wide = bool(tc.get("use_double_wide_mlp"))

    def matrix(name, rows, cols):
        return (name, [rows, cols], ("matrix", cols))

    def norm(name, n):
        return (name, [n], ("norm",))

    out = [matrix(PREFIX + "embed_tokens.weight", V, H)]
    if P > 0:
        out.append(matrix(PREFIX + "embed_tokens_per_layer.weight", V_ple, L * P))
        out.append(matrix(PREFIX + "per_layer_model_projection.weight", L * P, H))
        out.append(norm(PREFIX + "per_layer_projection_norm.weight", P))
    for i, t in enumerate(types):
        glob = t == "full_attention"
        d = (tc.get("global_head_dim") or tc["head_dim"]) if glob else tc["head_dim"]
        nkv = (tc.get("num_global_key_value_heads") or tc["num_key_value_heads"]) if glob else tc["num_key_value_heads"]
        inter = tc["intermediate_size"] * (2 if double_wide and i >= first_shared else 1)
        p = PREFIX + "layers.%d." % i
        out.append(norm(p + "input_layernorm.weight", H))
        out.append(matrix(p + "self_attn.q_proj.weight", nq * d, H))
        # Published checkpoints keep K/V weights on KV-shared layers too (never read).
        out.append(matrix(p + "self_attn.k_proj.weight", nkv * d, H))
        if not (glob and k_eq_v):
            out.append(matrix(p + "self_attn.v_proj.weight", nkv * d, H))
        out.append(matrix(p + "self_attn.o_proj.weight", H, nq * d))
        out.append(norm(p + "self_attn.q_norm.weight", d))
        out.append(norm(p + "self_attn.k_norm.weight", d))
        out.append(norm(p + "post_attention_layernorm.weight", H))
        out.append(norm(p + "pre_feedforward_layernorm.weight", H))
        out.append(matrix(p + "mlp.gate_proj.weight", inter, H))
        out.append(matrix(p + "mlp.up_proj.weight", inter, H))
        out.append(matrix(p + "mlp.down_proj.weight", H, inter))
        out.append(norm(p + "post_feedforward_layernorm.weight", H))
        if P > 0:
            out.append(matrix(p + "per_layer_input_gate.weight", P, H))
            out.append(matrix(p + "per_layer_projection.weight", H, P))
            out.append(norm(p + "post_per_layer_input_norm.weight", H))
        out.append((p + "layer_scalar", [1], ("scalar",)))
    out.append(norm(PREFIX + "norm.weight", H))
    return out


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def to_bf16(x):
    """float32 array -> uint16 bf16 bits, round to nearest even (inputs are finite)."""
    u = x.view(np.uint32)
    u += np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    return (u >> np.uint32(16)).astype(np.uint16)


def write_tensor(f, name, shape, kind, seed):
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if kind[0] == "matrix":
        lo, hi = -np.sqrt(3.0 / kind[1]), np.sqrt(3.0 / kind[1])
    elif kind[0] == "norm":
        lo, hi = 0.9, 1.1
    else:
        lo, hi = 0.8, 1.0
    n = numel(shape)
    done = 0
    while done < n:
        m = min(CHUNK_ELEMENTS, n - done)
        x = rng.random(m, dtype=np.float32)
        x *= np.float32(hi - lo)
        x += np.float32(lo)
        to_bf16(x).tofile(f)
        done += m


def shard_plan(tensors, shard_bytes):
    shards, cur, size = [], [], 0
    for t in tensors:
        b = 2 * numel(t[1])
        if cur and size + b > shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += b
    if cur:
        shards.append(cur)
    return shards


def write_shard(path, tensors, seed):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in tensors:
        b = 2 * numel(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + b]}
        offset += b
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keeps the data (and every bf16 tensor) aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape, kind in tensors:
            write_tensor(f, name, shape, kind, seed)
    return offset


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-dir", required=True, help="directory with the variant's config.json")
    ap.add_argument("--out", required=True, help="output directory (replaced if it exists)")
    ap.add_argument("--shard-bytes", type=int, default=5 * 10**9, help="largest shard (default 5 GB)")
    ap.add_argument("--seed", type=int, default=20240)
    args = ap.parse_args()

    with open(os.path.join(args.config_dir, "config.json")) as f:
        config = json.load(f)
    tensors = tensor_list(text_config(config))
    shards = shard_plan(tensors, args.shard_bytes)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    for extra in ("config.json", "generation_config.json"):
        src = os.path.join(args.config_dir, extra)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(args.out, extra))

    weight_map, total, t0 = {}, 0, time.time()
    for i, group in enumerate(shards):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        total += write_shard(os.path.join(args.out, fname), group, args.seed)
        for name, _, _ in group:
            weight_map[name] = fname
        print("%s: %d tensors, %.2f GB written, %.0f s" % (fname, len(group), total / 1e9, time.time() - t0),
              flush=True)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    params = sum(numel(s) for _, s, _ in tensors)
    print("%s: %d tensors, %d params, %d bytes in %d shards" % (args.out, len(tensors), params, total, len(shards)))


if __name__ == "__main__":
    main()
