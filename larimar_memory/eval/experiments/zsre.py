"""`zsre`: single-fact editing on zsRE questions, accuracy on edit, paraphrase and neighbourhood.

Memory: ``service: BlockMemory``. Per record, ``question + new answer`` is written alone to a
fresh service memory (key = the question), read as ``Larimar.ask`` does (top-1 search, readout,
``model.memory_context``).
Queries: the edit question and its rephrasing expect the new answer; the neighbourhood question
(``loc``) expects ``loc_ans``. Two accuracies, as in the paper's Table 12 and ROME/MEMIT:

* ``token_accuracy``: share of answer tokens that are the decoder's greedy choice given the gold
  prefix (teacher forcing; what ROME/MEMIT and Larimar's code call zsRE accuracy);
* ``greedy_em`` / ``greedy_f1``: free greedy decoding cut to the answer's length, SQuAD-normalised.

Variants as in `counterfact`: with the scope detector, always memory, no memory.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from ..context import EvalContext
from ..data import ZSRE
from ..scoring import TargetScore, score_targets
from .common import (
    Queries,
    answer_quality,
    group_mean,
    load_records,
    one_fact_readouts,
    record_blocks,
    routed,
    routed_share,
    scope_routes,
)

NAME = "zsre"
DEFAULT_DATA = ZSRE
GROUPS = ("edit", "paraphrase", "neighborhood")
BLOCK = 128  # records per block: bounds memory on large files


def run(ctx: EvalContext) -> dict[str, Any]:
    records, path = load_records(ctx, DEFAULT_DATA, ctx.options.limit)
    queries = Queries()
    for i, r in enumerate(records):
        queries.add(i, "edit", r.prompt, r.target_new, r.target_new)
        for p in r.paraphrases:
            queries.add(i, "paraphrase", p, r.target_new, r.target_new)
        for p, answer in r.neighborhood:
            queries.add(i, "neighborhood", p, answer, answer)
    bs = ctx.options.batch_size
    answers = queries.new
    tf: dict[str, list[TargetScore]] = {"memory": [], "no_memory": []}
    gen: dict[str, list[dict[str, Any]]] = {"memory": [], "no_memory": []}
    routes: list[bool] = []
    blocks = list(record_blocks(queries, len(records), BLOCK))
    for recs, rows in tqdm(blocks, desc=f"records (blocks of {BLOCK})", disable=len(blocks) < 2):
        sub = queries.subset(rows, recs.start)
        readouts, fact_keys = one_fact_readouts(ctx, records[recs], sub)
        routes += scope_routes(ctx, sub, fact_keys)
        for variant, z in (("memory", readouts), ("no_memory", None)):
            tf[variant] += score_targets(ctx.model, sub.prompt, sub.new, z, bs, variant)
            gen[variant] += answer_quality(ctx, sub.prompt, sub.new, z, f"greedy, {variant}")
    tf["with_scope"] = routed(tf["memory"], tf["no_memory"], routes)
    gen["with_scope"] = [m if r else p for m, p, r in
                         zip(gen["memory"], gen["no_memory"], routes, strict=True)]
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for variant in ("with_scope", "memory", "no_memory"):
        acc = [s.correct / s.tokens if s.tokens else 0.0 for s in tf[variant]]
        out[variant] = {
            g: {
                "token_accuracy": group_mean(acc, queries.owner, queries.group, g),
                "greedy_em": group_mean([x["em"] for x in gen[variant]], queries.owner,
                                        queries.group, g),
                "greedy_f1": group_mean([x["f1"] for x in gen[variant]], queries.owner,
                                        queries.group, g),
            }
            for g in GROUPS
        }
    examples = [
        {"prompt": queries.prompt[i], "group": queries.group[i], "answer": answers[i],
         "routed_to_memory": routes[i], "memory": gen["memory"][i]["text"],
         "plain": gen["no_memory"][i]["text"]}
        for i in range(min(6, len(queries)))
    ]
    summary = {f"{v}/{g}_token_acc": out[v][g]["token_accuracy"] for v in out for g in GROUPS}
    return {
        "data": str(path),
        "records": len(records),
        "queries": len(queries),
        "memory": ctx.service_memory_info(),
        "definitions": {
            "token_accuracy": "% answer tokens = argmax given gold prefix (teacher forcing)",
            "greedy_em": "% greedy continuations whose answer-length prefix equals the answer "
                         "(SQuAD-normalised)",
            "greedy_f1": "token F1 of that prefix, %",
        },
        "metrics": out,
        "routed_to_memory_percent": routed_share(routes, queries.group),
        "examples": examples,
        "summary": summary,
    }
