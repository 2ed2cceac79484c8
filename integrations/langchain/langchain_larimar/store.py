"""`LarimarStore`: a LangGraph `BaseStore` kept in Larimar episodic memory.

Agents built with ``create_agent(model, tools, store=LarimarStore(...))`` (and langmem's memory
tools) read and write long-term memory through the LangGraph store API; each item is one Larimar
fact:

* a namespace tuple ``("memories", "alice")`` is the Larimar namespace
  ``"<root>/memories/alice"`` (each label percent-escaped, so ``/`` inside a label cannot be
  confused with the separator, and the mapping is reversible);
* the item key is the fact id (``remember(..., ids=[key])``): putting an existing key replaces
  that fact exactly (status ``"replaced"``), never a similar one;
* the indexed text is embedded per field and per path, as LangGraph's stores do: each text at
  the paths named by ``index={"fields": [...]}`` (or a put's ``index=[...]``; default ``"$"``,
  the whole value: its strings, where LangGraph embeds its JSON) is its own key of the fact
  (the first the fact's key, the others extra keys), so a query scores an item by its best
  field; the fact text is those texts joined;
* the value is stored once, as the fact metadata (its top-level fields, so filters run in the
  memory), with the key, the timestamps and the TTL under ``"langgraph_store"``;
* ``put(ns, key, None)``, ``delete`` and an expired TTL forget the fact (exact removal from the
  memory, its text purged from the store).

``search`` with a query is Larimar's top-k recall in every Larimar namespace under the prefix,
merged by score (`SearchItem.score` is the hit's score); items put with ``index=False`` follow,
with ``score=None``, as in `InMemoryStore`. Like LangGraph's stores it ranks and never judges;
with ``relevant_only=True`` a namespace's hits are returned only when the scope decision calls
them relevant (`ScopeInfo.relevant`), so an agent that searches memory on every turn gets
nothing for a general question ("What is the capital of Lithuania?"). Without a query it lists
items (oldest first).
Filters are the core's (`larimar_memory.filters`: equality, ``$eq $ne $gt $gte $lt $lte $in
$nin``, nested objects), evaluated by the memory, in process and over HTTP alike. A custom
``index["embed"]`` is refused: the memory's own key embedder addresses its rows.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    get_text_at_path,
    tokenize_path,
)
from larimar_memory.errors import FactNotFoundError, TextInputError
from larimar_memory.protocol import MemoryBackend
from larimar_memory.types import Fact

from ._client import check_larimar, default_larimar

META_KEY = "langgraph_store"
"""The fact metadata field holding the item's key, timestamps and TTL (values cannot use it)."""
MAX_TTL_MINUTES = 100 * 365 * 24 * 60
"""The longest TTL (a century): longer ones are a unit mistake, not an expiry."""
MAX_RECALL_K = 100
"""Most facts one query reads per namespace (the server's limit on ``k``)."""
_SEPARATOR = "/"
_ESCAPES = {"%": "%25", "/": "%2F"}


def _escape(label: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in label)


def _unescape(label: str) -> str:
    return label.replace("%2F", "/").replace("%25", "%")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _clock() -> float:
    """Seconds since the epoch, for expiries (tests move it)."""
    return time.time()


def check_ttl(ttl: Any, what: str = "ttl") -> float | None:
    """A TTL in minutes: None (never expires) or a finite number in (0, `MAX_TTL_MINUTES`]."""
    if ttl is None:
        return None
    if (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl)
            or not 0 < ttl <= MAX_TTL_MINUTES):
        raise ValueError(
            f"{what} is minutes until the item expires: a finite number > 0 and at most "
            f"{MAX_TTL_MINUTES} (a century), or None for no expiry; got {ttl!r}"
        )
    return float(ttl)


def _check_index(index: Mapping[str, Any] | None) -> list[str]:
    """The fields to embed; a custom embedder (or its dims) is refused, not ignored."""
    if index is None:
        return ["$"]
    if "embed" in index or "dims" in index:
        raise ValueError(
            "LarimarStore embeds with the memory's own key embedder (its keys address the "
            "memory rows), so index['embed'] and index['dims'] cannot be used; pass "
            "index={'fields': [...]} only, and choose the embedder when building the Larimar "
            "(or the server it talks to)"
        )
    unknown = sorted(set(index) - {"fields"})
    if unknown:
        raise ValueError(f"unknown index option(s) {unknown}; LarimarStore takes 'fields'")
    fields = index.get("fields") or ["$"]
    if isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields):
        raise ValueError(f"index['fields'] must be a list of JSON paths, got {fields!r}")
    return list(fields)


def _meta(fact: Fact) -> dict[str, Any]:
    return fact.metadata.get(META_KEY) or {}


def _expired(fact: Fact, now: float) -> bool:
    expires = _meta(fact).get("expires_at")
    return expires is not None and expires <= now


def _whole_value_text(value: Any) -> str:
    """The text of the whole value (path ``"$"``): its strings in field order, one per line,
    and its other scalars as ``field: value``. LangGraph embeds the JSON; its punctuation and
    the names of string fields only blur a sentence's key (langmem stores ``{"content": "My
    doctor is Dr Mensah."}``). A value with nothing to say is embedded as JSON."""
    lines: list[str] = []

    def walk(node: Any, name: str) -> None:
        if isinstance(node, str):
            if node.strip():
                lines.append(node.strip())
        elif isinstance(node, Mapping):
            for key in sorted(node, key=str):
                walk(node[key], str(key))
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item, name)
        elif node is not None:
            lines.append(f"{name}: {json.dumps(node, default=str)}" if name else str(node))

    walk(value, "")
    return "\n".join(lines) or json.dumps(value, ensure_ascii=False, sort_keys=True,
                                          default=str)


class LarimarStore(BaseStore):
    """LangGraph long-term memory store backed by Larimar episodic memory.

    Setup:
        ``pip install langchain-larimar``

    Instantiate:
        .. code-block:: python

            from langchain_larimar import LarimarStore
            from larimar_memory.service import Larimar

            store = LarimarStore()  # the shared embedded Larimar(), created on first use
            store = LarimarStore(Larimar(store="facts.sqlite3"), index={"fields": ["content"]},
                                 ttl={"default_ttl": 60 * 24, "refresh_on_read": True})

    Use:
        .. code-block:: python

            store.put(("memories", "alice"), "m1", {"content": "Alice lives in Lisbon."})
            store.get(("memories", "alice"), "m1").value
            store.search(("memories",), query="Where does Alice live?", limit=3)
            store.search(("memories", "alice"), filter={"n": {"$gte": 2}})  # no query: list
            store.put(("memories", "alice"), "m2", {"content": "..."}, ttl=30)  # minutes
            store.delete(("memories", "alice"), "m1")  # exact removal from the memory
            agent = create_agent(model, tools, store=store)

    Args:
        larimar: a `larimar_memory.protocol.MemoryBackend` (a `Larimar` or a `LarimarClient`);
            None: the process-wide embedded ``Larimar()``.
        index: ``{"fields": [...]}``: the value paths embedded, each text its own key (JSON
            paths as in LangGraph; default ``["$"]``, the whole value as JSON).
        root: the Larimar namespace prefix of this store's namespaces.
        ttl: LangGraph's `TTLConfig`: ``default_ttl`` (minutes), ``refresh_on_read`` (default
            True), ``sweep_interval_minutes`` (for `start_ttl_sweeper`). Expired items are never
            returned and are forgotten when a read meets them or a sweep runs.
        relevant_only: a query search returns a namespace's hits only when the scope decision
            calls them relevant (default False: every item ranked, as `InMemoryStore` does).
    """

    supports_ttl = True

    def __init__(
        self,
        larimar: MemoryBackend | None = None,
        *,
        index: Mapping[str, Any] | None = None,
        root: str = "langgraph",
        ttl: TTLConfig | None = None,
        relevant_only: bool = False,
    ) -> None:
        self._larimar = check_larimar(larimar, type(self).__name__)
        self.relevant_only = relevant_only
        fields = _check_index(index)
        self.index_config = {"fields": fields} if index is not None else None
        self._fields = [(f, tokenize_path(f) if f != "$" else f) for f in fields]
        if not root or _SEPARATOR in root:
            raise ValueError(f"root must be a non-empty label without '/', got {root!r}")
        self.root = root
        if ttl is not None:
            check_ttl(ttl.get("default_ttl"), "ttl['default_ttl']")
            interval = ttl.get("sweep_interval_minutes")
            if interval is not None and (isinstance(interval, bool) or not isinstance(
                    interval, (int, float)) or not 0 < interval <= MAX_TTL_MINUTES):
                raise ValueError(f"ttl['sweep_interval_minutes'] must be minutes > 0, got "
                                 f"{interval!r}")
        self.ttl_config = ttl
        self._sweeper: concurrent.futures.Future[None] | None = None
        self._stop_sweeping = threading.Event()

    @property
    def larimar(self) -> MemoryBackend:
        """The memory (the shared embedded one when none was given)."""
        return self._larimar if self._larimar is not None else default_larimar()

    # -- namespaces ------------------------------------------------------------------------------

    def larimar_namespace(self, namespace: tuple[str, ...]) -> str:
        """The Larimar namespace holding a store namespace."""
        return _SEPARATOR.join([self.root, *(_escape(label) for label in namespace)])

    def store_namespace(self, larimar_namespace: str) -> tuple[str, ...] | None:
        """The store namespace of a Larimar namespace (None: not one of this store's)."""
        root, _, rest = larimar_namespace.partition(_SEPARATOR)
        if root != self.root or not rest:
            return None
        return tuple(_unescape(label) for label in rest.split(_SEPARATOR))

    def _namespaces(self) -> list[tuple[str, ...]]:
        found = (self.store_namespace(name) for name in self.larimar.namespaces())
        return sorted(ns for ns in found if ns is not None)

    def _holds_items(self, namespace: tuple[str, ...]) -> bool:
        """Whether a namespace holds an item. A Larimar namespace outlives its last fact (only
        ``clear`` removes the name), but a store namespace exists while it holds items, as in
        `InMemoryStore`; clearing it here could race a concurrent put, so it is filtered."""
        return bool(self.larimar.list(namespace=self.larimar_namespace(namespace), limit=1))

    # -- items -----------------------------------------------------------------------------------

    def _texts(self, value: Mapping[str, Any], index: list[str] | None) -> list[str]:
        """The texts to embed, one per field or path element, in order, without repeats."""
        paths = self._fields if index is None else [(f, tokenize_path(f)) for f in index]
        texts: list[str] = []
        for path, tokens in paths:
            if path == "$":
                found = [_whole_value_text(value)]
            else:
                found = get_text_at_path(value, tokens)
            texts += [t for t in (str(t).strip() for t in found) if t and t not in texts]
        return texts

    @staticmethod
    def _item(fact: Fact, namespace: tuple[str, ...], score: float | None = None) -> SearchItem:
        meta = _meta(fact)
        created = meta.get("created_at")
        updated = meta.get("updated_at")
        fallback = datetime.fromtimestamp(fact.created_at, timezone.utc)
        value = meta["value"] if "value" in meta else {  # facts written before values were
            k: v for k, v in fact.metadata.items() if k != META_KEY}  # stored once hold a copy
        return SearchItem(
            namespace=namespace,
            key=str(meta.get("key", fact.id)),
            value=dict(value),
            created_at=datetime.fromisoformat(created) if created else fallback,
            updated_at=datetime.fromisoformat(updated) if updated else fallback,
            score=score,
        )

    @staticmethod
    def _plain(item: SearchItem) -> Item:
        return Item(
            value=item.value, key=item.key, namespace=item.namespace,
            created_at=item.created_at, updated_at=item.updated_at,
        )

    def _fact(self, namespace: tuple[str, ...], key: str) -> Fact | None:
        try:
            fact = self.larimar.get(key, namespace=self.larimar_namespace(namespace))
        except FactNotFoundError:
            return None
        return fact if META_KEY in fact.metadata else None

    def _get(self, op: GetOp, reads: _Reads) -> Item | None:
        fact = self._fact(op.namespace, op.key)
        live = reads.live(op.namespace, [] if fact is None else [fact])
        if not live:
            return None
        if op.refresh_ttl:
            reads.refresh(op.namespace, live[0])
        return self._plain(self._item(live[0], op.namespace))

    # -- search ----------------------------------------------------------------------------------

    def _under(self, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        return [ns for ns in self._namespaces() if ns[: len(prefix)] == prefix]

    def _search(self, op: SearchOp, reads: _Reads) -> list[SearchItem]:
        if op.limit <= 0:
            return []
        where = dict(op.filter or {})
        if META_KEY in where:
            raise ValueError(f"{META_KEY!r} is LarimarStore's own metadata field; filter on "
                             "the value's fields")
        scored: list[tuple[SearchItem, Fact]] = []
        unscored: list[tuple[SearchItem, Fact]] = []
        wanted = op.offset + op.limit
        for namespace in self._under(tuple(op.namespace_prefix)):
            name = self.larimar_namespace(namespace)
            listed = self.larimar.list(namespace=name, filter=where or None)
            facts = reads.live(namespace, listed)
            indexed = {f.id for f in facts if _meta(f).get("indexed", True)}
            unscored += [(self._item(f, namespace), f) for f in facts
                         if not op.query or f.id not in indexed]
            if not op.query or not indexed:
                continue
            # the memory also holds the expired and the unindexed: read past them
            k = min(len(listed), wanted + len(listed) - len(indexed), MAX_RECALL_K)
            recall = self.larimar.recall(op.query, k=k, namespace=name, decode=False,
                                         filter=where or None)
            if self.relevant_only and not recall.scope.relevant:
                continue
            scored += [(self._item(hit.fact, namespace, hit.score), hit.fact)
                       for hit in recall.hits if hit.fact.id in indexed]
        scored.sort(key=lambda pair: -(pair[0].score or 0.0))
        page = (scored + unscored)[op.offset : wanted]
        if op.refresh_ttl:
            for item, fact in page:
                reads.refresh(item.namespace, fact)
        return [item for item, _ in page]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        namespaces = [
            ns for ns in self._namespaces()
            if all(_does_match(c, ns) for c in op.match_conditions or ()) and self._holds_items(ns)
        ]
        if op.max_depth is not None:
            namespaces = sorted({ns[: op.max_depth] for ns in namespaces})
        return namespaces[op.offset : op.offset + op.limit]

    # -- writes ----------------------------------------------------------------------------------

    def _apply_puts(self, puts: dict[tuple[tuple[str, ...], str], PutOp]) -> None:
        for (namespace, key), op in puts.items():
            name = self.larimar_namespace(namespace)
            old = self._fact(namespace, key)
            if op.value is None:
                if old is not None:
                    self._forget(key, name)
                continue
            ttl = check_ttl(op.ttl)
            now = _now().isoformat()
            meta = {
                "key": key,
                "created_at": (_meta(old).get("created_at") if old else None) or now,
                "updated_at": now,
                "indexed": op.index is not False,
                "ttl": ttl,
                "expires_at": None if ttl is None else _clock() + ttl * 60,
            }
            index = op.index if isinstance(op.index, list) else None
            texts = self._texts(op.value, index)
            # an item with nothing to embed still needs a fact text: its JSON (never searched)
            text = "\n".join(texts) or json.dumps(op.value, ensure_ascii=False, sort_keys=True,
                                                  default=str)
            self._remember(text, texts, key, {**op.value, META_KEY: meta}, name)

    def _remember(self, text: str, keys: list[str], fact_id: str, metadata: dict[str, Any],
                  namespace: str) -> None:
        limits = self.larimar.limits()
        text = text[: limits.max_text_chars]
        key = keys[0][: limits.max_key_chars] if len(keys) > 1 else None
        extra = [k[: limits.max_text_chars] for k in keys[1:]] or None
        for _ in range(6):
            try:
                self.larimar.remember(text, key=key, extra_keys=extra, ids=[fact_id],
                                      metadata=[metadata], namespace=namespace)
                return
            except TextInputError:
                if len(text) < 16:
                    raise
                text = text[: len(text) // 2]  # over the token limit: embed a shorter prefix
        self.larimar.remember(text, key=key, extra_keys=extra, ids=[fact_id],
                              metadata=[metadata], namespace=namespace)

    def _forget(self, fact_id: str, namespace: str) -> None:
        try:
            self.larimar.forget(fact_id, namespace=namespace)
        except FactNotFoundError:  # gone already (another writer, or a sweep)
            pass

    def _refresh(self, fact: Fact, namespace: tuple[str, ...]) -> None:
        """Push the fact's expiry ``ttl`` minutes from now (a rewrite of its metadata: the
        memory keeps no clock of its own)."""
        meta = {**_meta(fact), "expires_at": _clock() + _meta(fact)["ttl"] * 60}
        metadata = {**fact.metadata, META_KEY: meta}
        name = self.larimar_namespace(namespace)
        self.larimar.remember(fact.text, key=fact.key if fact.key != fact.text else None,
                              extra_keys=fact.extra_keys or None, ids=[fact.id],
                              metadata=[metadata], namespace=name)

    # -- TTL -------------------------------------------------------------------------------------

    def sweep_ttl(self) -> int:
        """Forget every expired item of this store's namespaces; how many were forgotten."""
        now, swept = _clock(), 0
        for namespace in self._namespaces():
            name = self.larimar_namespace(namespace)
            for fact in self.larimar.list(namespace=name):
                if META_KEY in fact.metadata and _expired(fact, now):
                    self._forget(fact.id, name)
                    swept += 1
        return swept

    async def asweep_ttl(self) -> int:
        return await asyncio.to_thread(self.sweep_ttl)

    def start_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> concurrent.futures.Future[None]:
        """Sweep every ``sweep_interval_minutes`` (default: the TTL config's, else 5) in a
        daemon thread until `stop_ttl_sweeper`; the future ends when the thread does."""
        if self._sweeper is not None and not self._sweeper.done():
            return self._sweeper
        interval = sweep_interval_minutes or (self.ttl_config or {}).get(
            "sweep_interval_minutes") or 5
        check_ttl(interval, "sweep_interval_minutes")
        self._stop_sweeping.clear()
        future: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                while not self._stop_sweeping.wait(interval * 60):
                    self.sweep_ttl()
                future.set_result(None)
            except BaseException as exc:  # surfaced through the future, not lost in the thread
                future.set_exception(exc)

        threading.Thread(target=run, name="larimar-ttl-sweeper", daemon=True).start()
        self._sweeper = future
        return future

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper; whether it stopped within ``timeout`` seconds."""
        if self._sweeper is None:
            return True
        self._stop_sweeping.set()
        try:
            self._sweeper.exception(timeout=timeout)
        except concurrent.futures.TimeoutError:
            return False
        return True

    # -- BaseStore -------------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops in order of kind, as `InMemoryStore` does: reads see the state before the
        batch's writes; several puts of one key keep the last. Expired items met by a read are
        forgotten after the reads."""
        results: list[Result] = []
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        reads = _Reads(self)
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op, reads))
            elif isinstance(op, SearchOp):
                results.append(self._search(op, reads))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            elif isinstance(op, PutOp):
                _check_put(op)
                puts.pop((tuple(op.namespace), op.key), None)
                puts[(tuple(op.namespace), op.key)] = op
                results.append(None)
            else:
                raise ValueError(f"Unknown operation type: {type(op)}")
        reads.finish()
        if puts:
            self._apply_puts(puts)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """`batch` in a worker thread: the memory's calls block while they embed."""
        return await asyncio.to_thread(self.batch, list(ops))


def _check_put(op: PutOp) -> None:
    """Refuse a bad put before any op of its batch runs."""
    if op.value is not None:
        if META_KEY in op.value:
            raise ValueError(f"values cannot have a field named {META_KEY!r}: LarimarStore "
                             "keeps the item's key and timestamps there. Rename the field")
        check_ttl(op.ttl)


class _Reads:
    """What the reads of one batch saw: expired facts (forgotten once the reads are done) and
    the returned facts whose TTL a read refreshed (each rewritten once)."""

    def __init__(self, store: LarimarStore) -> None:
        self.store, self.now = store, _clock()
        self.expired: dict[tuple[str, str], None] = {}
        self.refreshed: set[tuple[tuple[str, ...], str]] = set()

    def live(self, namespace: tuple[str, ...], facts: list[Fact]) -> list[Fact]:
        """``facts`` minus the expired ones (noted, to be forgotten)."""
        kept = []
        for fact in facts:
            if _expired(fact, self.now):
                self.expired[(self.store.larimar_namespace(namespace), fact.id)] = None
            else:
                kept.append(fact)
        return kept

    def refresh(self, namespace: tuple[str, ...], fact: Fact) -> None:
        """Push a returned fact's expiry on, once per batch (facts without a TTL: nothing)."""
        if _meta(fact).get("ttl") and (namespace, fact.id) not in self.refreshed:
            self.refreshed.add((namespace, fact.id))
            self.store._refresh(fact, namespace)

    def finish(self) -> None:
        for name, fact_id in self.expired:
            self.store._forget(fact_id, name)


def _does_match(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = condition.path
    if len(namespace) < len(path):
        return False
    pairs = (
        zip(namespace, path, strict=False)
        if condition.match_type == "prefix"
        else zip(reversed(namespace), reversed(path), strict=False)
    )
    return all(p == "*" or n == p for n, p in pairs)
