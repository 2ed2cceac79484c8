"""`rephrase`: recall with a rephrase-augmented memory (the paper's Table 13).

All facts share one memory. ``base``: each fact is written once, keyed by its edit prompt.
``augmented``: each fact is also written under its other paraphrases as extra keys (same value),
leaving out the paraphrase being tested, so every test query is a rephrasing the memory never
saw (leave-one-out over the ROME file's paraphrase prompts). Measured on the held-out
paraphrases: recall (greedy answer contains target_new), paraphrase success S (P new > P true),
addressing accuracy (the query's heaviest slot holds its own fact) and readout fidelity.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from .. import metrics
from ..context import EvalContext
from ..data import COUNTERFACT_FULL, last_sentence
from ..scoring import score_targets
from .common import answer_quality, load_records

logger = logging.getLogger(__name__)

NAME = "rephrase"
DEFAULT_DATA = COUNTERFACT_FULL


def run(ctx: EvalContext) -> dict[str, Any]:
    records, path = load_records(ctx, DEFAULT_DATA, ctx.options.limit, need_true=True)
    paraphrases = [[last_sentence(p) for p in r.paraphrases] for r in records]
    width = max(len(p) for p in paraphrases)
    if width < 2:
        logger.warning("%s has at most one paraphrase per record: the augmented memory gets no "
                       "extra keys (use a full ROME-schema file)", path)
    values = ctx.encode([r.fact for r in records])
    prompt_keys = ctx.embed([r.prompt for r in records])
    results: dict[str, dict[str, list[float]]] = {
        v: {"recall": [], "S": [], "addressing": [], "fidelity": []} for v in ("base", "augmented")
    }
    for held in range(width):
        owners = [i for i, p in enumerate(paraphrases) if len(p) > held]
        queries = [paraphrases[i][held] for i in owners]
        query_keys = ctx.embed(queries)
        for variant in ("base", "augmented"):
            memory = ctx.new_memory()
            ids = memory.write(prompt_keys, values)
            slots_of = {i: {memory.fact_slot(f)} for i, f in enumerate(ids)}
            if variant == "augmented":
                extra = [(i, p) for i, ps in enumerate(paraphrases)
                         for j, p in enumerate(ps) if j != held]
                if extra:
                    extra_ids = memory.write(ctx.embed([p for _, p in extra]),
                                             values[[i for i, _ in extra]])
                    for (i, _), f in zip(extra, extra_ids, strict=True):
                        slots_of[i].add(memory.fact_slot(f))
            _measure(ctx, memory, records, owners, queries, query_keys, values, slots_of,
                     results[variant])
    out = {
        v: {
            "recall": metrics.percent(metrics.mean(r["recall"])),
            "paraphrase_S": metrics.percent(metrics.mean(r["S"])),
            "addressing_accuracy": metrics.percent(metrics.mean(r["addressing"])),
            "fidelity": metrics.mean(r["fidelity"]),
            "queries": len(r["recall"]),
        }
        for v, r in results.items()
    }
    return {
        "data": str(path),
        "records": len(records),
        "paraphrases_per_record": width,
        "slots": ctx.options.slots,
        "metrics": out,
        "summary": {f"{v}/{k}": out[v][k] for v in out for k in ("recall", "paraphrase_S")},
    }


def _measure(ctx: EvalContext, memory: Any, records: list[Any], owners: list[int],
             queries: list[str], query_keys: torch.Tensor, values: torch.Tensor,
             slots_of: dict[int, set[int]], into: dict[str, list[float]]) -> None:
    readouts = memory.read(query_keys)
    answers = [records[i].target_new for i in owners]
    judged = answer_quality(ctx, queries, answers, readouts, "held-out paraphrases")
    into["recall"] += [x["contains"] for x in judged]
    prompts = [q for q in queries for _ in range(2)]
    targets = [t for i in owners for t in (records[i].target_new, records[i].target_true)]
    scores = score_targets(ctx.model, prompts, targets, readouts.repeat_interleave(2, dim=0),
                           ctx.options.batch_size, "paraphrase S")
    into["S"] += [float(a.probability > b.probability)
                  for a, b in zip(scores[0::2], scores[1::2], strict=True)]
    slots = memory.nearest_fact_slot(query_keys)
    into["addressing"] += [float(s in slots_of[i]) for s, i in zip(slots, owners, strict=True)]
    cos = torch.nn.functional.cosine_similarity(readouts, values[owners], dim=-1)
    into["fidelity"] += cos.tolist()
