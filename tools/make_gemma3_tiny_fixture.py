#!/usr/bin/env python3
"""Builds the tiny random Gemma 3 fixtures used by the C++ model tests.

Two fixtures are written (see tools/README.md for the file format):
  tests/fixtures/gemma3_tiny/       4 query heads, 1 KV head (MQA), query_pre_attn_scalar = head_dim
  tests/fixtures/gemma3_tiny_gqa2/  4 query heads, 2 KV heads (GQA group 2), scalar 24 != head_dim,
                                    7 layers so a sliding layer follows the global one

Each fixture holds the HF checkpoint (config.json + model.safetensors, f32), full-sequence logits
for several token-id prompts, per-layer hidden states for the longest prompt, and greedy
continuations computed with the KV cache. The script checks, before writing anything:
  * cached step-by-step logits equal full-sequence logits (max abs diff <= 1e-5);
  * `generate(do_sample=False)` agrees with a hand-rolled greedy loop;
  * an independent numpy implementation of gemma-models.md section 1.2 reproduces the HF
    logits (so the fixture and the written spec agree, including the sliding-window edge).

Run with the reference venv:  /work/main/.venv-tools/bin/python tools/make_gemma3_tiny_fixture.py
"""

import argparse
import json
import math
import os
import re
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 512
PROMPT_LENGTHS = [1, 5, 13, 40]
GREEDY_PROMPTS = [1, 2]  # indices into PROMPT_LENGTHS that also get a greedy continuation
GREEDY_STEPS = 16
BOS_ID = 2

FIXTURES = {
    "gemma3_tiny": dict(num_hidden_layers=6, num_key_value_heads=1, query_pre_attn_scalar=32,
                        seed=1234),
    "gemma3_tiny_gqa2": dict(num_hidden_layers=7, num_key_value_heads=2, query_pre_attn_scalar=24,
                             seed=4321),
    # The 270M's head dim (256) at tiny width: the size the CUDA attention kernels serve
    # (tests/gpu compares the GPU model with these logits).
    "gemma3_tiny_d256": dict(num_hidden_layers=6, num_key_value_heads=1, query_pre_attn_scalar=256,
                             head_dim=256, num_attention_heads=2, seed=2560),
}


def make_config(spec):
    n = spec["num_hidden_layers"]
    layer_types = ["full_attention" if i % 6 == 5 else "sliding_attention" for i in range(n)]
    return Gemma3TextConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=n,
        num_attention_heads=spec.get("num_attention_heads", 4),
        num_key_value_heads=spec["num_key_value_heads"],
        head_dim=spec.get("head_dim", 32),
        query_pre_attn_scalar=spec["query_pre_attn_scalar"],
        sliding_window=8,
        layer_types=layer_types,
        max_position_embeddings=256,
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 1e6},
            "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
        },
        rms_norm_eps=1e-6,
        # 0.1 instead of the default 0.02 so logits spread wider and greedy top-1/top-2 margins
        # sit far above f32 rounding noise.
        initializer_range=0.1,
        hidden_activation="gelu_pytorch_tanh",
        final_logit_softcapping=None,
        attn_logit_softcapping=None,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        dtype="float32",
    )


def build_model(spec):
    torch.manual_seed(spec["seed"])
    config = make_config(spec)
    config._attn_implementation = "eager"
    model = Gemma3ForCausalLM(config).to(torch.float32)
    # Norm weights initialise to 0 (scale 1+0); randomise them so the (1 + w) path matters.
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    model.eval()
    return model


def make_prompts(seed):
    rng = np.random.default_rng(seed)
    prompts = []
    for n in PROMPT_LENGTHS:
        ids = [BOS_ID] + [int(x) for x in rng.integers(0, VOCAB, size=n - 1)]
        prompts.append(ids)
    return prompts


# ---------------------------------------------------------------------------------------------
# Independent numpy forward pass (gemma-models.md section 1.2), f64 internally.
# ---------------------------------------------------------------------------------------------
def np_rms(x, w, eps):
    x = x.astype(np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * (1.0 + w)


def np_rope(x, theta):
    # x: [T, heads, d]; rotate-half pairing i <-> i + d/2.
    t, _, d = x.shape
    half = d // 2
    inv = theta ** (-np.arange(0, half, dtype=np.float64) * 2.0 / d)
    ang = np.arange(t, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def np_gelu_tanh(z):
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)))


def np_forward(sd, cfg, ids, window=None):
    g = lambda k: sd[k].astype(np.float64)
    eps, hd = cfg.rms_norm_eps, cfg.head_dim
    nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    w = cfg.sliding_window if window is None else window
    emb = g("model.embed_tokens.weight")
    x = emb[ids] * math.sqrt(cfg.hidden_size)
    t = len(ids)
    pos = np.arange(t)
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}."
        sliding = cfg.layer_types[l] == "sliding_attention"
        theta = cfg.rope_parameters[cfg.layer_types[l]]["rope_theta"]
        a = np_rms(x, g(p + "input_layernorm.weight"), eps)
        q = (a @ g(p + "self_attn.q_proj.weight").T).reshape(t, nq, hd)
        k = (a @ g(p + "self_attn.k_proj.weight").T).reshape(t, nkv, hd)
        v = (a @ g(p + "self_attn.v_proj.weight").T).reshape(t, nkv, hd)
        q = np_rope(np_rms(q, g(p + "self_attn.q_norm.weight"), eps), theta)
        k = np_rope(np_rms(k, g(p + "self_attn.k_norm.weight"), eps), theta)
        visible = pos[None, :] <= pos[:, None]
        if sliding:
            visible &= pos[None, :] > pos[:, None] - w
        out = np.zeros((t, nq, hd))
        for h in range(nq):
            kv = h // (nq // nkv)
            s = (q[:, h, :] @ k[:, kv, :].T) * cfg.query_pre_attn_scalar ** -0.5
            s = np.where(visible, s, -np.inf)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            out[:, h, :] = s @ v[:, kv, :]
        o = out.reshape(t, nq * hd) @ g(p + "self_attn.o_proj.weight").T
        x = x + np_rms(o, g(p + "post_attention_layernorm.weight"), eps)
        f = np_rms(x, g(p + "pre_feedforward_layernorm.weight"), eps)
        m = np_gelu_tanh(f @ g(p + "mlp.gate_proj.weight").T) * (f @ g(p + "mlp.up_proj.weight").T)
        m = m @ g(p + "mlp.down_proj.weight").T
        x = x + np_rms(m, g(p + "post_feedforward_layernorm.weight"), eps)
    y = np_rms(x, g("model.norm.weight"), eps)
    return y @ emb.T


# ---------------------------------------------------------------------------------------------
def dump_json(obj, path):
    """Indented JSON with every list of numbers on one line (keeps the file readable)."""
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    text = re.sub(r"\[([-0-9.eE+,\s]*)\]",
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1).strip()) + "]", text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == obj, f"{path}: compact JSON does not round-trip"


def write_f32(path, array):
    a = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
    a.tofile(path)
    return list(a.shape)


@torch.no_grad()
def full_logits(model, ids):
    return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()


@torch.no_grad()
def hidden_states(model, ids):
    """[L + 2, T, H]: scaled embedding, residual stream after each layer, final-norm output.

    Recorded with hooks because HF's output_hidden_states replaces the last layer's output
    with the final-norm output, which hides the residual after the last layer.
    """
    captured = []
    grab = lambda _m, _i, out: captured.append((out[0] if isinstance(out, tuple) else out)[0])
    inner = model.model
    hooks = [inner.embed_tokens.register_forward_hook(grab)]
    hooks += [layer.register_forward_hook(grab) for layer in inner.layers]
    hooks.append(inner.norm.register_forward_hook(grab))
    try:
        model(input_ids=torch.tensor([ids]), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    assert len(captured) == len(inner.layers) + 2
    return torch.stack(captured).numpy()


@torch.no_grad()
def greedy_cached(model, ids, steps):
    """Greedy decode with the KV cache: one prefill call, then one token per call."""
    out = model(input_ids=torch.tensor([ids]), use_cache=True)
    cache = out.cache
    step_logits = [out.logits[0, -1].clone()]
    new_ids = []
    for s in range(steps):
        nxt = int(torch.argmax(step_logits[-1]))
        new_ids.append(nxt)
        if s == steps - 1:
            break
        pos = len(ids) + s
        out = model(input_ids=torch.tensor([[nxt]]), cache=cache, use_cache=True,
                    position_ids=torch.tensor([[pos]]), cache_position=torch.tensor([pos]))
        cache = out.cache
        step_logits.append(out.logits[0, -1].clone())
    return new_ids, torch.stack(step_logits)


def top2_margin(row):
    top = torch.topk(row, 2).values
    return float(top[0] - top[1])


def make_fixture(name, spec, out_root):
    model = build_model(spec)
    cfg = model.config
    out_dir = os.path.join(out_root, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    for fname in os.listdir(out_dir):
        os.chmod(os.path.join(out_dir, fname), 0o644)  # save_pretrained leaves 0600
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}

    prompts = make_prompts(spec["seed"] + 2)
    meta = {
        "fixture": name,
        "dtype": "float32",
        "byte_order": "little",
        "vocab_size": VOCAB,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "layer_types": list(cfg.layer_types),
        "embed_scale": float(np.float32(math.sqrt(cfg.hidden_size))),
        "attn_scale": cfg.query_pre_attn_scalar ** -0.5,
        "seed": spec["seed"],
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "prompts": [],
        "greedy": [],
    }
    worst_np = 0.0
    worst_off = float("inf")
    for i, ids in enumerate(prompts):
        want_hidden = i == len(prompts) - 1
        logits = full_logits(model, ids).numpy()
        entry = {"index": i, "ids": ids, "logits_file": f"logits_{i}.bin",
                 "shape": write_f32(os.path.join(out_dir, f"logits_{i}.bin"), logits),
                 "argmax": [int(a) for a in logits.argmax(axis=-1)]}
        if want_hidden:
            hs = hidden_states(model, ids)
            assert np.max(np.abs(hs[-1] @ sd["model.embed_tokens.weight"].T - logits)) < 1e-4
            entry["hidden_file"] = f"hidden_{i}.bin"
            entry["hidden_shape"] = write_f32(os.path.join(out_dir, f"hidden_{i}.bin"), hs)
        meta["prompts"].append(entry)
        ref = np_forward(sd, cfg, ids)
        diff = float(np.max(np.abs(ref - logits)))
        worst_np = max(worst_np, diff)
        assert diff < 1e-4, f"{name} prompt {i}: numpy spec forward differs from HF by {diff}"
        if len(ids) > cfg.sliding_window + 1:
            # The fixture must catch a window off-by-one (W+1 visible keys).
            off = float(np.max(np.abs(np_forward(sd, cfg, ids, cfg.sliding_window + 1) - logits)))
            assert off > 1e-2, f"{name} prompt {i}: window W+1 changes logits by only {off}"
            worst_off = min(worst_off, off)

    worst_cache = 0.0
    for pi in GREEDY_PROMPTS:
        ids = prompts[pi]
        new_ids, step_logits = greedy_cached(model, ids, GREEDY_STEPS)
        gen = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=GREEDY_STEPS,
                             min_new_tokens=GREEDY_STEPS, eos_token_id=None, pad_token_id=0,
                             use_cache=True)
        gen_ids = [int(t) for t in gen[0, len(ids):]]
        assert gen_ids == new_ids, f"{name}: generate() {gen_ids} != cached loop {new_ids}"
        full = full_logits(model, ids + new_ids[:-1])[len(ids) - 1:]
        diff = float(torch.max(torch.abs(full - step_logits)))
        worst_cache = max(worst_cache, diff)
        assert diff <= 1e-5, f"{name}: cached vs full logits differ by {diff}"
        fname = f"greedy_{pi}_step_logits.bin"
        meta["greedy"].append({
            "prompt_index": pi,
            "new_ids": new_ids,
            "step_logits_file": fname,
            "step_logits_shape": write_f32(os.path.join(out_dir, fname), step_logits.numpy()),
            "top1_top2_margin": [top2_margin(r) for r in step_logits],
        })
    meta["checks"] = {"max_abs_cached_vs_full": worst_cache, "max_abs_numpy_spec_vs_hf": worst_np,
                      "min_max_abs_window_plus_1_vs_hf": worst_off}
    dump_json(meta, os.path.join(out_dir, "prompts.json"))
    print(f"{name}: cached-vs-full {worst_cache:.3g}, numpy-spec-vs-hf {worst_np:.3g}, "
          f"window W+1 moves logits by >= {worst_off:.3g}, "
          f"min greedy margin {min(min(g['top1_top2_margin']) for g in meta['greedy']):.4f}")
    print(f"{name}: files {sorted(os.listdir(out_dir))}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "fixtures"))
    ap.add_argument("--only", help="write just this fixture")
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    for name, spec in FIXTURES.items():
        if args.only is None or args.only == name:
            make_fixture(name, spec, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
