#!/usr/bin/env python3
"""Reference outputs of the real Gemma 3 270M GGUF for the C++ end-to-end tests.

Writes tests/fixtures/gemma3_270m/reference.json plus two full-vocab logit rows
(full_logits_<i>.bin, raw little-endian f32). See tools/README.md for the format.

For each of 8 prompts:
  * token ids: llama-cpp-python's tokenization of the text (add_bos, special tokens parsed) is
    the committed prompt; transformers' GGUF-rebuilt tokenizer is recorded next to it when it
    disagrees;
  * HF transformers (GGUF dequantized to f32, eager attention): greedy continuation of
    NUM_NEW tokens with the KV cache, the top-1/top-2 logit margin of every step, the top-100
    (id, logit) pairs of the first step, and for two prompts the whole first-step logit row;
  * llama-cpp-python on the same GGUF (quantized weights, 8-bit activations in its matmuls):
    greedy continuation by evaluating token by token and taking the argmax, its margins and
    its first-step top-100, so a later comparison can report the first divergence.

Generation never stops early: all NUM_NEW tokens are recorded even past <eos>/<end_of_turn>;
`first_stop_index` says where a stopping decoder would have ended.

Run:  /work/main/.venv-tools/bin/python tools/make_gemma3_270m_reference.py
"""

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GGUF = os.path.join(REPO_ROOT, "models", "gemma-3-270m-q4_k_m.gguf")
NUM_NEW = 32
TOP_K = 100
FULL_LOGIT_PROMPTS = (0, 4)  # prompts whose whole first-step logit row is stored
STOP_IDS = (1, 106)  # <eos>, <end_of_turn>


def long_log_text():
    """A deterministic ~700-token text so the 512-token sliding window matters."""
    winds = ["north", "north-east", "east", "south-east", "south", "south-west", "west",
             "north-west"]
    places = ["the outer reef", "Gull Island", "the northern shoal", "Cape Ardent",
              "the sunken harbour", "Lantern Rock", "the grey channel"]
    animals = ["seals", "terns", "dolphins", "cormorants", "turtles", "puffins"]
    meals = ["barley soup", "salted cod", "oat cakes", "bean stew", "smoked herring"]
    lines = ["Log of the survey vessel Meridian, kept by the second mate.", ""]
    for day in range(1, 29):
        lines.append(
            f"Day {day}. Wind from the {winds[(day * 3) % 8]} at {8 + (day * 7) % 17} knots. "
            f"We sounded {20 + (day * 13) % 61} fathoms near {places[(day * 5) % 7]} and "
            f"counted {3 + (day * 11) % 29} {animals[day % 6]}. "
            f"The cook served {meals[(day * 2) % 5]}.")
    lines += ["", "Summary of the voyage: the wind came most often from the"]
    return "\n".join(lines)


PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Here is a list of five fruits:\n1. Apple\n2.",
    ("Rivers carve valleys slowly. Over thousands of years, the water picks up grains of sand "
     "and small stones, and those grains scrape against the riverbed like sandpaper. During "
     "floods the river carries far more material than usual, so most of the shaping happens "
     "in a few violent days rather than in the quiet months between them. Geologists who study"),
    long_log_text(),
    "日本の首都は東京です。日本で一番高い山は",
    "<start_of_turn>user\nWhat is the boiling point of water in Celsius?<end_of_turn>\n"
    "<start_of_turn>model\n",
    "Numbers: 12345 67890\n\tTabs,   spaces and emoji 🙂 café naïve — the total is",
]


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def top_pairs(row, k):
    vals, idx = torch.topk(torch.as_tensor(row, dtype=torch.float32), k)
    return {"ids": [int(i) for i in idx], "logits": [float(v) for v in vals]}


def margin(row):
    top = torch.topk(torch.as_tensor(row, dtype=torch.float32), 2).values
    return float(top[0] - top[1])


def dump_json(obj, path):
    """Indented JSON with every list of numbers on one line (keeps the file readable)."""
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    text = re.sub(r"\[([-0-9.eE+,\s]*)\]",
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1).strip()) + "]", text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == obj, f"{path}: compact JSON does not round-trip"


def first_stop(ids):
    for i, t in enumerate(ids):
        if t in STOP_IDS:
            return i
    return None


def first_divergence(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None


# ---------------------------------------------------------------------------------------------
def llama_cpp_tokenize(gguf_path, texts):
    import llama_cpp
    vocab = llama_cpp.Llama(gguf_path, vocab_only=True, verbose=False)
    return [vocab.tokenize(t.encode("utf-8"), add_bos=True, special=True) for t in texts]


def llama_cpp_greedy(gguf_path, prompts_ids, threads):
    """Greedy decode with llama.cpp: eval the prompt, then one token at a time, argmax."""
    import llama_cpp
    llm = llama_cpp.Llama(gguf_path, n_ctx=2048, n_batch=512, n_threads=threads,
                          n_threads_batch=threads, logits_all=False, verbose=False)
    n_vocab = llm.n_vocab()
    results = []
    for ids in prompts_ids:
        llm.reset()
        llm.eval(ids)
        new_ids, margins, first = [], [], None
        for step in range(NUM_NEW):
            # NOTE: with logits_all=False llama-cpp-python no longer copies logits into
            # llm.scores, so read the last output row straight from the context.
            row = np.array(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,)),
                           dtype=np.float32)
            if step == 0:
                first = top_pairs(row, TOP_K)
            nxt = int(np.argmax(row))
            new_ids.append(nxt)
            margins.append(margin(row))
            if step + 1 < NUM_NEW:
                llm.eval([nxt])
        results.append({"generated_ids": new_ids, "top1_top2_margin": margins,
                        "first_step_top100": first,
                        "generated_text": llm.detokenize(new_ids).decode("utf-8", "replace")})
    return results, llama_cpp.__version__


# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def hf_greedy(model, ids):
    out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=NUM_NEW,
                         min_new_tokens=NUM_NEW, eos_token_id=None, pad_token_id=0,
                         use_cache=True, return_dict_in_generate=True, output_logits=True,
                         repetition_penalty=None, temperature=None, top_k=None, top_p=None)
    new_ids = [int(t) for t in out.sequences[0, len(ids):]]
    rows = [l[0].float() for l in out.logits]
    assert len(new_ids) == NUM_NEW and len(rows) == NUM_NEW
    for t, r in zip(new_ids, rows):
        assert int(torch.argmax(r)) == t, "generate() did not pick the argmax"
    return new_ids, rows


@torch.no_grad()
def check_first_step(model, ids, first_row):
    """The cached generate() first-step row must match a plain full forward."""
    full = model(input_ids=torch.tensor([ids]), use_cache=False, logits_to_keep=1).logits[0, -1]
    return float(torch.max(torch.abs(full.float() - first_row)))


# Generic PretrainedConfig fields that say nothing about the model (id2label also has int keys,
# which JSON cannot round-trip).
CONFIG_NOISE = ("quantization_config", "_name_or_path", "transformers_version", "id2label",
                "label2id", "return_dict", "output_hidden_states", "output_attentions",
                "chunk_size_feed_forward", "is_encoder_decoder", "problem_type", "architectures")


def config_summary(model):
    cfg = model.config
    emb = model.model.embed_tokens
    attn = model.model.layers[0].self_attn
    scale = float(emb.embed_scale.to(emb.weight.dtype))
    return {
        "hf_config": {k: v for k, v in cfg.to_dict().items() if k not in CONFIG_NOISE},
        "embed_scale": scale,
        "embed_scale_is_f32_sqrt_hidden": scale == float(np.float32(math.sqrt(cfg.hidden_size))),
        "attn_scale": float(attn.scaling),
        "hf_norm_weights_are_gguf_minus_1": True,  # checked in main()
    }


def check_norm_offset(model, gguf_path):
    import gguf
    reader = gguf.GGUFReader(gguf_path)
    raw = {t.name: np.asarray(t.data) for t in reader.tensors
           if t.name in ("output_norm.weight", "blk.0.attn_norm.weight", "blk.0.attn_q_norm.weight")}
    pairs = [("output_norm.weight", model.model.norm.weight),
             ("blk.0.attn_norm.weight", model.model.layers[0].input_layernorm.weight),
             ("blk.0.attn_q_norm.weight", model.model.layers[0].self_attn.q_norm.weight)]
    for name, w in pairs:
        diff = np.max(np.abs(raw[name] - 1.0 - w.detach().numpy()))
        assert diff == 0.0, f"{name}: HF weight is not GGUF - 1 (max diff {diff})"
    has_template = "tokenizer.chat_template" in reader.fields
    return has_template


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "fixtures", "gemma3_270m"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()

    lc_ids = llama_cpp_tokenize(args.gguf, PROMPTS)
    print(f"llama.cpp tokenized in {time.time() - t0:.0f}s; lengths {[len(x) for x in lc_ids]}")

    gdir, gname = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
    hf_ids = [tok(t).input_ids for t in PROMPTS]
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    print(f"HF model loaded at {time.time() - t0:.0f}s")
    has_template = check_norm_offset(model, args.gguf)
    summary = config_summary(model)
    assert summary["embed_scale_is_f32_sqrt_hidden"], summary["embed_scale"]
    assert summary["attn_scale"] == 1.0 / 16.0, summary["attn_scale"]

    entries = []
    for i, (text, ids) in enumerate(zip(PROMPTS, lc_ids)):
        new_ids, rows = hf_greedy(model, ids)
        diff = check_first_step(model, ids, rows[0])
        assert diff < 1e-3, f"prompt {i}: generate() first step differs from forward by {diff}"
        entry = {
            "index": i,
            "text": text,
            "ids": ids,
            "num_prompt_tokens": len(ids),
            "tokenizers_agree": hf_ids[i] == ids,
            "hf": {
                "generated_ids": new_ids,
                "generated_text": tok.decode(new_ids),
                "top1_top2_margin": [margin(r) for r in rows],
                "first_step_top100": top_pairs(rows[0], TOP_K),
                "first_stop_index": first_stop(new_ids),
                "full_logits_file": None,
            },
        }
        if hf_ids[i] != ids:
            entry["hf_tokenizer_ids"] = hf_ids[i]
        if i in FULL_LOGIT_PROMPTS:
            fname = f"full_logits_{i}.bin"
            rows[0].numpy().astype("<f4").tofile(os.path.join(args.out, fname))
            entry["hf"]["full_logits_file"] = fname
        entries.append(entry)
        print(f"[{time.time() - t0:.0f}s] prompt {i} ({len(ids)} tokens): "
              f"min margin {min(entry['hf']['top1_top2_margin']):.3f} "
              f"{entry['hf']['generated_text']!r}")
    del model

    lc_results, lc_version = llama_cpp_greedy(args.gguf, lc_ids, args.threads)
    for entry, lc in zip(entries, lc_results):
        lc["first_stop_index"] = first_stop(lc["generated_ids"])
        entry["llama_cpp"] = lc
        entry["first_divergence_hf_vs_llama_cpp"] = first_divergence(
            entry["hf"]["generated_ids"], lc["generated_ids"])
        print(f"prompt {entry['index']}: llama.cpp first divergence "
              f"{entry['first_divergence_hf_vs_llama_cpp']} {lc['generated_text']!r}")

    ref = {
        "model_file": os.path.relpath(args.gguf, REPO_ROOT),
        "model_sha256": sha256_of(args.gguf),
        "gguf_has_chat_template": has_template,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "llama_cpp_python": lc_version},
        "num_new_tokens": NUM_NEW,
        "stop_ids": list(STOP_IDS),
        "full_logits_vocab": model_vocab(summary),
        **summary,
        "prompts": entries,
    }
    dump_json(ref, os.path.join(args.out, "reference.json"))
    print(f"done in {time.time() - t0:.0f}s")
    return 0


def model_vocab(summary):
    return summary["hf_config"]["vocab_size"]


if __name__ == "__main__":
    sys.exit(main())
