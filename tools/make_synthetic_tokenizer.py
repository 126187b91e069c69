#!/usr/bin/env python3
"""Synthetic Hugging Face tokenizers in Gemma's layouts, with reference ids from `tokenizers`.

The real Gemma 4 tokenizer.json is not available here, so this builds small ones of the
same shape and records what the `tokenizers` library (the reference implementation of the
format) makes of a few hundred strings. The C++ from_hf_json() + BPE path must match them.

Run with the reference venv from the repository root:
    /work/main/.venv-tools/bin/python tools/make_synthetic_tokenizer.py

Writes two directories under tests/fixtures/tokenizer/, each with tokenizer.json,
tokenizer_config.json and reference.jsonl (the format of make_tokenizer_reference.py:
"ids" with special tokens parsed, "ids_plain" when encode_special_tokens=True differs,
"decode"/"decode_special" when decoding does not give the text back, and the ~100 KB
"long" texts summarized by id count and hash):

  gemma4_synthetic/  Gemma 4's layout: normalizer Replace(" " -> "\u2581"), pre-tokenizer
                     Split(Regex "[^\\n]+|[\\n]+", isolated), a BPE model over characters with
                     byte_fallback and merges learned (tokenizers' BpeTrainer, ~3,000 pieces)
                     on newline-split text, <0x00>..<0xFF> pieces, control tokens (<bos>,
                     <|turn>, <turn|>, ...) and user-defined ones (<|channel>, <|"|>, runs of
                     spaces, two overlapping ones), add_bos_token false.
  gemma3_synthetic/  the layout transformers' GemmaTokenizer writes: the same normalizer, a
                     Split(" ", merged_with_previous) pre-tokenizer (a no-op after the
                     normalizer), merges learned on whole lines, so merges across newlines
                     exist; add_bos_token true.

Characters that never occur in the training text (most CJK, emoji, rare planes) are left to
byte fallback. Training is deterministic: reruns write identical files.
"""

import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_corpus  # noqa: E402
from make_tokenizer_reference import LONG_TEXTS, fnv1a_ids  # noqa: E402

OUT_DIR = os.path.join("tests", "fixtures", "tokenizer")
SPACE = "\u2581"

CONTROL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>", "<|think|>",
           "<|tool>", "<tool|>", "<|image|>", "<start_of_turn>", "<end_of_turn>"]
# Non-special added tokens: always split out, always rendered. The last two overlap, so that
# leftmost-longest matching ("[[a" in "[[a]]]") and llama.cpp's longest-first ("a]]]") differ.
USER_DEFINED = ["<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>", "<|tool_response>",
                "<tool_response|>", '<|"|>', "  ", "    ", "\t\t", "<table>", "[[a", "a]]]"]


def training_text(rng):
    corpus = tokenizer_corpus.build_corpus(seed=4321)
    texts = [t for cat, t in corpus if cat in ("prose", "code", "scripts", "whitespace", "numbers",
                                               "combining", "chat")]
    # Some CJK and emoji so that multi-byte characters become pieces and merges, but not all
    # of them: the rest must fall back to bytes.
    texts += [t for cat, t in corpus if cat in ("cjk", "emoji")][:40]
    rng.shuffle(texts)
    return texts


def train(texts, newline_split, vocab_size):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", SPACE)
    if newline_split:
        tok.pre_tokenizer = pre_tokenizers.Split(Regex("[^\n]+|[\n]+"), behavior="isolated")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  special_tokens=[])
    tok.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    return model["vocab"], model["merges"]


def assemble(learned_vocab, merges, newline_split):
    vocab = {}
    for t in CONTROL:
        vocab[t] = len(vocab)
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t in USER_DEFINED:
        vocab.setdefault(t, len(vocab))
    for piece, _ in sorted(learned_vocab.items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True,
                               fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", SPACE)
    if newline_split:
        tok.pre_tokenizer = pre_tokenizers.Split(Regex("[^\n]+|[\n]+"), behavior="isolated")
    else:
        tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(),
                                     decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in USER_DEFINED])
    return tok


def reference_strings(rng):
    corpus = [t for _, t in tokenizer_corpus.build_corpus(seed=1234)]
    corpus = list(dict.fromkeys(corpus))
    picked = [corpus[0]] + rng.sample(corpus[1:], 420)
    picked += ["[[a]]]", "x[[a]]]y", "a]]][[a", "<|turn>user\n[[a]]]<turn|>", "\n\n\n", "\n",
               "a\nb", "a\n\nb ", " \n ", "<bos><bos>", "<|turn|>", "<|turn><turn|>",
               "\u2581already", "tab\t\tab", "\t\t\t", "     five", "<table>x</table>"]
    return list(dict.fromkeys(picked))


def put_text(rec, key, got, text):
    if got != text:
        rec[key] = got


def write_dir(name, tok, strings, add_bos):
    out = os.path.join(OUT_DIR, name)
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    config = {"add_bos_token": add_bos, "add_eos_token": False, "bos_token": "<bos>",
              "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
              "tokenizer_class": "GemmaTokenizer", "clean_up_tokenization_spaces": False}
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    import tokenizers
    meta = {"oracle": f"tokenizers {tokenizers.__version__}", "vocab_size": tok.get_vocab_size(),
            "strings": len(strings)}
    lines = []
    for text in strings:
        tok.encode_special_tokens = False
        ids = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        plain = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        rec = {"text": text, "ids": ids}
        if plain != ids:
            rec["ids_plain"] = plain
        put_text(rec, "decode", tok.decode(ids, skip_special_tokens=True), text)
        put_text(rec, "decode_special", tok.decode(ids, skip_special_tokens=False), text)
        lines.append(rec)
    for unit, repeat in LONG_TEXTS:
        ids = tok.encode(unit * repeat, add_special_tokens=False).ids
        lines.append({"long": {"unit": unit, "repeat": repeat}, "num_ids": len(ids),
                      "fnv1a": fnv1a_ids(ids)})
    path = os.path.join(out, "reference.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"meta": meta}, ensure_ascii=False) + "\n")
        for rec in lines:
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {out}: vocab {tok.get_vocab_size()}, {len(lines)} strings")


def main():
    rng = random.Random(2024)
    texts = training_text(rng)
    strings = reference_strings(random.Random(77))
    vocab4, merges4 = train(texts, newline_split=True, vocab_size=3200)
    write_dir("gemma4_synthetic", assemble(vocab4, merges4, newline_split=True), strings, False)
    vocab3, merges3 = train(texts, newline_split=False, vocab_size=3200)
    write_dir("gemma3_synthetic", assemble(vocab3, merges3, newline_split=False), strings, True)


if __name__ == "__main__":
    main()
