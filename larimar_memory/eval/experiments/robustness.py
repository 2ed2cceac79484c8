"""`robustness`: how readouts degrade with noise σ_w on the addressing weights.

Memory: ``service: BlockMemory``. N CounterFact facts share one service memory; each is read
with its prompt's key as ``Larimar.ask`` reads (top-1 key search), but with the paper's
stochastic read: the fact's one-hot weights over the rows of its block plus noise,
``w = w̄ + σ_w·ε`` on every row of that block (the block's rows, up to ``--block-rows``), then
``model.memory_context``; σ_w = 0 is exactly the service's readout. Measured for a sweep of σ_w:
edit success (P new > P true), recall (greedy answer contains target_new), and the readout's
cosine to the stored value (memory only). Noise draws are seeded.
"""

from __future__ import annotations

from typing import Any

import torch

from ...blocks import BlockMemory
from .. import metrics
from ..context import EvalContext
from ..data import COUNTERFACT
from ..report import plot_curves
from .common import answer_quality, cosine, edit_success, fact_ids, load_records, sample_indices

NAME = "robustness"
DEFAULT_DATA = COUNTERFACT
DEFAULT_FACTS = 64
DEFAULT_SIGMAS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def run(ctx: EvalContext) -> dict[str, Any]:
    opts = ctx.options
    sigmas = sorted({float(s) for s in (opts.sweep or DEFAULT_SIGMAS) if s >= 0})
    records, path = load_records(ctx, DEFAULT_DATA, opts.limit or DEFAULT_FACTS, need_true=True)
    keys = ctx.embed([r.prompt for r in records])
    values = ctx.encode_facts([r.fact for r in records])
    memory = ctx.new_memory()
    ids = fact_ids(len(records))
    ctx.write(memory, ids, keys, values)
    top = ctx.hits(memory, keys)
    chosen = sample_indices(len(records), opts.sample, opts.seed)
    rows = [records[i] for i in chosen]
    out = []
    for sigma in sigmas:
        generator = torch.Generator().manual_seed(opts.seed)
        readouts = [noisy_readout(memory, fid, sigma, generator) for fid in top]
        fidelity = metrics.mean(cosine(r, v) for r, v in zip(readouts, values, strict=True))
        z = [None if (r := readouts[i]) is None else ctx.model.memory_context([r])
             for i in chosen]
        judged = answer_quality(ctx, [r.prompt for r in rows], [r.target_new for r in rows], z,
                                f"σ_w={sigma}")
        wins = edit_success(ctx, [r.prompt for r in rows], [r.target_new for r in rows],
                            [r.target_true for r in rows], z, f"σ_w={sigma}")
        out.append({
            "sigma_w": sigma,
            "edit_success": metrics.percent(metrics.mean(wins)),
            "recall": metrics.percent(metrics.mean(x["contains"] for x in judged)),
            "fidelity": fidelity,
        })
    plot = plot_curves(
        opts.out_dir, NAME,
        {"edit success (%)": (sigmas, [r["edit_success"] for r in out]),
         "recall (%)": (sigmas, [r["recall"] for r in out])},
        "σ_w (std of noise on addressing weights)", "%",
        f"readout robustness, {len(records)} facts, blocks of {opts.block_rows} ({ctx.label})",
        secondary={"fidelity": (sigmas, [r["fidelity"] for r in out])},
        secondary_label="readout cosine to stored value",
    )
    return {
        "data": str(path),
        "facts": len(records),
        "evaluated": len(chosen),
        "memory": {**ctx.service_memory_info(),
                   "read": "top-1 key search, one-hot weights over the block's rows + σ_w·ε, "
                           "model.memory_context"},
        "metrics": {"by_sigma_w": out},
        "plots": [str(plot)],
        "summary": {f"edit_success@σ={r['sigma_w']}": r["edit_success"] for r in out},
    }


def noisy_readout(memory: BlockMemory, fact_id: str | None, sigma: float,
                  generator: torch.Generator) -> torch.Tensor | None:
    """The fact's readout ``(n, C)`` with weights ``e_row + σ·ε`` over every row of its block
    (σ = 0: exactly ``memory.readout(fact_id)``); ``None`` for no fact."""
    if fact_id is None:
        return None
    rows = memory.rows_of(fact_id)
    block = memory.blocks[rows[0] // memory.block_rows]
    weights = torch.zeros(len(rows), block.slots, dtype=torch.float64)
    weights[torch.arange(len(rows)), [row % memory.block_rows for row in rows]] = 1.0
    if sigma > 0:
        weights += sigma * torch.randn(weights.shape, generator=generator, dtype=torch.float64)
    return block.read(weights=weights.to(block.dtype))
