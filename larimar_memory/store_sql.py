"""`SQLStore`: the one SQL implementation of `MemoryStore`, parameterised by a `Dialect`.

The schema and every query are written here once; a dialect (``store_sqlite.py``,
``store_postgres.py``) supplies what differs: connections, column types, the placeholder, how a
transaction takes the namespace's write lock, the metadata filter, error messages and the purge
of deleted bytes. Queries are written with ``?`` placeholders; `Dialect.sql` rewrites them.

Purges: every transaction that deleted something ends with the dialect's purge; one purge covers
every delete committed before it started, so concurrent forgets share a purge. A purge that
cannot run yet leaves the delete committed, raises `PurgePendingError`, and is retried at the
start and end of every later write, at close and by `purge()`.

Encryption (a key file given, see ``store_keys.py``): ``text``, ``key_text``, ``metadata``,
``extra_key_texts`` and ``key`` hold empty placeholders, ``vals`` the sealed payload (all of them
and the latents), ``request_id`` a keyed hash; metadata filters then run in Python.

Layout (format version 3)::

    larimar_meta(key, value)                       format_version, created_by, version_floor
    larimar_namespaces(name, version, meta, created_at, log_floor)
    larimar_facts(seq, namespace, id, text, key_text, key, key_dim, vals, n_rows, value_dim,
                  mem_rows, metadata, created_at, request_id, extra_key_texts)
                  unique (namespace, id)
    larimar_changes(seq, namespace, version, op, fact_id)
    larimar_history(seq, namespace, fact_id, version, event, at)

`key` is raw little-endian float32 ((1 + extra keys) x key_dim: the key, then the extra keys
of `extra_key_texts`, a JSON list), `vals` packed (n_rows x value_dim, `packed.py`; raw
float32 in rows written by format 3), `mem_rows` int64 (n_rows). Meta ``encryption`` and
``store_id`` mark a store created with a key file. Versions: a new namespace starts above
``version_floor``, which `clear` raises to the cleared namespace's last version, so no version
is ever reused.

Change log: every transaction that bumps a version records it (op ``version``) and each fact it
writes or forgets and any meta it sets, in the same transaction as the change itself; a cache
that is behind reads the entries after its version (`MemoryStore.changes`) and applies only
those. `log_floor` is the version after which a namespace's log is complete: the version it was
created at, raised by `trim_changes`. Entries hold fact ids only, never text.

History: each ``write`` and ``forget`` entry is also an event of the fact's history (``written``
/ ``forgotten``, with the time), in the same transaction. The history is never trimmed (a
replica's log may be) and holds no text, so a forgotten fact's history stays without breaking
the purge; `clear` deletes it with the namespace.
"""

from __future__ import annotations

import abc
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

from .errors import (
    FactNotFoundError,
    MemoryInputError,
    PurgePendingError,
    StoreError,
    TextInputError,
)
from .filters import check_filter, equalities, matches
from .packed import PackedFormatError, is_packed, pack, unpack
from .store import (
    FORMAT_VERSION,
    Change,
    ChangeLog,
    FactRecord,
    HistoryEntry,
    MemoryStore,
    NamespaceLoad,
    PurgeReport,
    StoreTransaction,
    check_metadata,
)
from .store_columns import FactColumns, from_rows
from .store_keys import SCHEME, KeyFile, NamespaceCipher, key_file_from_env

__all__ = ["Dialect", "SQLStore", "SQLTransaction"]

logger = logging.getLogger(__name__)

READABLE_FORMATS = (1, 2, 3, 4)
"""Format versions this library opens (1 to 3 are migrated to 4 in place)."""

SCHEMA = """
CREATE TABLE larimar_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE larimar_namespaces (
    name       TEXT PRIMARY KEY,
    version    {bigint} NOT NULL,           -- bumped once per committed change
    meta       TEXT,                        -- JSON object of strings, or NULL
    created_at {real} NOT NULL,
    log_floor  {bigint} NOT NULL DEFAULT 0  -- the change log is complete after this version
);
CREATE TABLE larimar_facts (
    seq        {serial_pk},                 -- insertion order, breaks created_at ties
    namespace  TEXT NOT NULL REFERENCES larimar_namespaces(name) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    text       TEXT NOT NULL,
    key_text   TEXT NOT NULL,
    key        {blob} NOT NULL,             -- float32 (key_dim,)
    key_dim    INTEGER NOT NULL,
    vals       {blob} NOT NULL,             -- packed (n_rows, value_dim), see packed.py
    n_rows     INTEGER NOT NULL,
    value_dim  INTEGER NOT NULL,
    mem_rows   {blob} NOT NULL,             -- int64 (n_rows,)
    metadata   TEXT NOT NULL,               -- JSON object, as written (key order kept)
    created_at {real} NOT NULL,
    request_id TEXT,
    extra_key_texts TEXT NOT NULL DEFAULT '[]',  -- JSON list, their keys follow the key
    UNIQUE (namespace, id)
);
CREATE INDEX larimar_facts_by_age ON larimar_facts(namespace, created_at, seq);
CREATE INDEX larimar_facts_by_request ON larimar_facts(namespace, request_id);
{changes};
{history}"""

CHANGES_SCHEMA = """
CREATE TABLE larimar_changes (
    seq        {serial_pk},                 -- commit order within a version
    namespace  TEXT NOT NULL REFERENCES larimar_namespaces(name) ON DELETE CASCADE,
    version    {bigint} NOT NULL,
    op         TEXT NOT NULL,               -- version | write | forget | meta
    fact_id    TEXT NOT NULL
);
CREATE INDEX larimar_changes_by_version ON larimar_changes(namespace, version)
"""

HISTORY_SCHEMA = """
CREATE TABLE larimar_history (
    seq        {serial_pk},                 -- event order
    namespace  TEXT NOT NULL REFERENCES larimar_namespaces(name) ON DELETE CASCADE,
    fact_id    TEXT NOT NULL,
    version    {bigint} NOT NULL,           -- 0: a fact stored before format 4
    event      TEXT NOT NULL,               -- written | forgotten
    at         {real} NOT NULL
);
CREATE INDEX larimar_history_by_fact ON larimar_history(namespace, fact_id)
"""
_EVENTS = {"write": "written", "forget": "forgotten"}
"""The change-log ops that are events of a fact's history."""

_COLUMNS = (
    "namespace, id, text, key_text, key, key_dim, vals, n_rows, value_dim, mem_rows, metadata, "
    "created_at, request_id, extra_key_texts"
)
_ORDER = "ORDER BY created_at, seq"
_ORDER_KEYED = "ORDER BY +created_at, +seq"
"""For a lookup by request id. The unary plus keeps the planner on the selective index:
with the plain order SQLite walks the namespace's whole age index to skip the sort, reading every
row's blobs (the request-id lookup took 59 % of a server remember at 1,600 facts)."""
_UNREAD = object()  # a transaction's namespace row before it is read
_NO_LIMIT = 2**62  # LIMIT for "all rows" that both SQLite and PostgreSQL accept
_CHUNK = 500  # ids per IN (...) list, under SQLite's bound-parameter limit
_F32 = np.dtype("<f4")
_I64 = np.dtype("<i8")
FLOOR_KEY = "version_floor"


class Dialect(abc.ABC):
    """What differs between SQL backends. One instance per store."""

    placeholder = "?"
    types: dict[str, str]
    """Substitutions for the schema: blob, real, bigint, serial_pk."""
    purges = False
    """Whether deletes leave bytes that `purge` must clear."""
    pending_reason = "something kept the deleted bytes in use"
    """Why a purge could not run, for `PurgePendingError` (what holds it, where the bytes are)."""
    v1_tables: tuple[str, str, str]
    """Format-1 table names (namespaces, states, facts) and the order column of v1 facts."""
    v1_order: str

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """The store's location for messages (no password)."""

    def sql(self, query: str) -> str:
        return query if self.placeholder == "?" else query.replace("?", self.placeholder)

    @abc.abstractmethod
    def connection(self) -> AbstractContextManager[Any]:
        """A DB-API connection in autocommit mode for one call or one transaction."""

    @abc.abstractmethod
    def begin(self, conn: Any, lock: str | None) -> None:
        """BEGIN a transaction holding the write lock of namespace `lock` (None: the schema)."""

    def begin_snapshot(self, conn: Any) -> None:
        """BEGIN a read-only transaction whose statements all see one committed snapshot."""
        conn.execute("BEGIN")

    @abc.abstractmethod
    def rollback(self, conn: Any) -> None:
        """ROLLBACK, tolerating a transaction the database already ended."""

    @abc.abstractmethod
    def errors(self) -> AbstractContextManager[None]:
        """Translate driver exceptions into `StoreError` messages that say what to do."""

    @abc.abstractmethod
    def tables(self, conn: Any) -> set[str]:
        """Tables of this store's database (or schema) that may belong to larimar."""

    @abc.abstractmethod
    def metadata_equals(self, field: str, value: Any) -> tuple[str, list[Any]]:
        """A WHERE fragment (and its parameters): top-level metadata `field` equals `value`."""

    def storable(self, *texts: str | None) -> bool:
        """Whether the backend can hold these strings (PostgreSQL: no NUL)."""
        return True

    def bulk_rows(self, conn: Any, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Every row of a large read inside a transaction (a namespace's facts, for a load)."""
        return list(conn.execute(query, tuple(params)).fetchall())

    def purge(self, conn: Any, wait: bool) -> bool:
        """Remove deleted bytes from every file; False when a reader prevents it for now."""
        return True

    def tune(self, q: Any) -> None:  # noqa: B027 - optional hook
        """Backend settings of the tables, applied at every open in the schema transaction."""

    def erasure_limits(self, conn: Any) -> list[str]:
        """Where this backend's settings let copies of forgotten facts survive a purge, each
        with what to change (empty: none the store can see)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the dialect's connections."""


def _blob(array: np.ndarray, dtype: np.dtype[Any]) -> bytes:
    return array.astype(dtype, copy=False).tobytes()


def _array(blob: Any, dtype: np.dtype[Any], shape: tuple[int, ...], what: str, fid: str) -> Any:
    blob = bytes(blob) if isinstance(blob, (memoryview, bytearray)) else blob
    n = int(np.prod(shape))
    if not isinstance(blob, bytes) or len(blob) != n * dtype.itemsize:
        size = len(blob) if isinstance(blob, bytes) else type(blob).__name__
        raise StoreError(
            f"Fact {fid}: stored {what} has {size} bytes but shape {shape} needs "
            f"{n * dtype.itemsize}; the store is corrupted. Forget this fact or restore the "
            "store from a backup."
        )
    return np.frombuffer(blob, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(shape)


def _values(blob: Any, n_rows: int, value_dim: int, fid: str) -> np.ndarray:
    """A fact's values from a packed blob (format 4), or a raw float32 one (format 3)."""
    blob = bytes(blob) if isinstance(blob, (memoryview, bytearray)) else blob
    if not isinstance(blob, bytes) or not is_packed(blob):
        return _array(blob, _F32, (n_rows, value_dim), "values", fid)
    try:
        return unpack(blob, n_rows, value_dim)
    except PackedFormatError as exc:
        raise StoreError(f"Fact {fid}: stored values are malformed ({exc}); the store is "
                         "corrupted. Forget this fact or restore the store from a backup.") from exc


def _to_row(r: FactRecord, cipher: NamespaceCipher | None = None) -> tuple[Any, ...]:
    keys = _blob(np.concatenate([r.key[None], r.extra_keys]), _F32)
    metadata = check_metadata(r.metadata)
    if cipher is None:
        return (r.namespace, r.id, r.text, r.key_text, keys, int(r.key.shape[0]),
                pack(r.values), int(r.values.shape[0]), int(r.values.shape[1]),
                _blob(r.rows, _I64), metadata, float(r.created_at), r.request_id,
                json.dumps(r.extra_key_texts, ensure_ascii=False))
    header = json.dumps({"text": r.text, "key_text": r.key_text, "metadata": metadata,
                         "extra_key_texts": r.extra_key_texts, "request_id": r.request_id},
                        ensure_ascii=False).encode()
    payload = b"".join((len(header).to_bytes(4, "big"), header, keys, pack(r.values)))
    return (r.namespace, r.id, "", "", b"", int(r.key.shape[0]), cipher.seal(r.id, payload),
            int(r.values.shape[0]), int(r.values.shape[1]), _blob(r.rows, _I64), "{}",
            float(r.created_at), None if r.request_id is None else cipher.tag(r.request_id), "[]")


def _unseal(row: Sequence[Any], cipher: NamespaceCipher) -> tuple[Any, ...]:
    """A sealed row (see `_to_row`) as the plain row it was made from."""
    (ns, fid, _, _, _, key_dim, sealed, n_rows, value_dim, rows, _, created_at, _, _) = row
    payload = cipher.open(fid, bytes(sealed))
    end = 4 + int.from_bytes(payload[:4], "big")
    try:
        head = json.loads(payload[4:end])
        split = end + (1 + len(head["extra_key_texts"])) * int(key_dim) * _F32.itemsize
        return (ns, fid, head["text"], head["key_text"], payload[end:split], key_dim,
                payload[split:], n_rows, value_dim, rows, head["metadata"], created_at,
                head["request_id"], json.dumps(head["extra_key_texts"], ensure_ascii=False))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"Fact {fid}: its sealed payload is malformed ({exc}); corrupted "
                         "store.") from exc


def _from_row(row: Sequence[Any]) -> FactRecord:
    (ns, fid, text, key_text, key, key_dim, vals, n_rows, value_dim, rows, metadata, created_at,
     request_id, extra_texts) = row
    try:
        meta = json.loads(metadata)
        extra = json.loads(extra_texts)
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"Fact {fid}: metadata or extra key texts are not valid JSON ({exc}); corrupted store."
        ) from exc
    keys = _array(key, _F32, (1 + len(extra), key_dim), "key", fid)
    arrays = {"key": keys[0], "extra_keys": keys[1:], "extra_key_texts": extra,
              "values": _values(vals, n_rows, value_dim, fid),
              "rows": _array(rows, _I64, (n_rows,), "rows", fid)}
    try:
        return FactRecord(namespace=ns, id=fid, text=text, key_text=key_text, metadata=meta,
                          created_at=created_at, request_id=request_id, **arrays)
    except (MemoryInputError, TextInputError) as exc:
        raise StoreError(f"Fact {fid} as stored is invalid ({exc}); corrupted store. Forget "
                         "this fact or restore the store from a backup.") from exc


def _strings(value: Any) -> Iterator[str]:
    """Every key and string inside a (validated, so bounded-depth) JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _check_namespace(namespace: Any) -> None:
    if not isinstance(namespace, str) or not namespace:
        raise TextInputError(f"namespace must be a non-empty string, got {namespace!r}.")


def _check_namespace_meta(meta: Any) -> str:
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise TextInputError(
            f"namespace meta must map str to str, got {meta!r:.120}; convert values with str()."
        )
    return json.dumps(meta, ensure_ascii=False)


def _parse_namespace_meta(raw: str | None, namespace: str) -> dict[str, str] | None:
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"Meta of namespace {namespace!r} is not valid JSON; corrupted store."
        ) from exc
    return {str(k): str(v) for k, v in meta.items()}


def _library_version() -> str:
    try:
        from importlib.metadata import version

        return version("larimar-memory")
    except Exception:
        return "unknown"


class _Queries:
    """The read and write statements, on one connection (a transaction's or a snapshot read's)."""

    def __init__(self, store: SQLStore, conn: Any) -> None:
        self.d = store.dialect
        self.keys = store._keys
        self.conn = conn

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.d.errors():
            return list(self.conn.execute(self.d.sql(sql), tuple(params)).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.d.errors():
            self.conn.execute(self.d.sql(sql), tuple(params))

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            with self.d.errors():
                self.conn.cursor().executemany(self.d.sql(sql), rows)

    def facts(self, ns: str, where: str = "", params: Sequence[Any] = (),
              page: tuple[int | None, int] | None = None, order: str = _ORDER
              ) -> list[FactRecord]:
        return [_from_row(r) for r in self.fact_rows(ns, where, params, page, order)]

    def fact_rows(self, ns: str, where: str = "", params: Sequence[Any] = (),
                  page: tuple[int | None, int] | None = None, order: str = _ORDER,
                  bulk: bool = False) -> list[Sequence[Any]]:
        """The stored rows (`_COLUMNS`) of a namespace's facts, unsealed (``bulk``: all of
        them, inside a transaction, read the backend's fastest way: `Dialect.bulk_rows`)."""
        if not self.d.storable(ns):
            return []
        sql = f"SELECT {_COLUMNS} FROM larimar_facts WHERE namespace = ? {where} {order}"
        args: list[Any] = [ns, *params]
        if page is not None and (page[0] is not None or page[1]):
            sql += " LIMIT ? OFFSET ?"
            args += [_NO_LIMIT if page[0] is None else page[0], page[1]]
        if bulk:
            with self.d.errors():
                rows = self.d.bulk_rows(self.conn, self.d.sql(sql), args)
        else:
            rows = self.q(sql, args)
        if self.keys is None or not rows:
            return rows
        cipher = self.keys.cipher(ns)
        if cipher is None:
            raise StoreError(
                f"Namespace {ns!r} has facts but the key file {self.keys.path} has no key for "
                "it: its key was destroyed by a clear that did not commit (clear the namespace "
                "again), or this is not the key file the store was written with."
            )
        return [_unseal(r, cipher) for r in rows]

    def load(self, ns: str) -> NamespaceLoad:
        row = self.namespace_row(ns)
        if row is None:
            return NamespaceLoad(version=0, meta=None, facts=FactColumns())
        return NamespaceLoad(version=row[0], meta=_parse_namespace_meta(row[1], ns),
                             facts=from_rows(self.fact_rows(ns, bulk=True)))

    def facts_by_ids(self, ns: str, ids: Sequence[str]) -> list[FactRecord]:
        if isinstance(ids, str):
            ids = [ids]
        wanted = list(dict.fromkeys(ids))
        found: dict[str, FactRecord] = {}
        searchable = [i for i in wanted if isinstance(i, str) and self.d.storable(i)]
        for start in range(0, len(searchable), _CHUNK):
            chunk = searchable[start:start + _CHUNK]
            # no ORDER BY: the caller's order is restored below, and the planner stays free to
            # use the (namespace, id) index
            for rec in self.facts(ns, f"AND id IN ({','.join('?' * len(chunk))})", chunk,
                                  order=""):
                found[rec.id] = rec
        missing = [i for i in wanted if i not in found]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" …" if len(missing) > 5 else "")
            raise FactNotFoundError(
                f"{len(missing)} fact id(s) not found in namespace {ns!r}: {shown}. "
                "List the namespace's facts to see the ids it holds."
            )
        return [found[i] for i in wanted]

    def namespace_row(self, ns: str) -> tuple[int, str | None] | None:
        if not self.d.storable(ns):
            return None
        rows = self.q("SELECT version, meta FROM larimar_namespaces WHERE name = ?", (ns,))
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def change_log(self, ns: str, since: int) -> ChangeLog:
        """The entries after `since`, in commit order, and the live facts they wrote."""
        if not self.d.storable(ns):
            return ChangeLog(since=since, version=0, floor=0, changes=[], facts=FactColumns())
        head = self.q("SELECT version, log_floor FROM larimar_namespaces WHERE name = ?", (ns,))
        if not head:
            return ChangeLog(since=since, version=0, floor=0, changes=[], facts=FactColumns())
        changes = [Change(version=int(v), op=op, fact_id=fid) for v, op, fid in self.q(
            "SELECT version, op, fact_id FROM larimar_changes WHERE namespace = ? AND "
            "version > ? ORDER BY seq", (ns, since))]
        written = list(dict.fromkeys(c.fact_id for c in changes if c.op == "write"))
        rows: list[Sequence[Any]] = []
        for start in range(0, len(written), _CHUNK):
            chunk = written[start:start + _CHUNK]
            rows += self.fact_rows(ns, f"AND id IN ({','.join('?' * len(chunk))})", chunk)
        return ChangeLog(since=since, version=int(head[0][0]), floor=int(head[0][1]),
                         changes=changes, facts=from_rows(rows))

    def history(self, ns: str, fact_id: str) -> list[HistoryEntry]:
        if not (self.d.storable(ns) and self.d.storable(fact_id)):
            return []
        return [HistoryEntry(version=int(v), event=e, at=float(at)) for v, e, at in self.q(
            "SELECT version, event, at FROM larimar_history WHERE namespace = ? AND fact_id = ? "
            "ORDER BY seq", (ns, fact_id))]

    def count(self, ns: str) -> int:
        if not self.d.storable(ns):
            return 0
        return int(self.q("SELECT COUNT(*) FROM larimar_facts WHERE namespace = ?", (ns,))[0][0])


class SQLTransaction(StoreTransaction):
    """A `StoreTransaction` on one connection that holds the namespace's write lock."""

    def __init__(self, store: SQLStore, conn: Any, namespace: str) -> None:
        self.namespace = namespace
        self._q = _Queries(store, conn)
        self._keys = store._keys
        self._version: int | None = None  # set once this transaction bumped the version
        # the namespace row (version, meta), read once: under the namespace's write lock only
        # this transaction changes it (a write asked for it four times, each a round trip)
        self._row: tuple[int, str | None] | None | object = _UNREAD
        self.deleted = False
        self.open = True

    def _namespace_row(self) -> tuple[int, str | None] | None:
        if self._row is _UNREAD:
            self._row = self._check_open().namespace_row(self.namespace)
        return self._row  # type: ignore[return-value]

    def _check_open(self) -> _Queries:
        if not self.open:
            raise StoreError("This transaction has ended; start a new `with store.transaction()`.")
        return self._q

    def _bump(self) -> int:
        """Create the namespace row if needed and bump its version, once per transaction."""
        q = self._check_open()
        if self._version is None:
            row = self._namespace_row()
            if row is None:
                floor = q.q("SELECT value FROM larimar_meta WHERE key = ?", (FLOOR_KEY,))
                start = int(floor[0][0]) if floor else 0
                q.run("INSERT INTO larimar_namespaces(name, version, meta, created_at, "
                      "log_floor) VALUES (?, ?, NULL, ?, ?)",
                      (self.namespace, start, time.time(), start))
            rows = q.q("UPDATE larimar_namespaces SET version = version + 1 WHERE name = ? "
                       "RETURNING version", (self.namespace,))
            self._version = int(rows[0][0])
            self._row = (self._version, None if row is None else row[1])
            self._log("version", [""])
        return self._version

    def _log(self, op: str, fact_ids: Sequence[str]) -> None:
        """Change-log entries at this transaction's version (bumped already)."""
        self._q.many("INSERT INTO larimar_changes(namespace, version, op, fact_id) "
                     "VALUES (?, ?, ?, ?)",
                     [(self.namespace, self._version, op, fid) for fid in fact_ids])
        if op in _EVENTS:
            now = time.time()
            self._q.many("INSERT INTO larimar_history(namespace, fact_id, version, event, at) "
                         "VALUES (?, ?, ?, ?, ?)",
                         [(self.namespace, fid, self._version, _EVENTS[op], now)
                          for fid in fact_ids])

    def namespace_meta(self) -> dict[str, str] | None:
        row = self._namespace_row()
        return _parse_namespace_meta(row[1], self.namespace) if row else None

    def set_namespace_meta(self, meta: dict[str, str]) -> None:
        raw = _check_namespace_meta(meta)
        version = self._bump()
        self._q.run("UPDATE larimar_namespaces SET meta = ? WHERE name = ?", (raw, self.namespace))
        self._log("meta", [""])
        self._row = (version, raw)

    def version(self) -> int:
        row = self._namespace_row()
        return row[0] if row else 0

    def all_facts(self) -> list[FactRecord]:
        return self._check_open().facts(self.namespace)

    def load(self) -> NamespaceLoad:
        row = self._namespace_row()
        if row is None:
            return NamespaceLoad(version=0, meta=None, facts=FactColumns())
        return NamespaceLoad(version=row[0], meta=_parse_namespace_meta(row[1], self.namespace),
                             facts=from_rows(self._check_open().fact_rows(self.namespace)))

    def add_facts(self, records: Iterable[FactRecord]) -> None:
        q = self._check_open()
        records = list(records)
        for r in records:
            if not isinstance(r, FactRecord):
                raise MemoryInputError(
                    f"add_facts takes FactRecord objects, got {type(r).__name__}."
                )
            if r.namespace != self.namespace:
                raise StoreError(
                    f"Fact {r.id} belongs to namespace {r.namespace!r} but this transaction is on "
                    f"{self.namespace!r}; open a transaction on the fact's namespace."
                )
            if any(t is not None and "\x00" in t for t in (
                    r.text, r.key_text, r.id, r.request_id, *r.extra_key_texts,
                    *_strings(r.metadata))):
                raise TextInputError(
                    "text cannot contain NUL characters (\\x00) on any store (PostgreSQL "
                    "cannot hold them), and this fact does (in its text, keys, id, request id "
                    "or metadata); remove them. Nothing was written."
                )
        if not records:
            return
        ids = [r.id for r in records]
        taken = [i for i, n in Counter(ids).items() if n > 1]  # repeats within the batch
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            taken += [row[0] for row in q.q(
                f"SELECT id FROM larimar_facts WHERE namespace = ? AND id IN "
                f"({','.join('?' * len(chunk))})", (self.namespace, *chunk))]
        if taken:
            raise StoreError(
                f"Fact id(s) already exist in namespace {self.namespace!r} or repeat within the "
                f"batch: {', '.join(taken[:5])}; ids must be unique within a namespace. Nothing "
                "was written."
            )
        cipher = None if self._keys is None else self._cipher(create=True)
        self._bump()
        q.many(f"INSERT INTO larimar_facts({_COLUMNS}) VALUES ({','.join('?' * 14)})",
               [_to_row(r, cipher) for r in records])
        self._log("write", ids)

    def _cipher(self, create: bool) -> NamespaceCipher | None:
        """The namespace's cipher (encrypting stores); ``create`` makes a key for a namespace
        that has no facts, and refuses to for one whose facts were sealed with a lost key."""
        assert self._keys is not None
        cipher = self._keys.cipher(self.namespace)
        if cipher is None and create:
            if self._q.count(self.namespace):
                raise StoreError(
                    f"Namespace {self.namespace!r} has facts but the key file "
                    f"{self._keys.path} has no key for it; a new key would not open them. "
                    "Restore the key file, or clear the namespace. Nothing was written."
                )
            cipher = self._keys.create(self.namespace)
        return cipher

    def delete_facts(self, ids: Sequence[str]) -> list[FactRecord]:
        records = self._check_open().facts_by_ids(self.namespace, ids)  # raises before any change
        if records:
            self._bump()
            self._q.many("DELETE FROM larimar_facts WHERE namespace = ? AND id = ?",
                         [(self.namespace, r.id) for r in records])
            self._log("forget", [r.id for r in records])
            self.deleted = True
        return records

    def get_facts(self, ids: Sequence[str]) -> list[FactRecord]:
        return self._check_open().facts_by_ids(self.namespace, ids)

    def find_by_request_id(self, request_id: str) -> list[FactRecord]:
        q = self._check_open()
        if not q.d.storable(request_id):
            return []
        if self._keys is not None:
            cipher = self._cipher(create=False)
            if cipher is None:
                return []
            request_id = cipher.tag(request_id)
        return q.facts(self.namespace, "AND request_id = ?", (request_id,), order=_ORDER_KEYED)

    def commit_version(self) -> int:
        return self._bump()

    def changes(self, since: int) -> ChangeLog:
        return self._check_open().change_log(self.namespace, since)

    def trim_changes(self, keep: int) -> int:
        q = self._check_open()
        if keep < 0:
            raise ValueError(f"keep must be >= 0 versions, got {keep}")
        cut = self.version() - keep
        if cut <= 0:
            return 0
        rows = q.q("SELECT COUNT(*) FROM larimar_changes WHERE namespace = ? AND version <= ?",
                   (self.namespace, cut))
        q.run("DELETE FROM larimar_changes WHERE namespace = ? AND version <= ?",
              (self.namespace, cut))
        q.run("UPDATE larimar_namespaces SET log_floor = ? WHERE name = ? AND log_floor < ?",
              (cut, self.namespace, cut))
        return int(rows[0][0])

    def clear(self) -> int:
        """Delete the namespace's facts and row; raise the version floor past its version."""
        q = self._check_open()
        row = self._namespace_row()
        if row is None:
            return 0
        n = q.count(self.namespace)
        q.run("DELETE FROM larimar_facts WHERE namespace = ?", (self.namespace,))
        q.run("DELETE FROM larimar_namespaces WHERE name = ?", (self.namespace,))
        q.run("UPDATE larimar_meta SET value = CAST(CASE WHEN CAST(value AS {bigint}) < ? THEN ? "
              "ELSE CAST(value AS {bigint}) END AS TEXT) WHERE key = ?"
              .format(**q.d.types), (row[0], row[0], FLOOR_KEY))
        if self._keys is not None:  # last: a failure before commit rolls everything back
            self._keys.destroy(self.namespace)
        self._row, self._version = None, None
        self.deleted = True
        return n


class SQLStore(MemoryStore):
    """`MemoryStore` over any `Dialect`; see the module docstring. Construct a backend class
    (`SQLiteStore`, `PostgresStore`) rather than this one."""

    def __init__(self, dialect: Dialect, key_file: Any = None) -> None:
        self.dialect = dialect
        self._local = threading.local()
        self._purge_lock = threading.Lock()  # one purge at a time; later ones may be covered
        self._count_lock = threading.Lock()
        self._deletes = 0  # transactions that deleted something, by this object
        self._purged = 0  # how many of those a finished purge covers
        self._key_path = key_file_from_env(key_file)
        self._keys: KeyFile | None = None
        self._closed = False
        try:
            self._init_schema()
        except BaseException:
            self.close()
            raise

    # -- schema and migration --------------------------------------------------------------------

    def _init_schema(self) -> None:
        d = self.dialect
        with d.connection() as conn:
            with d.errors():
                d.begin(conn, None)
            try:
                q = _Queries(self, conn)
                migrated = False
                tables = d.tables(conn)
                if "larimar_meta" not in tables:
                    if tables - {*d.v1_tables}:
                        raise StoreError(
                            f"{d.where} is a database but not a larimar store (tables: "
                            f"{', '.join(sorted(tables))}). Point the store at a new file."
                        )
                    meta = {"created_at": str(time.time())}
                    if self._key_path is not None:
                        meta |= {"encryption": SCHEME, "store_id": uuid.uuid4().hex}
                    self._create(q, meta)
                else:
                    meta = dict(q.q("SELECT key, value FROM larimar_meta"))
                    self._check_encryption(meta)
                    found = meta.get("format_version")
                    if found == "1":
                        self._migrate_v1(q, meta)
                        migrated = True
                    elif found in ("2", "3"):
                        if found == "2":
                            self._migrate_v2(q)
                        self._migrate_v3(q)
                    elif found != str(FORMAT_VERSION):
                        raise StoreError(
                            f"The store {d.where} has format version {found!r} (written by "
                            f"larimar-memory {meta.get('created_by', 'unknown')}), but this "
                            f"larimar-memory ({_library_version()}) reads format versions "
                            f"{', '.join(map(str, READABLE_FORMATS))}. Open it with the version "
                            "that wrote it, or point the store at a new file or schema."
                        )
                d.tune(q)
                with d.errors():
                    conn.execute("COMMIT")
            except BaseException:
                d.rollback(conn)
                raise
        if self._key_path is not None:
            self._keys = KeyFile(self._key_path, meta["store_id"])
        if migrated and d.purges:
            with self._count_lock:
                self._deletes += 1  # the format-1 rows' bytes
            self._purge(wait=True)  # else retried on the next write

    def _check_encryption(self, meta: dict[str, str]) -> None:
        """Encryption is chosen when a store is created; opening it otherwise is refused."""
        where, scheme = self.dialect.where, meta.get("encryption")
        if scheme is None and self._key_path is not None:
            raise StoreError(
                f"The store {where} was created without encryption, and a key file "
                f"({self._key_path}) was given; encryption is chosen when a store is created. "
                "Create a new store with the key file and copy the facts over, or open this one "
                "without a key file (unset LARIMAR_KEY_FILE)."
            )
        if scheme is not None and self._key_path is None:
            raise StoreError(
                f"The store {where} is encrypted ({scheme}); open it with its key file "
                "(key_file=... or LARIMAR_KEY_FILE)."
            )
        if scheme is not None and scheme != SCHEME:
            raise StoreError(f"The store {where} is encrypted with {scheme!r}, which this "
                             f"larimar-memory ({_library_version()}) does not read.")

    def _create(self, q: _Queries, extra: dict[str, str]) -> None:
        types = self.dialect.types
        for statement in SCHEMA.format(changes=CHANGES_SCHEMA.format(**types),
                                       history=HISTORY_SCHEMA.format(**types), **types).split(";"):
            if statement.strip():
                q.run(statement)
        meta = {"format_version": str(FORMAT_VERSION), "created_by": _library_version(),
                FLOOR_KEY: "0", **extra}
        q.many("INSERT INTO larimar_meta(key, value) VALUES (?, ?)", list(meta.items()))

    def _migrate_v1(self, q: _Queries, meta: dict[str, str]) -> None:
        """Format 1 -> 2 inside the open transaction: each fact's value becomes one row at its
        index (created_at order) in its namespace; the state's meta becomes the namespace meta;
        states are dropped."""
        d = self.dialect
        ns_t, states_t, facts_t = d.v1_tables
        old = {t: f"larimar_v1_{i}" for i, t in enumerate(d.v1_tables)}
        for table, tmp in old.items():
            q.run(f"ALTER TABLE {table} RENAME TO {tmp}")
        q.run("DROP TABLE larimar_meta")
        self._create(q, {"created_at": meta.get("created_at", str(time.time())),
                         "migrated_from": "1", "migrated_at": str(time.time())})
        state_meta = dict(q.q(f"SELECT namespace, meta FROM {old[states_t]}"))
        q.many("INSERT INTO larimar_namespaces(name, version, meta, created_at) VALUES (?,?,?,?)",
               [(name, int(version), state_meta.get(name), created_at) for name, version, created_at
                in q.q(f"SELECT name, version, created_at FROM {old[ns_t]}")])
        index: dict[str, int] = {}
        rows = []
        for (fid, ns, text, key_text, key, key_dim, value, value_dim, metadata, created_at,
             request_id) in q.q(
                "SELECT id, namespace, text, key_text, key, key_dim, value, value_dim, metadata, "
                f"created_at, request_id FROM {old[facts_t]} ORDER BY namespace, created_at, "
                f"{d.v1_order}"):
            i = index[ns] = index.get(ns, -1) + 1
            rows.append((ns, fid, text, key_text, bytes(key), key_dim, bytes(value), 1, value_dim,
                         _blob(np.array([i]), _I64), metadata, created_at, request_id, "[]"))
        q.many(f"INSERT INTO larimar_facts({_COLUMNS}) VALUES ({','.join('?' * 14)})", rows)
        for tmp in (old[facts_t], old[states_t], old[ns_t]):
            q.run(f"DROP TABLE {tmp}")
        q.run("UPDATE larimar_namespaces SET log_floor = version")  # no log before this
        logger.info("%s: migrated %d facts from format version 1 to 2", d.where, len(rows))

    def _migrate_v2(self, q: _Queries) -> None:
        """Format 2 -> 3: the change log, empty; each namespace's log starts at its version."""
        q.run("ALTER TABLE larimar_namespaces ADD COLUMN log_floor {bigint} NOT NULL DEFAULT 0"
              .format(**self.dialect.types))
        q.run("UPDATE larimar_namespaces SET log_floor = version")
        for statement in CHANGES_SCHEMA.format(**self.dialect.types).split(";"):
            if statement.strip():
                q.run(statement)
        q.run("UPDATE larimar_meta SET value = '3' WHERE key = 'format_version'")
        logger.info("%s: migrated from format version 2 to 3 (change log)", self.dialect.where)

    def _migrate_v3(self, q: _Queries) -> None:
        """Format 3 -> 4: the fact history, with one ``written`` event (version 0, at the
        fact's creation time) for every fact stored now (what was forgotten before left none);
        values are written packed from now on, and the raw float32 values of format 3 stay as
        they are (``_values`` reads both), so no fact is rewritten."""
        for statement in HISTORY_SCHEMA.format(**self.dialect.types).split(";"):
            if statement.strip():
                q.run(statement)
        q.run("INSERT INTO larimar_history(namespace, fact_id, version, event, at) "
              "SELECT namespace, id, 0, 'written', created_at FROM larimar_facts "
              "ORDER BY namespace, created_at, seq")
        q.run("UPDATE larimar_meta SET value = ? WHERE key = 'format_version'",
              (str(FORMAT_VERSION),))
        logger.info("%s: migrated from format version 3 to 4 (fact history, packed values)",
                    self.dialect.where)

    # -- writes ----------------------------------------------------------------------------------

    def _in_tx(self) -> bool:
        return bool(getattr(self._local, "in_tx", False))

    @contextmanager
    def _tx(self, namespace: str) -> Iterator[SQLTransaction]:
        _check_namespace(namespace)
        if not self.dialect.storable(namespace):
            raise TextInputError("namespace must not contain NUL characters (\\x00).")
        self._check_open()
        if self._in_tx():
            raise StoreError(
                "A transaction is already open on this thread; finish it before starting another "
                "(nested transactions would deadlock on the write lock)."
            )
        if self.pending_purges:
            self._purge(wait=False)
        d = self.dialect
        self._local.in_tx = True
        try:
            with d.connection() as conn:
                with d.errors():
                    d.begin(conn, namespace)
                tx = SQLTransaction(self, conn, namespace)
                try:
                    try:
                        yield tx
                    finally:
                        tx.open = False
                    with d.errors():
                        conn.execute("COMMIT")
                except BaseException:
                    d.rollback(conn)
                    raise
        finally:
            self._local.in_tx = False
        self._after_write(tx.deleted)

    def transaction(self, namespace: str) -> AbstractContextManager[StoreTransaction]:
        return self._tx(namespace)

    def clear(self, namespace: str) -> int:
        with self._tx(namespace) as tx:
            return tx.clear()

    # -- purging deleted bytes -------------------------------------------------------------------

    @property
    def pending_purges(self) -> int:
        return self._deletes - self._purged

    def _purge(self, wait: bool, force: bool = False) -> bool:
        """Run the dialect's purge unless a finished one already covers every delete (``force``:
        run it anyway, for deletes by other processes)."""
        with self._purge_lock:
            target = self._deletes
            if self._purged >= target and not force:
                return True
            with self.dialect.connection() as conn:
                done = self.dialect.purge(conn, wait)
            if done:
                self._purged = max(self._purged, target)
        return done

    def _after_write(self, deleted: bool) -> None:
        if not self.dialect.purges or (not deleted and not self.pending_purges):
            return
        if deleted:
            with self._count_lock:
                self._deletes += 1
        if not self._purge(wait=deleted) and deleted:
            raise PurgePendingError(
                "The delete committed (the fact is gone from every answer), but "
                f"{self.dialect.where} could not be purged: {self.dialect.pending_reason}. The "
                "purge is retried on the next write, at close and by `larimar purge`."
            )

    def purge(self) -> PurgeReport:
        self._check_open()
        done = not self.dialect.purges or self._purge(wait=True, force=True)
        with self.dialect.connection() as conn:
            limits = self.dialect.erasure_limits(conn)
        if self._keys is None:
            limits.append(
                "backups and copies of the store taken before a forget keep its text in clear "
                "until they expire: bound their retention, or create the store with a key file "
                "(LARIMAR_KEY_FILE) so that clearing a namespace makes every copy unreadable"
            )
        else:
            limits.append(
                "backups and copies hold only ciphertext; a cleared namespace's key is "
                f"destroyed in {self._keys.path}, so its copies are unreadable, but a fact "
                "forgotten from a namespace that still exists stays readable in them with that "
                "namespace's key (keep the key file out of those backups)"
            )
        limits.append(
            "the file system and the disk may keep freed blocks of old files (SSDs remap "
            "writes): put the store on an encrypted volume"
        )
        return PurgeReport(purged=done and self.pending_purges == 0,
                           pending=self.pending_purges, out_of_reach=limits,
                           encrypted=self._keys is not None)

    # -- reads -----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The store {self.dialect.where} is closed; open a new one.")

    @contextmanager
    def _read(self) -> Iterator[_Queries]:
        self._check_open()
        with self.dialect.connection() as conn:
            yield _Queries(self, conn)

    def version(self, namespace: str) -> int:
        with self._read() as q:
            row = q.namespace_row(namespace)
        return row[0] if row else 0

    def namespace_meta(self, namespace: str) -> dict[str, str] | None:
        with self._read() as q:
            row = q.namespace_row(namespace)
        return _parse_namespace_meta(row[1], namespace) if row else None

    def changes(self, namespace: str, since: int) -> ChangeLog:
        with self._snapshot() as q:
            return q.change_log(namespace, since)

    def load(self, namespace: str) -> NamespaceLoad:
        with self._snapshot() as q:
            return q.load(namespace)

    @contextmanager
    def _snapshot(self) -> Iterator[_Queries]:
        """Reads that all see one committed snapshot."""
        with self._read() as q:
            with self.dialect.errors():
                self.dialect.begin_snapshot(q.conn)
            try:
                yield q
            finally:
                self.dialect.rollback(q.conn)

    def list_facts(self, namespace: str, limit: int | None = None, offset: int = 0,
                   where: dict[str, Any] | None = None) -> list[FactRecord]:
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}.")
        where = check_filter(where)
        pushed = equalities(where) if self._keys is None else None
        if where and pushed is None:  # sealed metadata or a rich filter: evaluate it here
            with self._read() as q:
                found = [r for r in q.facts(namespace) if matches(r.metadata, where)]
            return found[int(offset):None if limit is None else int(offset) + limit]
        clauses, params = [], []
        for field, value in (pushed or {}).items():
            if not self.dialect.storable(field, value if isinstance(value, str) else None):
                return []
            sql, args = self.dialect.metadata_equals(field, value)
            clauses.append(f"AND {sql}")
            params += args
        with self._read() as q:
            return q.facts(namespace, " ".join(clauses), params, page=(limit, int(offset)))

    def get_fact(self, namespace: str, id: str) -> FactRecord:
        with self._read() as q:
            return q.facts_by_ids(namespace, [id])[0]

    def history(self, namespace: str, fact_id: str) -> list[HistoryEntry]:
        with self._read() as q:
            return q.history(namespace, fact_id)

    def count(self, namespace: str) -> int:
        with self._read() as q:
            return q.count(namespace)

    def namespaces(self) -> list[str]:
        with self._read() as q:
            return sorted(r[0] for r in q.q("SELECT name FROM larimar_namespaces"))

    def close(self) -> None:
        if self._closed:
            return
        if self.pending_purges:
            try:
                if not self._purge(wait=True):
                    logger.warning("%s: closing with %d purge(s) pending: %s", self.dialect.where,
                                   self.pending_purges, self.dialect.pending_reason)
            except StoreError:
                logger.warning("purge at close failed", exc_info=True)
        self._closed = True
        self.dialect.close()
