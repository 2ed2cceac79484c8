"""Reading the memory: ranking a namespace's facts (`larimar_memory.relevance`), the one scope
decision, recall (batched: queries embedded in one pass, hits read in one) and ask's routes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import contract
from ..relevance import Calibration, Hit, query_texts
from ..routing import UNKNOWN_ANSWER, choose_route
from ..scoping import ScopedCall
from ..types import AskResult, Fact, RecallHit, RecallResult, ScopeInfo
from . import validation as check
from .batching import batch_or_each, each
from .cache import NamespaceState
from .parts import Parts, ScopeIds, kept


@dataclass
class RecallCall(ScopedCall):
    """One `Larimar.recall` call, for `Larimar.recall_many`: the same arguments."""

    query: str
    k: int = 1
    namespace: str | None = None
    decode: bool = True
    filter: dict[str, Any] | None = None


@dataclass
class _PreparedRecall:
    """A validated recall call, then its embedded query, then its hits."""

    query: str
    k: int
    ns_name: str
    decode: bool
    filter: dict[str, Any]
    embedded: torch.Tensor | None = None
    hits: list[Hit] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    readouts: list[torch.Tensor] = field(default_factory=list)


def decoder_reads(hits: list[Hit], decision: ScopeInfo, calibration: Calibration,
                  context_threshold: float | None = None) -> list[Hit]:
    """The hits `ask` reads into the decoder, best first. When the best hit is in scope, the
    hits in scope (those at the operating point); when it is only worth showing (the context
    point of a question about its speaker), every hit worth showing, since none is sure;
    otherwise none. The decoder answers from what is in its block: a fact the calibration
    puts far from the question is a distraction it sometimes answers from ("almond" for
    "Which seat do I like on planes?" beside "I prefer aisle seats."), and prompt it pays for."""
    if not decision.relevant:
        return []
    if decision.in_scope:
        return [h for h in hits if h.score >= decision.threshold]
    return [h for h in hits if calibration.shows(h.evidence, decision.threshold,
                                                 context_threshold)]


class Reader:
    """Ranks, scopes and reads back the facts of a namespace."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def rank(self, ns: NamespaceState | None, query: str, embedded: torch.Tensor, k: int,
             where: dict[str, Any]) -> list[Hit]:
        if ns is None or not ns.facts:
            return []
        allowed = None if not where else [e.id for e in kept(ns, where)]
        return self.parts.ranker.rank(ns.memory, ns.lexical, query, embedded, k, allowed,
                                      ns.facts)

    def scope(self, hits: list[Hit]) -> ScopeInfo:
        """The one scope decision: the best hit's calibrated relevance against the operating
        point (what the decoder answers from), and against the context point (what is worth
        showing a language model, `Calibration.shows`)."""
        parts = self.parts
        threshold = parts.scope_threshold
        score = hits[0].score if hits else 0.0
        relevant = bool(hits) and parts.ranker.calibration.shows(
            hits[0].evidence, threshold, parts.settings.context_threshold)
        return ScopeInfo(score=score, in_scope=bool(hits) and score >= threshold,
                         threshold=threshold, relevant=relevant)

    def describe(self, description: str, ns_name: str, k: int, where: dict[str, Any]
                 ) -> list[Hit]:
        """The ``k`` best facts for a description (a forget's), under the lock."""
        embedded = self.parts.embedder.embed(query_texts(description))
        with self.parts.lock:
            ns = self.parts.namespaces.synced(ns_name)
            return self.rank(ns, description, embedded, k, where)

    def recall_many(self, requests: Sequence[RecallCall]) -> list[RecallResult | Exception]:
        """`Larimar.recall_many`: each call's own result or its own exception."""
        parts = self.parts
        results: list[Any] = [None] * len(requests)
        prepared = each(results, {i: (lambda c=call: self._prepare(c))
                                  for i, call in enumerate(requests)})
        batch_or_each(results, prepared, self._embed_queries)
        with parts.lock:
            prepared = each(results, {i: (lambda p=p: self._search(p))
                                      for i, p in prepared.items()})
        readouts = [r for p in prepared.values() for r in p.readouts]
        texts = iter(parts.model.read_facts(readouts) if readouts else [])
        for i, p in prepared.items():
            hits = [RecallHit(fact=fact, score=hit.score, text=next(texts) if p.decode else "",
                              evidence=dataclasses.asdict(hit.evidence))
                    for fact, hit in zip(p.facts, p.hits, strict=True)]
            best = hits[0] if hits else None
            results[i] = RecallResult(
                query=p.query, scope=self.scope(p.hits), hits=hits,
                text=best.text if best else "", fact=best.fact if best else None,
                weight=best.score if best else 0.0,
            )
        return [r if r is not None else RuntimeError("recall produced no result")
                for r in results]

    def ask(self, question: str, k: int | None, namespace: str | None,
            max_new_tokens: int | None, filter: dict[str, Any] | None, scope: ScopeIds
            ) -> AskResult:
        """`Larimar.ask`: the question's hits decide the scope, the scope and the question the
        route (`larimar_memory.routing`)."""
        parts, settings = self.parts, self.parts.settings
        ns_name = parts.namespace_name(namespace)
        question, k, max_new_tokens, where = contract.ask_args(question, k, max_new_tokens,
                                                              filter)
        where = parts.where(where, scope)
        parts.check_length(question, "question")
        k = settings.ask_k if k is None else k
        new_tokens = max_new_tokens or settings.max_new_tokens
        check.check_question_fits(parts.model.text_token_counts([question])[0], new_tokens,
                                  parts.model.context_length)
        embedded = parts.embedder.embed(query_texts(question))
        with parts.lock:
            ns = parts.namespaces.synced(ns_name)
            hits = self.rank(ns, question, embedded, k, where)
            decision = self.scope(hits)
            used = decoder_reads(hits, decision, parts.ranker.calibration,
                                 settings.context_threshold)
            readouts = [ns.memory.readout(h.fact_id) for h in used] if ns else []
            facts = [ns.facts[h.fact_id].to_fact(ns_name) for h in used] if ns else []
        route = choose_route(question, bool(decision.relevant))
        if route == "unknown":  # about the user, nothing on it stored: say so, invent nothing
            answer = UNKNOWN_ANSWER
        else:
            decoding = parts.decoding
            context = decoding.memory_context(readouts) if readouts else None
            answer = decoding.decode(context, prompts=[question], max_new_tokens=new_tokens,
                                     copy_bias=settings.copy_bias,
                                     spell_as_stored=settings.spell_as_stored)[0].strip()
        return AskResult(question=question, answer=answer, route=route, scope=decision,
                         fact=facts[0] if facts else None, facts=facts)

    def _prepare(self, call: RecallCall) -> _PreparedRecall:
        parts = self.parts
        ns_name = parts.namespace_name(call.namespace)
        query, k, decode, where = contract.recall_args(call.query, call.k, call.decode,
                                                       call.filter)
        where = parts.where(where, (call.user_id, call.agent_id, call.run_id))
        return _PreparedRecall(query=parts.check_length(query, "query"), k=k, ns_name=ns_name,
                               decode=decode, filter=where)

    def _embed_queries(self, prepared: list[_PreparedRecall]) -> None:
        texts = [query_texts(p.query) for p in prepared]
        embedded = self.parts.embedder.embed([q for group in texts for q in group])
        at = 0
        for p, group in zip(prepared, texts, strict=True):
            p.embedded, at = embedded[at: at + len(group)], at + len(group)

    def _search(self, p: _PreparedRecall) -> _PreparedRecall:
        """A prepared call's hits, facts and (when decoding) readouts; under the lock."""
        ns = self.parts.namespaces.synced(p.ns_name)
        p.hits = self.rank(ns, p.query, p.embedded, p.k, p.filter)
        p.facts = [ns.facts[h.fact_id].to_fact(p.ns_name) for h in p.hits] if ns else []
        if p.decode and ns is not None:
            p.readouts = [ns.memory.readout(h.fact_id) for h in p.hits]
        return p
