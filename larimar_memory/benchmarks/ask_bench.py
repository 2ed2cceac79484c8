"""`larimar bench ask`: `ask` latency by `LarimarSettings.decoder_weights` (issue 30): five
short personal facts, then their questions (memory route) and five general questions (plain
route), each asked of every variant in turn (order alternating per round), all in one process;
``--models`` compares checkpoints (e.g. a Gemma-decoder run's export) the same way.
With ``--serve``: every weight format also through a `larimar serve` subprocess (the packaged
model, a `LarimarClient` in this process), its rows named ``<weights>/serve``, asked in the same
rounds. With ``--startup``: ``Larimar()`` construction and first-call times, one fresh process
per variant and repeat, alternating.

    taskset -c 1 larimar bench ask --rounds 6
    taskset -c 1 larimar bench ask --startup 3
    taskset -c 1 larimar bench ask --weights int8 --serve
    taskset -c 1 larimar bench ask --weights int8 --models larimar-smol,runs/larimar-gemma/model
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ArgumentError
from .common import machine, percentile, save_results

FACTS = ["I live in Porto.", "My sister's name is Ana.", "I work as a nurse.",
         "My favourite colour is green.", "My dog is called Rex."]
ASKS = ["Where do I live?", "What is my sister's name?", "What is my job?",
        "What is my favourite colour?", "What is my dog called?"]
GENERAL = ["What is the capital of France?", "How many legs does a spider have?",
           "Who painted the Mona Lisa?", "Who wrote Hamlet?",
           "What is the boiling point of water?"]


@contextlib.contextmanager
def served(weights: list[str], threads: int, tiny: bool = False) -> Iterator[dict[str, Any]]:
    """A `larimar serve` subprocess per weight format (the packaged model; ``tiny``: the
    server's tiny random one) and a client on each, named ``<weights>/serve``
    (`eval.dialogues.transports.serve`); the servers are stopped on exit."""
    from larimar_memory.eval.dialogues.transports import serve

    with contextlib.ExitStack() as stack:
        yield {f"{w}/serve": stack.enter_context(serve(tiny=tiny, threads=threads,
                                                       decoder_weights=w))
               for w in weights}


def latency(weights: list[str], rounds: int, models: tuple[str, ...] = ("larimar-smol",),
            serve: bool = False, threads: int = 1) -> dict:
    """p50/p95 per variant and route: a variant is a weight format, prefixed by its model's
    name when several models are compared, or ``<weights>/serve`` through a server."""
    from larimar_memory.scope import SentenceEmbedder

    if serve and models != ("larimar-smol",):
        raise ArgumentError("--serve times the packaged model (larimar serve opens no other); "
                            f"got --models {','.join(models)}")
    embedder = SentenceEmbedder()
    folder = tempfile.TemporaryDirectory(prefix="larimar-ask-latency-")
    with served(weights if serve else [], threads) as clients:
        return _latency(weights, rounds, models, embedder, folder, clients)


def _latency(weights: list[str], rounds: int, models: tuple[str, ...], embedder: Any,
             folder: tempfile.TemporaryDirectory, clients: dict[str, Any]) -> dict:
    from larimar_memory.model import LarimarModel
    from larimar_memory.service import Larimar, LarimarSettings

    memories: dict[str, Any] = {}
    for name in models:
        model = LarimarModel.from_pretrained(name)
        for w in weights:
            variant = w if len(models) == 1 else f"{name}/{w}"
            memories[variant] = memory = Larimar(
                model, store=Path(folder.name) / f"{len(memories)}.sqlite3", embedder=embedder,
                settings=LarimarSettings(decoder_weights=w))
    own = list(memories.values())  # the clients are the servers' to close
    memories.update(clients)
    for memory in memories.values():
        memory.remember(FACTS)
        memory.ask(ASKS[0])  # warm-up: codebook caches, first kernels
        memory.ask(GENERAL[0])
    variants = list(memories)
    times: dict[str, list[float]] = {}
    answers: dict[str, dict[str, list[str]]] = {w: {} for w in variants}
    for r in range(rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for question in ASKS + GENERAL:
            for w in order:
                start = time.perf_counter()
                result = memories[w].ask(question)
                elapsed = time.perf_counter() - start
                times.setdefault(f"{w}/{result.route}", []).append(elapsed)
                answers[w][question] = [result.route, result.answer]
    for memory in own:
        memory.close()
    return {"rows": {key: {"n": len(v), "p50_ms": round(1000 * statistics.median(v), 1),
                           "p95_ms": round(1000 * percentile(v, 95), 1)}
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
            out = subprocess.run([sys.executable, "-m", __name__, w, str(threads)],
                                 check=True, capture_output=True, text=True).stdout
            runs[w].append(json.loads(out.strip().splitlines()[-1]))
    return {w: {key: round(statistics.median(run[key] for run in rows), 3) for key in rows[0]}
            for w, rows in runs.items()}


def run(weights: tuple[str, ...] = ("float32", "float16", "int8", "onnx-int8"), rounds: int = 6,
        startup_repeats: int = 0, threads: int = 1, out: Path | None = None,
        plot: bool = True, models: tuple[str, ...] = ("larimar-smol",), serve: bool = False
        ) -> dict[str, Any]:
    """Latency by weights (and with ``startup_repeats``, start-up in fresh processes); JSON
    and chart under docs/results/."""
    results: dict[str, Any] = {"benchmark": "ask", "threads": threads,
                               "machine": {**machine(), "load_average": os.getloadavg()},
                               "models": list(models),
                               "latency": latency(list(weights), rounds, models, serve,
                                                  threads)}
    if startup_repeats:
        results["startup"] = startup(list(weights), startup_repeats, threads)
    results["machine"]["load_average_after"] = os.getloadavg()
    save_results(results, out, "ask_bench.json", _plot if plot else None)
    return results


def _plot(results: dict[str, Any], path: Path) -> None:
    """p50 and p95 per weights and route."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["latency"]["rows"]
    labels = list(rows)
    fig, ax = plt.subplots(figsize=(8, 4))
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], [rows[k]["p50_ms"] for k in labels], 0.4, label="p50")
    ax.bar([i + 0.2 for i in x], [rows[k]["p95_ms"] for k in labels], 0.4, label="p95")
    ax.axhline(250, color="grey", linestyle=":", label="issue 30: ask p50 ≤ 250 ms")
    ax.set_xticks(list(x), labels, rotation=20, fontsize=8)
    ax.set_ylabel("ms per ask")
    ax.set_title(f"ask latency by decoder weights / route, {results['threads']} torch thread(s)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":  # one start-up measurement in a fresh process (`startup`)
    import torch

    torch.set_num_threads(int(sys.argv[2]))
    print(json.dumps(startup_once(sys.argv[1])))
