"""`PostgresStore`: the `MemoryStore` for several server replicas sharing one database.

Same semantics as `SQLiteStore` (read ``store.py`` first): one committed version counter per
namespace, bumped once per changing transaction; reads outside a transaction see one committed
snapshot per statement; a transaction holds the namespace's write lock from its first read to
its commit, so read-modify-write cycles from any number of processes and machines serialise and
never lose an update; a crash (or a killed replica) leaves the old or the new state, never a mix.

The write lock is a transaction-scoped advisory lock on a 64-bit hash of (schema, namespace),
taken right after ``BEGIN``; at READ COMMITTED every later statement of the transaction sees
what the previous lock holder committed. A lock wait longer than ``lock_timeout`` seconds
raises `StoreError` (a 503 the client retries). Different namespaces never wait on each other
(a hash collision only makes two namespaces share a lock).

Forgetting: a DELETE makes the row invisible at commit and ``forget`` never returns it again,
but PostgreSQL does not zero the bytes: the dead tuple stays in the table file until VACUUM
marks its space reusable and a later write overwrites it (``VACUUM FULL`` rewrites the table
into a new file), and the WAL keeps the insert until the segment is recycled. `vacuum()` runs
VACUUM; see docs/deploy.md for what that does and does not guarantee.

PostgreSQL text cannot hold NUL characters; facts containing ``\\x00`` are refused with
`TextInputError` (SQLite accepts them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from .errors import FactNotFoundError, StoreError, TextInputError
from .store import (
    FORMAT_VERSION,
    FactRecord,
    MemoryStore,
    StateTensors,
    StoreTransaction,
    _check_meta,
    _check_namespace,
    _decode_state,
    _encode_state,
    _library_version,
    _record_to_row,
    _row_to_record,
    checked_records,
    parse_state_meta,
)

__all__ = ["PostgresStore"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS larimar_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS larimar_namespaces (
    name       TEXT PRIMARY KEY,
    version    BIGINT NOT NULL DEFAULT 0,       -- bumped once per committed change
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS larimar_states (
    namespace  TEXT PRIMARY KEY REFERENCES larimar_namespaces(name) ON DELETE CASCADE,
    version    BIGINT NOT NULL,                 -- namespace version when this state was saved
    tensors    BYTEA NOT NULL,                  -- safetensors bytes
    meta       TEXT NOT NULL,                   -- JSON object of strings
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS larimar_facts (
    seq         BIGSERIAL,                      -- insertion order (SQLite's rowid)
    id          TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL REFERENCES larimar_namespaces(name) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    key_text    TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    key         BYTEA NOT NULL,                 -- raw little-endian float32
    key_dim     INTEGER NOT NULL,
    value       BYTEA NOT NULL,
    value_dim   INTEGER NOT NULL,
    weights     BYTEA NOT NULL,
    weights_dim INTEGER NOT NULL,
    metadata    TEXT NOT NULL,                  -- JSON object, as written (key order kept)
    created_at  DOUBLE PRECISION NOT NULL,
    request_id  TEXT
);
CREATE INDEX IF NOT EXISTS larimar_facts_ns_created ON larimar_facts(namespace, created_at, seq);
CREATE INDEX IF NOT EXISTS larimar_facts_ns_text ON larimar_facts(namespace, text);
CREATE INDEX IF NOT EXISTS larimar_facts_ns_request ON larimar_facts(namespace, request_id)
"""

_FACT_COLUMNS = (
    "id, namespace, text, key_text, slot, key, key_dim, value, value_dim, weights, weights_dim, "
    "metadata, created_at, request_id"
)
_FACT_ORDER = "ORDER BY created_at, seq"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INIT_LOCK = 0x4C61_7269_6D61_7200  # advisory lock held while creating the schema


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for a namespace (stable across processes)."""
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _to_record(row: Sequence[Any]) -> FactRecord:
    # psycopg may hand bytea back as memoryview; the shared decoder wants bytes.
    fixed = [bytes(v) if isinstance(v, memoryview) else v for v in row]
    return _row_to_record(tuple(fixed))


def _has_nul(*values: str | None) -> bool:
    return any(v is not None and "\x00" in v for v in values)


class _Reader:
    """Queries shared by transactions and the store's snapshot reads."""

    def __init__(self, conn: psycopg.Connection[Any], store: PostgresStore) -> None:
        self._conn = conn
        self._store = store

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._store._errors(self._conn):
            return self._conn.execute(sql, params).fetchall()

    def facts(
        self, namespace: str, where: str = "", params: Sequence[Any] = (),
        page: tuple[int | None, int] | None = None,
    ) -> list[FactRecord]:
        sql = (f"SELECT {_FACT_COLUMNS} FROM larimar_facts WHERE namespace = %s {where} "
               f"{_FACT_ORDER}")
        args: tuple[Any, ...] = (namespace, *params)
        if page is not None:
            sql += " LIMIT %s OFFSET %s"
            args += page
        return [_to_record(r) for r in self.q(sql, args)]

    def facts_by_ids(self, namespace: str, ids: Sequence[str]) -> list[FactRecord]:
        wanted = list(dict.fromkeys(ids))
        searchable = [i for i in wanted if isinstance(i, str) and not _has_nul(i)]
        found = {r.id: r for r in self.facts(namespace, "AND id = ANY(%s)", (searchable,))}
        missing = [i for i in wanted if i not in found]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" …" if len(missing) > 5 else "")
            raise FactNotFoundError(
                f"{len(missing)} fact id(s) not found in namespace {namespace!r}: {shown}. "
                "List the namespace's facts to see the ids it holds."
            )
        return [found[i] for i in wanted]

    def count(self, namespace: str) -> int:
        rows = self.q("SELECT COUNT(*) FROM larimar_facts WHERE namespace = %s", (namespace,))
        return int(rows[0][0])

    def version(self, namespace: str) -> int:
        rows = self.q("SELECT version FROM larimar_namespaces WHERE name = %s", (namespace,))
        return int(rows[0][0]) if rows else 0

    def load_state(self, namespace: str) -> tuple[StateTensors, int] | None:
        rows = self.q(
            "SELECT s.tensors, n.version FROM larimar_states s JOIN larimar_namespaces n "
            "ON n.name = s.namespace WHERE s.namespace = %s",
            (namespace,),
        )
        if not rows:
            return None
        blob, version = rows[0]
        return _decode_state(bytes(blob), namespace), int(version)

    def state_meta(self, namespace: str) -> dict[str, str] | None:
        rows = self.q("SELECT meta FROM larimar_states WHERE namespace = %s", (namespace,))
        return parse_state_meta(rows[0][0], namespace) if rows else None


class _PostgresTransaction(StoreTransaction):
    def __init__(self, conn: psycopg.Connection[Any], store: PostgresStore, namespace: str):
        self.namespace = namespace
        self._conn = conn
        self._store = store
        self._read = _Reader(conn, store)
        self._version: int | None = None  # set once this transaction bumped the version
        self._open = True

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        if not self._open:
            raise StoreError("This transaction has ended; start a new `with store.transaction()`.")
        with self._store._errors(self._conn):
            return self._conn.execute(sql, params)

    def _touch(self) -> int:
        """Create the namespace row if needed and bump its version once per transaction."""
        if self._version is None:
            row = self._exec(
                "INSERT INTO larimar_namespaces(name, version, created_at) VALUES (%s, 1, %s) "
                "ON CONFLICT (name) DO UPDATE SET version = larimar_namespaces.version + 1 "
                "RETURNING version",
                (self.namespace, time.time()),
            ).fetchone()
            assert row is not None
            self._version = int(row[0])
        return self._version

    def load_state(self) -> tuple[StateTensors, int] | None:
        return self._read.load_state(self.namespace)

    def state_meta(self) -> dict[str, str] | None:
        return self._read.state_meta(self.namespace)

    def save_state(self, tensors: StateTensors, meta: dict[str, str] | None = None) -> int:
        meta = _check_meta(meta)
        blob = _encode_state(tensors, meta)
        version = self._touch()
        self._exec(
            "INSERT INTO larimar_states(namespace, version, tensors, meta, updated_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (namespace) DO UPDATE SET "
            "version = EXCLUDED.version, tensors = EXCLUDED.tensors, meta = EXCLUDED.meta, "
            "updated_at = EXCLUDED.updated_at",
            (self.namespace, version, blob, json.dumps(meta), time.time()),
        )
        return version

    def add_facts(self, records: Iterable[FactRecord]) -> None:
        rows = []
        for r in checked_records(records, self.namespace):
            if _has_nul(r.text, r.key_text, r.id, r.request_id):
                raise TextInputError(
                    "PostgreSQL text cannot contain NUL characters (\\x00), and this fact does; "
                    "remove them before remembering it. Nothing was written."
                )
            rows.append(_record_to_row(r))
        if not rows:
            return
        self._touch()
        if not self._open:
            raise StoreError("This transaction has ended; start a new `with store.transaction()`.")
        try:
            with self._store._errors(self._conn), self._conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO larimar_facts({_FACT_COLUMNS}) VALUES "
                    f"({', '.join(['%s'] * 14)})",
                    rows,
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, pg_errors.UniqueViolation):
                raise StoreError(
                    f"A fact id in this batch already exists in the store ({exc.__cause__}); "
                    "ids must be unique: let FactRecord generate them."
                ) from exc.__cause__
            raise

    def delete_facts(self, ids: Sequence[str]) -> list[FactRecord]:
        if isinstance(ids, str):
            ids = [ids]
        records = self._read.facts_by_ids(self.namespace, ids)  # raises before any change
        if not records:
            return []
        self._touch()
        self._exec(
            "DELETE FROM larimar_facts WHERE namespace = %s AND id = ANY(%s)",
            (self.namespace, [r.id for r in records]),
        )
        return records

    def get_facts(self, ids: Sequence[str]) -> list[FactRecord]:
        if isinstance(ids, str):
            ids = [ids]
        return self._read.facts_by_ids(self.namespace, ids)

    def all_facts(self) -> list[FactRecord]:
        return self._read.facts(self.namespace)

    def used_slots(self) -> set[int]:
        rows = self._read.q(
            "SELECT DISTINCT slot FROM larimar_facts WHERE namespace = %s", (self.namespace,)
        )
        return {int(r[0]) for r in rows}

    def find_by_request_id(self, request_id: str) -> list[FactRecord]:
        if _has_nul(request_id):
            return []
        return self._read.facts(self.namespace, "AND request_id = %s", (request_id,))

    def find_facts_by_text(self, text: str) -> list[FactRecord]:
        if _has_nul(text):
            return []
        return self._read.facts(self.namespace, "AND text = %s", (text,))

    def count(self) -> int:
        return self._read.count(self.namespace)


class PostgresStore(MemoryStore):
    """The store for several replicas: facts and states in PostgreSQL tables.

    Setup:
        ``pip install larimar-memory[server]`` (psycopg 3) and a PostgreSQL ≥ 12 you can
        create tables in; ``scripts/postgres.sh start`` makes a throwaway one.
    Instantiate:
        ``PostgresStore("postgresql://user@db-host/larimar")``; ``schema="tenant_x"`` keeps the
        tables in their own schema (created if missing).
    Use:
        ``Larimar(store=PostgresStore(dsn))``, or ``larimar serve --store postgresql://...``.

    Connections come from a small pool (``pool_size`` idle ones kept), so any thread can run
    any call; a connection that broke (server restart, network) is dropped and the call raises
    `StoreError`, and the next call connects afresh.
    """

    def __init__(
        self, dsn: str, *, schema: str | None = None, lock_timeout: float = 30.0,
        connect_timeout: float = 10.0, pool_size: int = 16,
    ) -> None:
        if not isinstance(dsn, str) or not dsn:
            raise StoreError(
                f"PostgresStore needs a DSN like postgresql://user@host/db, got {dsn!r}"
            )
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise StoreError(
                f"schema must be a lower-case SQL identifier (letters, digits, '_'), got {schema!r}"
            )
        self.dsn = dsn
        self.schema = schema
        self.lock_timeout = float(lock_timeout)
        self.connect_timeout = float(connect_timeout)
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue(maxsize=pool_size)
        self._local = threading.local()
        self._closed = False
        self._pid = os.getpid()
        self._init_schema()

    # -- connections and errors ------------------------------------------------------------------

    def _where(self) -> str:
        """The DSN without its password, for messages."""
        return re.sub(r"://([^:@/]*):[^@/]*@", r"://\1:***@", self.dsn)

    @contextmanager
    def _errors(self, conn: psycopg.Connection[Any] | None = None) -> Iterator[None]:
        """Translate psycopg failures into `StoreError` messages that say what to do."""
        try:
            yield
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled) as exc:
            raise StoreError(
                f"The namespace lock in {self._where()} was held by another writer for more "
                f"than {self.lock_timeout:g} s. Retry later, or find the client that keeps a "
                "transaction open."
            ) from exc
        except psycopg.OperationalError as exc:
            raise StoreError(
                f"Cannot reach PostgreSQL at {self._where()} ({exc}). Check that the server is "
                "up; the call can be retried."
            ) from exc
        except psycopg.IntegrityError as exc:
            raise StoreError(f"Constraint violated in {self._where()}: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL error on {self._where()}: {exc}") from exc

    def _connect(self) -> psycopg.Connection[Any]:
        # Keep the DSN's own options (e.g. ?options=-csearch_path%3Dx) and add ours after them.
        try:
            options = conninfo_to_dict(self.dsn).get("options") or ""
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"Invalid PostgreSQL DSN {self._where()}: {exc}") from exc
        options = f"{options} -c lock_timeout={int(self.lock_timeout * 1000)}".strip()
        if self.schema:
            options += f" -c search_path={self.schema}"
        with self._errors():
            return psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)),
                options=options, application_name="larimar-memory",
            )

    @contextmanager
    def _borrow(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for one call or one transaction."""
        if self._closed:
            raise StoreError(f"The store {self._where()} is closed; open a new PostgresStore.")
        if os.getpid() != self._pid:  # forked: never share the parent's sockets
            self._idle = queue.LifoQueue(maxsize=self._idle.maxsize)
            self._pid = os.getpid()
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        healthy = not conn.closed and not conn.broken and (
            conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        if healthy and not self._closed:
            try:
                self._idle.put_nowait(conn)
                return
            except queue.Full:
                pass
        try:
            conn.close()
        except psycopg.Error:
            logger.debug("closing a connection failed", exc_info=True)

    def _init_schema(self) -> None:
        with self._borrow() as conn, self._errors(conn), conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INIT_LOCK,))
            if self.schema:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            exists = conn.execute("SELECT to_regclass('larimar_meta')").fetchone()
            if exists is None or exists[0] is None:
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    conn.execute(statement)
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO larimar_meta(key, value) VALUES (%s, %s)",
                        [("format_version", str(FORMAT_VERSION)),
                         ("created_by", _library_version()),
                         ("created_at", str(time.time()))],
                    )
            else:
                rows = dict(conn.execute("SELECT key, value FROM larimar_meta").fetchall())
                found = rows.get("format_version")
                if found != str(FORMAT_VERSION):
                    raise StoreError(
                        f"The store {self._where()} has format version {found!r} (written by "
                        f"larimar-memory {rows.get('created_by', 'unknown')}), but this "
                        f"larimar-memory ({_library_version()}) reads format version "
                        f"{FORMAT_VERSION}. Open it with the version that wrote it, or use "
                        "another database or schema."
                    )

    # -- writes ----------------------------------------------------------------------------------

    @contextmanager
    def transaction(self, namespace: str) -> Iterator[StoreTransaction]:
        _check_namespace(namespace)
        if _has_nul(namespace):
            raise TextInputError("namespace must not contain NUL characters (\\x00).")
        if getattr(self._local, "in_tx", False):
            raise StoreError(
                "A transaction is already open on this thread; finish it before starting another "
                "(nested transactions would deadlock on the namespace lock)."
            )
        with self._borrow() as conn:
            self._local.in_tx = True
            try:
                with self._errors(conn):
                    conn.execute("BEGIN")
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s)",
                        (_lock_key(self.schema or "", namespace),),
                    )
                tx = _PostgresTransaction(conn, self, namespace)
                try:
                    yield tx
                except BaseException:
                    tx._open = False
                    raise
                tx._open = False
                with self._errors(conn):
                    conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise
            finally:
                self._local.in_tx = False

    @staticmethod
    def _rollback(conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.broken:
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:  # the connection is unusable; the pool will drop it
            logger.debug("rollback failed", exc_info=True)
            conn.close()

    def clear(self, namespace: str) -> int:
        with self.transaction(namespace) as tx:
            assert isinstance(tx, _PostgresTransaction)
            n = tx.count()
            exists = tx._read.q("SELECT 1 FROM larimar_namespaces WHERE name = %s", (namespace,))
            if exists:
                tx._touch()
                tx._exec("DELETE FROM larimar_facts WHERE namespace = %s", (namespace,))
                tx._exec("DELETE FROM larimar_states WHERE namespace = %s", (namespace,))
        return n

    def vacuum(self, full: bool = False) -> None:
        """VACUUM the fact and state tables: dead rows of forgotten facts become reusable space
        (``full=True`` rewrites the tables into new files; it locks them while it runs). Neither
        overwrites the old bytes on disk; see docs/deploy.md."""
        with self._borrow() as conn, self._errors(conn):
            for table in ("larimar_facts", "larimar_states"):
                conn.execute(f"VACUUM {'FULL ' if full else ''}{table}")

    # -- reads -----------------------------------------------------------------------------------

    @contextmanager
    def _reader(self) -> Iterator[_Reader]:
        with self._borrow() as conn:
            yield _Reader(conn, self)

    def list_facts(
        self, namespace: str, limit: int | None = None, offset: int = 0
    ) -> list[FactRecord]:
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}.")
        if _has_nul(namespace):
            return []
        with self._reader() as r:
            return r.facts(namespace, page=(None if limit is None else int(limit), int(offset)))

    def get_fact(self, namespace: str, id: str) -> FactRecord:
        with self._reader() as r:
            return r.facts_by_ids(namespace, [id])[0]

    def find_facts_by_text(self, namespace: str, text: str) -> list[FactRecord]:
        if _has_nul(namespace, text):
            return []
        with self._reader() as r:
            return r.facts(namespace, "AND text = %s", (text,))

    def count(self, namespace: str) -> int:
        if _has_nul(namespace):
            return 0
        with self._reader() as r:
            return r.count(namespace)

    def load_state(self, namespace: str) -> tuple[StateTensors, int] | None:
        if _has_nul(namespace):
            return None
        with self._reader() as r:
            return r.load_state(namespace)

    def state_meta(self, namespace: str) -> dict[str, str] | None:
        if _has_nul(namespace):
            return None
        with self._reader() as r:
            return r.state_meta(namespace)

    def version(self, namespace: str) -> int:
        if _has_nul(namespace):
            return 0
        with self._reader() as r:
            return r.version(namespace)

    def namespaces(self) -> list[str]:
        with self._reader() as r:
            rows = r.q(
                "SELECT name FROM larimar_namespaces n WHERE EXISTS (SELECT 1 FROM larimar_facts "
                "f WHERE f.namespace = n.name) OR EXISTS (SELECT 1 FROM larimar_states s WHERE "
                "s.namespace = n.name) ORDER BY name COLLATE \"C\""
            )
        return [row[0] for row in rows]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                break
            try:
                conn.close()
            except psycopg.Error:
                logger.debug("closing a connection failed", exc_info=True)

    def __repr__(self) -> str:
        return f"PostgresStore({self._where()!r}, schema={self.schema!r})"
