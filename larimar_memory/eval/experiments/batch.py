"""`batch`: rewrite accuracy when n CounterFact edits are written at once, n = 1 … 2048.

Two memories, each measured on the same edits:

* ``service`` (``service: BlockMemory``, ``--block-rows`` rows per block): all n facts written in
  one ``Larimar.remember`` call (one least-squares update per block touched), each read by its
  edit prompt as ``Larimar.ask`` reads (top-1 key search, readout, ``model.memory_context``).
  Blocks are added as facts arrive, so nothing is shared past K;
* ``paper`` (``paper: one EpisodicMemory of K rows``, K = ``--paper-slots``): all n facts in one
  least-squares write to a single K-row memory with Gaussian addressing (eq. 7-8) against a
  reference whose first min(n, K) rows are the batch's own keys (the episode addresses itself)
  and the rest random; read with the same weights of the prompt's key. Past n = K facts share
  rows, which is the paper's capacity curve (Fig. 2a).

Rewrite accuracy = % of edits whose memory-conditioned P(target_new) beats P(target_true) on the
edit prompt (CounterFact edit success), over a sample of each batch; ``fidelity`` (readout cosine
to the fact's stored value, all n facts) measures the memory alone.
"""

from __future__ import annotations

from typing import Any

import torch

from ...addressing import random_reference
from .. import metrics
from ..context import EvalContext
from ..data import COUNTERFACT
from ..report import plot_curves
from ..scoring import Conditioning, take_rows
from .common import edit_success, fact_ids, fidelity, load_records, sample_indices

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
    ids = fact_ids(len(records))
    keys = ctx.embed([r.prompt for r in records])
    values = ctx.encode_facts([r.fact for r in records])
    rows1 = ctx.encode([r.fact for r in records])  # the paper's memory: one row per fact
    sample = opts.sample or DEFAULT_SAMPLE
    rows_out = []
    for n in sizes:
        chosen = sample_indices(n, sample, opts.seed)
        memory = ctx.new_memory()
        ctx.write(memory, ids[:n], keys[:n], values[:n])
        service = ctx.contexts(memory, keys[chosen])
        paper_readouts = _paper_readouts(ctx, keys[:n], rows1[:n])
        paper_fidelity = torch.nn.functional.cosine_similarity(paper_readouts, rows1[:n], dim=-1)
        rows_out.append({
            "batch_size": n,
            "rewrite_accuracy": _rewrite_accuracy(ctx, [records[i] for i in chosen], service),
            "fidelity": fidelity(memory, keys[:n], values[:n]),
            "blocks": len(memory.blocks),
            "paper_rewrite_accuracy": _rewrite_accuracy(
                ctx, [records[i] for i in chosen], take_rows(paper_readouts, chosen)),
            "paper_fidelity": float(paper_fidelity.mean()),
            "evaluated": len(chosen),
        })
    chosen = sample_indices(len(records), sample, opts.seed)
    plain = _rewrite_accuracy(ctx, [records[i] for i in chosen], None)
    K = opts.paper_slots
    plot = plot_curves(
        opts.out_dir, NAME,
        {"service (BlockMemory)": (sizes, [r["rewrite_accuracy"] for r in rows_out]),
         f"paper (one memory, K={K})": (sizes, [r["paper_rewrite_accuracy"] for r in rows_out]),
         "no memory (unedited)": (sizes, [plain] * len(sizes))},
        "edits written at once", "rewrite accuracy (%)",
        f"batch editing, blocks of {opts.block_rows} vs one K={K} memory ({ctx.label})",
        logx=True,
        secondary={"fidelity, service": (sizes, [r["fidelity"] for r in rows_out]),
                   "fidelity, paper": (sizes, [r["paper_fidelity"] for r in rows_out])},
        secondary_label="readout cosine to stored value",
    )
    summary: dict[str, float | None] = {}
    for r in rows_out:
        summary[f"rewrite_acc@{r['batch_size']}"] = r["rewrite_accuracy"]
    for r in rows_out:
        summary[f"paper/rewrite_acc@{r['batch_size']}"] = r["paper_rewrite_accuracy"]
    summary["no_memory_rewrite_acc"] = plain
    return {
        "data": str(path),
        "memory": {
            "service": ctx.service_memory_info(),
            "paper": ctx.paper_memory_info(
                "gaussian", reference="the batch's first min(n, K) keys, then seeded random"),
        },
        "metrics": {"by_batch_size": rows_out, "no_memory_rewrite_accuracy": plain},
        "plots": [str(plot)],
        "summary": summary,
    }


def _paper_readouts(ctx: EvalContext, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """All facts in one least-squares write to one K-row Gaussian memory, read by their keys."""
    K = ctx.options.paper_slots
    reference = random_reference(K, keys.shape[1], seed=ctx.options.seed, dtype=torch.float64)
    own = min(K, keys.shape[0])
    reference[:own] = keys[:own]
    memory = ctx.paper_memory(K, "gaussian", reference=reference)
    weights = memory.address(keys)
    memory.write(values, weights=weights)
    return memory.read(weights=weights)


def _rewrite_accuracy(ctx: EvalContext, records: list[Any], z: Conditioning) -> float | None:
    wins = edit_success(ctx, [r.prompt for r in records], [r.target_new for r in records],
                        [r.target_true for r in records], z, "rewrite")
    return metrics.percent(metrics.mean(wins))
