"""`larimar bench memory`: seconds per fact for write, forget and read on the raw memory math.

Facts are addressed with Gaussian keys on a slot-allocated reference memory (as the service
does); latents are random. Figures: per-fact seconds for batches of 1, 100 and 1000 facts, for
K ∈ {512, 1024, 4096} and C ∈ {384, 768}, and the state size in bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..memory import EpisodicMemory, MemoryConfig
from .common import RESULTS_DIR, machine, percentile, save_json, time_calls

KEY_WIDTH = 384
SLOTS = (512, 1024, 4096)
WIDTHS = (384, 768)
BATCHES = (1, 100, 1000)


def _fresh_memory(K: int, C: int, dtype: str) -> tuple[EpisodicMemory, torch.Tensor]:
    memory = EpisodicMemory(MemoryConfig(slots=K, width=C, key_width=KEY_WIDTH, dtype=dtype))
    keys = torch.nn.functional.normalize(
        torch.randn(K, KEY_WIDTH, dtype=memory.dtype), dim=-1
    )
    memory.set_reference_rows(list(range(K)), keys)
    return memory, keys


def bench_case(K: int, C: int, batch: int, dtype: str = "float64") -> dict[str, Any]:
    """Per-fact seconds of write, forget and read for one (K, C, batch) case."""
    memory, keys = _fresh_memory(K, C, dtype)
    # Half-full memory, so updates act on a realistic state.
    half = K // 2
    memory.write(torch.randn(half, C, dtype=memory.dtype), keys[:half])
    repeats = max(3, min(50, 2000 // batch)) if K <= 1024 else 3
    batch_keys = keys[torch.randint(0, K, (batch,))]
    Z = torch.randn(batch, C, dtype=memory.dtype)
    weights = memory.address(batch_keys)

    write_times, forget_times = [], []
    for _ in range(repeats):
        write_times += time_calls(lambda: memory.write(Z, weights=weights), 1)
        forget_times += time_calls(lambda: memory.forget(Z, weights=weights), 1)
    read_times = time_calls(lambda: memory.read(keys=batch_keys), repeats)
    per_fact = {
        "write": percentile(write_times, 50) / batch,
        "forget": percentile(forget_times, 50) / batch,
        "read": percentile(read_times, 50) / batch,
    }
    return {
        "slots": K, "width": C, "batch": batch, "dtype": dtype, "repeats": repeats,
        "seconds_per_fact": per_fact,
        "seconds_per_call_p50": {k: v * batch for k, v in per_fact.items()},
        "state_bytes": memory.state_bytes(),
    }


def state_size_vs_facts(K: int = 512, C: int = 768) -> list[dict[str, int]]:
    memory, keys = _fresh_memory(K, C, "float64")
    rows = [{"facts": 0, "state_bytes": memory.state_bytes()}]
    for n in (100, 1000, 5000):
        chosen = keys[torch.randint(0, K, (n,))]
        memory.write(torch.randn(n, C, dtype=memory.dtype), chosen)
        rows.append({"facts": n, "state_bytes": memory.state_bytes()})
    return rows


def run(out: Path | None = None, quick: bool = False, plot: bool = True) -> dict[str, Any]:
    slots = (512,) if quick else SLOTS
    widths = (768,) if quick else WIDTHS
    batches = (1, 100) if quick else BATCHES
    cases = [bench_case(K, C, n) for K in slots for C in widths for n in batches]
    # float32 for comparison on the headline configuration
    cases += [bench_case(512, 768, n, "float32") for n in batches]
    results = {
        "benchmark": "memory",
        "machine": machine(),
        "addressing": "gaussian, slot-allocated reference, key width 384",
        "cases": cases,
        "state_size_vs_facts": state_size_vs_facts(),
        "targets": {
            "single_write_or_forget_seconds_K512_C768": 1e-3,
            "batch_1000_seconds_K512_C768": 0.05,
        },
    }
    out = out or RESULTS_DIR / "memory_bench.json"
    save_json(results, out)
    if plot:
        _plot(cases, out.with_suffix(".png"))
    return results


def _plot(cases: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, op in zip(axes, ("write", "forget", "read"), strict=True):
        for C in sorted({c["width"] for c in cases}):
            for n in sorted({c["batch"] for c in cases}):
                rows = sorted(
                    (c for c in cases if c["width"] == C and c["batch"] == n
                     and c["dtype"] == "float64"),
                    key=lambda c: c["slots"],
                )
                if rows:
                    ax.plot([r["slots"] for r in rows],
                            [r["seconds_per_fact"][op] * 1e3 for r in rows],
                            marker="o", label=f"C={C}, batch={n}")
        ax.set_title(f"{op} (float64)")
        ax.set_xlabel("slots K")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("ms per fact")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
