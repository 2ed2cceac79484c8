"""The service on an accelerator: remember, recall (texts read from the memory), recall_many,
forget and ask with the model on ``--device`` (default cuda), against the same calls on the CPU.

Runs on the tiny random token-code model, so it needs no packaged weights and travels to a
device machine with the source alone: ``PYTHONPATH=. python scripts/device_check.py``. Exits
non-zero on any difference; prints one JSON line of what it checked and how long each part took.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from larimar_memory.service import Larimar, LarimarSettings, RecallCall
from larimar_memory.testing import HashingEmbedder, tiny_test_model

CODES = {"latent": "token-codes", "num_latent_tokens": 32, "latent_token_dim": 16,
         "max_text_tokens": 31, "memory_slots": 16}


def _memory(store: Path, device: str) -> Larimar:
    from larimar_memory.scope import SentenceEmbedder

    model = tiny_test_model("llama", **CODES).to(device)
    return Larimar(model, store=store,
                   embedder=SentenceEmbedder(model=HashingEmbedder()),
                   settings=LarimarSettings(max_new_tokens=4, block_rows=64))


def _session(memory: Larimar, facts: list[str]) -> dict[str, object]:
    """The calls a user makes; what they return, for comparison across devices."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    ids = memory.remember(facts).ids
    timings["remember_s"] = time.perf_counter() - start
    start = time.perf_counter()
    recalls = [memory.recall(f, k=3) for f in facts[:50]]
    timings["recall_50_s"] = time.perf_counter() - start
    many = memory.recall_many([RecallCall(query=f, k=3) for f in facts[:50]])
    exact = sum(r.hits[0].text == r.hits[0].fact.text for r in recalls)
    memory.forget(ids[0])
    after = memory.recall(facts[0], k=1)
    answer = memory.ask(facts[1], max_new_tokens=4).answer
    return {
        "hits": [[(h.fact.text, h.text) for h in r.hits] for r in recalls],
        "batched_equal": [[(h.fact.text, h.text) for h in r.hits] for r in many]
        == [[(h.fact.text, h.text) for h in r.hits] for r in recalls],
        "exact_readback": exact, "forgotten_gone": all(h.fact.id != ids[0] for h in after.hits),
        "answer_is_text": isinstance(answer, str), "timings": timings,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--facts", type=int, default=300)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"device": args.device, "error": "CUDA is not available"}))
        return 2
    facts = [f"person {i} lives in town {i * 7 % 101} and keeps {i % 13} cats"
             for i in range(args.facts)]
    with tempfile.TemporaryDirectory() as tmp:
        with (_memory(Path(tmp) / "reference.sqlite3", "cpu") as cpu,
              _memory(Path(tmp) / "checked.sqlite3", args.device) as dev):
            reference, checked = _session(cpu, facts), _session(dev, facts)
    failures = [name for name, ok in (
        ("same hits and texts as on the CPU", checked["hits"] == reference["hits"]),
        ("recall_many equals recall", checked["batched_equal"]),
        ("every text read back exactly", checked["exact_readback"] == min(50, len(facts))),
        ("a forgotten fact is not recalled", checked["forgotten_gone"]),
        ("ask answers", checked["answer_is_text"]),
    ) if not ok]
    print(json.dumps({"device": args.device, "name": torch.cuda.get_device_name()
                      if args.device.startswith("cuda") else "cpu", "facts": len(facts),
                      "failures": failures, "timings": checked["timings"],
                      "cpu_timings": reference["timings"]}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
