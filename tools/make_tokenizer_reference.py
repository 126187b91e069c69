#!/usr/bin/env python3
"""Reference token ids for the C++ tokenizer (engine/tokenizer/), from llama.cpp.

Run with the reference venv from the repository root:
    /work/main/.venv-tools/bin/python tools/make_tokenizer_reference.py \
        [--model models/gemma-3-270m-q4_k_m.gguf] [--gemma4-vocab PATH] [--no-hf]

For every string of tools/tokenizer_corpus.py (deduplicated, over 2,000), llama-cpp-python
on the GGUF is the oracle:
    Llama(path, vocab_only=True).tokenize(text.encode(), add_bos=False, special=True / False)
and llama_detokenize() of the special=True ids, without and with special tokens rendered.
(llama_detokenize is called directly with a large buffer: Llama.detokenize() copies each
piece through a 32-byte buffer and corrupts the longer pieces Gemma has.) As a second check,
transformers' AutoTokenizer rebuilt from the same GGUF encodes every string too; the lines
where it disagrees carry its ids, and the header counts the agreements.

Writes tests/fixtures/tokenizer/gemma3_reference.jsonl, one JSON object per line:
  line 1   {"meta": {...}}                      versions, model file, counts
  encode   {"text": T, "ids": [...]}            ids with special parsing;
           "ids_plain": [...]                   only when special=False gives other ids;
           "decode" / "decode_hex"              llama_detokenize(ids), only when it is not T
                                                (hex when it is not valid UTF-8);
           "decode_special" / "..._hex"          the same with special tokens rendered;
           "hf": [...]                          transformers' ids, only when they differ.
  decode   {"decode_ids": [...], "hex": H, "hex_special": H2}
                                                random id sequences (control, byte, unused
                                                and normal tokens) and their detokenized bytes.
  bos      {"text": T, "ids_bos": [...]}        a few strings with add_bos=True.
  long     {"long": {"unit": U, "repeat": K}, "num_ids": N, "fnv1a": H}
                                                ~100 KB texts (U repeated K times) whose
                                                ids are summarized: their count and the
                                                64-bit FNV-1a hash (hex) of the ids as
                                                little-endian int32 bytes.

With --gemma4-vocab (llama.cpp's models/ggml-vocab-gemma-4.gguf, a vocab-only Gemma 4 GGUF
shipped in the llama-cpp-python source distribution), also writes gemma4_vocab_reference.jsonl
in the same format for a subset of the corpus (decoded piece by piece, see LlamaOracle); the
C++ test reads that GGUF only when
SLUICE_GEMMA4_VOCAB_GGUF points at it.
"""

import argparse
import ctypes
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_corpus  # noqa: E402

OUT_DIR = os.path.join("tests", "fixtures", "tokenizer")


def unique_corpus():
    seen = set()
    out = []
    for cat, text in tokenizer_corpus.build_corpus():
        if text in seen:
            continue
        seen.add(text)
        out.append((cat, text))
    return out


class LlamaOracle:
    """llama-cpp-python on one GGUF. `piecewise` detokenizes by concatenating
    llama_token_to_piece() (what llama.cpp's server streams) instead of llama_detokenize(),
    which for BPE vocabularies such as Gemma 4 also applies clean_up_tokenization_spaces
    (" !" -> "!"); neither HF's Gemma tokenizers nor sluice do that."""

    def __init__(self, path, piecewise=False):
        self.piecewise = piecewise
        import llama_cpp
        self.llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, text, special, add_bos=False):
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def detokenize(self, ids, special):
        if self.piecewise:
            out = b""
            buf = ctypes.create_string_buffer(8192)
            for t in ids:
                n = self.llama_cpp.llama_token_to_piece(self.vocab, t, buf, 8192, 0, special)
                if n < 0:
                    raise RuntimeError(f"piece of {t} needs {-n} bytes")
                out += buf.raw[:n]
            return out
        arr = (self.llama_cpp.llama_token * max(1, len(ids)))(*ids)
        cap = 64 * len(ids) + 64
        buf = ctypes.create_string_buffer(cap)
        n = self.llama_cpp.llama_detokenize(self.vocab, arr, len(ids), buf, cap, False, special)
        if n < 0:
            raise RuntimeError(f"detokenize needs {-n} bytes")
        return buf.raw[:n]


def hf_tokenizer(path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(path)),
                                         gguf_file=os.path.basename(path))


def put_bytes(rec, key, data, text):
    if data == text.encode("utf-8"):
        return
    try:
        rec[key] = data.decode("utf-8")
    except UnicodeDecodeError:
        rec[key + "_hex"] = data.hex()


def random_decode_cases(oracle, rng, n_cases):
    # Mostly low ids (control, user-defined, byte tokens live below 500) plus random ones.
    cases = []
    for _ in range(n_cases):
        ids = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.35:
                ids.append(rng.randint(0, 520))
            elif r < 0.45:
                ids.append(rng.randint(oracle.n_vocab - 300, oracle.n_vocab - 1))
            else:
                ids.append(rng.randint(0, oracle.n_vocab - 1))
        cases.append({"decode_ids": ids, "hex": oracle.detokenize(ids, False).hex(),
                      "hex_special": oracle.detokenize(ids, True).hex()})
    return cases


LONG_TEXTS = [
    ("a", 100000),
    ("ab", 50000),
    ("\u4e2d\u6587\u5b57", 11112),                    # a 100 KB CJK run
    ("thequickbrownfoxjumpsoverthelazydog", 2858),   # 100 KB without a space
    (" ", 100000),
    ("\n", 50000),
    ("The tokenizer splits text into pieces. ", 2500),
    ("\U0001f468\u200d\U0001f469\u200d\U0001f467 ", 6000),
    ("<start_of_turn>user\nhi<end_of_turn>\n", 3000),
]


def fnv1a_ids(ids):
    h = 0xCBF29CE484222325
    for t in ids:
        for b in int(t).to_bytes(4, "little", signed=True):
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def build(oracle, corpus, hf, meta):
    lines = []
    agree = disagree = 0
    for cat, text in corpus:
        ids = oracle.tokenize(text, True)
        rec = {"cat": cat, "text": text, "ids": ids}
        plain = oracle.tokenize(text, False)
        if plain != ids:
            rec["ids_plain"] = plain
        put_bytes(rec, "decode", oracle.detokenize(ids, False), text)
        put_bytes(rec, "decode_special", oracle.detokenize(ids, True), text)
        if hf is not None:
            hf_ids = hf.encode(text, add_special_tokens=False)
            if hf_ids == ids:
                agree += 1
            else:
                disagree += 1
                rec["hf"] = hf_ids
        lines.append(rec)
    rng = random.Random(99)
    lines.extend(random_decode_cases(oracle, rng, 300))
    for text in ["", "Hello world", "<bos>Hello", "<start_of_turn>user\nhi<end_of_turn>\n"]:
        lines.append({"text": text, "ids_bos": oracle.tokenize(text, True, add_bos=True)})
    for unit, repeat in LONG_TEXTS:
        ids = oracle.tokenize(unit * repeat, True)
        lines.append({"long": {"unit": unit, "repeat": repeat}, "num_ids": len(ids),
                      "fnv1a": fnv1a_ids(ids)})
    meta["strings"] = len(corpus)
    if hf is not None:
        meta["hf_agree"] = agree
        meta["hf_disagree"] = disagree
    return lines


def write_jsonl(path, meta, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"meta": meta}, ensure_ascii=False) + "\n")
        for rec in lines:
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {path}: {len(lines)} lines, {os.path.getsize(path)} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join("models", "gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--gemma4-vocab", default="")
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers cross-check")
    args = ap.parse_args()

    import llama_cpp
    corpus = unique_corpus()
    oracle = LlamaOracle(args.model)
    hf = None if args.no_hf else hf_tokenizer(args.model)
    meta = {"oracle": f"llama-cpp-python {llama_cpp.__version__}",
            "model": os.path.basename(args.model), "n_vocab": oracle.n_vocab}
    if hf is not None:
        import transformers
        meta["second_check"] = f"transformers {transformers.__version__}"
    lines = build(oracle, corpus, hf, meta)
    write_jsonl(os.path.join(OUT_DIR, "gemma3_reference.jsonl"), meta, lines)
    if hf is not None:
        print(f"transformers agrees on {meta['hf_agree']} of {meta['strings']} strings")

    if args.gemma4_vocab:
        oracle4 = LlamaOracle(args.gemma4_vocab, piecewise=True)
        rng = random.Random(7)
        subset = [corpus[0]] + rng.sample(corpus[1:], 700)
        meta4 = {"oracle": f"llama-cpp-python {llama_cpp.__version__}",
                 "model": os.path.basename(args.gemma4_vocab), "n_vocab": oracle4.n_vocab}
        lines4 = build(oracle4, subset, None, meta4)
        write_jsonl(os.path.join(OUT_DIR, "gemma4_vocab_reference.jsonl"), meta4, lines4)


if __name__ == "__main__":
    main()
