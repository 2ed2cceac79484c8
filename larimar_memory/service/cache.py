"""The in-process memories of namespaces: a cache of the fact log, kept in sync with the store.

The fact log is the durable truth. A cached namespace is valid while the store's version of it
equals the cached version. When another writer (a replica, another worker) moved it on, the
cache reads the store's change log after its version and applies only those changes: each fact
written or forgotten since is forgotten from the memory and the indexes, and loaded again from
its stored row when it still exists; O(changes), not O(facts). It rebuilds from all facts
only when it has no copy (first use, eviction under the byte budget) or the log cannot bring
it up to date: compacted past its version (`LarimarSettings.change_log_keep`), the namespace
meta changed, or a log that is truncated or out of order (a warning: never a wrong memory).
Both load stored facts in bulk, as the store's columns (``store_columns.py``): a cold start
of 10,000 facts reads, checks and indexes them in a few hundred milliseconds, and keeps
nothing the fact table does not hold."""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..blocks import BlockMemory
from ..errors import StoreMismatchError
from ..lexical import LexicalIndex
from ..store import ChangeLog, FactColumns, FactRecord, MemoryStore
from ..types import Fact
from .settings import NAMESPACE_FORMAT, LarimarSettings, names_of, owner_of

if TYPE_CHECKING:
    from ..model import LarimarModel
    from ..scope import SentenceEmbedder

logger = logging.getLogger(__name__)

_TRIM_EVERY = 64
"""A write trims its namespace's change log once every this many versions."""


def encode_values(model: LarimarModel, settings: LarimarSettings, texts: list[str]
                  ) -> list[torch.Tensor]:
    """Each text's value rows ``(n_i, C)`` in float32, rounded to ``settings.value_dtype``
    (a fact whose values overflow float16 keeps float32): what the memory and the store get."""
    out = []
    for rows in model.encode_facts(texts):
        rows = rows.float().cpu()
        if settings.value_dtype == "float16":
            rounded = rows.half().float()
            rows = rounded if bool(torch.isfinite(rounded).all()) else rows
        out.append(rows)
    return out


@dataclass
class FactEntry:
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
        return owner_of(self.metadata)

    @classmethod
    def from_record(cls, record: FactRecord) -> FactEntry:
        return cls(
            id=record.id, text=record.text, key_text=record.key_text, metadata=record.metadata,
            created_at=record.created_at, request_id=record.request_id,
            rows=tuple(int(x) for x in record.rows), extra_keys=tuple(record.extra_key_texts),
        )

    def to_fact(self, namespace: str) -> Fact:
        return Fact(
            id=self.id, namespace=namespace, text=self.text, key=self.key_text,
            extra_keys=list(self.extra_keys), rows=list(self.rows), created_at=self.created_at,
            metadata=self.metadata,
        )


@dataclass
class NamespaceState:
    """The in-process memory of one namespace, in sync with the store at ``version``."""

    memory: BlockMemory
    version: int = 0
    facts: dict[str, FactEntry] = field(default_factory=dict)
    lexical: list[LexicalIndex] = field(default_factory=lambda: [LexicalIndex()])
    by_text: dict[tuple[Any, ...], str] = field(default_factory=dict)  # (owner, text) -> id
    by_name: dict[tuple[Any, ...], str] = field(default_factory=dict)  # (owner, kind, name) -> id

    def add(self, entry: FactEntry) -> None:
        self.add_many([entry])

    def add_many(self, entries: list[FactEntry]) -> None:
        """`add` of each entry in order, each kind's BM25 index filled in one call."""
        kinds = max((len(e.extra_keys) for e in entries), default=-1) + 1
        for kind in range(kinds):
            if kind == len(self.lexical):
                self.lexical.append(LexicalIndex())
            having = entries if kind == 0 else [e for e in entries if len(e.extra_keys) >= kind]
            self.lexical[kind].add_many(
                [e.id for e in having],
                [e.key_text if kind == 0 else e.extra_keys[kind - 1] for e in having])
        for entry in entries:
            self.facts[entry.id] = entry
            owner = entry.owner
            self.by_text.setdefault((owner, entry.text), entry.id)
            for name in names_of(entry.text, entry.key_text, entry.metadata):
                self.by_name[(owner, *name)] = entry.id

    def remove(self, fact_id: str) -> FactEntry:
        entry = self.facts.pop(fact_id)
        for index in self.lexical:
            index.remove(fact_id)
        if self.by_text.get((entry.owner, entry.text)) == fact_id:
            del self.by_text[(entry.owner, entry.text)]
        for name in names_of(entry.text, entry.key_text, entry.metadata):
            if self.by_name.get((entry.owner, *name)) == fact_id:
                del self.by_name[(entry.owner, *name)]
        return entry


@dataclass
class CacheCounters:
    """What the cache did since it started (monotonic; `NamespaceCache.counters`): a call
    served by a current copy (``hits``), by a copy caught up through the change log
    (``catch_ups``), by a copy loaded from all the namespace's facts (``loads``: first use,
    after an eviction, or a log that could not catch it up), and copies evicted by the budget."""

    hits: int = 0
    catch_ups: int = 0
    loads: int = 0
    evictions: int = 0


class _SizedCache(OrderedDict[str, NamespaceState]):
    """The cached states with a running total of their bytes, so the budget check costs O(1)
    per call rather than a sum over every cached namespace. A state's size is taken when it
    enters and re-taken by `resize` after a write changed it in place."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: dict[str, int] = {}
        self.total = 0

    def __setitem__(self, name: str, ns: NamespaceState) -> None:
        super().__setitem__(name, ns)
        self.resize(name)

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self.total -= self.sizes.pop(name)

    def pop(self, name: str, *default: Any) -> Any:  # type: ignore[override]
        if name in self:
            self.total -= self.sizes.pop(name)
        return super().pop(name, *default)

    def resize(self, name: str) -> None:
        size = state_bytes(self[name])
        self.total += size - self.sizes.get(name, 0)
        self.sizes[name] = size


def state_bytes(ns: NamespaceState) -> int:
    """What a cached namespace costs the process: its memory's tensors plus the Python objects
    beside them (fact entries, BM25 postings, name maps), estimated per fact (`FACT_OVERHEAD`)."""
    return ns.memory.nbytes() + FACT_OVERHEAD * len(ns.facts)


FACT_OVERHEAD = 2048
"""Bytes of Python objects per cached fact beyond its tensors: its `FactEntry` and the index
entries that point at it. Measured on the tiny model's short texts (100 facts a namespace,
one thread): RSS grew 3.3 KB per cached fact, 1.4 KB of it tensors and 1.7 KB Python objects
(tracemalloc); longer texts cost more than this estimate."""


class NamespaceCache:
    """Namespace memories by name, least recently used first out beyond ``cache_bytes``."""

    def __init__(self, store: MemoryStore, settings: LarimarSettings, model: LarimarModel,
                 embedder: SentenceEmbedder, model_name: str | None) -> None:
        self.store, self.settings, self.model, self.embedder = store, settings, model, embedder
        self.model_name = model_name
        self._cache = _SizedCache()
        self.counters = CacheCounters()

    def __len__(self) -> int:
        return len(self._cache)

    def drop(self, ns_name: str) -> None:
        self._cache.pop(ns_name, None)

    def new_memory(self) -> BlockMemory:
        return BlockMemory(
            self.model.latent_width, self.embedder.dim, block_rows=self.settings.block_rows,
            ridge=self.settings.ridge,
            dtype=torch.float64 if self.settings.memory_dtype == "float64" else torch.float32,
        )

    def namespace_meta(self) -> dict[str, str]:
        """Everything that changes what a namespace's stored latents and keys mean."""
        config = self.model.config
        return {
            "format": NAMESPACE_FORMAT,
            "model": self.model_name or type(self.model).__name__,
            "latent": f"{config.latent}:{config.decoder_name}:P{config.num_latent_tokens}"
                      f"xd{config.latent_token_dim}:rows{config.max_text_tokens}",
            "embedder": f"{getattr(self.embedder, 'name', '')}:{self.embedder.dim}",
            "block_rows": str(self.settings.block_rows),
            "ridge": repr(self.settings.ridge),
            "memory_dtype": self.settings.memory_dtype,
        }

    def check_meta(self, meta: dict[str, str] | None, ns_name: str) -> None:
        if not meta:
            return
        mine = self.namespace_meta()
        # memory_dtype is recorded but not checked: it changes only the in-process rows' dtype
        for name in ("latent", "embedder", "block_rows", "ridge"):
            if name in meta and meta[name] != mine[name]:
                raise StoreMismatchError(
                    f"namespace {ns_name!r} was written with {name}={meta[name]!r}, but this "
                    f"Larimar uses {name}={mine[name]!r}. Open it with the same model, embedder "
                    f"and settings, or re-encode it with this one: `larimar reencode --store "
                    f"<file> --namespace {ns_name}` (or Larimar(...).reencode(namespace=...))"
                )

    def synced(self, ns_name: str) -> NamespaceState | None:
        """The namespace's memory, caught up by the change log if another writer changed it,
        rebuilt from the store when it was evicted or the log cannot catch it up; None (and
        nothing allocated) for a namespace that holds nothing."""
        version = self.store.version(ns_name)
        ns = self._cache.get(ns_name)
        if ns is not None and ns.version == version:
            self.counters.hits += 1
            self._cache.move_to_end(ns_name)
            return ns
        if version == 0:
            self._cache.pop(ns_name, None)
            return None
        if ns is not None and self._catch_up(ns_name, ns, self.store.changes(ns_name, ns.version)):
            return ns
        loaded = self.store.load(ns_name)
        self.check_meta(loaded.meta, ns_name)
        if not len(loaded.facts):
            self._cache.pop(ns_name, None)
            return None
        return self._rebuild(ns_name, loaded.facts, loaded.version)

    @contextmanager
    def transaction(self, ns_name: str) -> Iterator[tuple[Any, NamespaceState]]:
        """The store transaction of a namespace and its in-process memory, in sync. On any
        error the store rolls back and the cached memory is dropped (it may hold half an update)."""
        with self.store.transaction(ns_name) as tx:
            try:
                self.check_meta(tx.namespace_meta(), ns_name)
                version = tx.version()
                ns = self._cache.get(ns_name)
                if ns is not None and ns.version == version:
                    self.counters.hits += 1
                if ns is not None and ns.version != version and version:
                    if not self._catch_up(ns_name, ns, tx.changes(ns.version)):
                        ns = None
                if ns is None or ns.version != version:
                    ns = self._rebuild(ns_name, tx.load().facts, version)
                self._cache.move_to_end(ns_name)
                yield tx, ns
            except BaseException:
                self._cache.pop(ns_name, None)
                raise
        self._evict(keep=ns_name)

    def commit(self, tx: Any, ns: NamespaceState) -> None:
        if tx.namespace_meta() is None:
            tx.set_namespace_meta(self.namespace_meta())
        ns.version = tx.commit_version()
        if ns.version % _TRIM_EVERY == 0:
            tx.trim_changes(self.settings.change_log_keep)

    def cached_bytes(self) -> int:
        return self._cache.total

    def stats(self) -> dict[str, int]:
        """The counters, and the cache's size against its budget. ``over_budget_bytes`` is
        non-zero only while the one namespace in use is larger than the whole budget: it is
        kept (the call works), everything else is evicted, and the overrun is reported."""
        budget = self.settings.cache_bytes
        return {**asdict(self.counters), "namespaces": len(self._cache),
                "bytes": self._cache.total, "budget_bytes": budget,
                "over_budget_bytes": max(0, self._cache.total - budget)}

    def _catch_up(self, ns_name: str, ns: NamespaceState, log: ChangeLog) -> bool:
        """Apply the changes after ``ns.version``; False (``ns`` dropped) when only a rebuild
        from all facts is right. On success ``ns`` is at ``log.version``."""
        problem = _log_problem(log)
        if problem is None:
            try:
                self._apply(ns, log)
                ns.version = log.version
                self.counters.catch_ups += 1
                self._cache.move_to_end(ns_name)
                self._evict(keep=ns_name)
                return True
            except Exception:  # noqa: BLE001 - a log that does not fit the copy: rebuild
                logger.warning("namespace %r: applying the change log after version %d failed; "
                               "rebuilding from the fact log", ns_name, log.since, exc_info=True)
        elif problem.startswith("!"):
            logger.warning("namespace %r: %s; rebuilding from the fact log", ns_name, problem[1:])
        else:
            logger.debug("namespace %r: %s; rebuilding from the fact log", ns_name, problem)
        self._cache.pop(ns_name, None)
        return False

    def _apply(self, ns: NamespaceState, log: ChangeLog) -> None:
        """Every fact the changes touch leaves the copy, and comes back from its stored record
        when it still exists: the copy then equals the store for those facts, and every other
        fact is unchanged (the log says so)."""
        touched = list(dict.fromkeys(c.fact_id for c in log.changes if c.fact_id))
        for fact_id in touched:
            if fact_id in ns.facts:
                ns.memory.forget(fact_id)
                ns.remove(fact_id)
        self._load(ns, log.facts)

    @staticmethod
    def _load(ns: NamespaceState, facts: FactColumns) -> None:
        """Stored facts into the memory and the indexes, in bulk (``store_columns.py``)."""
        ns.memory.load(facts)
        ns.add_many([
            FactEntry(id=fid, text=text, key_text=key_text, metadata=metadata,
                      created_at=created_at, request_id=request_id,
                      rows=ns.memory.rows_of(fid), extra_keys=extra)
            for fid, text, key_text, metadata, created_at, request_id, extra in zip(
                facts.ids, facts.texts, facts.key_texts, facts.metadata, facts.created_at,
                facts.request_ids, facts.extra_key_texts, strict=True)
        ])

    def _rebuild(self, ns_name: str, facts: FactColumns, version: int) -> NamespaceState:
        ns = NamespaceState(memory=self.new_memory(), version=version)
        self.counters.loads += 1
        self._load(ns, facts)
        self._cache[ns_name] = ns
        self._evict(keep=ns_name)
        return ns

    def _evict(self, keep: str) -> None:
        """Drop least recently used memories until the cache fits ``cache_bytes`` (``keep``,
        just used and maybe just written, is re-measured and stays even when over)."""
        if keep in self._cache:
            self._cache.resize(keep)
        budget = self.settings.cache_bytes
        before = self.counters.evictions
        while self._cache.total > budget and len(self._cache) > 1:
            name = next(iter(self._cache))
            if name == keep:
                self._cache.move_to_end(keep)
                name = next(iter(self._cache))
            del self._cache[name]
            self.counters.evictions += 1
        if self.counters.evictions // _RELEASE_EVERY != before // _RELEASE_EVERY:
            release_freed_memory()


_RELEASE_EVERY = 2
"""Evictions between two `release_freed_memory` calls. 3,000 namespaces over a 128 MB budget,
4 clients, packaged models (docs/results.md, "Many namespaces"): every 16 evictions the RSS grew
1.14x the budget, every 2 evictions 0.88x, for ~2 ms more server CPU per call in that run
(nearly every call there evicts; fewer evictions, fewer trims)."""


def release_freed_memory() -> None:
    """Hand the heap pages that evicted memories freed back to the OS (glibc ``malloc_trim``;
    nothing elsewhere). Without it the allocator keeps them in its per-thread arenas: at
    10,000 namespaces over a 256 MB cache the server's RSS grew 1.42x the budget
    (docs/results.md, "Many namespaces")."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> Any:
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _glibc()


def _log_problem(log: ChangeLog) -> str | None:
    """Why the log cannot bring a copy at ``log.since`` to ``log.version`` (None: it can). A
    reason starting with ``!`` is a fault worth a warning; the others are expected."""
    if log.version == 0:
        return "the namespace was cleared"
    if log.since <= log.floor:
        return f"the change log starts after version {log.floor}, the copy is at {log.since}"
    versions = [c.version for c in log.changes]
    if any(b < a for a, b in itertools.pairwise(versions)):
        return "!the change log is out of order"
    if set(versions) != set(range(log.since + 1, log.version + 1)):
        missing = sorted(set(range(log.since + 1, log.version + 1)) - set(versions))
        return (f"!the change log is truncated: versions {missing[:5]} are missing"
                if missing else "!the change log has versions beyond the namespace's")
    if any(c.op == "meta" for c in log.changes):
        return "the namespace meta changed (re-encoded)"
    return None
