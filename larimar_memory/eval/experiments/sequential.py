"""`sequential`: N zsRE edits written one after another (GRACE's protocol), in two memories.

* ``service`` (``service: BlockMemory``, ``--block-rows`` rows per block): each edit is one
  ``Larimar.remember`` (key = the question, the fact's rows); a query reads as ``Larimar.ask``
  does (top-1 key search, readout, ``model.memory_context``);
* ``paper_pseudo_inverse`` (``paper: one EpisodicMemory of K rows``, K = ``--paper-slots``): the
  paper's dense addressing, weights ``key · R⁺`` against a fixed seeded random reference ``R``,
  one row per edit, each edit one sequential least-squares write; a query reads with its key's
  weights.

The whole sequence runs once per memory. Measured, per memory:

* held-out F1: as edits accumulate, greedy answers to the *rephrased* questions of the edits so
  far (never written) are compared with the new answers (token F1 on the answer span);
* edit retention: after the last edit, mean F1 of every edit's own question;
* test retention: no-memory perplexity on WikiText-2 test lines. Writes change only the memory,
  never the decoder, so this is the same number before and after editing by construction.

``fidelity`` (cosine between the readout and the stored value of the edit a query is about)
measures the memory alone, independent of how well the decoder is trained.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import metrics
from ..context import EvalContext
from ..data import WIKITEXT, ZSRE, load_text_lines, resolve_data
from ..report import plot_curves
from ..scoring import lm_nll
from .common import answer_quality, fidelity, load_records, sample_indices

logger = logging.getLogger(__name__)

NAME = "sequential"
DEFAULT_DATA = ZSRE
DEFAULT_EDITS = 1000
DEFAULT_SAMPLE = 50
CURVE_POINTS = (1, 2, 5, 10, 20, 50, 100, 200, 300, 400, 500, 600, 800, 1000, 1500, 2000)
MODES = ("service", "paper_pseudo_inverse")


def run(ctx: EvalContext) -> dict[str, Any]:
    opts = ctx.options
    records, path = load_records(ctx, DEFAULT_DATA, opts.limit or DEFAULT_EDITS)
    n = len(records)
    if n < (opts.limit or DEFAULT_EDITS):
        logger.warning("only %d edits available in %s", n, path)
    points = sorted({min(int(p), n) for p in (opts.sweep or CURVE_POINTS) if p >= 1} | {n})
    keys = ctx.embed([r.prompt for r in records])
    heldout = [r.paraphrases[0] if r.paraphrases else None for r in records]
    heldout_keys = ctx.embed([h or r.prompt for h, r in zip(heldout, records, strict=True)])
    sample = opts.sample or DEFAULT_SAMPLE
    memories = {
        "service": _ServiceEdits(ctx, keys, ctx.encode_facts([r.fact for r in records])),
        "paper_pseudo_inverse": _PaperEdits(ctx, keys, ctx.encode([r.fact for r in records])),
    }
    results = {mode: _run_mode(ctx, mode, memories[mode], records, keys, heldout, heldout_keys,
                               points, sample) for mode in MODES}
    ppl = _test_retention(ctx)
    plot = plot_curves(
        opts.out_dir, NAME,
        {f"held-out F1, {m}": (points, [c["heldout_f1"] for c in results[m]["curve"]])
         for m in MODES},
        "edits written", "F1 on held-out rephrasings (%)",
        f"{n} sequential zsRE edits: blocks of {opts.block_rows} vs one K={opts.paper_slots} "
        f"memory ({ctx.label})",
        logx=True,
        secondary={f"fidelity, {m}": (points, [c["heldout_fidelity"] for c in results[m]["curve"]])
                   for m in MODES},
        secondary_label="readout cosine to the edit's value",
    )
    summary: dict[str, float | None] = {"test_retention_ppl": ppl["perplexity"]}
    for m in MODES:
        summary[f"{m}/edit_retention_f1"] = results[m]["edit_retention_f1"]
        summary[f"{m}/final_heldout_f1"] = results[m]["curve"][-1]["heldout_f1"]
    return {
        "data": str(path),
        "edits": n,
        "memory": {"service": ctx.service_memory_info(),
                   "paper_pseudo_inverse": ctx.paper_memory_info("pseudo_inverse")},
        "decoded_per_point": sample,
        "metrics": {"addressing": results, "test_retention": ppl},
        "plots": [str(plot)],
        "summary": summary,
    }


class _ServiceEdits:
    """Edits in a service memory, read as ``Larimar.ask`` reads."""

    def __init__(self, ctx: EvalContext, keys: torch.Tensor, values: list[torch.Tensor]):
        self.ctx, self.keys, self.values = ctx, keys, values
        self.memory = ctx.new_memory()

    def write(self, i: int) -> None:
        self.ctx.write(self.memory, [str(i)], self.keys[i : i + 1], self.values[i : i + 1])

    def contexts(self, query_keys: torch.Tensor) -> list[torch.Tensor | None]:
        return self.ctx.contexts(self.memory, query_keys)

    def fidelity(self, query_keys: torch.Tensor, about: list[int]) -> float | None:
        return fidelity(self.memory, query_keys, [self.values[j] for j in about])


class _PaperEdits:
    """Edits in the paper's single K-row memory with pseudo-inverse weights ``key · R⁺``."""

    def __init__(self, ctx: EvalContext, keys: torch.Tensor, values: torch.Tensor):
        self.memory = ctx.paper_memory(addressing="pseudo_inverse")
        self.pinv = torch.linalg.pinv(self.memory.reference)  # R is fixed: R⁺ once
        self.weights, self.values = keys @ self.pinv, values

    def write(self, i: int) -> None:
        self.memory.write(self.values[i : i + 1], weights=self.weights[i : i + 1])

    def contexts(self, query_keys: torch.Tensor) -> torch.Tensor:
        return self.memory.read(weights=query_keys @ self.pinv)

    def fidelity(self, query_keys: torch.Tensor, about: list[int]) -> float | None:
        if query_keys.shape[0] == 0:
            return None
        cos = torch.nn.functional.cosine_similarity(self.contexts(query_keys),
                                                    self.values[about], dim=-1)
        return float(cos.mean())


def _run_mode(
    ctx: EvalContext, mode: str, memory: _ServiceEdits | _PaperEdits, records: list[Any],
    keys: torch.Tensor, heldout: list[str | None], heldout_keys: torch.Tensor, points: list[int],
    sample: int,
) -> dict[str, Any]:
    curve = []
    for i in tqdm(range(len(records)), desc=f"sequential edits ({mode})", leave=False):
        memory.write(i)
        if i + 1 not in points:
            continue
        seen = [j for j in range(i + 1) if heldout[j] is not None]
        chosen = sample_indices(len(seen), sample, ctx.options.seed)
        rows = [seen[c] for c in chosen]
        curve.append({
            "edits": i + 1,
            "heldout_f1": _f1(ctx, memory, [heldout[j] for j in rows],  # type: ignore[misc]
                              heldout_keys[rows], [records[j].target_new for j in rows]),
            "heldout_fidelity": memory.fidelity(heldout_keys[seen], seen),
            "decoded": len(rows),
        })
    everything = sample_indices(len(records), ctx.options.sample, ctx.options.seed)
    retention = _f1(ctx, memory, [records[j].prompt for j in everything], keys[everything],
                    [records[j].target_new for j in everything])
    return {
        "curve": curve,
        "edit_retention_f1": retention,
        "edit_retention_decoded": len(everything),
        "edit_fidelity": memory.fidelity(keys, list(range(len(records)))),
    }


def _f1(ctx: EvalContext, memory: _ServiceEdits | _PaperEdits, prompts: list[str],
        query_keys: torch.Tensor, answers: list[str]) -> float | None:
    if not prompts:
        return None
    judged = answer_quality(ctx, prompts, answers, memory.contexts(query_keys), "held-out F1")
    return metrics.percent(metrics.retention([x["f1"] for x in judged]))


def _test_retention(ctx: EvalContext) -> dict[str, Any]:
    """No-memory perplexity on ``--limit`` WikiText-2 test lines."""
    path = resolve_data(None, WIKITEXT)
    lines = load_text_lines(path, ctx.options.limit)
    nll, tokens = lm_nll(ctx.model, lines, batch_size=max(1, ctx.options.batch_size // 2))
    return {"data": str(path), "lines": len(lines), "tokens": tokens,
            "perplexity": metrics.perplexity(nll, tokens),
            "note": "no-memory decoding; identical before and after the edits by construction"}
