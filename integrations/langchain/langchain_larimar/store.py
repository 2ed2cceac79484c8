"""`LarimarStore`: a LangGraph `BaseStore` kept in Larimar episodic memory.

Agents built with ``create_agent(model, tools, store=LarimarStore(...))`` (and langmem's memory
tools) read and write long-term memory through the LangGraph store API; each item is one Larimar
fact:

* a namespace tuple ``("memories", "alice")`` is the Larimar namespace
  ``"<root>/memories/alice"`` (each label percent-escaped, so ``/`` inside a label cannot be
  confused with the separator, and the mapping is reversible);
* the item key is the fact id (``remember(..., ids=[key])``): putting an existing key replaces
  that fact exactly (status ``"replaced"``), never a similar one;
* the fact text, which the memory embeds and reads back, is the item's indexed text: the fields
  named by ``index={"fields": [...]}`` (or a put's ``index=[...]``), default ``"$"``, the whole
  value as JSON;
* the fact metadata holds the value's top-level fields (so ``filter`` equality runs in the
  memory) and, under ``"langgraph_store"``, the value itself, the key and the timestamps;
* ``put(ns, key, None)`` and ``delete`` forget the fact (exact removal from the memory).

``search`` with a query is Larimar's top-k recall in every Larimar namespace under the prefix,
merged by score (`SearchItem.score` is the hit's score); without a query it lists items (oldest
first), filtered. Filters are equality on value fields; operator filters (``$gt``, ``$ne``, …) and
nested values are checked here after the memory's own equality filter.
"""

from __future__ import annotations

import asyncio
import json
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
    get_text_at_path,
    tokenize_path,
)
from larimar_memory.errors import FactNotFoundError, TextInputError
from larimar_memory.protocol import MemoryBackend
from larimar_memory.types import Fact

from ._client import check_larimar, default_larimar

META_KEY = "langgraph_store"
"""The fact metadata field holding the item's value, key and timestamps."""
_SEPARATOR = "/"
_ESCAPES = {"%": "%25", "/": "%2F"}


def _escape(label: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in label)


def _unescape(label: str) -> str:
    return label.replace("%2F", "/").replace("%25", "%")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _matches(value: Any, wanted: Any) -> bool:
    """LangGraph's filter semantics (as `InMemoryStore`): equality, ``$eq``/``$ne``/``$gt``/
    ``$gte``/``$lt``/``$lte`` operators, nested mappings matched field by field."""
    if isinstance(wanted, dict):
        if any(str(k).startswith("$") for k in wanted):
            return all(_operator(value, op, arg) for op, arg in wanted.items())
        return isinstance(value, dict) and all(_matches(value.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(wanted)
            and all(_matches(a, b) for a, b in zip(value, wanted, strict=True))
        )
    return bool(value == wanted)


def _operator(value: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return bool(value == arg)
    if op == "$ne":
        return bool(value != arg)
    compare = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__, "$lte": float.__le__}
    if op not in compare:
        raise ValueError(f"unsupported filter operator {op!r}; use $eq, $ne, $gt, $gte, $lt, $lte")
    try:
        return bool(compare[op](float(value), float(arg)))
    except (TypeError, ValueError):
        return False


def _pushdown(filter: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The part of a filter the memory evaluates itself: equality on top-level scalar fields."""
    if not filter:
        return None
    simple = {
        k: v for k, v in filter.items()
        if k != META_KEY and isinstance(v, (str, int, float)) and not isinstance(v, bool)
    }
    return simple or None


class LarimarStore(BaseStore):
    """LangGraph long-term memory store backed by Larimar episodic memory.

    Setup:
        ``pip install langchain-larimar``

    Instantiate:
        .. code-block:: python

            from langchain_larimar import LarimarStore
            from larimar_memory.service import Larimar

            store = LarimarStore()  # the shared embedded Larimar(), created on first use
            store = LarimarStore(Larimar(store="facts.sqlite3"), index={"fields": ["content"]})

    Use:
        .. code-block:: python

            store.put(("memories", "alice"), "m1", {"content": "Alice lives in Lisbon."})
            store.get(("memories", "alice"), "m1").value
            store.search(("memories",), query="Where does Alice live?", limit=3)
            store.search(("memories", "alice"), filter={"kind": "profile"})  # no query: list
            store.delete(("memories", "alice"), "m1")  # exact removal from the memory
            agent = create_agent(model, tools, store=store)

    Args:
        larimar: a `larimar_memory.protocol.MemoryBackend` (a `Larimar` or a `LarimarClient`);
            None: the process-wide embedded ``Larimar()``.
        index: ``{"fields": [...]}``: which value fields are the text the memory embeds and
            reads back (JSON paths as in LangGraph; default ``["$"]``, the whole value as JSON).
        root: the Larimar namespace prefix of this store's namespaces.
    """

    def __init__(
        self,
        larimar: MemoryBackend | None = None,
        *,
        index: Mapping[str, Any] | None = None,
        root: str = "langgraph",
    ) -> None:
        self._larimar = check_larimar(larimar, type(self).__name__)
        fields = list((index or {}).get("fields") or ["$"])
        self.index_config = {"fields": fields} if index is not None else None
        self._fields = [(f, tokenize_path(f) if f != "$" else f) for f in fields]
        if not root or _SEPARATOR in root:
            raise ValueError(f"root must be a non-empty label without '/', got {root!r}")
        self.root = root

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

    def _text(self, value: Mapping[str, Any], index: list[str] | None) -> str:
        paths = self._fields if index is None else [(f, tokenize_path(f)) for f in index]
        texts: list[str] = []
        for path, tokens in paths:
            if path == "$":
                texts.append(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))
            else:
                texts += [t for t in get_text_at_path(value, tokens) if t]
        text = "\n".join(texts).strip()
        # an item with nothing to embed still needs a fact text: its JSON (never searched)
        return text or json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)

    @staticmethod
    def _item(fact: Fact, namespace: tuple[str, ...], score: float | None = None) -> SearchItem:
        meta = fact.metadata.get(META_KEY) or {}
        created = meta.get("created_at")
        updated = meta.get("updated_at")
        fallback = datetime.fromtimestamp(fact.created_at, timezone.utc)
        return SearchItem(
            namespace=namespace,
            key=str(meta.get("key", fact.id)),
            value=dict(meta.get("value", {})),
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

    def _get(self, op: GetOp) -> Item | None:
        fact = self._fact(op.namespace, op.key)
        return None if fact is None else self._plain(self._item(fact, op.namespace))

    # -- search ----------------------------------------------------------------------------------

    def _under(self, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        return [ns for ns in self._namespaces() if ns[: len(prefix)] == prefix]

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.limit <= 0:
            return []
        wanted = dict(op.filter or {})
        pushed = _pushdown(wanted)
        found: list[SearchItem] = []
        for namespace in self._under(tuple(op.namespace_prefix)):
            name = self.larimar_namespace(namespace)
            if op.query:
                facts = self.larimar.list(namespace=name, filter=pushed)
                searchable = [
                    f for f in facts if (f.metadata.get(META_KEY) or {}).get("indexed", True)
                ]
                if not searchable:
                    continue
                recall = self.larimar.recall(
                    op.query, k=len(facts), namespace=name, decode=False, filter=pushed
                )
                ids = {f.id for f in searchable}
                found += [
                    self._item(hit.fact, namespace, hit.score)
                    for hit in recall.hits if hit.fact.id in ids
                ]
            else:
                found += [
                    self._item(fact, namespace)
                    for fact in self.larimar.list(namespace=name, filter=pushed)
                ]
        found = [item for item in found if all(_matches(item.value.get(k), v)
                                               for k, v in wanted.items())]
        if op.query:
            found.sort(key=lambda item: -(item.score or 0.0))
        return found[op.offset : op.offset + op.limit]

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
        by_namespace: dict[tuple[str, ...], list[PutOp]] = {}
        for (namespace, _), op in puts.items():
            by_namespace.setdefault(namespace, []).append(op)
        for namespace, ops in by_namespace.items():
            name = self.larimar_namespace(namespace)
            writes = []
            for op in ops:
                if op.value is None:
                    if self._fact(namespace, op.key) is not None:
                        self.larimar.forget(op.key, namespace=name)
                    continue
                if op.ttl is not None:
                    raise NotImplementedError("LarimarStore does not support TTLs")
                old = self._fact(namespace, op.key)
                now = _now().isoformat()
                value = dict(op.value)
                meta = {
                    "key": op.key,
                    "value": value,
                    "created_at": (old.metadata[META_KEY].get("created_at") if old else None)
                    or now,
                    "updated_at": now,
                    "indexed": op.index is not False,
                }
                index = op.index if isinstance(op.index, list) else None
                metadata = {k: v for k, v in value.items() if k != META_KEY}
                metadata[META_KEY] = meta
                writes.append((self._text(value, index), op.key, metadata))
            for text, key, metadata in writes:
                self._remember(text, key, metadata, name)

    def _remember(self, text: str, key: str, metadata: dict[str, Any], namespace: str) -> None:
        limit = self.larimar.limits().max_text_chars
        text = text[:limit]
        for _ in range(6):
            try:
                self.larimar.remember(text, ids=[key], metadata=[metadata], namespace=namespace)
                return
            except TextInputError:
                if len(text) < 16:
                    raise
                text = text[: len(text) // 2]  # over the token limit: embed a shorter prefix
        self.larimar.remember(text, ids=[key], metadata=[metadata], namespace=namespace)

    # -- BaseStore -------------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops in order of kind, as `InMemoryStore` does: reads see the state before the
        batch's writes; several puts of one key keep the last."""
        results: list[Result] = []
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            elif isinstance(op, PutOp):
                puts.pop((tuple(op.namespace), op.key), None)
                puts[(tuple(op.namespace), op.key)] = op
                results.append(None)
            else:
                raise ValueError(f"Unknown operation type: {type(op)}")
        if puts:
            self._apply_puts(puts)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """`batch` in a worker thread: the memory's calls block while they embed."""
        return await asyncio.to_thread(self.batch, list(ops))


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
