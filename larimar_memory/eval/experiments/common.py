"""Pieces several experiments share: loading records, one-fact memories, fidelity, scope
routing, and turning target scores into CounterFact / zsRE metrics."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...blocks import BlockMemory
from .. import metrics
from ..context import EvalContext
from ..data import EditRecord, load_edits, resolve_data
from ..scoring import (
    Conditioning,
    TargetScore,
    answer_prefix,
    answer_tokens,
    generate,
    repeat_each,
    score_targets,
)

logger = logging.getLogger(__name__)


def load_records(
    ctx: EvalContext, default: str, limit: int | None = None, need_true: bool = False,
    minimum: int = 1,
) -> tuple[list[EditRecord], Path]:
    """Records of ``--data`` (or ``default``), cut to ``limit``; with ``need_true`` only records
    that name the original answer (needed for P[new] vs P[true])."""
    path = resolve_data(ctx.options.data, default)
    records = load_edits(path, limit)
    if need_true:
        kept = [r for r in records if r.target_true]
        if len(kept) < len(records):
            logger.warning("skipping %d records without a true answer", len(records) - len(kept))
        records = kept
    if len(records) < minimum:
        from ..data import EvalDataError

        raise EvalDataError(f"{path} gives {len(records)} usable records; this needs {minimum}")
    return records, path


def sample_indices(n: int, cap: int | None, seed: int) -> list[int]:
    """All of ``range(n)``, or a seeded sample of ``cap`` of them, in order."""
    if cap is None or cap >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), cap))


@dataclass
class Queries:
    """Flat query rows: the record each belongs to, its group, prompt and expected answers."""

    owner: list[int] = field(default_factory=list)
    group: list[str] = field(default_factory=list)
    prompt: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)  # the edited answer
    other: list[str] = field(default_factory=list)  # true answer (or the neighbour's answer)

    def add(self, owner: int, group: str, prompt: str, new: str, other: str) -> None:
        self.owner.append(owner)
        self.group.append(group)
        self.prompt.append(prompt)
        self.new.append(new)
        self.other.append(other)

    def __len__(self) -> int:
        return len(self.prompt)

    def by_owner(self) -> dict[int, list[int]]:
        rows: dict[int, list[int]] = {}
        for i, owner in enumerate(self.owner):
            rows.setdefault(owner, []).append(i)
        return rows

    def subset(self, rows: slice, base: int) -> Queries:
        """Rows ``rows`` with owners renumbered from ``base`` to 0."""
        return Queries([o - base for o in self.owner[rows]], self.group[rows], self.prompt[rows],
                       self.new[rows], self.other[rows])


def record_blocks(queries: Queries, n_records: int, size: int) -> Iterator[tuple[slice, slice]]:
    """Consecutive blocks of ``size`` records and their query rows (queries are added in record
    order, so each block's rows are contiguous). Keeps memory flat on large files."""
    first: dict[int, int] = {}
    for i, owner in enumerate(queries.owner):
        first.setdefault(owner, i)
    for start in range(0, n_records, size):
        stop = min(n_records, start + size)
        begin = next((first[o] for o in range(start, stop) if o in first), len(queries))
        end = next((first[o] for o in range(stop, n_records) if o in first), len(queries))
        yield slice(start, stop), slice(begin, end)


def one_fact_readouts(
    ctx: EvalContext, records: Sequence[EditRecord], queries: Queries
) -> tuple[list[torch.Tensor | None], torch.Tensor]:
    """Each record's fact written alone to a fresh service memory (key = its prompt, value =
    the fact's rows), read with the keys of that record's queries as ``Larimar.ask`` reads
    (`EvalContext.contexts`). Returns one context per query and the records' keys
    ``(len(records), D)``."""
    keys = ctx.embed([r.prompt for r in records])
    values = ctx.encode_facts([r.fact for r in records])
    query_keys = ctx.embed(queries.prompt)
    out: list[torch.Tensor | None] = [None] * len(queries)
    for i, rows in queries.by_owner().items():
        memory = ctx.new_memory()
        ctx.write(memory, [str(i)], keys[i : i + 1], values[i : i + 1])
        for row, context in zip(rows, ctx.contexts(memory, query_keys[rows]), strict=True):
            out[row] = context
    return out, keys


def fact_ids(n: int, start: int = 0) -> list[str]:
    """Fact ids of records ``start … start+n-1`` (their index as text)."""
    return [str(i) for i in range(start, start + n)]


def cosine(readout: torch.Tensor | None, value: torch.Tensor) -> float:
    """Cosine between a readout and a stored value, both flattened (0 for no readout)."""
    if readout is None:
        return 0.0
    return float(torch.nn.functional.cosine_similarity(
        readout.reshape(1, -1).double(), value.reshape(1, -1).double()))


def fidelity(memory: BlockMemory, query_keys: torch.Tensor,
             values: Sequence[torch.Tensor]) -> float | None:
    """Mean cosine between what each query reads (top-1 search, readout) and the value it is
    about: the memory and its routing alone, independent of the decoder."""
    if query_keys.shape[0] == 0:
        return None
    reads = [memory.read(q, 1) for q in query_keys]
    return metrics.mean(cosine(r[0][2] if r else None, v)
                        for r, v in zip(reads, values, strict=True))


def scope_routes(ctx: EvalContext, queries: Queries, fact_keys: torch.Tensor) -> list[bool]:
    """External scope detector per query against its own record's stored key: True = memory."""
    detector = ctx.scope_detector()
    routes = [False] * len(queries)
    for owner, rows in queries.by_owner().items():
        decisions = detector.batch_scores([queries.prompt[i] for i in rows],
                                          fact_keys[owner : owner + 1].float())
        for i, decision in zip(rows, decisions, strict=True):
            routes[i] = decision.in_scope
    return routes


def pair_scores(
    ctx: EvalContext, queries: Queries, z: Conditioning, desc: str
) -> tuple[list[TargetScore], list[TargetScore]]:
    """Scores of the new and the other answer for every query (one forward per pair)."""
    prompts = [p for p in queries.prompt for _ in range(2)]
    targets = [t for pair in zip(queries.new, queries.other, strict=True) for t in pair]
    scores = score_targets(ctx.model, prompts, targets, repeat_each(z, 2),
                           ctx.options.batch_size, desc)
    return scores[0::2], scores[1::2]


def counterfact_metrics(
    queries: Queries, new: Sequence[TargetScore], other: Sequence[TargetScore], n_records: int
) -> dict[str, dict[str, float | int | None]]:
    """S and M per group (edit, paraphrase, neighborhood) plus ROME's harmonic-mean score."""
    out: dict[str, dict[str, float | int | None]] = {}
    for group in ("edit", "paraphrase", "neighborhood"):
        p_new: list[list[float]] = [[] for _ in range(n_records)]
        p_other: list[list[float]] = [[] for _ in range(n_records)]
        for i, g in enumerate(queries.group):
            if g == group:
                p_new[queries.owner[i]].append(new[i].probability)
                p_other[queries.owner[i]].append(other[i].probability)
        out[group] = metrics.success_and_magnitude(p_new, p_other, group == "neighborhood")
    edit_para_nbhd = [out[g]["S"] for g in ("edit", "paraphrase", "neighborhood")]
    out["score"] = {"S": metrics.harmonic_mean(edit_para_nbhd)}  # type: ignore[arg-type]
    return out


def routed(memory: Sequence[TargetScore], plain: Sequence[TargetScore],
           routes: Sequence[bool]) -> list[TargetScore]:
    """Per query the memory-conditioned score when routed to memory, else the plain one."""
    return [m if r else p for m, p, r in zip(memory, plain, routes, strict=True)]


def answer_quality(
    ctx: EvalContext, prompts: Sequence[str], answers: Sequence[str], z: Conditioning,
    desc: str,
) -> list[dict[str, Any]]:
    """Greedy answers to ``prompts`` (from contexts ``z`` or plain) judged against ``answers``:
    EM and F1 on the answer-length prefix, and whether the answer occurs anywhere."""
    if not prompts:
        return []
    budget = min(ctx.options.max_new_tokens, answer_tokens(ctx.model, answers) + 2)
    texts = generate(ctx.model, list(prompts), z, budget, ctx.options.batch_size, desc)
    out = []
    for text, answer in zip(texts, answers, strict=True):
        prefix = answer_prefix(ctx.model, text, answer)
        out.append({
            "em": metrics.exact_match(prefix, answer),
            "f1": metrics.token_f1(prefix, answer),
            "contains": float(metrics.contains_answer(text, answer)),
            "text": text,
        })
    return out


def edit_success(ctx: EvalContext, prompts: Sequence[str], new: Sequence[str],
                 true: Sequence[str], z: Conditioning, desc: str) -> list[float]:
    """Per prompt 1.0 when P(new) > P(true) given its conditioning, else 0.0."""
    pairs = [p for p in prompts for _ in range(2)]
    targets = [t for pair in zip(new, true, strict=True) for t in pair]
    scores = score_targets(ctx.model, pairs, targets, repeat_each(z, 2), ctx.options.batch_size,
                           desc)
    return [float(a.probability > b.probability)
            for a, b in zip(scores[0::2], scores[1::2], strict=True)]


def routed_share(routes: Sequence[bool], groups: Sequence[str]) -> dict[str, float | None]:
    """% of each group's queries the scope detector sent to memory."""
    out: dict[str, float | None] = {}
    for group in dict.fromkeys(groups):
        flags = [r for r, g in zip(routes, groups, strict=True) if g == group]
        out[group] = 100.0 * sum(flags) / len(flags) if flags else None
    return out


def group_mean(values: Sequence[float], owners: Sequence[int], groups: Sequence[str],
               group: str) -> float | None:
    """Mean over records of the mean over that record's queries in ``group``, in %."""
    per: dict[int, list[float]] = {}
    for v, o, g in zip(values, owners, groups, strict=True):
        if g == group:
            per.setdefault(o, []).append(v)
    return metrics.percent(metrics.mean(sum(v) / len(v) for v in per.values()))
