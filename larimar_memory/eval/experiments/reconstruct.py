"""`reconstruct`: the acceptance test of a trained checkpoint (issue 9), on held-out facts.

Memory: ``service: BlockMemory`` throughout (``--block-rows`` rows per block), written with the
fact's key and rows as ``Larimar.remember`` writes them and read as the service reads them.

1. one fact written to an empty memory, read back with its own key (top-1 search, readout):
   exact match with the fact sentence (strict, and SQuAD-normalised), both for the text
   ``Larimar.recall`` returns (``model.read_facts``, ``recall_*``) and for the decoder
   conditioned on the readout with no prompt (``model.memory_context``);
2. ``--block-rows`` (512) facts written one at a time (one full block), each read back the same
   way: exact match;
3. question answering from memory: zsRE questions and CounterFact paraphrases read the memory
   holding the facts as ``Larimar.ask`` does (top-1 search by the question's key, readout,
   ``model.memory_context``) and are answered with the question as prompt: % containing the
   stored answer (always from memory: the scope detector is not consulted);
4. CounterFact edit success (P new > P true) from the one-fact readouts;
5. WikiText-2 test perplexity with no memory, against the base decoder (the plain LM, Larimar's
   adaptation removed): the price of training on the language model.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from ...blocks import BlockMemory
from .. import metrics
from ..context import EvalContext
from ..data import (
    COUNTERFACT_HELDOUT,
    WIKITEXT,
    ZSRE,
    EditRecord,
    last_sentence,
    load_edits,
    load_text_lines,
    resolve_data,
)
from ..scoring import generate, lm_nll
from .common import (
    answer_quality,
    edit_success,
    fact_ids,
    fidelity,
    load_records,
    sample_indices,
)

NAME = "reconstruct"
DEFAULT_DATA = COUNTERFACT_HELDOUT
DEFAULT_DECODED = 64


def run(ctx: EvalContext) -> dict[str, Any]:
    opts = ctx.options
    K = opts.block_rows
    records, path = load_records(ctx, DEFAULT_DATA, K, need_true=True)
    decoded = sample_indices(len(records), opts.limit or DEFAULT_DECODED, opts.seed)
    ids = fact_ids(len(records))
    keys = ctx.embed([r.prompt for r in records])
    values = ctx.encode_facts([r.fact for r in records])
    facts = [records[i].fact for i in decoded]

    single = [_one_fact(ctx, ids[i], keys[i], values[i]) for i in decoded]
    single_em = _reconstruction(ctx, [r for r, _ in single], [c for _, c in single], facts,
                                "one fact")

    memory = ctx.new_memory()
    for i in tqdm(range(len(records)), desc=f"writing {len(records)} facts", leave=False):
        ctx.write(memory, ids[i : i + 1], keys[i : i + 1], values[i : i + 1])
    reads = [memory.read(keys[i], 1) for i in decoded]
    full_em = _reconstruction(ctx, [r[0][2] for r in reads],
                              [ctx.model.memory_context([r[0][2]]) for r in reads], facts,
                              f"{len(records)} facts")
    full_em["routed_to_own_fact"] = metrics.percent(metrics.mean(
        float(r[0][0] == ids[i]) for r, i in zip(reads, decoded, strict=True)))
    fidelity_mean = fidelity(memory, keys, values)

    qa_cf = _qa(ctx, memory, [records[i] for i in decoded], paraphrase=True)
    qa_zsre = _zsre_qa(ctx, len(decoded))
    edit = _edit_success(ctx, [records[i] for i in decoded], [c for _, c in single])
    ppl = _perplexity(ctx)
    summary = {
        "one_fact_exact_match": single_em["exact_match"],
        "one_fact_recall_exact_match": single_em["recall_exact_match"],
        f"{len(records)}_facts_exact_match": full_em["exact_match"],
        f"{len(records)}_facts_recall_exact_match": full_em["recall_exact_match"],
        "qa_counterfact_paraphrase": qa_cf["answer_produced"],
        "qa_zsre": qa_zsre["answer_produced"],
        "counterfact_edit_success": edit,
        "wikitext_ppl_no_memory": ppl["no_memory"],
        "wikitext_ppl_base_decoder": ppl["base_decoder"],
    }
    return {
        "data": str(path),
        "facts_written": len(records),
        "decoded": len(decoded),
        "memory": ctx.service_memory_info(),
        "metrics": {
            "one_fact": single_em,
            "many_facts": {**full_em, "facts": len(records), "blocks": len(memory.blocks),
                           "fidelity_mean": fidelity_mean},
            "qa_counterfact_paraphrase": qa_cf,
            "qa_zsre": qa_zsre,
            "counterfact_edit_success": edit,
            "perplexity": ppl,
        },
        "summary": summary,
    }


def _one_fact(ctx: EvalContext, fact_id: str, key: torch.Tensor, value: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The fact alone in a fresh memory, read by its key: its readout and decoder context."""
    memory = ctx.new_memory()
    ctx.write(memory, [fact_id], key[None], [value])
    readout = memory.read(key, 1)[0][2]
    return readout, ctx.model.memory_context([readout])


def _reconstruction(ctx: EvalContext, readouts: list[torch.Tensor],
                    contexts: list[torch.Tensor], facts: list[str], desc: str) -> dict[str, Any]:
    """Exact match of the decoder's text from each context (no prompt), and of the text
    ``Larimar.recall`` returns for the readout (``model.read_facts``)."""
    tok = ctx.model.decoder.tokenizer
    budget = max(len(tok(f, add_special_tokens=False)["input_ids"]) for f in facts) + 2
    texts = generate(ctx.model, None, contexts, min(budget, 128), ctx.options.batch_size, desc)
    recalled = ctx.model.read_facts(readouts)
    strict = [float(t.strip() == f.strip()) for t, f in zip(texts, facts, strict=True)]
    loose = [metrics.exact_match(t, f) for t, f in zip(texts, facts, strict=True)]
    recall = [float(t.strip() == f.strip()) for t, f in zip(recalled, facts, strict=True)]
    return {
        "exact_match": metrics.percent(metrics.mean(strict)),
        "exact_match_normalised": metrics.percent(metrics.mean(loose)),
        "token_f1": metrics.percent(metrics.mean(metrics.token_f1(t, f)
                                                 for t, f in zip(texts, facts, strict=True))),
        "recall_exact_match": metrics.percent(metrics.mean(recall)),
        "examples": [{"fact": f, "decoded": t, "recalled": r}
                     for f, t, r in list(zip(facts, texts, recalled, strict=True))[:4]],
    }


def _qa(ctx: EvalContext, memory: BlockMemory, records: list[EditRecord], paraphrase: bool
        ) -> dict[str, Any]:
    """Questions (paraphrases, else prompts) read the memory by their own key (top-1)."""
    questions = [last_sentence(r.paraphrases[0]) if paraphrase and r.paraphrases else r.prompt
                 for r in records]
    answers = [r.target_new for r in records]
    contexts = ctx.contexts(memory, ctx.embed(questions))
    judged = answer_quality(ctx, questions, answers, contexts, "QA from memory")
    return {
        "answer_produced": metrics.percent(metrics.mean(x["contains"] for x in judged)),
        "questions": len(questions),
        "examples": [{"question": q, "answer": a, "decoded": x["text"]}
                     for q, a, x in list(zip(questions, answers, judged, strict=True))[:3]],
    }


def _zsre_qa(ctx: EvalContext, n: int) -> dict[str, Any]:
    """zsRE edits (question + new answer) written to one memory, asked by question."""
    path = resolve_data(None, ZSRE)
    records = load_edits(path, min(ctx.options.block_rows, max(n, 1)))
    memory = ctx.new_memory()
    ctx.write(memory, fact_ids(len(records)), ctx.embed([r.prompt for r in records]),
              ctx.encode_facts([r.fact for r in records]))
    result = _qa(ctx, memory, records, paraphrase=False)
    return {"data": str(path), **result}


def _edit_success(ctx: EvalContext, records: list[EditRecord], contexts: list[torch.Tensor]
                  ) -> float | None:
    wins = edit_success(ctx, [r.prompt for r in records], [r.target_new for r in records],
                        [r.target_true or "" for r in records], contexts, "edit success")
    return metrics.percent(metrics.mean(wins))


def _perplexity(ctx: EvalContext) -> dict[str, Any]:
    path = resolve_data(None, WIKITEXT)
    lines = load_text_lines(path, ctx.options.limit or DEFAULT_DECODED)
    bs = max(1, ctx.options.batch_size // 2)
    nll, tokens = lm_nll(ctx.model, lines, batch_size=bs)
    base_nll, base_tokens = lm_nll(ctx.model, lines, batch_size=bs, base=True)
    return {"data": str(path), "lines": len(lines), "tokens": tokens,
            "no_memory": metrics.perplexity(nll, tokens),
            "base_decoder": metrics.perplexity(base_nll, base_tokens)}
