#!/usr/bin/env python3
"""Prefill and batch-1 decode throughput of llama.cpp (through llama-cpp-python) on a GGUF,
measured the way sluice-model-bench measures sluice: a random 512-token prompt (seeded, BOS
first), then greedy decode. Prints one JSON object."""
import argparse
import json
import random
import statistics
import time

import numpy as np
from llama_cpp import Llama


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    t = time.perf_counter()
    llm = Llama(model_path=a.model, n_threads=a.threads, n_threads_batch=a.threads,
                n_ctx=a.prompt_tokens + a.decode_tokens + 8, n_batch=a.prompt_tokens,
                n_ubatch=a.prompt_tokens, logits_all=False, verbose=False)
    load_s = time.perf_counter() - t
    n_vocab = llm.n_vocab()

    def last_argmax() -> int:
        # NOTE: with logits_all=False llama-cpp-python does not fill Llama.scores; read the
        # last row straight from the context.
        return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))))

    rng = random.Random(1234)
    prompt = [llm.token_bos()] + [rng.randrange(1000, 200000) for _ in range(a.prompt_tokens - 1)]

    prefill, decode = [], []
    for _ in range(a.repeats):
        llm.reset()
        llm._ctx.kv_cache_clear()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        prefill.append(a.prompt_tokens / (t1 - t0))
        nxt = last_argmax()
        t2 = time.perf_counter()
        for _ in range(a.decode_tokens):
            llm.eval([nxt])
            nxt = last_argmax()
        t3 = time.perf_counter()
        decode.append(a.decode_tokens / (t3 - t2))
    print(json.dumps({"engine": "llama.cpp (llama-cpp-python)", "threads": a.threads,
                      "prompt_tokens": a.prompt_tokens, "decode_tokens": a.decode_tokens,
                      "repeats": a.repeats, "load_s": round(load_s, 2),
                      "prefill_tok_s": round(statistics.median(prefill), 2),
                      "decode_tok_s": round(statistics.median(decode), 2)}))


if __name__ == "__main__":
    main()
