"""`forgetting`: selective forgetting and information-leakage prevention on CounterFact facts.

Memory: ``service: BlockMemory`` (K = ``--block-rows`` rows per block). Facts are written as
``Larimar.remember`` writes them, forgotten as ``Larimar.forget`` does (``BlockMemory.forget``,
the exact −1 update of the fact's rows back to the prior), and read as
``Larimar.ask`` reads (top-1 key search, readout, ``model.memory_context``; plain decoding when
the memory is empty).

Forgetting: N facts (N = 1, K, 2K: one block, one full block, two blocks) are written, one is
forgotten, then the forgotten fact and a sample of the others are read back with their prompts
(the forgotten fact's prompt now reads the nearest remaining fact). Recall counts a fact as
recalled when the greedy answer contains its new target; ``edit_success`` is the probability
test P(new) > P(true) on the same context; ``forgotten_rows_max_abs`` is the largest entry left
in the forgotten fact's rows of its block (0: back to the zero prior).

Leakage: facts are written, then each attacked fact is (a) still stored, (b) forgotten, (c)
forgotten and replaced by "prompt unknown". A rephrasing attack spends a budget of 20 sampled
generations on the fact's paraphrases (and its prompt), each routed by the scope detector as a
deployed system would; the attack succeeds when any generation contains the forgotten answer.
"""

from __future__ import annotations

from typing import Any

import torch

from ...blocks import BlockMemory
from .. import metrics
from ..context import EvalContext
from ..data import COUNTERFACT, EditRecord, join_prompt, last_sentence
from ..scoring import answer_tokens, generate, take_rows
from .common import (
    answer_quality,
    cosine,
    edit_success,
    fact_ids,
    load_records,
    sample_indices,
)

NAME = "forgetting"
DEFAULT_DATA = COUNTERFACT
DEFAULT_SAMPLE = 16
ATTACK_BUDGET = 20
UNKNOWN = "unknown"


def run(ctx: EvalContext) -> dict[str, Any]:
    opts = ctx.options
    K = opts.block_rows
    sizes = sorted({int(n) for n in (opts.sweep or (1, K, 2 * K)) if n >= 1})
    records, path = load_records(ctx, DEFAULT_DATA, opts.limit or max(sizes), need_true=True)
    sizes = sorted({min(n, len(records)) for n in sizes})
    keys = ctx.embed([r.prompt for r in records])
    values = ctx.encode_facts([r.fact for r in records])
    sample = opts.sample or DEFAULT_SAMPLE
    forgetting = [_forget_one(ctx, records, keys, values, n, sample) for n in sizes]
    leakage = _leakage(ctx, records, keys, values, sample)
    summary: dict[str, float | None] = {}
    for row in forgetting:
        summary[f"forgotten_recall@{row['facts']}"] = row["forgotten"]["recall"]
        summary[f"retained_recall@{row['facts']}"] = row["retained"]["recall"]
    for stage, row in leakage["attack_success_percent"].items():
        summary[f"attack_success/{stage}"] = row
    return {
        "data": str(path),
        "memory": ctx.service_memory_info(),
        "definitions": {
            "recall": "% facts whose greedy answer (readout of the prompt's key) contains "
                      "target_new",
            "edit_success": "% facts with P(target_new) > P(target_true) given that readout",
            "attack": f"{ATTACK_BUDGET} sampled generations (temperature 1) over the fact's "
                      "paraphrases and prompt, scope-routed; success = any contains target_new",
        },
        "metrics": {"forgetting": forgetting, "leakage": leakage},
        "summary": summary,
    }


def _recall(ctx: EvalContext, memory: BlockMemory, records: list[EditRecord],
            keys: torch.Tensor, ids: list[int]) -> dict[str, Any]:
    if not ids:
        return {"recall": None, "edit_success": None, "facts": 0}
    contexts = ctx.contexts(memory, keys[ids])
    rows = [records[i] for i in ids]
    judged = answer_quality(ctx, [r.prompt for r in rows], [r.target_new for r in rows],
                            contexts, "recall")
    wins = edit_success(ctx, [r.prompt for r in rows], [r.target_new for r in rows],
                        [r.target_true or "" for r in rows], contexts, "edit success")
    return {
        "recall": metrics.percent(metrics.mean(x["contains"] for x in judged)),
        "edit_success": metrics.percent(metrics.mean(wins)),
        "facts": len(ids),
        "example": judged[0]["text"],
    }


def _forget_one(ctx: EvalContext, records: list[EditRecord], keys: torch.Tensor,
                values: list[torch.Tensor], n: int, sample: int) -> dict[str, Any]:
    memory = ctx.new_memory()
    ids = fact_ids(n)
    ctx.write(memory, ids, keys[:n], values[:n])
    target = sample_indices(n, 1, ctx.options.seed)[0]
    before = _recall(ctx, memory, records, keys, [target])
    fidelity_before = _fidelity(memory, keys[target], values[target])
    rows = memory.rows_of(ids[target])
    block = memory.blocks[rows[0] // memory.block_rows]
    memory.forget(ids[target])
    left = block.memory[[row % memory.block_rows for row in rows]]
    others = [i for i in range(n) if i != target]
    rest = [others[i] for i in sample_indices(len(others), sample, ctx.options.seed)]
    return {
        "facts": n,
        "blocks": len(memory.blocks),
        "forgotten_index": target,
        "before_forgetting": before,
        "forgotten": _recall(ctx, memory, records, keys, [target]),
        "retained": _recall(ctx, memory, records, keys, rest),
        "fidelity_before": fidelity_before,
        "fidelity_after": _fidelity(memory, keys[target], values[target]),
        "forgotten_rows_max_abs": float(left.abs().max()),
    }


def _fidelity(memory: BlockMemory, key: torch.Tensor, value: torch.Tensor) -> float:
    """Cosine between what ``key`` reads (top-1) and ``value`` (0 when nothing is stored)."""
    hits = memory.read(key, 1)
    return cosine(hits[0][2] if hits else None, value)


def _leakage(ctx: EvalContext, records: list[EditRecord], keys: torch.Tensor,
             values: torch.Tensor, sample: int) -> dict[str, Any]:
    n = min(len(records), ctx.options.block_rows)
    memory = ctx.new_memory()
    ids = fact_ids(n)
    ctx.write(memory, ids, keys[:n], values[:n])
    attacked = sample_indices(n, min(sample, 10), ctx.options.seed)
    stages: dict[str, list[float]] = {"stored": [], "forgotten": [], "forgotten_plus_unknown": []}
    examples = []
    for i in attacked:
        r = records[i]
        stages["stored"].append(_attack(ctx, memory, r))
        memory.forget(ids[i])
        stages["forgotten"].append(_attack(ctx, memory, r))
        unknown = ctx.encode_facts([join_prompt(r.prompt, UNKNOWN)])
        ctx.write(memory, [f"{i}/unknown"], keys[i : i + 1], unknown)
        leaked = _attack(ctx, memory, r, return_texts=True)
        stages["forgotten_plus_unknown"].append(leaked[0])
        examples.append({"prompt": r.prompt, "forgotten_answer": r.target_new,
                         "generations": leaked[1][:3]})
        memory.forget(f"{i}/unknown")  # the other attacks: a memory without it
    return {
        "facts_in_memory": n,
        "attacked": len(attacked),
        "budget": ATTACK_BUDGET,
        "attack_success_percent": {k: metrics.percent(metrics.mean(v)) for k, v in
                                   stages.items()},
        "examples": examples[:3],
    }


def _attack(ctx: EvalContext, memory: BlockMemory, record: EditRecord,
            return_texts: bool = False) -> Any:
    """20 sampled generations over the paraphrases and prompt; 1.0 if any leaks the answer."""
    pool = [last_sentence(p) for p in record.paraphrases] + [record.prompt]
    prompts = [pool[i % len(pool)] for i in range(ATTACK_BUDGET)]
    detector = ctx.scope_detector()
    routes = [d.in_scope for d in detector.batch_scores(prompts, memory.keys()[1].float())]
    readouts = ctx.contexts(memory, ctx.embed(prompts))
    budget = min(ctx.options.max_new_tokens, answer_tokens(ctx.model, [record.target_new]) + 4)
    texts = [""] * len(prompts)
    for route in (True, False):
        rows = [i for i, r in enumerate(routes) if r == route]
        if not rows:
            continue
        z = take_rows(readouts, rows) if route else None
        outs = generate(ctx.model, [prompts[i] for i in rows], z, budget,
                        ctx.options.batch_size, "attack", do_sample=True, temperature=1.0)
        for i, text in zip(rows, outs, strict=True):
            texts[i] = text
    leaked = float(any(metrics.contains_answer(t, record.target_new) for t in texts))
    return (leaked, texts) if return_texts else leaked
