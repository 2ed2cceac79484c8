"""`ask` latency by `LarimarSettings.decoder_weights` (issue 30): five short personal facts,
then their questions (memory route) and five general questions (plain route), each asked of
every variant in turn (order alternating per round), all in one process on one loaded model.
With ``--startup``: ``Larimar()`` construction and first-call times, one fresh process per
variant and repeat, alternating.

    taskset -c 1 .venv/bin/python scripts/ask_latency.py --rounds 6
    taskset -c 1 .venv/bin/python scripts/ask_latency.py --startup --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FACTS = ["I live in Porto.", "My sister's name is Ana.", "I work as a nurse.",
         "My favourite colour is green.", "My dog is called Rex."]
ASKS = ["Where do I live?", "What is my sister's name?", "What is my job?",
        "What is my favourite colour?", "What is my dog called?"]
GENERAL = ["What is the capital of France?", "How many legs does a spider have?",
           "Who painted the Mona Lisa?", "Who wrote Hamlet?",
           "What is the boiling point of water?"]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(weights: list[str], rounds: int) -> dict:
    from larimar_memory.model import LarimarModel
    from larimar_memory.scope import SentenceEmbedder
    from larimar_memory.service import Larimar, LarimarSettings

    model = LarimarModel.from_pretrained("larimar-smol")
    embedder = SentenceEmbedder()
    folder = tempfile.TemporaryDirectory(prefix="larimar-ask-latency-")
    memories = {}
    for w in weights:
        memories[w] = Larimar(model, store=Path(folder.name) / f"{w}.sqlite3",
                              embedder=embedder, settings=LarimarSettings(decoder_weights=w))
        memories[w].remember(FACTS)
        memories[w].ask(ASKS[0])  # warm-up: codebook caches, first kernels
        memories[w].ask(GENERAL[0])
    times: dict[str, list[float]] = {}
    answers: dict[str, dict[str, list[str]]] = {w: {} for w in weights}
    for r in range(rounds):
        order = weights if r % 2 == 0 else weights[::-1]
        for question in ASKS + GENERAL:
            for w in order:
                start = time.perf_counter()
                result = memories[w].ask(question)
                elapsed = time.perf_counter() - start
                times.setdefault(f"{w}/{result.route}", []).append(elapsed)
                answers[w][question] = [result.route, result.answer]
    for memory in memories.values():
        memory.close()
    return {"rows": {key: {"n": len(v), "p50_ms": round(1000 * statistics.median(v), 1),
                           "p95_ms": round(1000 * _quantile(v, 0.95), 1)}
                     for key, v in sorted(times.items())},
            "answers": answers}


def startup_once(weights: str) -> dict:
    """In this (fresh) process: imports, construction, first remember and asks."""
    t0 = time.perf_counter()
    from larimar_memory.service import Larimar, LarimarSettings

    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        memory = Larimar(store=Path(folder) / "facts.sqlite3",
                         settings=LarimarSettings(decoder_weights=weights))
        t2 = time.perf_counter()
        memory.remember(FACTS[0])
        t3 = time.perf_counter()
        memory.ask(ASKS[0])
        t4 = time.perf_counter()
        memory.ask(ASKS[0])
        t5 = time.perf_counter()
        with open("/proc/self/status") as status:  # resident MB: anonymous, file-backed
            rss = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status
                   if line.startswith(("RssAnon", "RssFile"))}
        memory.close()
    return {"import_s": t1 - t0, "construct_s": t2 - t1, "first_remember_s": t3 - t2,
            "first_ask_s": t4 - t3, "second_ask_s": t5 - t4, "rss_anon_mb": rss["RssAnon"],
            "rss_file_mb": rss["RssFile"]}


def startup(weights: list[str], repeats: int, threads: int) -> dict:
    runs: dict[str, list[dict]] = {w: [] for w in weights}
    for r in range(repeats):
        for w in weights if r % 2 == 0 else weights[::-1]:
            out = subprocess.run([sys.executable, __file__, "--startup-once", w, "--threads",
                                  str(threads)], check=True, capture_output=True, text=True).stdout
            runs[w].append(json.loads(out.strip().splitlines()[-1]))
    return {w: {key: round(statistics.median(run[key] for run in rows), 3) for key in rows[0]}
            for w, rows in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="float32,float16,int8")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--startup", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--startup-once", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.startup_once:
        print(json.dumps(startup_once(args.startup_once)))
        return
    weights = args.weights.split(",")
    result = (startup(weights, args.repeats, args.threads) if args.startup
              else latency(weights, args.rounds))
    print(json.dumps({**result, "load_average": os.getloadavg(), "threads": args.threads},
                     indent=1))


if __name__ == "__main__":
    main()
