"""Persistence of namespaces: the fact log and the memory state, changed together or not at all.

A namespace is one memory: its state (the tensors of `EpisodicMemory`, saved as safetensors bytes)
and its fact log (one `FactRecord` per remembered fact, with the key, value and addressing weights
that were used to write it, so that a forget can apply the exact -1 update later).

`MemoryStore` is the backend-neutral interface; `SQLiteStore` is the embedded default. Writers go
through `store.transaction(namespace)`, which holds the write lock from the first read to the
commit, so read-modify-write cycles from several threads or processes serialise and never lose
an update, and a crash leaves either the old or the new state of a namespace, never a mix.

Forgetting must really forget: the SQLite backend runs with ``secure_delete`` (freed bytes are
zeroed) and truncates the write-ahead log after every delete, so a forgotten fact's text is left
in no file of the store.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import safetensors.torch
import torch

from .errors import FactNotFoundError, MemoryInputError, StoreError, TextInputError

__all__ = [
    "FORMAT_VERSION",
    "STORE_ENV",
    "FactRecord",
    "MemoryStore",
    "SQLiteStore",
    "StoreTransaction",
    "default_store_path",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the on-disk layout. Bump it (and add a migration) whenever the schema changes."""

STORE_ENV = "LARIMAR_STORE"
"""Environment variable naming the SQLite file used when no path is given."""

STORE_FILE_NAME = "larimar.sqlite3"
APP_NAME = "larimar-memory"

StateTensors = dict[str, torch.Tensor]


def _as_vector(name: str, array: Any) -> np.ndarray:
    """A 1-D, C-contiguous float32 copy of `array`; the store keeps raw float32 bytes."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    out = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    if out.ndim != 1:
        raise MemoryInputError(
            f"FactRecord.{name} must be a 1-D vector, got shape {tuple(out.shape)}; "
            "store one row per fact."
        )
    return out


@dataclass(eq=False, kw_only=True)
class FactRecord:
    """One remembered fact: its text, the slot it owns, and the exact tensors used to write it.

    `key` is the sentence embedding of `key_text` (what addresses, D wide), `value` the latent
    that was written (C wide) and `weights` the addressing weights over the K slots at write time.
    Keeping all three lets a forget replay the write with the opposite sign. Keyword-only;
    `id` (uuid4 hex) and `created_at` (Unix time) are filled in when not given.
    """

    namespace: str
    text: str
    key: np.ndarray
    value: np.ndarray
    weights: np.ndarray
    slot: int
    key_text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not isinstance(self.namespace, str) or not self.namespace:
            raise TextInputError(f"namespace must be a non-empty string, got {self.namespace!r}.")
        if not self.key_text:
            self.key_text = self.text
        for name in ("text", "key_text"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TextInputError(f"FactRecord.{name} must be str, got {type(value).__name__}.")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise TextInputError(
                    f"FactRecord.{name} is not valid UTF-8 ({exc.reason} at {exc.start}); "
                    "remove lone surrogates before storing it."
                ) from exc
        self.key = _as_vector("key", self.key)
        self.value = _as_vector("value", self.value)
        self.weights = _as_vector("weights", self.weights)
        self.slot = int(self.slot)
        if self.slot < 0:
            raise MemoryInputError(f"FactRecord.slot must be >= 0, got {self.slot}.")
        try:
            json.dumps(self.metadata)
        except (TypeError, ValueError) as exc:
            raise TextInputError(
                f"FactRecord.metadata must be JSON-serialisable (str/int/float/bool/None, lists "
                f"and dicts of those): {exc}"
            ) from exc


class StoreTransaction(abc.ABC):
    """Everything a writer may do to one namespace while it holds the write lock.

    Obtained from `MemoryStore.transaction`; committed on clean exit, rolled back on exception.
    """

    namespace: str

    @abc.abstractmethod
    def load_state(self) -> tuple[StateTensors, int] | None:
        """The namespace's memory state and its version, or None when none was saved yet."""

    @abc.abstractmethod
    def state_meta(self) -> dict[str, str] | None:
        """The string metadata saved with the state, or None when no state exists."""

    @abc.abstractmethod
    def save_state(self, tensors: StateTensors, meta: dict[str, str] | None = None) -> int:
        """Replace the memory state; returns the namespace version the commit will have."""

    @abc.abstractmethod
    def add_facts(self, records: Iterable[FactRecord]) -> None:
        """Append facts to the log (all must belong to this namespace)."""

    @abc.abstractmethod
    def delete_facts(self, ids: Sequence[str]) -> list[FactRecord]:
        """Delete facts by id and return them; an unknown id raises `FactNotFoundError` and
        deletes nothing."""

    @abc.abstractmethod
    def get_facts(self, ids: Sequence[str]) -> list[FactRecord]:
        """Facts by id, in the order asked; an unknown id raises `FactNotFoundError`."""

    @abc.abstractmethod
    def all_facts(self) -> list[FactRecord]:
        """Every fact of the namespace, oldest first."""

    @abc.abstractmethod
    def used_slots(self) -> set[int]:
        """Slots owned by at least one fact."""

    @abc.abstractmethod
    def find_by_request_id(self, request_id: str) -> list[FactRecord]:
        """Facts written by the request with this id (makes retried writes idempotent)."""

    @abc.abstractmethod
    def find_facts_by_text(self, text: str) -> list[FactRecord]:
        """Facts whose text equals `text` exactly, oldest first."""

    @abc.abstractmethod
    def count(self) -> int:
        """Number of facts in the namespace."""


class MemoryStore(abc.ABC):
    """Backend-neutral persistence of namespaces (SQLite here, PostgreSQL later).

    Reads outside a transaction each see one committed snapshot; writes go through
    `transaction`. Usable as a context manager that closes the store.
    """

    @abc.abstractmethod
    def transaction(self, namespace: str) -> AbstractContextManager[StoreTransaction]:
        """A context manager yielding a `StoreTransaction` that holds the namespace's write
        lock; commit on clean exit, rollback on exception."""

    @abc.abstractmethod
    def list_facts(
        self, namespace: str, limit: int | None = None, offset: int = 0
    ) -> list[FactRecord]:
        """Facts oldest first, paginated."""

    @abc.abstractmethod
    def get_fact(self, namespace: str, id: str) -> FactRecord:
        """One fact; `FactNotFoundError` if the id is unknown in this namespace."""

    @abc.abstractmethod
    def find_facts_by_text(self, namespace: str, text: str) -> list[FactRecord]:
        """Facts whose text equals `text` exactly."""

    @abc.abstractmethod
    def count(self, namespace: str) -> int:
        """Number of facts (0 for an unknown namespace)."""

    @abc.abstractmethod
    def load_state(self, namespace: str) -> tuple[StateTensors, int] | None:
        """Memory state and version, or None when the namespace has no state."""

    @abc.abstractmethod
    def state_meta(self, namespace: str) -> dict[str, str] | None:
        """The string metadata saved with the state, or None."""

    @abc.abstractmethod
    def version(self, namespace: str) -> int:
        """The namespace's change counter (0 if never written); cheap, for cache checks."""

    @abc.abstractmethod
    def namespaces(self) -> list[str]:
        """Names of the namespaces holding facts or a state, sorted."""

    @abc.abstractmethod
    def clear(self, namespace: str) -> int:
        """Delete every fact and the state of a namespace (securely); returns facts deleted."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; further use raises `StoreError`."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def default_store_path() -> Path:
    """`$LARIMAR_STORE` if set, else ``<user data dir>/larimar-memory/larimar.sqlite3``."""
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME)) / STORE_FILE_NAME


# --- SQLite backend -------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS larimar_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS namespaces (
    name       TEXT PRIMARY KEY,
    version    INTEGER NOT NULL DEFAULT 0,  -- bumped once per committed change
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS states (
    namespace  TEXT PRIMARY KEY REFERENCES namespaces(name) ON DELETE CASCADE,
    version    INTEGER NOT NULL,            -- namespace version when this state was saved
    tensors    BLOB NOT NULL,               -- safetensors bytes
    meta       TEXT NOT NULL,               -- JSON object of strings
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS facts (
    id          TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    key_text    TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    key         BLOB NOT NULL,              -- raw little-endian float32
    key_dim     INTEGER NOT NULL,
    value       BLOB NOT NULL,
    value_dim   INTEGER NOT NULL,
    weights     BLOB NOT NULL,
    weights_dim INTEGER NOT NULL,
    metadata    TEXT NOT NULL,              -- JSON object
    created_at  REAL NOT NULL,
    request_id  TEXT
);
CREATE INDEX IF NOT EXISTS facts_ns_created ON facts(namespace, created_at);
CREATE INDEX IF NOT EXISTS facts_ns_text ON facts(namespace, text);
CREATE INDEX IF NOT EXISTS facts_ns_request ON facts(namespace, request_id);
"""

_FACT_COLUMNS = (
    "id, namespace, text, key_text, slot, key, key_dim, value, value_dim, weights, weights_dim, "
    "metadata, created_at, request_id"
)
_FACT_ORDER = "ORDER BY created_at, rowid"

_F32 = np.dtype("<f4")


def _to_blob(array: np.ndarray) -> bytes:
    return array.astype(_F32, copy=False).tobytes()


def _from_blob(blob: bytes, dim: int, what: str, fact_id: str) -> np.ndarray:
    """Decode raw float32 bytes, refusing anything whose length does not match `dim`."""
    if not isinstance(blob, bytes) or len(blob) != 4 * dim:
        size = len(blob) if isinstance(blob, bytes) else type(blob).__name__
        raise StoreError(
            f"Fact {fact_id}: stored {what} has {size} bytes but {dim} float32 values "
            f"({4 * dim} bytes) were recorded; the store is corrupted. Forget this fact or "
            "restore the store from a backup."
        )
    return np.frombuffer(blob, dtype=_F32).astype(np.float32)


def _row_to_record(row: sqlite3.Row | tuple[Any, ...]) -> FactRecord:
    (
        fid,
        namespace,
        text,
        key_text,
        slot,
        key,
        key_dim,
        value,
        value_dim,
        weights,
        weights_dim,
        metadata,
        created_at,
        request_id,
    ) = tuple(row)
    try:
        meta = json.loads(metadata)
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"Fact {fid}: metadata is not valid JSON ({exc}); corrupted store."
        ) from exc
    return FactRecord(
        id=fid,
        namespace=namespace,
        text=text,
        key_text=key_text,
        slot=slot,
        key=_from_blob(key, key_dim, "key", fid),
        value=_from_blob(value, value_dim, "value", fid),
        weights=_from_blob(weights, weights_dim, "weights", fid),
        metadata=meta,
        created_at=created_at,
        request_id=request_id,
    )


def _record_to_row(r: FactRecord) -> tuple[Any, ...]:
    return (
        r.id,
        r.namespace,
        r.text,
        r.key_text,
        r.slot,
        _to_blob(r.key),
        int(r.key.shape[0]),
        _to_blob(r.value),
        int(r.value.shape[0]),
        _to_blob(r.weights),
        int(r.weights.shape[0]),
        json.dumps(r.metadata),
        float(r.created_at),
        r.request_id,
    )


def _encode_state(tensors: StateTensors, meta: dict[str, str]) -> bytes:
    if not tensors:
        raise MemoryInputError("save_state needs at least one tensor, got an empty dict.")
    # safetensors refuses views sharing storage and non-contiguous tensors: store private copies.
    clean = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    return safetensors.torch.save(clean, metadata=dict(meta))


def _decode_state(blob: bytes, namespace: str) -> StateTensors:
    try:
        return safetensors.torch.load(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise StoreError(
            f"The memory state of namespace {namespace!r} cannot be decoded ({exc}); the store "
            "is corrupted. Clear the namespace or restore the store from a backup."
        ) from exc


def checked_records(records: Iterable[FactRecord], namespace: str) -> list[FactRecord]:
    """The records of one ``add_facts`` call, checked to be FactRecords of ``namespace``."""
    checked = []
    for r in records:
        if not isinstance(r, FactRecord):
            raise MemoryInputError(f"add_facts takes FactRecord objects, got {type(r).__name__}.")
        if r.namespace != namespace:
            raise StoreError(
                f"Fact {r.id} belongs to namespace {r.namespace!r} but this transaction is on "
                f"{namespace!r}; open a transaction on the fact's namespace."
            )
        checked.append(r)
    return checked


def parse_state_meta(raw: str, namespace: str) -> dict[str, str]:
    """A namespace's state metadata from its JSON column (shared by every backend)."""
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise StoreError(
            f"State metadata of namespace {namespace!r} is not valid JSON; corrupted store."
        ) from exc
    return {str(k): str(v) for k, v in meta.items()}


def _check_meta(meta: dict[str, str] | None) -> dict[str, str]:
    meta = dict(meta or {})
    for k, v in meta.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise MemoryInputError(
                f"State metadata must map str to str, got {k!r}: {type(v).__name__}; "
                "convert values with str() or json.dumps()."
            )
    return meta


class _SQLiteReader:
    """Read queries shared by transactions and the store's snapshot reads."""

    def __init__(self, conn: sqlite3.Connection, store: SQLiteStore) -> None:
        self._conn = conn
        self._store = store

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._store._errors():
            return self._conn.execute(sql, params).fetchall()

    def facts(
        self,
        namespace: str,
        where: str = "",
        params: Sequence[Any] = (),
        page: tuple[int, int] | None = None,
    ) -> list[FactRecord]:
        """Facts of a namespace matching an extra `where` clause, oldest first; `page` is
        (limit, offset) with limit -1 for no limit."""
        sql = f"SELECT {_FACT_COLUMNS} FROM facts WHERE namespace = ? {where} {_FACT_ORDER}"
        args: tuple[Any, ...] = (namespace, *params)
        if page is not None:
            sql += " LIMIT ? OFFSET ?"
            args += page
        return [_row_to_record(r) for r in self._q(sql, args)]

    def facts_by_ids(self, namespace: str, ids: Sequence[str]) -> list[FactRecord]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, FactRecord] = {}
        for start in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for rec in self.facts(namespace, f"AND id IN ({marks})", chunk):
                found[rec.id] = rec
        missing = [i for i in wanted if i not in found]
        if missing:
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            raise FactNotFoundError(
                f"{len(missing)} fact id(s) not found in namespace {namespace!r}: {shown}. "
                "List the namespace's facts to see the ids it holds."
            )
        return [found[i] for i in wanted]

    def count(self, namespace: str) -> int:
        return int(self._q("SELECT COUNT(*) FROM facts WHERE namespace = ?", (namespace,))[0][0])

    def version(self, namespace: str) -> int:
        rows = self._q("SELECT version FROM namespaces WHERE name = ?", (namespace,))
        return int(rows[0][0]) if rows else 0

    def load_state(self, namespace: str) -> tuple[StateTensors, int] | None:
        rows = self._q(
            "SELECT s.tensors, n.version FROM states s JOIN namespaces n ON n.name = s.namespace "
            "WHERE s.namespace = ?",
            (namespace,),
        )
        if not rows:
            return None
        blob, version = rows[0]
        return _decode_state(blob, namespace), int(version)

    def state_meta(self, namespace: str) -> dict[str, str] | None:
        rows = self._q("SELECT meta FROM states WHERE namespace = ?", (namespace,))
        return parse_state_meta(rows[0][0], namespace) if rows else None


class _SQLiteTransaction(StoreTransaction):
    def __init__(self, conn: sqlite3.Connection, store: SQLiteStore, namespace: str) -> None:
        self.namespace = namespace
        self._conn = conn
        self._store = store
        self._read = _SQLiteReader(conn, store)
        self._bumped = False
        self.deleted_any = False
        self._open = True

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("This transaction has ended; start a new `with store.transaction()`.")

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        self._check_open()
        with self._store._errors():
            return self._conn.execute(sql, params)

    def _touch(self) -> int:
        """Create the namespace row if needed and bump its version once per transaction."""
        self._exec(
            "INSERT OR IGNORE INTO namespaces(name, version, created_at) VALUES (?, 0, ?)",
            (self.namespace, time.time()),
        )
        if not self._bumped:
            self._exec(
                "UPDATE namespaces SET version = version + 1 WHERE name = ?", (self.namespace,)
            )
            self._bumped = True
        return self._read.version(self.namespace)

    def load_state(self) -> tuple[StateTensors, int] | None:
        self._check_open()
        return self._read.load_state(self.namespace)

    def state_meta(self) -> dict[str, str] | None:
        self._check_open()
        return self._read.state_meta(self.namespace)

    def save_state(self, tensors: StateTensors, meta: dict[str, str] | None = None) -> int:
        self._check_open()
        meta = _check_meta(meta)
        blob = _encode_state(tensors, meta)
        version = self._touch()
        self._exec(
            "INSERT INTO states(namespace, version, tensors, meta, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(namespace) DO UPDATE SET "
            "version = excluded.version, tensors = excluded.tensors, meta = excluded.meta, "
            "updated_at = excluded.updated_at",
            (self.namespace, version, blob, json.dumps(meta), time.time()),
        )
        return version

    def add_facts(self, records: Iterable[FactRecord]) -> None:
        self._check_open()
        rows = [_record_to_row(r) for r in checked_records(records, self.namespace)]
        if not rows:
            return
        self._touch()
        try:
            with self._store._errors():
                self._conn.executemany(
                    f"INSERT INTO facts({_FACT_COLUMNS}) VALUES ({','.join('?' * 14)})", rows
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StoreError(
                    f"A fact id in this batch already exists in the store ({exc.__cause__}); "
                    "ids must be unique: let FactRecord generate them."
                ) from exc.__cause__
            raise

    def delete_facts(self, ids: Sequence[str]) -> list[FactRecord]:
        self._check_open()
        if isinstance(ids, str):
            ids = [ids]
        records = self._read.facts_by_ids(self.namespace, ids)  # raises before any change
        if not records:
            return []
        self._touch()
        with self._store._errors():
            self._conn.executemany(
                "DELETE FROM facts WHERE namespace = ? AND id = ?",
                [(self.namespace, r.id) for r in records],
            )
        self.deleted_any = True
        return records

    def get_facts(self, ids: Sequence[str]) -> list[FactRecord]:
        self._check_open()
        if isinstance(ids, str):
            ids = [ids]
        return self._read.facts_by_ids(self.namespace, ids)

    def all_facts(self) -> list[FactRecord]:
        self._check_open()
        return self._read.facts(self.namespace)

    def used_slots(self) -> set[int]:
        self._check_open()
        rows = self._read._q(
            "SELECT DISTINCT slot FROM facts WHERE namespace = ?", (self.namespace,)
        )
        return {int(r[0]) for r in rows}

    def find_by_request_id(self, request_id: str) -> list[FactRecord]:
        self._check_open()
        return self._read.facts(self.namespace, "AND request_id = ?", (request_id,))

    def find_facts_by_text(self, text: str) -> list[FactRecord]:
        self._check_open()
        return self._read.facts(self.namespace, "AND text = ?", (text,))

    def count(self) -> int:
        self._check_open()
        return self._read.count(self.namespace)


class SQLiteStore(MemoryStore):
    """The embedded default store: one SQLite file in WAL mode, safe across threads and processes.

    Each thread gets its own connection (the service calls in through `asyncio.to_thread`).
    Transactions start with ``BEGIN IMMEDIATE``: the write lock is taken before the first read,
    so concurrent read-modify-write cycles serialise instead of losing updates. A writer waits up
    to `busy_timeout` seconds for the lock, then gets a `StoreError`.

    Setup:
        ``pip install larimar-memory``; nothing else, SQLite ships with Python.
    Instantiate:
        ``store = SQLiteStore()`` (default file, or ``$LARIMAR_STORE``) or
        ``SQLiteStore("/path/to/larimar.sqlite3")``.
    Use:
        ``with store.transaction("alice") as tx: tx.add_facts([...]); tx.save_state(tensors)``
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, busy_timeout: float = 30.0):
        if path is not None and (str(path) in ("", ":memory:") or str(path).startswith("file:")):
            raise StoreError(
                f"SQLiteStore needs a file path, got {str(path)!r}: every thread opens its own "
                "connection, which an in-memory database cannot share. Use a temporary file."
            )
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.busy_timeout = float(busy_timeout)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the store's folder {self.path.parent}: {exc}") from exc
        try:
            self._init_schema()
        except BaseException:
            self.close()
            raise

    # -- connections and errors ------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate sqlite3 failures into `StoreError` messages that say what to do."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            msg = str(exc)
            if "locked" in msg or "busy" in msg:
                raise StoreError(
                    f"The store {self.path} is locked: another writer held it for more than "
                    f"{self.busy_timeout:g} s. Retry later, or find the process that keeps a "
                    "transaction open."
                ) from exc
            raise StoreError(f"SQLite error on {self.path}: {msg}") from exc
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError):
                raise StoreError(f"Constraint violated in {self.path}: {exc}") from exc
            raise StoreError(
                f"{self.path} is not a readable SQLite database ({exc}); it is corrupted or not "
                "a larimar store. Restore it from a backup or point the store elsewhere."
            ) from exc

    def _connect(self) -> sqlite3.Connection:
        with self._errors():
            conn = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # only so close() may close it from another thread
            )
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        with self._lock:
            self._conns.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"The store {self.path} is closed; open a new SQLiteStore.")
        if os.getpid() != self._pid:  # forked: never reuse the parent's connections
            self._local = threading.local()
            self._conns = []
            self._lock = threading.Lock()
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._local.in_tx = False
        return conn

    def _init_schema(self) -> None:
        conn = self._conn()
        with self._errors():
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning(
                "%s: journal_mode is %s, not WAL (file system without shared memory?)",
                self.path,
                mode,
            )
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                tables = {
                    r[0]
                    for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
                if "larimar_meta" not in tables:
                    if tables - {"namespaces", "states", "facts"}:
                        raise StoreError(
                            f"{self.path} is an SQLite database but not a larimar store (tables: "
                            f"{', '.join(sorted(tables))}). Point the store at a new file."
                        )
                    for statement in _split_sql(_SCHEMA):  # executescript would COMMIT
                        conn.execute(statement)
                    conn.executemany(
                        "INSERT INTO larimar_meta(key, value) VALUES (?, ?)",
                        [
                            ("format_version", str(FORMAT_VERSION)),
                            ("created_by", _library_version()),
                            ("created_at", str(time.time())),
                        ],
                    )
                else:
                    self._check_version(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _check_version(self, conn: sqlite3.Connection) -> None:
        rows = dict(conn.execute("SELECT key, value FROM larimar_meta").fetchall())
        found = rows.get("format_version")
        if found != str(FORMAT_VERSION):
            raise StoreError(
                f"The store {self.path} has format version {found!r} (written by larimar-memory "
                f"{rows.get('created_by', 'unknown')}), but this larimar-memory "
                f"({_library_version()}) reads format version {FORMAT_VERSION}. Open it with the "
                "version that wrote it, or point LARIMAR_STORE at a new file."
            )

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL into the database and truncate it, so freed (zeroed) pages replace the
        old ones everywhere and no frame with forgotten text survives in the -wal file."""
        with self._errors():
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            logger.warning(
                "%s: WAL checkpoint after a delete was blocked by a reader; forgotten text may "
                "remain in the -wal file until the next checkpoint.",
                self.path,
            )

    # -- writes ----------------------------------------------------------------------------------

    @contextmanager
    def transaction(self, namespace: str) -> Iterator[StoreTransaction]:
        _check_namespace(namespace)
        conn = self._conn()
        if self._local.in_tx:
            raise StoreError(
                "A transaction is already open on this thread; finish it before starting another "
                "(nested transactions would deadlock on the write lock)."
            )
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
        self._local.in_tx = True
        tx = _SQLiteTransaction(conn, self, namespace)
        try:
            yield tx
        except BaseException:
            tx._open = False
            self._local.in_tx = False
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # already rolled back by SQLite on a fatal error
                logger.debug("rollback after error failed", exc_info=True)
            raise
        tx._open = False
        try:
            with self._errors():
                conn.execute("COMMIT")
        except StoreError:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                logger.debug("rollback after failed commit failed", exc_info=True)
            raise
        finally:
            self._local.in_tx = False
        if tx.deleted_any:
            self._checkpoint(conn)

    def clear(self, namespace: str) -> int:
        with self.transaction(namespace) as base_tx:
            tx = cast(_SQLiteTransaction, base_tx)
            n = tx.count()
            exists = tx._read._q("SELECT 1 FROM namespaces WHERE name = ?", (namespace,))
            if exists:
                tx._touch()
                tx._exec("DELETE FROM facts WHERE namespace = ?", (namespace,))
                tx._exec("DELETE FROM states WHERE namespace = ?", (namespace,))
                tx.deleted_any = True
        return n

    # -- reads -----------------------------------------------------------------------------------

    def _reader(self) -> _SQLiteReader:
        return _SQLiteReader(self._conn(), self)

    def list_facts(
        self, namespace: str, limit: int | None = None, offset: int = 0
    ) -> list[FactRecord]:
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}.")
        return self._reader().facts(
            namespace, page=(-1 if limit is None else int(limit), int(offset))
        )

    def get_fact(self, namespace: str, id: str) -> FactRecord:
        return self._reader().facts_by_ids(namespace, [id])[0]

    def find_facts_by_text(self, namespace: str, text: str) -> list[FactRecord]:
        return self._reader().facts(namespace, "AND text = ?", (text,))

    def count(self, namespace: str) -> int:
        return self._reader().count(namespace)

    def load_state(self, namespace: str) -> tuple[StateTensors, int] | None:
        return self._reader().load_state(namespace)

    def state_meta(self, namespace: str) -> dict[str, str] | None:
        return self._reader().state_meta(namespace)

    def version(self, namespace: str) -> int:
        return self._reader().version(namespace)

    def namespaces(self) -> list[str]:
        rows = self._reader()._q(
            "SELECT name FROM namespaces n WHERE EXISTS (SELECT 1 FROM facts f WHERE "
            "f.namespace = n.name) OR EXISTS (SELECT 1 FROM states s WHERE s.namespace = n.name) "
            "ORDER BY name"
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                logger.debug("closing a connection failed", exc_info=True)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"


def _check_namespace(namespace: str) -> None:
    if not isinstance(namespace, str) or not namespace:
        raise TextInputError(f"namespace must be a non-empty string, got {namespace!r}.")


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _library_version() -> str:
    try:
        from importlib.metadata import version

        return version("larimar-memory")
    except Exception:
        return "unknown"
