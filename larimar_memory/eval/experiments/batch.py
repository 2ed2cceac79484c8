"""`batch`: rewrite accuracy when n CounterFact edits are written at once, n = 1 … 2048, K = 512.

All n facts go into a fresh K-slot memory in one least-squares write (key = prompt). Beyond K
facts, slots are shared by nearest key (as the service does), so accuracy is expected to fall
past n = K. Rewrite accuracy = % of edits whose memory-conditioned P(target_new) beats
P(target_true) on the edit prompt (CounterFact edit success), over a sample of each batch;
``fidelity`` (readout cosine to the fact's stored value, all n facts) measures the memory alone.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import metrics
from ..context import EvalContext
from ..data import COUNTERFACT
from ..report import plot_curves
from ..scoring import score_targets
from .common import load_records, sample_indices

NAME = "batch"
DEFAULT_DATA = COUNTERFACT
DEFAULT_SIZES = tuple(2**i for i in range(12))  # 1 … 2048
DEFAULT_SAMPLE = 32


def run(ctx: EvalContext) -> dict[str, Any]:
    opts = ctx.options
    sizes = sorted({int(s) for s in (opts.sweep or DEFAULT_SIZES) if s >= 1})
    if opts.limit is not None:
        sizes = sorted({min(s, opts.limit) for s in sizes})
    records, path = load_records(ctx, DEFAULT_DATA, max(sizes), need_true=True)
    sizes = sorted({min(s, len(records)) for s in sizes})
    keys = ctx.embed([r.prompt for r in records])
    values = ctx.encode([r.fact for r in records])
    sample = opts.sample or DEFAULT_SAMPLE
    rows_out = []
    for n in sizes:
        memory = ctx.new_memory()
        memory.write(keys[:n], values[:n])
        readouts = memory.read(keys[:n])
        fidelity = torch.nn.functional.cosine_similarity(readouts, values[:n], dim=-1)
        chosen = sample_indices(n, sample, opts.seed)
        accuracy = _rewrite_accuracy(ctx, [records[i] for i in chosen], readouts[chosen])
        rows_out.append({"batch_size": n, "rewrite_accuracy": accuracy,
                         "fidelity": float(fidelity.mean()), "evaluated": len(chosen),
                         "slots_used": len(memory.used_slots)})
    chosen = sample_indices(len(records), sample, opts.seed)
    plain = _rewrite_accuracy(ctx, [records[i] for i in chosen], None)
    plot = plot_curves(
        opts.out_dir, NAME,
        {"rewrite accuracy (memory)": (sizes, [r["rewrite_accuracy"] for r in rows_out]),
         "no memory (unedited)": (sizes, [plain] * len(sizes))},
        "edits written at once", "rewrite accuracy (%)",
        f"batch editing, K={opts.slots} ({ctx.label})", logx=True,
        secondary={"fidelity": (sizes, [r["fidelity"] for r in rows_out])},
        secondary_label="readout cosine to stored value",
    )
    summary = {f"rewrite_acc@{r['batch_size']}": r["rewrite_accuracy"] for r in rows_out}
    summary["no_memory_rewrite_acc"] = plain
    return {
        "data": str(path),
        "slots": opts.slots,
        "metrics": {"by_batch_size": rows_out, "no_memory_rewrite_accuracy": plain},
        "plots": [str(plot)],
        "summary": summary,
    }


def _rewrite_accuracy(ctx: EvalContext, records: list[Any], readouts: torch.Tensor | None
                      ) -> float | None:
    prompts = [r.prompt for r in records for _ in range(2)]
    targets = [t for r in records for t in (r.target_new, r.target_true)]
    z = None if readouts is None else readouts.repeat_interleave(2, dim=0)
    scores = score_targets(ctx.model, prompts, targets, z, ctx.options.batch_size, "rewrite")
    wins = [float(a.probability > b.probability) for a, b in zip(scores[0::2], scores[1::2],
                                                                   strict=True)]
    return metrics.percent(metrics.mean(wins))
