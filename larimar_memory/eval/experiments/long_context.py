"""`long-context`: facts concatenated into one long input, answered through recursive memory
search vs. the plain decoder reading the whole text.

Memory: ``service: BlockMemory``. Larimar: the n facts are written to one service memory (key =
the fact's prompt embedding, value = its rows), in blocks of ``--block-rows`` rows, and a query
reads as ``Larimar.ask`` does: top-1 key search over every fact, the readout, then
``model.memory_context`` conditions the decoder. (The paper's recursive search, one memory per
chunk whose best readouts form the next level, keeps at each level the readout whose key is
nearest the query; with exact per-fact keys that is the top-1 search over all keys.)
Baseline: the plain decoder given all facts followed by the query, left-truncated to fit its
context window. Recall = the greedy answer contains the fact's answer. Input tokens: Larimar
reads every fact once through the encoder when writing (``larimar_write_tokens``), then per
query only the key and the decoder prompt; the baseline re-reads the whole text per query.
The paper used CNN Fast Facts, which is not available offline; CounterFact facts
(counterfactual answers, so the model cannot know them) stand in.
"""

from __future__ import annotations

from typing import Any

from .. import metrics
from ..context import EvalContext
from ..data import COUNTERFACT
from ..report import plot_curves
from ..scoring import context_window
from .common import answer_quality, fact_ids, load_records, sample_indices

NAME = "long-context"
DEFAULT_DATA = COUNTERFACT
DEFAULT_SIZES = (64, 96, 128, 256)
DEFAULT_QUERIES = 8


def run(ctx: EvalContext) -> dict[str, Any]:
    opts = ctx.options
    sizes = sorted({int(n) for n in (opts.sweep or DEFAULT_SIZES) if n >= 1})
    records, path = load_records(ctx, DEFAULT_DATA, max(sizes))
    sizes = sorted({min(n, len(records)) for n in sizes})
    keys = ctx.embed([r.prompt for r in records])
    values = ctx.encode_facts([r.fact for r in records])
    encoder_tokens = ctx.model.text_token_counts([r.fact for r in records])
    window = context_window(ctx.model)
    rows = []
    for n in sizes:
        chosen = sample_indices(n, opts.limit or DEFAULT_QUERIES, opts.seed)
        prompts = [records[i].prompt for i in chosen]
        answers = [records[i].target_new for i in chosen]
        memory = ctx.new_memory()
        ctx.write(memory, fact_ids(n), keys[:n], values[:n])
        contexts = ctx.contexts(memory, ctx.embed(prompts))
        larimar = answer_quality(ctx, prompts, answers, contexts, f"larimar n={n}")
        text = " ".join(f"{r.fact}." for r in records[:n])
        long_prompts = [_fit(ctx, text, p, window) for p in prompts]
        plain = answer_quality(ctx, long_prompts, answers, None, f"whole text n={n}")
        query_tokens = ctx.model.text_token_counts(prompts)
        rows.append({
            "n_fact": n,
            "queries": len(chosen),
            "larimar_recall": metrics.percent(metrics.mean(x["contains"] for x in larimar)),
            "baseline_recall": metrics.percent(metrics.mean(x["contains"] for x in plain)),
            "larimar_write_tokens": sum(encoder_tokens[:n]),
            "larimar_tokens_per_query": metrics.mean(
                q + _decoder_tokens(ctx, p) for q, p in zip(query_tokens, prompts, strict=True)),
            "baseline_tokens_per_query": metrics.mean(_decoder_tokens(ctx, p)
                                                      for p in long_prompts),
            "baseline_truncated": _decoder_tokens(ctx, text) > window,
            "blocks": len(memory.blocks),
        })
    plot = plot_curves(
        opts.out_dir, NAME,
        {"Larimar (recursive memory search)": (sizes, [r["larimar_recall"] for r in rows]),
         "decoder with whole text": (sizes, [r["baseline_recall"] for r in rows])},
        "facts in the input (n_fact)", "recall (%)",
        f"long-context recall, blocks of {opts.block_rows} rows ({ctx.label})",
    )
    summary: dict[str, float | None] = {}
    for r in rows:
        summary[f"larimar_recall@{r['n_fact']}"] = r["larimar_recall"]
        summary[f"baseline_recall@{r['n_fact']}"] = r["baseline_recall"]
    return {
        "data": str(path),
        "memory": ctx.service_memory_info(),
        "decoder_context_window": window,
        "metrics": {"by_n_fact": rows},
        "plots": [str(plot)],
        "summary": summary,
    }


def _decoder_tokens(ctx: EvalContext, text: str) -> int:
    return len(ctx.model.decoder.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1


def _fit(ctx: EvalContext, text: str, prompt: str, window: int) -> str:
    """``text`` then ``prompt``, dropping the oldest tokens of ``text`` so that prompt, start
    token and the answer budget fit the decoder's window."""
    tok = ctx.model.decoder.tokenizer
    room = window - _decoder_tokens(ctx, prompt) - ctx.options.max_new_tokens - 8
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if len(ids) > room:
        text = str(tok.decode(ids[max(0, len(ids) - room):], skip_special_tokens=True))
    return f"{text} {prompt}"
