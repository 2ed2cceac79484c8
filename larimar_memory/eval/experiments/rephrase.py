"""`rephrase`: recall with a rephrase-augmented memory (the paper's Table 13).

Memory: ``service: BlockMemory``; all facts share one. ``base``: each fact is written once,
keyed by its edit prompt. ``augmented``: each fact is also written under each of its other
paraphrases as an extra fact with that key and the same rows (what a user gets by remembering
the fact again under another ``key``), leaving out the paraphrase being tested, so every test
query is a rephrasing the memory never saw (leave-one-out over the ROME file's paraphrase
prompts). Queries read as ``Larimar.ask`` does (top-1 key search, readout,
``model.memory_context``). Measured on the held-out paraphrases: recall (greedy answer contains
target_new), paraphrase success S (P new > P true), addressing accuracy (the top-1 key belongs
to the query's own fact) and readout fidelity.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ...blocks import BlockMemory
from .. import metrics
from ..context import EvalContext
from ..data import COUNTERFACT_FULL, last_sentence
from .common import answer_quality, cosine, edit_success, fact_ids, load_records

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
    values = ctx.encode_facts([r.fact for r in records])
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
            ctx.write(memory, fact_ids(len(records)), prompt_keys, values)
            if variant == "augmented":
                extra = [(i, j, p) for i, ps in enumerate(paraphrases)
                         for j, p in enumerate(ps) if j != held]
                if extra:
                    ctx.write(memory, [f"{i}/{j}" for i, j, _ in extra],
                              ctx.embed([p for _, _, p in extra]), [values[i] for i, _, _ in extra])
            _measure(ctx, memory, records, owners, queries, query_keys, values, results[variant])
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
        "memory": ctx.service_memory_info(),
        "metrics": out,
        "summary": {f"{v}/{k}": out[v][k] for v in out for k in ("recall", "paraphrase_S")},
    }


def _measure(ctx: EvalContext, memory: BlockMemory, records: list[Any], owners: list[int],
             queries: list[str], query_keys: torch.Tensor, values: list[torch.Tensor],
             into: dict[str, list[float]]) -> None:
    contexts = ctx.contexts(memory, query_keys)
    answers = [records[i].target_new for i in owners]
    judged = answer_quality(ctx, queries, answers, contexts, "held-out paraphrases")
    into["recall"] += [x["contains"] for x in judged]
    into["S"] += edit_success(ctx, queries, answers, [records[i].target_true for i in owners],
                              contexts, "paraphrase S")
    top = ctx.hits(memory, query_keys)
    into["addressing"] += [float(t is not None and t.split("/")[0] == str(i))
                           for t, i in zip(top, owners, strict=True)]
    for query, i in zip(query_keys, owners, strict=True):
        hits = memory.read(query, 1)
        into["fidelity"].append(cosine(hits[0][2] if hits else None, values[i]))
