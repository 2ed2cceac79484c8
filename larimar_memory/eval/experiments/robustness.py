"""`robustness`: how readouts degrade with noise σ_w on the addressing weights.

N CounterFact facts share one memory; each is read back with its prompt's key and weights
``w = w̄ + σ_w·ε`` (the paper's stochastic read, noise on all K slots), for a sweep of σ_w.
Measured: edit success (P new > P true), recall (greedy answer contains target_new), and the
readout's cosine to the stored value (memory only). Noise draws are seeded.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import metrics
from ..context import EvalContext
from ..data import COUNTERFACT
from ..report import plot_curves
from ..scoring import score_targets
from .common import answer_quality, load_records, sample_indices

NAME = "robustness"
DEFAULT_DATA = COUNTERFACT
DEFAULT_FACTS = 64
DEFAULT_SIGMAS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def run(ctx: EvalContext) -> dict[str, Any]:
    opts = ctx.options
    sigmas = sorted({float(s) for s in (opts.sweep or DEFAULT_SIGMAS) if s >= 0})
    records, path = load_records(ctx, DEFAULT_DATA, opts.limit or DEFAULT_FACTS, need_true=True)
    keys = ctx.embed([r.prompt for r in records])
    values = ctx.encode([r.fact for r in records])
    memory = ctx.new_memory()
    memory.write(keys, values)
    chosen = sample_indices(len(records), opts.sample, opts.seed)
    rows = [records[i] for i in chosen]
    out = []
    for sigma in sigmas:
        generator = torch.Generator().manual_seed(opts.seed)
        readouts = memory.read(keys, sigma_w=sigma, generator=generator)
        fidelity = torch.nn.functional.cosine_similarity(readouts, values, dim=-1)
        z = readouts[chosen]
        judged = answer_quality(ctx, [r.prompt for r in rows], [r.target_new for r in rows], z,
                                f"σ_w={sigma}")
        prompts = [r.prompt for r in rows for _ in range(2)]
        targets = [t for r in rows for t in (r.target_new, r.target_true)]
        scores = score_targets(ctx.model, prompts, targets, z.repeat_interleave(2, dim=0),
                               opts.batch_size, f"σ_w={sigma}")
        wins = [float(a.probability > b.probability)
                for a, b in zip(scores[0::2], scores[1::2], strict=True)]
        out.append({
            "sigma_w": sigma,
            "edit_success": metrics.percent(metrics.mean(wins)),
            "recall": metrics.percent(metrics.mean(x["contains"] for x in judged)),
            "fidelity": float(fidelity.mean()),
        })
    plot = plot_curves(
        opts.out_dir, NAME,
        {"edit success (%)": (sigmas, [r["edit_success"] for r in out]),
         "recall (%)": (sigmas, [r["recall"] for r in out])},
        "σ_w (std of noise on addressing weights)", "%",
        f"readout robustness, {len(records)} facts, K={opts.slots} ({ctx.label})",
        secondary={"fidelity": (sigmas, [r["fidelity"] for r in out])},
        secondary_label="readout cosine to stored value",
    )
    return {
        "data": str(path),
        "facts": len(records),
        "evaluated": len(chosen),
        "slots": opts.slots,
        "metrics": {"by_sigma_w": out},
        "plots": [str(plot)],
        "summary": {f"edit_success@σ={r['sigma_w']}": r["edit_success"] for r in out},
    }
