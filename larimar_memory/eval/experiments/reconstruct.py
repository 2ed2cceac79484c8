"""`reconstruct`: the acceptance test of a trained checkpoint (issue 9), on held-out facts.

1. one fact written to an empty memory, read back with its own key, decoded with no prompt:
   exact match with the fact sentence (strict, and SQuAD-normalised);
2. K (512) facts written one at a time (Gaussian keys), each read back: exact match;
3. question answering from memory: zsRE questions and CounterFact paraphrases read the memory
   holding the facts and are answered with the question as prompt: % containing the stored
   answer;
4. CounterFact edit success (P new > P true) from the one-fact readouts;
5. WikiText-2 test perplexity with no memory, against the base decoder (the plain LM, Larimar's
   adaptation removed): the price of training on the language model.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

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
from ..scoring import generate, lm_nll, score_targets
from .common import answer_quality, load_records, sample_indices

NAME = "reconstruct"
DEFAULT_DATA = COUNTERFACT_HELDOUT
DEFAULT_DECODED = 64


def run(ctx: EvalContext) -> dict[str, Any]:
    opts = ctx.options
    K = opts.slots
    records, path = load_records(ctx, DEFAULT_DATA, K, need_true=True)
    decoded = sample_indices(len(records), opts.limit or DEFAULT_DECODED, opts.seed)
    keys = ctx.embed([r.prompt for r in records])
    values = ctx.encode([r.fact for r in records])

    single = torch.cat([_one_fact(ctx, keys[i : i + 1], values[i : i + 1]) for i in decoded])
    single_em = _reconstruction(ctx, single, [records[i].fact for i in decoded], "one fact")

    memory = ctx.new_memory()
    for i in tqdm(range(len(records)), desc=f"writing {len(records)} facts", leave=False):
        memory.write(keys[i : i + 1], values[i : i + 1])
    full = memory.read(keys[decoded])
    full_em = _reconstruction(ctx, full, [records[i].fact for i in decoded], f"{K} facts")
    fidelity = torch.nn.functional.cosine_similarity(memory.read(keys), values, dim=-1)

    qa_cf = _qa(ctx, memory, [records[i] for i in decoded], paraphrase=True)
    qa_zsre = _zsre_qa(ctx, len(decoded))
    edit = _edit_success(ctx, [records[i] for i in decoded], single)
    ppl = _perplexity(ctx)
    summary = {
        "one_fact_exact_match": single_em["exact_match"],
        f"{len(records)}_facts_exact_match": full_em["exact_match"],
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
        "slots": K,
        "metrics": {
            "one_fact": single_em,
            "many_facts": {**full_em, "facts": len(records),
                           "fidelity_mean": float(fidelity.mean())},
            "qa_counterfact_paraphrase": qa_cf,
            "qa_zsre": qa_zsre,
            "counterfact_edit_success": edit,
            "perplexity": ppl,
        },
        "summary": summary,
    }


def _one_fact(ctx: EvalContext, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    memory = ctx.new_memory()
    memory.write(key, value)
    return memory.read(key)


def _reconstruction(ctx: EvalContext, readouts: torch.Tensor, facts: list[str],
                    desc: str) -> dict[str, Any]:
    tok = ctx.model.decoder.tokenizer
    budget = max(len(tok(f, add_special_tokens=False)["input_ids"]) for f in facts) + 2
    texts = generate(ctx.model, None, readouts, min(budget, 128), ctx.options.batch_size, desc)
    strict = [float(t.strip() == f.strip()) for t, f in zip(texts, facts, strict=True)]
    loose = [metrics.exact_match(t, f) for t, f in zip(texts, facts, strict=True)]
    return {
        "exact_match": metrics.percent(metrics.mean(strict)),
        "exact_match_normalised": metrics.percent(metrics.mean(loose)),
        "token_f1": metrics.percent(metrics.mean(metrics.token_f1(t, f)
                                                 for t, f in zip(texts, facts, strict=True))),
        "examples": [{"fact": f, "decoded": t}
                     for f, t in list(zip(facts, texts, strict=True))[:4]],
    }


def _qa(ctx: EvalContext, memory: Any, records: list[EditRecord], paraphrase: bool
        ) -> dict[str, Any]:
    """Questions (paraphrases, else prompts) read the memory by their own key."""
    questions = [last_sentence(r.paraphrases[0]) if paraphrase and r.paraphrases else r.prompt
                 for r in records]
    answers = [r.target_new for r in records]
    readouts = memory.read(ctx.embed(questions))
    judged = answer_quality(ctx, questions, answers, readouts, "QA from memory")
    return {
        "answer_produced": metrics.percent(metrics.mean(x["contains"] for x in judged)),
        "questions": len(questions),
        "examples": [{"question": q, "answer": a, "decoded": x["text"]}
                     for q, a, x in list(zip(questions, answers, judged, strict=True))[:3]],
    }


def _zsre_qa(ctx: EvalContext, n: int) -> dict[str, Any]:
    """zsRE edits (question + new answer) written to one memory, asked by question."""
    path = resolve_data(None, ZSRE)
    records = load_edits(path, min(ctx.options.slots, max(n, 1)))
    memory = ctx.new_memory()
    memory.write(ctx.embed([r.prompt for r in records]), ctx.encode([r.fact for r in records]))
    result = _qa(ctx, memory, records, paraphrase=False)
    return {"data": str(path), **result}


def _edit_success(ctx: EvalContext, records: list[EditRecord], readouts: torch.Tensor
                  ) -> float | None:
    prompts = [r.prompt for r in records for _ in range(2)]
    targets = [t for r in records for t in (r.target_new, r.target_true or "")]
    scores = score_targets(ctx.model, prompts, targets, readouts.repeat_interleave(2, dim=0),
                           ctx.options.batch_size, "edit success")
    return metrics.percent(metrics.mean(float(a.probability > b.probability)
                                        for a, b in zip(scores[0::2], scores[1::2],
                                                        strict=True)))


def _perplexity(ctx: EvalContext) -> dict[str, Any]:
    path = resolve_data(None, WIKITEXT)
    lines = load_text_lines(path, ctx.options.limit or DEFAULT_DECODED)
    bs = max(1, ctx.options.batch_size // 2)
    nll, tokens = lm_nll(ctx.model, lines, batch_size=bs)
    base_nll, base_tokens = lm_nll(ctx.model, lines, batch_size=bs, base=True)
    return {"data": str(path), "lines": len(lines), "tokens": tokens,
            "no_memory": metrics.perplexity(nll, tokens),
            "base_decoder": metrics.perplexity(base_nll, base_tokens)}
