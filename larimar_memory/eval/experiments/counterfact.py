"""`counterfact`: single-fact editing, ROME's S and M on edit, paraphrase and neighbourhood prompts.

Memory: ``service: BlockMemory``. Per record, ``prompt + target_new`` is written alone to a
fresh service memory (key = the prompt). Each query reads it as ``Larimar.ask`` does (its own
key, top-1 search, readout, ``model.memory_context``) and the decoder scores P(target_new)
against P(target_true) (neighbourhood prompts: against the neighbour's answer). Variants:
``with_scope`` (the external scope detector routes each query to memory-conditioned or plain
scoring), ``memory`` (always memory-conditioned), ``no_memory`` (the plain decoder: the unedited
model). Probabilities are ``exp(mean token log-prob)``, as in ROME's and Larimar's released
evaluation.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from ..context import EvalContext
from ..data import COUNTERFACT, last_sentence
from .common import (
    Queries,
    counterfact_metrics,
    load_records,
    one_fact_readouts,
    pair_scores,
    record_blocks,
    routed,
    routed_share,
    scope_routes,
)

NAME = "counterfact"
DEFAULT_DATA = COUNTERFACT
BLOCK = 128  # records per block: bounds memory on the full 8027-record file


def run(ctx: EvalContext) -> dict[str, Any]:
    records, path = load_records(ctx, DEFAULT_DATA, ctx.options.limit, need_true=True)
    queries = Queries()
    for i, r in enumerate(records):
        queries.add(i, "edit", r.prompt, r.target_new, r.target_true or "")
        for p in r.paraphrases:
            queries.add(i, "paraphrase", last_sentence(p), r.target_new, r.target_true or "")
        for p, answer in r.neighborhood:
            queries.add(i, "neighborhood", p, r.target_new, answer)
    mem_new, mem_other, plain_new, plain_other = [], [], [], []
    routes: list[bool] = []
    blocks = list(record_blocks(queries, len(records), BLOCK))
    for recs, rows in tqdm(blocks, desc=f"records (blocks of {BLOCK})", disable=len(blocks) < 2):
        sub = queries.subset(rows, recs.start)
        readouts, fact_keys = one_fact_readouts(ctx, records[recs], sub)
        new, other = pair_scores(ctx, sub, readouts, "memory-conditioned")
        mem_new += new
        mem_other += other
        new, other = pair_scores(ctx, sub, None, "plain decoder")
        plain_new += new
        plain_other += other
        routes += scope_routes(ctx, sub, fact_keys)
    variants = {
        "with_scope": counterfact_metrics(queries, routed(mem_new, plain_new, routes),
                                          routed(mem_other, plain_other, routes), len(records)),
        "memory": counterfact_metrics(queries, mem_new, mem_other, len(records)),
        "no_memory": counterfact_metrics(queries, plain_new, plain_other, len(records)),
    }
    examples = [
        {"prompt": queries.prompt[i], "group": queries.group[i], "new": queries.new[i],
         "other": queries.other[i], "routed_to_memory": routes[i],
         "p_new_memory": mem_new[i].probability, "p_other_memory": mem_other[i].probability,
         "p_new_plain": plain_new[i].probability, "p_other_plain": plain_other[i].probability}
        for i in range(min(6, len(queries)))
    ]
    summary = {f"{v}/{g}_S": variants[v][g]["S"] for v in variants
               for g in ("edit", "paraphrase", "neighborhood")}
    return {
        "data": str(path),
        "records": len(records),
        "queries": len(queries),
        "memory": ctx.service_memory_info(),
        "definitions": {
            "probability": "exp(mean log-prob of the target's tokens), decoder given the readout",
            "S": "% of prompts with P[new] > P[true] (neighbourhood: P[true] > P[new]), "
                 "averaged per record then over records",
            "M": "mean of P[new] - P[true] (neighbourhood reversed), in %",
            "paraphrases": "ROME paraphrase prompts cut to their last sentence (as Larimar's "
                           "released evaluation does)",
        },
        "metrics": variants,
        "routed_to_memory_percent": routed_share(routes, queries.group),
        "examples": examples,
        "summary": summary,
    }
