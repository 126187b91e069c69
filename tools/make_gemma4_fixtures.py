#!/usr/bin/env python3
"""Builds the tiny random Gemma 4 reference fixtures (transformers is the reference).

Fixtures written under tests/fixtures/ (see the "Gemma 4 fixtures" section of tools/README.md):
  gemma4_e2b_tiny/             E2B-like: PLE, KV sharing (last 4 of 10 layers), double-wide MLP
  gemma4_31b_tiny/             31B-like dense: K=V global layers (no v_proj), 2 KV / 1 global KV
  gemma4_moe_tiny/             26B-A4B-like: dense MLP + 8-expert top-2 MoE per layer, K=V globals
  gemma4_e2b_tiny_multimodal/  gemma4_e2b_tiny's weights as Gemma4ForConditionalGeneration with tiny
                               vision/audio towers, hub-style config.json (real-checkpoint layout)
  gemma4_e2b_realdims/         E2B-like with the real head dims 256 / 512 (GPU parity)
  gemma4_moe_realdims/         MoE-like with the real head dims 256 / 512 (GPU parity)
  gemma4_configs/              config.json of E2B, E4B, 26B-A4B, 31B + expected_plan.json

Each model fixture holds the checkpoint (config.json, generation_config.json, model.safetensors,
f32), full-sequence logits for 4 token-id prompts, greedy continuations computed with the KV cache
and prompts.json. Before anything is written the script checks:
  * cached step-by-step logits equal the full-sequence logits (max abs diff <= 1e-5);
  * generate(do_sample=False) returns the hand-rolled greedy tokens;
  * an independent numpy (f64) forward written from gemma-models.md section 2 reproduces HF;
  * the per-layer plan derived from the spec equals the modules transformers builds;
  * MoE routing is not degenerate and has no top-k near-tie (gap >= 1e-3) on recorded tokens;
  * the saved checkpoint reloads to identical logits; the multimodal copy equals the text model.

Run with the reference venv:  /work/main/.venv-tools/bin/python tools/make_gemma4_fixtures.py
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
from safetensors.torch import load_file, save_file
from transformers import (Gemma4AudioConfig, Gemma4Config, Gemma4ForCausalLM,
                          Gemma4ForConditionalGeneration, Gemma4TextConfig, Gemma4VisionConfig,
                          GenerationConfig)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 512
BOS_ID = 2
PROMPT_LENGTHS = [1, 6, 13, 40]
GREEDY_PROMPTS = [1, 2]  # prompt 1 crosses the window while decoding, prompt 2 already in prefill
GREEDY_STEPS = 16
HIDDEN_PROMPT = 2  # per-layer hidden states are dumped for this prompt (gemma4_e2b_tiny only)
CACHE_TOL = 1e-5
NUMPY_TOL = 1e-4
ROUTER_GAP_MIN = 1e-3
GREEDY_MARGIN_MIN = 1e-3
GREEDY_DISTINCT_MIN = 4  # a continuation that repeats one token tests little
MAX_SEED_TRIES = 40
S, F = "sliding_attention", "full_attention"

# Initialisation (all explicit, from one torch.Generator per fixture; see README):
EMBED_LOGIT_STD = 0.6  # embed_tokens ~ N(0, 0.36/H): tied-head logits ~N(0, 0.6^2), |max| ~3
ROUTER_PROJ_STD = 1.5  # router logits ~N(0, 1.5^2): spread, and the 2nd expert still gets weight
QK_NORM_GAIN = 1.0  # q_norm/k_norm ~ U(0.5,1.5)*d^-1/4: attention scores have std ~1.1 for any d
NORM_RANGE = (0.5, 1.5)  # every other norm weight, router.scale, router.per_expert_scale
LAYER_SCALAR_RANGE = (0.5, 1.0)  # real checkpoints hold values below 1

COMMON = dict(vocab_size=VOCAB, vocab_size_per_layer_input=VOCAB, max_position_embeddings=256,
              final_logit_softcapping=30.0, rms_norm_eps=1e-6,
              hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, pad_token_id=0,
              eos_token_id=1, bos_token_id=2,
              rope_parameters={S: {"rope_type": "default", "rope_theta": 10000.0},
                               F: {"rope_type": "proportional", "partial_rotary_factor": 0.25,
                                   "rope_theta": 1000000.0}})

FIXTURES = {
    "gemma4_e2b_tiny": dict(
        seed=4401, hidden_size=64, intermediate_size=128, layer_types=[S, S, S, S, F] * 2,
        num_attention_heads=4, num_key_value_heads=1, num_global_key_value_heads=None,
        head_dim=32, global_head_dim=64, sliding_window=8, hidden_size_per_layer_input=16,
        num_kv_shared_layers=4, use_double_wide_mlp=True, attention_k_eq_v=False,
        use_bidirectional_attention=None, dump_hidden=True,
        multimodal="gemma4_e2b_tiny_multimodal"),
    "gemma4_31b_tiny": dict(
        seed=8402, hidden_size=64, intermediate_size=128, layer_types=([S] * 5 + [F]) * 2,
        num_attention_heads=4, num_key_value_heads=2, num_global_key_value_heads=1,
        head_dim=32, global_head_dim=64, sliding_window=8, hidden_size_per_layer_input=0,
        num_kv_shared_layers=0, attention_k_eq_v=True, use_bidirectional_attention="vision"),
    "gemma4_moe_tiny": dict(
        seed=4403, hidden_size=64, intermediate_size=48, layer_types=[S] * 5 + [F],
        num_attention_heads=4, num_key_value_heads=2, num_global_key_value_heads=1,
        head_dim=32, global_head_dim=64, sliding_window=8, hidden_size_per_layer_input=0,
        num_kv_shared_layers=0, attention_k_eq_v=True, use_bidirectional_attention="vision",
        enable_moe_block=True, num_experts=8, top_k_experts=2, moe_intermediate_size=32),
    "gemma4_e2b_realdims": dict(
        seed=5404, hidden_size=96, intermediate_size=128, layer_types=[S, F, S, S, F],
        num_attention_heads=2, num_key_value_heads=1, num_global_key_value_heads=None,
        head_dim=256, global_head_dim=512, sliding_window=16, hidden_size_per_layer_input=16,
        num_kv_shared_layers=2, use_double_wide_mlp=True, attention_k_eq_v=False,
        use_bidirectional_attention=None),
    "gemma4_moe_realdims": dict(
        seed=6405, hidden_size=96, intermediate_size=64, layer_types=[S, F, S, F],
        num_attention_heads=2, num_key_value_heads=2, num_global_key_value_heads=1,
        head_dim=256, global_head_dim=512, sliding_window=16, hidden_size_per_layer_input=0,
        num_kv_shared_layers=0, attention_k_eq_v=True, use_bidirectional_attention="vision",
        enable_moe_block=True, num_experts=8, top_k_experts=2, moe_intermediate_size=32),
}
SPEC_ONLY_KEYS = {"seed", "dump_hidden", "multimodal"}


def text_config_kwargs(spec):
    kw = dict(COMMON)
    kw.update({k: v for k, v in spec.items() if k not in SPEC_ONLY_KEYS})
    kw["num_hidden_layers"] = len(spec["layer_types"])
    kw["layer_types"] = list(spec["layer_types"])
    return kw


def make_text_config(spec):
    cfg = Gemma4TextConfig(**text_config_kwargs(spec))
    cfg._attn_implementation = "eager"
    cfg._experts_implementation = "eager"  # the default is "grouped_mm" (batched kernels)
    return cfg


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------
def _uniform(gen, shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float32)


def _normal(gen, shape, std):
    return torch.randn(shape, generator=gen, dtype=torch.float32) * std


def text_tensor_init(name, shape, gen, cfg):
    """Value for one text-model tensor (names without the 'model.' prefix)."""
    h = cfg.hidden_size
    if name == "embed_tokens.weight":
        return _normal(gen, shape, EMBED_LOGIT_STD / math.sqrt(h))
    if name == "embed_tokens_per_layer.weight":
        return _normal(gen, shape, 1.0 / math.sqrt(cfg.hidden_size_per_layer_input))
    if name.endswith("layer_scalar"):
        return _uniform(gen, shape, *LAYER_SCALAR_RANGE)
    if name.endswith(("self_attn.q_norm.weight", "self_attn.k_norm.weight")):
        return _uniform(gen, shape, *NORM_RANGE) * (QK_NORM_GAIN * shape[0] ** -0.25)
    if re.search(r"norm(_\d+)?\.weight$", name) or name.endswith(("router.scale",
                                                                      "router.per_expert_scale")):
        return _uniform(gen, shape, *NORM_RANGE)
    if name.endswith("router.proj.weight"):
        return _normal(gen, shape, ROUTER_PROJ_STD)
    if name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
        return _normal(gen, shape, 1.0 / math.sqrt(shape[2]))
    if name.endswith(".weight") and len(shape) == 2:  # every Linear: outputs ~N(0, 1)
        return _normal(gen, shape, 1.0 / math.sqrt(shape[1]))
    raise ValueError(f"no init rule for text tensor {name} {tuple(shape)}")


def tower_tensor_init(name, shape, gen):
    """Vision/audio tower values: finite and non-trivial (the text path never reads them)."""
    if len(shape) == 0:  # Gemma4ClippableLinear bounds; real checkpoints hold finite values
        mag = float(_uniform(gen, (), 4.0, 8.0))
        return torch.tensor(-mag if name.endswith("_min") else mag)
    if "norm" in name or name.endswith("per_dim_scale"):
        return _uniform(gen, shape, *NORM_RANGE)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 16
    return _normal(gen, shape, 1.0 / math.sqrt(fan_in))


def state_tensors(module):
    """Parameters and persistent buffers by state_dict name (tied lm_head excluded)."""
    out = dict(module.named_parameters())
    persistent = set(module.state_dict().keys())
    out.update({n: b for n, b in module.named_buffers() if n in persistent})
    return out


@torch.no_grad()
def build_text_model(spec, seed):
    cfg = make_text_config(spec)
    torch.manual_seed(seed)
    model = Gemma4ForCausalLM(cfg).to(torch.float32).eval()
    assert model.lm_head.weight is model.model.embed_tokens.weight, "LM head must be tied"
    gen = torch.Generator().manual_seed(seed)
    for name, t in sorted(state_tensors(model.model).items()):
        t.copy_(text_tensor_init(name, tuple(t.shape), gen, cfg))
    return model


# ---------------------------------------------------------------------------------------------
# Per-layer plan: from the spec (gemma-models.md section 2) and from transformers' modules
# ---------------------------------------------------------------------------------------------
def spec_plan(c):
    """Per-layer plan computed from config.json-style keys only (hub layout)."""
    types = c["layer_types"]
    n = len(types)
    first = n - c.get("num_kv_shared_layers", 0)
    k_eq_v = bool(c.get("attention_k_eq_v"))
    plan = []
    for l, t in enumerate(types):
        full = t == F
        dl = c.get("global_head_dim", 512) if full else c["head_dim"]
        kvh = c["num_key_value_heads"]
        if full and k_eq_v and c.get("num_global_key_value_heads") is not None:
            kvh = c["num_global_key_value_heads"]
        shared = l >= first
        src = max(j for j in range(first) if types[j] == t) if shared else l
        inter = c["intermediate_size"] * (2 if c.get("use_double_wide_mlp") and shared else 1)
        rope = c["rope_parameters"][t]
        pairs = int(rope.get("partial_rotary_factor", 1.0) * dl // 2)
        plan.append({"layer": l, "type": t, "head_dim": dl, "num_kv_heads": kvh,
                     "kv_shared": shared, "kv_source_layer": src,
                     "has_v_proj": None if shared else not (full and k_eq_v),
                     "intermediate_size": inter, "rope_theta": rope["rope_theta"],
                     "rope_rotated_pairs": pairs})
    return plan


def hf_plan(text_model, cfg):
    """The same plan read back from the modules transformers built (text_model: Gemma4TextModel)."""
    modes = cfg.kv_sharing_modes
    store = {cfg.layer_types[i]: i for i, m in enumerate(modes) if m == "store"}
    rope = text_model.rotary_emb  # inv_freq recomputed on the CPU (the model may be on "meta")
    rot = {}
    for t in set(cfg.layer_types):
        inv_freq, _ = rope.rope_init_fns[t](cfg.per_layer_config[t], "cpu", layer_type=t)
        rot[t] = int((inv_freq != 0).sum())
    plan = []
    for l, layer in enumerate(text_model.layers):
        a = layer.self_attn
        t = cfg.layer_types[l]
        shared = a.is_kv_shared_layer
        kvh = cfg.num_attention_heads // a.num_key_value_groups
        if not shared:
            assert a.k_proj.weight.shape[0] == kvh * a.head_dim
        plan.append({"layer": l, "type": t, "head_dim": a.head_dim, "num_kv_heads": kvh,
                     "kv_shared": shared, "kv_source_layer": store[t] if shared else l,
                     "has_v_proj": None if shared else a.v_proj is not None,
                     "intermediate_size": layer.mlp.intermediate_size,
                     "rope_theta": cfg.rope_parameters[t]["rope_theta"],
                     "rope_rotated_pairs": rot[t]})
    return plan


def plan_columns(plan):
    """List of per-layer dicts -> dict of per-layer lists (the JSON form)."""
    return {k: [p[k] for p in plan] for k in plan[0]}


def spec_text_config(spec):
    """config.json-style dict in the hub layout (what spec_plan() and np_forward() read)."""
    d = dict(COMMON)
    d.update({k: v for k, v in spec.items() if k not in SPEC_ONLY_KEYS})
    return d


# ---------------------------------------------------------------------------------------------
# Independent numpy forward (gemma-models.md section 2.3), f64 internally
# ---------------------------------------------------------------------------------------------
def np_rms(x, w, eps):
    r = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return r if w is None else r * w


def np_rope(x, pos, theta, pairs):
    d = x.shape[-1]
    inv = np.zeros(d // 2)
    inv[:pairs] = theta ** (-np.arange(pairs, dtype=np.float64) * 2.0 / d)
    ang = pos[:, None].astype(np.float64) * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def np_gelu(z):
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)))


def np_forward(sd, c, plan, ids, window=None, trace=None):
    """sd: text tensors without the 'model.' prefix as f64. Returns softcapped logits [T, V];
    appends the residual stream after each layer to `trace` when given."""
    g = lambda k: sd[k]
    eps, h, nq = c["rms_norm_eps"], c["hidden_size"], c["num_attention_heads"]
    w = c["sliding_window"] if window is None else window
    n, t = len(plan), len(ids)
    pos = np.arange(t)
    x = g("embed_tokens.weight")[ids] * float(np.float32(math.sqrt(h)))
    p_dim = c.get("hidden_size_per_layer_input") or 0
    if p_dim:
        tok = (g("embed_tokens_per_layer.weight")[ids] * math.sqrt(p_dim)).reshape(t, n, p_dim)
        ctx = (x @ g("per_layer_model_projection.weight").T) * h ** -0.5
        ctx = np_rms(ctx.reshape(t, n, p_dim), g("per_layer_projection_norm.weight"), eps)
        ple = (ctx + tok) * 2 ** -0.5
    kv = {}
    for l, pl in enumerate(plan):
        p = f"layers.{l}."
        dl, kvh = pl["head_dim"], pl["num_kv_heads"]
        a = np_rms(x, g(p + "input_layernorm.weight"), eps)
        q = np_rms((a @ g(p + "self_attn.q_proj.weight").T).reshape(t, nq, dl),
                   g(p + "self_attn.q_norm.weight"), eps)
        q = np_rope(q, pos, pl["rope_theta"], pl["rope_rotated_pairs"])
        if not pl["kv_shared"]:
            kr = (a @ g(p + "self_attn.k_proj.weight").T).reshape(t, kvh, dl)
            vr = kr  # K=V layers: V is the raw K projection
            if pl["has_v_proj"]:
                vr = (a @ g(p + "self_attn.v_proj.weight").T).reshape(t, kvh, dl)
            k = np_rope(np_rms(kr, g(p + "self_attn.k_norm.weight"), eps), pos, pl["rope_theta"],
                        pl["rope_rotated_pairs"])
            kv[l] = (k, np_rms(vr, None, eps))
        k, v = kv[pl["kv_source_layer"]]
        visible = pos[None, :] <= pos[:, None]
        if pl["type"] == S:
            visible &= pos[None, :] > pos[:, None] - w
        out = np.zeros((t, nq, dl))
        for hq in range(nq):
            kh = hq // (nq // kvh)
            s = np.where(visible, q[:, hq, :] @ k[:, kh, :].T, -np.inf)  # scale 1.0
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            out[:, hq, :] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, kh, :]
        o = out.reshape(t, nq * dl) @ g(p + "self_attn.o_proj.weight").T
        x = x + np_rms(o, g(p + "post_attention_layernorm.weight"), eps)
        f = np_rms(x, g(p + "pre_feedforward_layernorm.weight"), eps)
        m = np_gelu(f @ g(p + "mlp.gate_proj.weight").T) * (f @ g(p + "mlp.up_proj.weight").T)
        m = m @ g(p + "mlp.down_proj.weight").T
        if c.get("enable_moe_block"):
            m = np_rms(m, g(p + "post_feedforward_layernorm_1.weight"), eps)
            r = np_rms(x, None, eps) * g(p + "router.scale") * h ** -0.5
            logits = r @ g(p + "router.proj.weight").T
            prob = np.exp(logits - logits.max(axis=-1, keepdims=True))
            prob /= prob.sum(axis=-1, keepdims=True)
            e_in = np_rms(x, g(p + "pre_feedforward_layernorm_2.weight"), eps)
            gate_up, down = g(p + "experts.gate_up_proj"), g(p + "experts.down_proj")
            im = c["moe_intermediate_size"]
            moe = np.zeros_like(x)
            for i in range(t):
                top = np.argsort(-prob[i], kind="stable")[: c["top_k_experts"]]
                wts = prob[i, top] / prob[i, top].sum() * g(p + "router.per_expert_scale")[top]
                for e, we in zip(top, wts):
                    gu = gate_up[e] @ e_in[i]
                    moe[i] += we * (down[e] @ (np_gelu(gu[:im]) * gu[im:]))
            m = m + np_rms(moe, g(p + "post_feedforward_layernorm_2.weight"), eps)
        x = x + np_rms(m, g(p + "post_feedforward_layernorm.weight"), eps)
        if p_dim:
            u = np_gelu(x @ g(p + "per_layer_input_gate.weight").T) * ple[:, l, :]
            u = u @ g(p + "per_layer_projection.weight").T
            x = x + np_rms(u, g(p + "post_per_layer_input_norm.weight"), eps)
        x = x * g(p + "layer_scalar")[0]
        if trace is not None:
            trace.append(x)
    z = np_rms(x, g("norm.weight"), eps) @ g("embed_tokens.weight").T
    cap = c["final_logit_softcapping"]
    return cap * np.tanh(z / cap)


# ---------------------------------------------------------------------------------------------
# Running transformers
# ---------------------------------------------------------------------------------------------
def dump_json(obj, path):
    """Indented JSON with every list of scalars (numbers, plain strings, null) on one line."""
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    text = re.sub(r"\[([-0-9a-zA-Z_.+,\s\"]*)\]",
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1).strip()) + "]", text)
    text = re.sub(r"\[\s*(\[[^\[\]\n]*\](?:,\s*\[[^\[\]\n]*\])*)\s*\]",  # lists of such lists
                  lambda m: "[" + re.sub(r"\],\s+\[", "], [", m.group(1)) + "]", text)
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
def greedy_cached(model, ids, steps):
    """Greedy decode with the KV cache: one prefill call, then one token per call."""
    out = model(input_ids=torch.tensor([ids]), use_cache=True)
    cache = out.cache
    step_logits = [out.logits[0, -1].clone()]
    new_ids = []
    for s in range(steps):
        new_ids.append(int(torch.argmax(step_logits[-1])))
        if s == steps - 1:
            break
        pos = len(ids) + s
        out = model(input_ids=torch.tensor([[new_ids[-1]]]), cache=cache, use_cache=True,
                    position_ids=torch.tensor([[pos]]))
        cache = out.cache
        step_logits.append(out.logits[0, -1].clone())
    return new_ids, torch.stack(step_logits)


def top2_margin(row):
    top = torch.topk(row, 2).values
    return float(top[0] - top[1])


@torch.no_grad()
def capture_routing(model, ids):
    """Per MoE layer: router logits [T, E], top-k indices and weights [T, k] of one full forward."""
    rec = {}
    hooks = []
    for l, layer in enumerate(model.model.layers):
        hooks.append(layer.router.proj.register_forward_hook(
            lambda _m, _i, out, l=l: rec.setdefault(l, {}).update(logits=out.clone())))
        hooks.append(layer.router.register_forward_hook(
            lambda _m, _i, out, l=l: rec.setdefault(l, {}).update(w=out[1].clone(),
                                                                  idx=out[2].clone())))
    try:
        model(input_ids=torch.tensor([ids]), use_cache=False)
    finally:
        for hk in hooks:
            hk.remove()
    return rec


def routing_stats(rec, k):
    """Smallest gap between the k-th and (k+1)-th router logit / probability, experts used."""
    min_logit_gap = min_prob_gap = float("inf")
    used, per_layer_sets = set(), {}
    for l, r in rec.items():
        srt = torch.sort(r["logits"], dim=-1, descending=True).values
        min_logit_gap = min(min_logit_gap, float((srt[:, k - 1] - srt[:, k]).min()))
        prob = torch.softmax(r["logits"].double(), dim=-1)
        ps = torch.sort(prob, dim=-1, descending=True).values
        min_prob_gap = min(min_prob_gap, float((ps[:, k - 1] - ps[:, k]).min()))
        sets = {tuple(sorted(int(e) for e in row)) for row in r["idx"]}
        per_layer_sets[l] = sets
        used |= {e for s in sets for e in s}
    return min_logit_gap, min_prob_gap, used, per_layer_sets


def make_prompts(seed):
    rng = np.random.default_rng(seed)
    # Ids 3..511 after BOS: no pad/eos/bos inside the prompts.
    return [[BOS_ID] + [int(x) for x in rng.integers(3, VOCAB, size=n - 1)] for n in PROMPT_LENGTHS]


def sd_numpy(model):
    prefix = "model."
    return {k[len(prefix):]: v.detach().double().numpy()
            for k, v in model.state_dict().items() if k.startswith(prefix)}


def evaluate(spec, seed):
    """Builds the model for `seed` and computes everything; returns (ok, reason, result)."""
    model = build_text_model(spec, seed)
    cfg = model.config
    prompts = make_prompts(seed + 7)
    res = {"model": model, "prompts": prompts, "logits": [full_logits(model, p) for p in prompts],
           "greedy": {}}
    res["cache_diff"] = 0.0
    for pi in GREEDY_PROMPTS:
        new_ids, step_logits = res["greedy"][pi] = greedy_cached(model, prompts[pi], GREEDY_STEPS)
        full = full_logits(model, prompts[pi] + new_ids[:-1])[len(prompts[pi]) - 1:]
        res["cache_diff"] = max(res["cache_diff"], float((full - step_logits).abs().max()))
    if res["cache_diff"] > CACHE_TOL:
        # Bugs in the cache, KV sharing or the window move logits by >1e-2; this is f32 noise.
        return False, f"cached vs full logits differ by {res['cache_diff']:.2e} (f32 noise)", res
    margin = min(top2_margin(r) for _, sl in res["greedy"].values() for r in sl)
    res["min_greedy_margin"] = margin
    if margin < GREEDY_MARGIN_MIN:
        return False, f"greedy top1-top2 margin {margin:.2e} < {GREEDY_MARGIN_MIN}", res
    distinct = min(len(set(new)) for new, _ in res["greedy"].values())
    if distinct < GREEDY_DISTINCT_MIN:
        return False, f"greedy continuation has only {distinct} distinct tokens", res
    if cfg.enable_moe_block:
        seqs = prompts + [prompts[pi] + new for pi, (new, _) in res["greedy"].items()]
        recs = [capture_routing(model, s) for s in seqs]
        gap_l, gap_p, used = float("inf"), float("inf"), set()
        layer_sets = {}
        for rec in recs:
            a, b, u, sets = routing_stats(rec, cfg.top_k_experts)
            gap_l, gap_p, used = min(gap_l, a), min(gap_p, b), used | u
            for l, s in sets.items():
                layer_sets.setdefault(l, set()).update(s)
        res.update(router_min_logit_gap=gap_l, router_min_prob_gap=gap_p, experts_used=sorted(used),
                   routing=recs[: len(prompts)],
                   min_distinct_sets_per_layer=min(len(s) for s in layer_sets.values()))
        if gap_l < ROUTER_GAP_MIN:  # the logit gap is log(p_k / p_k+1): scale-free
            return False, f"router top-{cfg.top_k_experts} near-tie (logit gap {gap_l:.2e}, " \
                          f"prob gap {gap_p:.2e})", res
        if len(used) != cfg.num_experts or res["min_distinct_sets_per_layer"] < 3:
            return False, f"degenerate routing: experts used {sorted(used)}", res
    return True, "", res


# ---------------------------------------------------------------------------------------------
# Fixture writers
# ---------------------------------------------------------------------------------------------
def fresh_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def fix_modes(out_dir):
    for fname in os.listdir(out_dir):
        os.chmod(os.path.join(out_dir, fname), 0o644)  # save_pretrained leaves 0600


@torch.no_grad()
def dump_hidden(model, ids, out_dir):
    """Scaled embedding, PLE inputs, residual after each layer, final-norm output of one prompt."""
    inner = model.model
    captured = {}
    hooks = [inner.embed_tokens.register_forward_hook(
        lambda _m, _i, out: captured.__setitem__("embed", out[0].clone()))]
    for l, layer in enumerate(inner.layers):
        hooks.append(layer.register_forward_hook(
            lambda _m, _i, out, l=l: captured.__setitem__(l, out[0].clone())))
    hooks.append(inner.norm.register_forward_hook(
        lambda _m, _i, out: captured.__setitem__("norm", out[0].clone())))
    try:
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    finally:
        for hk in hooks:
            hk.remove()
    ids_t = torch.tensor([ids])
    emb = inner.embed_tokens(ids_t)
    ple = inner.project_per_layer_inputs(emb, inner.get_per_layer_inputs(ids_t, emb))[0]
    cap = model.config.final_logit_softcapping
    z = captured["norm"] @ inner.embed_tokens.weight.T
    assert float((cap * torch.tanh(z / cap) - logits).abs().max()) < 1e-5
    files = {"embed": "hidden_embed.bin", "final_norm": "hidden_final_norm.bin",
             "ple_inputs": "ple_inputs.bin",
             "layers": [f"hidden_{l}.bin" for l in range(len(inner.layers))]}
    shapes = {"embed": write_f32(os.path.join(out_dir, files["embed"]), captured["embed"]),
              "final_norm": write_f32(os.path.join(out_dir, files["final_norm"]), captured["norm"]),
              "ple_inputs": write_f32(os.path.join(out_dir, files["ple_inputs"]), ple)}
    for l in range(len(inner.layers)):
        shapes["layers"] = write_f32(os.path.join(out_dir, files["layers"][l]), captured[l])
    return {"prompt_index": HIDDEN_PROMPT, "files": files, "shapes": shapes}, \
        [captured[l].numpy() for l in range(len(inner.layers))]


def routing_json(res, k):
    out = []
    for i, rec in enumerate(res["routing"]):
        layers = []
        for l in sorted(rec):
            srt = torch.sort(rec[l]["logits"], dim=-1, descending=True).values
            layers.append({"layer": l,
                           "top_k_index": [[int(e) for e in row] for row in rec[l]["idx"]],
                           "top_k_weights": [[float(v) for v in row] for row in rec[l]["w"]],
                           "min_logit_gap_k_vs_k1": float((srt[:, k - 1] - srt[:, k]).min())})
        out.append({"prompt_index": i, "layers": layers})
    return out


def write_text_fixture(name, spec, res, out_root):
    model, cfg, prompts = res["model"], res["model"].config, res["prompts"]
    seed = res["seed"]
    out_dir = os.path.join(out_root, name)
    fresh_dir(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    fix_modes(out_dir)

    # The written checkpoint must reload to the same logits (layer_scalar buffers included).
    reloaded = Gemma4ForCausalLM.from_pretrained(out_dir, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    reload_diff = max(float((full_logits(reloaded, p) - lg).abs().max())
                      for p, lg in zip(prompts, res["logits"]))
    assert reload_diff == 0.0, f"{name}: reloaded checkpoint differs by {reload_diff}"

    plan = hf_plan(model.model, cfg)
    hub = spec_text_config(spec)
    assert spec_plan(hub) == plan, f"{name}: spec plan != transformers plan"
    sd = sd_numpy(model)

    meta = {
        "fixture": name, "architecture": "Gemma4ForCausalLM", "tensor_prefix": "model.",
        "dtype": "float32", "byte_order": "little", "vocab_size": VOCAB,
        "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads, "layer_types": list(cfg.layer_types),
        "sliding_window": cfg.sliding_window,
        "final_logit_softcapping": cfg.final_logit_softcapping,
        "embed_scale": float(np.float32(math.sqrt(cfg.hidden_size))),
        "ple_embed_scale": (float(np.float32(math.sqrt(cfg.hidden_size_per_layer_input)))
                            if cfg.hidden_size_per_layer_input else None),
        "attn_scale": 1.0, "seed": seed, "prompt_seed": seed + 7,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "plan": plan_columns(plan), "prompts": [], "greedy": []}
    worst_np, worst_off, softcap_effect = 0.0, float("inf"), 0.0
    cap = cfg.final_logit_softcapping
    for i, (ids, lg) in enumerate(zip(prompts, res["logits"])):
        logits = lg.numpy()
        uncapped = cap * np.arctanh(logits.astype(np.float64) / cap)
        softcap_effect = max(softcap_effect, float(np.max(np.abs(uncapped - logits))))
        meta["prompts"].append({
            "index": i, "ids": ids, "logits_file": f"logits_{i}.bin",
            "shape": write_f32(os.path.join(out_dir, f"logits_{i}.bin"), logits),
            "argmax": [int(a) for a in logits.argmax(axis=-1)]})
        ref = np_forward(sd, hub, plan, ids)
        diff = float(np.max(np.abs(ref - logits)))
        worst_np = max(worst_np, diff)
        assert diff < NUMPY_TOL, f"{name} prompt {i}: numpy spec forward differs from HF by {diff}"
        if len(ids) > cfg.sliding_window + 1:
            wide = np_forward(sd, hub, plan, ids, window=cfg.sliding_window + 1)
            off = float(np.max(np.abs(wide - logits)))
            assert off > 1e-2, f"{name} prompt {i}: window W+1 changes logits by only {off}"
            worst_off = min(worst_off, off)
    worst_hidden = None
    if spec.get("dump_hidden"):
        meta["hidden"], layers = dump_hidden(model, prompts[HIDDEN_PROMPT], out_dir)
        trace = []
        np_forward(sd, hub, plan, prompts[HIDDEN_PROMPT], trace=trace)
        worst_hidden = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                           for a, b in zip(layers, trace))
        assert worst_hidden < NUMPY_TOL, f"{name}: hidden states off numpy by {worst_hidden}"

    worst_cache = 0.0
    for pi, (new_ids, step_logits) in res["greedy"].items():
        ids = prompts[pi]
        gen = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=GREEDY_STEPS,
                             min_new_tokens=GREEDY_STEPS, eos_token_id=None, pad_token_id=0,
                             use_cache=True)
        gen_ids = [int(t) for t in gen[0, len(ids):]]
        assert gen_ids == new_ids, f"{name}: generate() {gen_ids} != cached loop {new_ids}"
        full = full_logits(model, ids + new_ids[:-1])[len(ids) - 1:]
        diff = float(torch.max(torch.abs(full - step_logits)))
        worst_cache = max(worst_cache, diff)
        assert diff <= CACHE_TOL, f"{name}: cached vs full logits differ by {diff}"
        ref = np_forward(sd, hub, plan, ids + new_ids[:-1])[len(ids) - 1:]
        worst_np = max(worst_np, float(np.max(np.abs(ref - step_logits.numpy()))))
        fname = f"greedy_{pi}_step_logits.bin"
        meta["greedy"].append({
            "prompt_index": pi, "new_ids": new_ids, "step_logits_file": fname,
            "step_logits_shape": write_f32(os.path.join(out_dir, fname), step_logits.numpy()),
            "top1_top2_margin": [top2_margin(r) for r in step_logits]})
    assert worst_np < NUMPY_TOL
    meta["checks"] = {"max_abs_cached_vs_full": worst_cache, "max_abs_numpy_spec_vs_hf": worst_np,
                      "min_max_abs_window_plus_1_vs_hf": worst_off,
                      "max_abs_reloaded_vs_original": reload_diff,
                      "min_greedy_top1_top2_margin": res["min_greedy_margin"],
                      "max_abs_softcap_effect": softcap_effect}
    assert softcap_effect > 1e-3, f"{name}: dropping the softcap moves logits by {softcap_effect}"
    if worst_hidden is not None:
        meta["checks"]["max_rel_hidden_numpy_spec_vs_hf"] = worst_hidden
    if cfg.enable_moe_block:
        meta["routing"] = routing_json(res, cfg.top_k_experts)
        meta["checks"].update(router_min_logit_gap=res["router_min_logit_gap"],
                              router_min_prob_gap=res["router_min_prob_gap"],
                              experts_used=res["experts_used"],
                              min_distinct_expert_sets_per_layer=res["min_distinct_sets_per_layer"])
    dump_json(meta, os.path.join(out_dir, "prompts.json"))
    print(f"{name}: seed {seed}; " + ", ".join(f"{k} {v}" for k, v in meta["checks"].items()))
    return meta


def rewrite_json(path, edit):
    with open(path, encoding="utf-8") as f:
        conf = json.load(f)
    edit(conf)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(conf, f, indent=2, sort_keys=True)
        f.write("\n")


def to_hub_layout(path, text_kw, top_update=None):
    """Rewrites a save_pretrained config.json (transformers 5.24 writes `per_layer_config`) into
    the layout of the published checkpoints: `global_head_dim` + `num_global_key_value_heads`."""
    def edit(conf):
        tc = conf["text_config"]
        tc.pop("per_layer_config")
        tc["global_head_dim"] = text_kw["global_head_dim"]
        tc["num_global_key_value_heads"] = text_kw["num_global_key_value_heads"]
        if top_update:
            conf.update(top_update)
            conf.pop("transformers_version", None)
            tc["dtype"] = top_update.get("dtype", tc.get("dtype"))
    rewrite_json(path, edit)


# ---------------------------------------------------------------------------------------------
# Multimodal (real-checkpoint layout) copy
# ---------------------------------------------------------------------------------------------
TINY_VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                   num_key_value_heads=2, head_dim=8, patch_size=4, pooling_kernel_size=1,
                   position_embedding_size=16, use_clipped_linears=True)
TINY_AUDIO = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  subsampling_conv_channels=[4, 4], conv_kernel_size=3, output_proj_dims=16)
IT_GENERATION = dict(bos_token_id=2, pad_token_id=0, eos_token_id=[1, 106, 50], do_sample=True,
                     temperature=1.0, top_k=64, top_p=0.95)


@torch.no_grad()
def write_multimodal_fixture(name, spec, text_meta, res, out_root):
    text_model, prompts = res["model"], res["prompts"]
    seed = res["seed"]
    cfg = Gemma4Config(text_config=make_text_config(spec),
                       vision_config=Gemma4VisionConfig(**TINY_VISION),
                       audio_config=Gemma4AudioConfig(**TINY_AUDIO))
    cfg._attn_implementation = "eager"
    cfg.text_config._attn_implementation = "eager"
    torch.manual_seed(seed)
    mm = Gemma4ForConditionalGeneration(cfg).to(torch.float32).eval()
    gen = torch.Generator().manual_seed(seed + 100)
    text_sd = text_model.model.state_dict()
    for full_name, t in sorted(state_tensors(mm.model).items()):
        if full_name.startswith("language_model."):
            t.copy_(text_sd[full_name[len("language_model."):]])
        else:
            t.copy_(tower_tensor_init(full_name, tuple(t.shape), gen))
    assert mm.lm_head.weight is mm.model.language_model.embed_tokens.weight
    for ids, lg in zip(prompts, res["logits"]):
        d = float((full_logits(mm, ids) - lg).abs().max())
        assert d == 0.0, f"{name}: multimodal text logits differ from the text model by {d}"

    out_dir = os.path.join(out_root, name)
    fresh_dir(out_dir)
    mm.save_pretrained(out_dir, safe_serialization=True)
    GenerationConfig(**IT_GENERATION).save_pretrained(out_dir)

    to_hub_layout(os.path.join(out_dir, "config.json"), spec)

    # Real checkpoints still carry k_proj / v_proj / k_norm for KV-shared layers; add them.
    wpath = os.path.join(out_dir, "model.safetensors")
    tensors = load_file(wpath)
    tcfg = mm.config.text_config
    unused = []
    for l, layer in enumerate(mm.model.language_model.layers):
        a = layer.self_attn
        if not a.is_kv_shared_layer:
            continue
        kvh = tcfg.num_attention_heads // a.num_key_value_groups
        pre = f"model.language_model.layers.{l}.self_attn."
        extra = {pre + "k_proj.weight": _normal(gen, (kvh * a.head_dim, tcfg.hidden_size), 0.1),
                 pre + "v_proj.weight": _normal(gen, (kvh * a.head_dim, tcfg.hidden_size), 0.1),
                 pre + "k_norm.weight": _uniform(gen, (a.head_dim,), *NORM_RANGE)}
        tensors.update(extra)
        unused += sorted(extra)
    save_file(tensors, wpath, metadata={"format": "pt"})
    fix_modes(out_dir)

    # transformers must read the hub-style config back to the same plan and the same logits.
    re_mm, info = Gemma4ForConditionalGeneration.from_pretrained(
        out_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    re_mm.eval()
    assert not info["missing_keys"], info["missing_keys"]
    assert plan_columns(hf_plan(re_mm.model.language_model, re_mm.config.text_config)) == \
        text_meta["plan"]
    worst = 0.0
    for ids, lg in zip(prompts, res["logits"]):
        worst = max(worst, float((full_logits(re_mm, ids) - lg).abs().max()))
    assert worst == 0.0, f"{name}: reloaded multimodal logits differ by {worst}"

    n_text = sum(1 for k in tensors if k.startswith("model.language_model."))
    meta = {"fixture": name, "architecture": "Gemma4ForConditionalGeneration",
            "tensor_prefix": "model.language_model.", "text_fixture": text_meta["fixture"],
            "same_text_weights_as": text_meta["fixture"],
            "logits": "identical to the text fixture's logits_<i>.bin and greedy files (checked: "
                      "max abs diff 0.0)",
            "skipped_prefixes": ["model.vision_tower.", "model.embed_vision.",
                                 "model.audio_tower.", "model.embed_audio."],
            "unused_kv_shared_tensors": unused, "num_tensors": len(tensors),
            "num_text_tensors": n_text, "lm_head_in_file": "lm_head.weight" in tensors,
            "prompts": [{"index": p["index"], "ids": p["ids"], "shape": p["shape"],
                         "logits_file": f"../{text_meta['fixture']}/{p['logits_file']}"}
                        for p in text_meta["prompts"]],
            "checks": {"max_abs_multimodal_vs_text": 0.0,
                       "max_abs_reloaded_hub_config_vs_text": worst,
                       "unexpected_keys_on_load": sorted(info["unexpected_keys"])},
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
    dump_json(meta, os.path.join(out_dir, "prompts.json"))
    print(f"{name}: {len(tensors)} tensors ({n_text} text, {len(unused)} unused shared-KV), "
          f"reload diff {worst}")


# ---------------------------------------------------------------------------------------------
# Real variant configs
# ---------------------------------------------------------------------------------------------
ON_DEVICE_VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=16,
                        num_attention_heads=12, num_key_value_heads=12, head_dim=64,
                        global_head_dim=64, default_output_length=280, pooling_kernel_size=3,
                        use_clipped_linears=True)
LARGE_VISION = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                    num_attention_heads=16, num_key_value_heads=16, head_dim=72, global_head_dim=72,
                    default_output_length=280, pooling_kernel_size=3, use_clipped_linears=False,
                    standardize=True)
REAL_TEXT_COMMON = dict(final_logit_softcapping=30.0, rope_parameters=COMMON["rope_parameters"],
                        vocab_size=262144, vocab_size_per_layer_input=262144, head_dim=256,
                        global_head_dim=512, rms_norm_eps=1e-6,
                        hidden_activation="gelu_pytorch_tanh",
                        attention_bias=False, tie_word_embeddings=True)
REAL_VARIANTS = {
    "e2b": dict(text=dict(hidden_size=1536, hidden_size_per_layer_input=256, intermediate_size=6144,
                          num_hidden_layers=35, layer_types=[S, S, S, S, F] * 7,
                          num_attention_heads=8, num_key_value_heads=1,
                          num_global_key_value_heads=None, attention_k_eq_v=False,
                          use_bidirectional_attention=None, num_kv_shared_layers=20,
                          use_double_wide_mlp=True, sliding_window=512,
                          max_position_embeddings=131072),
                vision=ON_DEVICE_VISION, audio=True),
    "e4b": dict(text=dict(hidden_size=2560, hidden_size_per_layer_input=256,
                          intermediate_size=10240,
                          num_hidden_layers=42, layer_types=([S] * 5 + [F]) * 7,
                          num_attention_heads=8, num_key_value_heads=2,
                          num_global_key_value_heads=None, attention_k_eq_v=False,
                          use_bidirectional_attention=None, num_kv_shared_layers=18,
                          use_double_wide_mlp=False, sliding_window=512,
                          max_position_embeddings=131072),
                vision=ON_DEVICE_VISION, audio=True),
    "26b_a4b": dict(text=dict(hidden_size=2816, hidden_size_per_layer_input=0,
                              intermediate_size=2112,
                              num_hidden_layers=30, layer_types=([S] * 5 + [F]) * 5,
                              num_attention_heads=16, num_key_value_heads=8,
                              num_global_key_value_heads=2, attention_k_eq_v=True,
                              use_bidirectional_attention="vision", num_kv_shared_layers=0,
                              use_double_wide_mlp=False, enable_moe_block=True, num_experts=128,
                              moe_intermediate_size=704, top_k_experts=8, sliding_window=1024,
                              max_position_embeddings=262144),
                    vision=LARGE_VISION, audio=False),
    "31b": dict(text=dict(hidden_size=5376, hidden_size_per_layer_input=0, intermediate_size=21504,
                          num_hidden_layers=60, layer_types=([S] * 5 + [F]) * 10,
                          num_attention_heads=32, num_key_value_heads=16,
                          num_global_key_value_heads=4, attention_k_eq_v=True,
                          use_bidirectional_attention="vision", num_kv_shared_layers=0,
                          use_double_wide_mlp=False, sliding_window=1024,
                          max_position_embeddings=262144),
                vision=LARGE_VISION, audio=False),
}


def count(module, pred=lambda n: True):
    return sum(t.numel() for n, t in state_tensors(module).items() if pred(n))


def write_real_configs(out_root):
    out_dir = os.path.join(out_root, "gemma4_configs")
    fresh_dir(out_dir)
    expected = {"versions": {"transformers": transformers.__version__}, "variants": {}}
    for name, v in REAL_VARIANTS.items():
        text_kw = dict(REAL_TEXT_COMMON, **v["text"])
        top = Gemma4Config(text_config=Gemma4TextConfig(**text_kw),
                           vision_config=Gemma4VisionConfig(**v["vision"]),
                           audio_config=Gemma4AudioConfig() if v["audio"] else None,
                           vision_soft_tokens_per_image=280)
        vdir = os.path.join(out_dir, name)
        top.save_pretrained(vdir)
        to_hub_layout(os.path.join(vdir, "config.json"), text_kw,
                      dict(architectures=["Gemma4ForConditionalGeneration"], dtype="bfloat16",
                           eos_token_id=[1, 106]))
        GenerationConfig(**IT_GENERATION).save_pretrained(vdir)
        rewrite_json(os.path.join(vdir, "generation_config.json"),
                     lambda c: c.pop("transformers_version", None))
        with open(os.path.join(vdir, "config.json"), encoding="utf-8") as f:
            conf = json.load(f)

        # Parse back exactly what was written, then read the plan off meta-device modules.
        parsed = Gemma4Config.from_pretrained(vdir)
        tcfg = parsed.text_config
        with torch.device("meta"):
            text = Gemma4ForCausalLM(tcfg)
            full = Gemma4ForConditionalGeneration(parsed)
        plan = hf_plan(text.model, tcfg)
        assert plan == spec_plan(conf["text_config"]), f"{name}: spec plan != transformers plan"
        own = [p for p in plan if not p["kv_shared"]]
        kv_bytes = sum(2 * p["num_kv_heads"] * p["head_dim"] * 2 for p in own)
        unused = sum(2 * p["num_kv_heads"] * p["head_dim"] * tcfg.hidden_size + p["head_dim"]
                     for p in plan if p["kv_shared"])
        total_text = count(text.model)
        experts = count(text.model, lambda n: ".experts." in n)
        params = {
            "text_model": total_text,
            "embed_tokens": count(text.model, lambda n: n == "embed_tokens.weight"),
            "ple_table": count(text.model, lambda n: n == "embed_tokens_per_layer.weight"),
            "experts": experts,
            "text_active_per_token": (total_text - experts + experts * tcfg.top_k_experts //
                                      tcfg.num_experts) if tcfg.enable_moe_block else total_text,
            "unused_kv_shared_in_checkpoint": unused,
            "vision": count(full.model, lambda n: n.startswith(("vision_tower.", "embed_vision."))),
            "audio": count(full.model, lambda n: n.startswith(("audio_tower.", "embed_audio."))),
            "checkpoint_total": count(full.model) + unused}
        expected["variants"][name] = {
            "config_dir": name, "hidden_size": tcfg.hidden_size,
            "num_hidden_layers": tcfg.num_hidden_layers,
            "num_attention_heads": tcfg.num_attention_heads,
            "sliding_window": tcfg.sliding_window,
            "embed_scale_f32": float(np.float32(math.sqrt(tcfg.hidden_size))),
            "embed_scale_bf16": float(torch.tensor(math.sqrt(tcfg.hidden_size)).bfloat16()),
            "kv_sharing_modes": list(tcfg.kv_sharing_modes),
            "first_kv_shared_layer": tcfg.num_hidden_layers - tcfg.num_kv_shared_layers,
            "global_layers": [p["layer"] for p in plan if p["type"] == F],
            "kv_cache_bytes_per_token_bf16": kv_bytes,
            "param_counts": params, "layers": plan_columns(plan)}
        gb = {k: f"{n / 1e9:.3f} B" for k, n in params.items()}
        print(f"config {name}: text {gb['text_model']} (PLE {gb['ple_table']}, experts "
              f"{gb['experts']}, active {gb['text_active_per_token']}), "
              f"checkpoint {gb['checkpoint_total']}, KV {kv_bytes} B/token")
    dump_json(expected, os.path.join(out_dir, "expected_plan.json"))


# ---------------------------------------------------------------------------------------------
def make_fixture(name, spec, out_root):
    seed = spec["seed"]
    for attempt in range(MAX_SEED_TRIES):
        ok, reason, res = evaluate(spec, seed)
        if ok:
            break
        print(f"{name}: seed {seed} rejected: {reason}")
        seed += 1000
    else:
        raise RuntimeError(f"{name}: no usable seed in {MAX_SEED_TRIES} tries")
    res["seed"] = seed
    meta = write_text_fixture(name, spec, res, out_root)
    if spec.get("multimodal"):
        write_multimodal_fixture(spec["multimodal"], spec, meta, res, out_root)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "fixtures"))
    ap.add_argument("--only", action="append", help="fixture name (repeatable), or 'configs'")
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    for name, spec in FIXTURES.items():
        if not args.only or name in args.only:
            make_fixture(name, spec, args.out)
    if not args.only or "configs" in args.only:
        write_real_configs(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
