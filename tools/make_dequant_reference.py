#!/usr/bin/env python3
"""Makes the reference fixtures of the weight loaders (engine/weights/).

Run with the reference venv from the repository root:
    /work/main/.venv-tools/bin/python tools/make_dequant_reference.py [--model PATH]

Writes, under tests/fixtures/weights/:
  dequant_types.gguf      one random tensor per supported ggml type (F32, F16, BF16, Q4_0,
                          Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), written by gguf's
                          GGUFWriter, plus one metadata key of every GGUF value type.
  dequant_expected.bin    the tensors of dequant_types.gguf dequantized by
                          gguf.quants.dequantize, as little-endian f32, concatenated in the
                          file's tensor order.
  gemma3_270m_rows.json   (only with the default model present) a few dequantized values of
                          some tensors of models/gemma-3-270m-q4_k_m.gguf, as f32 bit patterns.
  safetensors/            a single-file model and a 2-shard set (written with `safetensors`).
and under tests/fuzz/corpus/: small seed inputs for fuzz_gguf and fuzz_safetensors.

Quantized tensors use gguf.quants.quantize on random normal data where the package can
quantize (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16); the K-quants (which it only dequantizes) and
a second ".raw" tensor per quantized type are random block bytes whose f16 scale fields are
replaced by finite random values, so every bit pattern of the quants is exercised.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "weights")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")

TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K]
CAN_QUANTIZE = {Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0}
# Byte offsets of the f16 scale fields inside one block.
F16_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}


def random_blocks(rng, qtype, rows, cols):
    """Random block bytes for `rows` rows of `cols` elements, with sane f16 scales."""
    block, size = GGML_QUANT_SIZES[qtype]
    nblocks = rows * cols // block
    raw = rng.integers(0, 256, size=(nblocks, size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scale = (rng.standard_normal(nblocks) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(nblocks, 2)
    return raw.reshape(rows, cols // block * size)


def add_all_metadata(w):
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.1)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo ▁world")
    w.add_uint64("test.u64", 2**64 - 1)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 0.1)
    w.add_array("test.array_str", ["a", "", "▁b"])
    w.add_key_value("test.array_i32", [1, -2, 3], GGUFValueType.ARRAY, GGUFValueType.INT32)
    w.add_key_value("test.array_f32", [0.5, -1.25], GGUFValueType.ARRAY, GGUFValueType.FLOAT32)
    w.add_key_value("test.array_bool", [True, False, True], GGUFValueType.ARRAY, GGUFValueType.BOOL)
    w.add_key_value("test.array_u8", [0, 255], GGUFValueType.ARRAY, GGUFValueType.UINT8)
    w.add_key_value("test.array_nested", [[1, 2], [3]], GGUFValueType.ARRAY, GGUFValueType.ARRAY)


def make_dequant_fixture(rng):
    path = os.path.join(FIXTURES, "dequant_types.gguf")
    w = GGUFWriter(path, "sluice-test")
    add_all_metadata(w)
    expected = []
    rows, cols = 3, 512
    for qtype in TYPES:
        name = qtype.name.lower()
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        if qtype == Q.F32:
            data = x
        elif qtype == Q.F16:
            data = x.astype(np.float16)
        elif qtype in CAN_QUANTIZE:
            data = quantize(x, qtype)
        else:
            data = random_blocks(rng, qtype, rows, cols)
        raw_dtype = qtype if data.dtype == np.uint8 else None
        w.add_tensor(name, data, raw_dtype=raw_dtype)
        expected.append(dequantize(data, qtype).astype(np.float32).reshape(-1))
        if qtype in F16_FIELDS:
            raw = random_blocks(rng, qtype, 2, 256)
            w.add_tensor(name + ".raw", raw, raw_dtype=qtype)
            expected.append(dequantize(raw, qtype).astype(np.float32).reshape(-1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = np.concatenate(expected).astype("<f4")
    assert np.all(np.isfinite(out))
    out.tofile(os.path.join(FIXTURES, "dequant_expected.bin"))
    # The tensor order the C++ test relies on is the file's order: check it.
    reader = GGUFReader(path)
    assert sum(int(np.prod(t.shape)) for t in reader.tensors) == out.size
    print(f"wrote {path} ({os.path.getsize(path)} bytes), {out.size} expected values")


def make_model_reference(model):
    reader = GGUFReader(model)
    picks = {
        "blk.0.attn_q.weight": [0, 1, 1023],
        "blk.0.attn_output.weight": [0, 639],
        "blk.0.ffn_down.weight": [0, 639],
        "token_embd.weight": [2, 262143],
        "output_norm.weight": [0],
    }
    doc = {"tensor_count": len(reader.tensors), "tensors": {}}
    counts = {}
    for t in reader.tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    doc["type_counts"] = counts
    for t in reader.tensors:
        if t.name not in picks:
            continue
        data = t.data if t.data.ndim > 1 else t.data.reshape(1, -1)
        rows = []
        for r in picks[t.name]:
            y = dequantize(data[r:r + 1], t.tensor_type).astype(np.float32).reshape(-1)
            bits = y.view(np.uint32)
            rows.append({"row": r, "first": [int(b) for b in bits[:32]],
                         "last": [int(b) for b in bits[-32:]]})
        doc["tensors"][t.name] = {"type": t.tensor_type.name, "ne": [int(n) for n in t.shape],
                                  "rows": rows}
    path = os.path.join(FIXTURES, "gemma3_270m_rows.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"wrote {path}")


def make_safetensors(rng):
    from safetensors.numpy import save_file
    d = os.path.join(FIXTURES, "safetensors")
    single = os.path.join(d, "single")
    sharded = os.path.join(d, "sharded")
    os.makedirs(single, exist_ok=True)
    os.makedirs(sharded, exist_ok=True)
    a = rng.standard_normal((4, 8)).astype(np.float32)
    b = rng.standard_normal((8,)).astype(np.float16)
    c = rng.standard_normal((2, 3, 4)).astype(np.float32)
    save_file({"a.weight": a, "b.bias": b, "c.weight": c}, os.path.join(single, "model.safetensors"),
              metadata={"format": "pt"})
    save_file({"a.weight": a, "b.bias": b}, os.path.join(sharded, "model-00001-of-00002.safetensors"))
    save_file({"c.weight": c}, os.path.join(sharded, "model-00002-of-00002.safetensors"))
    index = {"metadata": {"total_size": a.nbytes + b.nbytes + c.nbytes},
             "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                            "b.bias": "model-00001-of-00002.safetensors",
                            "c.weight": "model-00002-of-00002.safetensors"}}
    with open(os.path.join(sharded, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    np.concatenate([a.reshape(-1), b.astype(np.float32), c.reshape(-1)]).astype("<f4").tofile(
        os.path.join(d, "expected_f32.bin"))
    print(f"wrote {d}")


def safetensors_bytes(header, data=b""):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def make_corpus(rng):
    g = os.path.join(CORPUS, "fuzz_gguf")
    s = os.path.join(CORPUS, "fuzz_safetensors")
    os.makedirs(g, exist_ok=True)
    os.makedirs(s, exist_ok=True)
    # GGUF: small valid files (every metadata type; a few tensors of each family).
    path = os.path.join(g, "valid_small.gguf")
    w = GGUFWriter(path, "sluice-test")
    add_all_metadata(w)
    w.add_tensor("f32", rng.standard_normal((2, 4)).astype(np.float32))
    w.add_tensor("f16", rng.standard_normal((3,)).astype(np.float16))
    w.add_tensor("q8_0", quantize(rng.standard_normal((1, 32)).astype(np.float32), Q.Q8_0), raw_dtype=Q.Q8_0)
    w.add_tensor("q4_k", random_blocks(rng, Q.Q4_K, 1, 256), raw_dtype=Q.Q4_K)
    w.add_tensor("q6_k", random_blocks(rng, Q.Q6_K, 1, 256), raw_dtype=Q.Q6_K)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    valid = open(path, "rb").read()
    path = os.path.join(g, "valid_quants.gguf")
    w = GGUFWriter(path, "sluice-test")
    w.add_custom_alignment(64)
    for qtype in (Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q5_K, Q.BF16):
        w.add_tensor(qtype.name.lower(), random_blocks(rng, qtype, 1, 256) if qtype != Q.BF16 else
                     quantize(rng.standard_normal((2, 8)).astype(np.float32), Q.BF16), raw_dtype=qtype)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    # Near-valid variants of the first.
    with open(os.path.join(g, "truncated.gguf"), "wb") as f:
        f.write(valid[:len(valid) // 2])
    bad = bytearray(valid); bad[4:8] = struct.pack("<I", 1)
    with open(os.path.join(g, "version1.gguf"), "wb") as f:
        f.write(bad)
    bad = bytearray(valid); bad[16:24] = struct.pack("<Q", 2**63)
    with open(os.path.join(g, "huge_kv_count.gguf"), "wb") as f:
        f.write(bad)
    bad = bytearray(valid); bad[24:32] = struct.pack("<Q", 2**64 - 1)
    with open(os.path.join(g, "huge_key_len.gguf"), "wb") as f:
        f.write(bad)
    with open(os.path.join(g, "header_only.gguf"), "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    # safetensors.
    a = rng.standard_normal((2, 3)).astype(np.float32).tobytes()
    h = rng.standard_normal((4,)).astype(np.float16).tobytes()
    bf = bytes(rng.integers(0, 256, 8, dtype=np.uint8))
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "h": {"dtype": "F16", "shape": [4], "data_offsets": [24, 32]},
              "bf": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [32, 40]}}
    seeds = {
        "valid.safetensors": safetensors_bytes(header, a + h + bf),
        "empty.safetensors": safetensors_bytes({}),
        "scalar.safetensors": safetensors_bytes({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}, a[:4]),
        "i8.safetensors": safetensors_bytes({"q": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}}, a[:4]),
        "gap.safetensors": safetensors_bytes({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, a[:8]),
        "not_json.safetensors": struct.pack("<Q", 5) + b"{abc}",
        "huge_len.safetensors": struct.pack("<Q", 2**63) + b"{}",
    }
    for name, data in seeds.items():
        with open(os.path.join(s, name), "wb") as f:
            f.write(data)
    print(f"wrote seed corpora under {CORPUS}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    os.makedirs(FIXTURES, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    make_dequant_fixture(rng)
    make_safetensors(rng)
    make_corpus(rng)
    if os.path.exists(args.model):
        make_model_reference(args.model)
    else:
        print(f"{args.model} not found: gemma3_270m_rows.json not written", file=sys.stderr)


if __name__ == "__main__":
    main()
