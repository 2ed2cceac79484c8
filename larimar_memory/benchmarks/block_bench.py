"""`larimar bench block`: what LlamaIndex's `Memory` pays per turn for Larimar's long-term memory
block, `LarimarMemoryBlock.aget`, as the namespace grows (issue 25's target: <= 50 ms at 10,000
facts), next to the `Larimar.recall` it is built on.

The block is the one users run (``llama_index.memory.larimar``, imported here only, lazily: the
core never needs LlamaIndex). Each timed turn is a question, so the block reads (recall) and
writes nothing; questions are drawn from the stored facts' own subjects."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import machine, percentile, save_results
from .service_bench import benchmark_facts

TARGET_MS = 50.0
"""Issue 25: block aget p50 at 10,000 facts."""


def run(out: Path | None = None, sizes: tuple[int, ...] = (1_000, 10_000), turns: int = 30,
        tiny: bool = False, plot: bool = True) -> dict[str, Any]:
    from llama_index.core.base.llms.types import ChatMessage, MessageRole
    from llama_index.memory.larimar import LarimarMemoryBlock

    memory = _larimar(tiny, Path(tempfile.mkdtemp()) / "block.sqlite3")
    texts = benchmark_facts(max(sizes))
    questions = [f"What about {' '.join(t.split()[:4])}?" for t in texts[:: max(1, len(texts)
                                                                             // turns)]][:turns]
    block = LarimarMemoryBlock(memory, namespace="bench", k=3)
    rows, stored = [], 0
    try:
        for size in sorted(sizes):
            for i in range(stored, size, 1000):
                memory.remember(texts[i: min(size, i + 1000)], namespace="bench")
            stored = size
            message = [ChatMessage(role=MessageRole.USER, content=questions[0])]
            asyncio.run(block.aget(message))  # warm: the namespace is loaded
            aget = [_timed(lambda q=q: asyncio.run(block.aget(
                [ChatMessage(role=MessageRole.USER, content=q)]))) for q in questions]
            recall = [_timed(lambda q=q: memory.recall(q, k=3, namespace="bench"))
                      for q in questions]
            rows.append({"facts": size, "block_aget": _stats(aget), "recall_k3": _stats(recall)})
    finally:
        memory.close()
    largest = rows[-1]
    results = {
        "benchmark": "block", "machine": machine(), "tiny": tiny, "turns": len(questions),
        "sizes": rows,
        "target": {"facts": largest["facts"], "block_aget_p50_ms": TARGET_MS,
                   "measured_p50_ms": largest["block_aget"]["p50_ms"],
                   "met": largest["block_aget"]["p50_ms"] <= TARGET_MS},
    }
    save_results(results, out, "block_bench_tiny.json" if tiny else "block_bench.json",
                 _plot if plot else None)
    return results


def _larimar(tiny: bool, path: Path) -> Any:
    from ..service import Larimar

    if tiny:
        from ..testing import tiny_larimar

        return tiny_larimar(path)
    return Larimar(store=str(path))


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _stats(seconds: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(seconds, 50) * 1e3, "p95_ms": percentile(seconds, 95) * 1e3}


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    facts = [r["facts"] for r in results["sizes"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, label in (("block_aget", "LarimarMemoryBlock.aget"), ("recall_k3", "recall k=3")):
        ax.plot(facts, [r[name]["p50_ms"] for r in results["sizes"]], marker="o",
                label=f"{label} p50")
        ax.plot(facts, [r[name]["p95_ms"] for r in results["sizes"]], marker="x",
                linestyle="--", label=f"{label} p95")
    ax.axhline(TARGET_MS, color="grey", linestyle=":", label="target (p50)")
    ax.set_xscale("log")
    ax.set_xlabel("facts in the namespace")
    ax.set_ylabel("ms per turn")
    ax.set_title("LlamaIndex memory block, one question per turn")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
