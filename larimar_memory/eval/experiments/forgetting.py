"""`forgetting`: selective forgetting and information-leakage prevention on CounterFact facts.

Forgetting: N facts (N = 1, K, 2K) are written, one is forgotten (the exact −1 update), then
the forgotten fact and a sample of the others are read back with their prompts. Recall counts a
fact as recalled when the greedy answer contains its new target; ``edit_success`` is the
probability test P(new) > P(true) on the same readout.

Leakage: facts are written, then each attacked fact is (a) still stored, (b) forgotten, (c)
forgotten and replaced by "prompt unknown". A rephrasing attack spends a budget of 20 sampled
generations on the fact's paraphrases (and its prompt), each routed by the scope detector as a
deployed system would; the attack succeeds when any generation contains the forgotten answer.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import metrics
from ..context import EvalContext
from ..data import COUNTERFACT, EditRecord, join_prompt, last_sentence
from ..keyed import KeyedMemory
from ..scoring import answer_tokens, generate, score_targets
from .common import answer_quality, load_records, sample_indices

NAME = "forgetting"
DEFAULT_DATA = COUNTERFACT
DEFAULT_SAMPLE = 16
ATTACK_BUDGET = 20
UNKNOWN = "unknown"


def run(ctx: EvalContext) -> dict[str, Any]:
    opts = ctx.options
    K = opts.slots
    sizes = sorted({int(n) for n in (opts.sweep or (1, K, 2 * K)) if n >= 1})
    records, path = load_records(ctx, DEFAULT_DATA, opts.limit or max(sizes), need_true=True)
    sizes = sorted({min(n, len(records)) for n in sizes})
    keys = ctx.embed([r.prompt for r in records])
    values = ctx.encode([r.fact for r in records])
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
        "slots": K,
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


def _recall(ctx: EvalContext, memory: KeyedMemory, records: list[EditRecord],
            keys: torch.Tensor, ids: list[int]) -> dict[str, Any]:
    if not ids:
        return {"recall": None, "edit_success": None, "facts": 0}
    readouts = memory.read(keys[ids])
    rows = [records[i] for i in ids]
    judged = answer_quality(ctx, [r.prompt for r in rows], [r.target_new for r in rows],
                            readouts, "recall")
    prompts = [r.prompt for r in rows for _ in range(2)]
    targets = [t for r in rows for t in (r.target_new, r.target_true or "")]
    scores = score_targets(ctx.model, prompts, targets, readouts.repeat_interleave(2, dim=0),
                           ctx.options.batch_size, "edit success")
    wins = [float(a.probability > b.probability) for a, b in
            zip(scores[0::2], scores[1::2], strict=True)]
    return {
        "recall": metrics.percent(metrics.mean(x["contains"] for x in judged)),
        "edit_success": metrics.percent(metrics.mean(wins)),
        "facts": len(ids),
        "example": judged[0]["text"],
    }


def _forget_one(ctx: EvalContext, records: list[EditRecord], keys: torch.Tensor,
                values: torch.Tensor, n: int, sample: int) -> dict[str, Any]:
    memory = ctx.new_memory()
    memory.write(keys[:n], values[:n])
    target = sample_indices(n, 1, ctx.options.seed)[0]
    before = _recall(ctx, memory, records, keys, [target])
    fidelity_before = _cosine(memory.read(keys[target : target + 1]), values[target])
    memory.forget(target)
    others = [i for i in range(n) if i != target]
    rest = [others[i] for i in sample_indices(len(others), sample, ctx.options.seed)]
    return {
        "facts": n,
        "forgotten_index": target,
        "before_forgetting": before,
        "forgotten": _recall(ctx, memory, records, keys, [target]),
        "retained": _recall(ctx, memory, records, keys, rest),
        "fidelity_before": fidelity_before,
        "fidelity_after": _cosine(memory.read(keys[target : target + 1]), values[target]),
    }


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.reshape(1, -1), b.reshape(1, -1)))


def _leakage(ctx: EvalContext, records: list[EditRecord], keys: torch.Tensor,
             values: torch.Tensor, sample: int) -> dict[str, Any]:
    n = min(len(records), ctx.options.slots)
    memory = ctx.new_memory()
    memory.write(keys[:n], values[:n])
    attacked = sample_indices(n, min(sample, 10), ctx.options.seed)
    stages: dict[str, list[float]] = {"stored": [], "forgotten": [], "forgotten_plus_unknown": []}
    examples = []
    for i in attacked:
        r = records[i]
        stages["stored"].append(_attack(ctx, memory, r))
        memory.forget(i)
        stages["forgotten"].append(_attack(ctx, memory, r))
        unknown_id = memory.write(keys[i : i + 1], ctx.encode([join_prompt(r.prompt, UNKNOWN)]))[0]
        leaked = _attack(ctx, memory, r, return_texts=True)
        stages["forgotten_plus_unknown"].append(leaked[0])
        examples.append({"prompt": r.prompt, "forgotten_answer": r.target_new,
                         "generations": leaked[1][:3]})
        memory.forget(unknown_id)  # leave the other attacks a memory without this fact
    return {
        "facts_in_memory": n,
        "attacked": len(attacked),
        "budget": ATTACK_BUDGET,
        "attack_success_percent": {k: metrics.percent(metrics.mean(v)) for k, v in
                                   stages.items()},
        "examples": examples[:3],
    }


def _attack(ctx: EvalContext, memory: KeyedMemory, record: EditRecord,
            return_texts: bool = False) -> Any:
    """20 sampled generations over the paraphrases and prompt; 1.0 if any leaks the answer."""
    pool = [last_sentence(p) for p in record.paraphrases] + [record.prompt]
    prompts = [pool[i % len(pool)] for i in range(ATTACK_BUDGET)]
    detector = ctx.scope_detector()
    routes = [d.in_scope for d in detector.batch_scores(prompts, memory.live_keys().float())]
    readouts = memory.read(ctx.embed(prompts))
    budget = min(ctx.options.max_new_tokens, answer_tokens(ctx.model, [record.target_new]) + 4)
    texts = [""] * len(prompts)
    for route in (True, False):
        rows = [i for i, r in enumerate(routes) if r == route]
        if not rows:
            continue
        z = readouts[rows] if route else None
        outs = generate(ctx.model, [prompts[i] for i in rows], z, budget,
                        ctx.options.batch_size, "attack", do_sample=True, temperature=1.0)
        for i, text in zip(rows, outs, strict=True):
            texts[i] = text
    leaked = float(any(metrics.contains_answer(t, record.target_new) for t in texts))
    return (leaked, texts) if return_texts else leaked
