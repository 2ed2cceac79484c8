"""`PostgresStore`: the `MemoryStore` for several server replicas sharing one database.

Same schema, queries and semantics as `SQLiteStore` (both are ``store_sql.py``); this file holds
what is PostgreSQL's own. Connections come from a small pool. The write lock is a
transaction-scoped advisory lock on a 64-bit hash of (schema, namespace), taken right after
``BEGIN``; at READ COMMITTED every later statement of the transaction sees what the previous lock
holder committed. A lock wait longer than ``lock_timeout`` seconds raises `StoreError`.
Different namespaces never wait on each other (a hash collision only makes two share a lock).

Forgetting: a DELETE makes the row invisible at commit, but PostgreSQL does not zero the bytes
(dead tuples stay until VACUUM, the WAL and backups keep the insert); `pending_purges` is always
0 here and `vacuum()` runs VACUUM. See docs/deploy.md for what that does and does not guarantee.

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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from .errors import StoreError
from .store_sql import Dialect, SQLStore

__all__ = ["PostgresStore"]

logger = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INIT_LOCK = "\x00schema"  # lock name for schema creation; no namespace can contain NUL


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key (stable across processes)."""
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresDialect(Dialect):
    placeholder = "%s"
    types = {"blob": "BYTEA", "real": "DOUBLE PRECISION", "bigint": "BIGINT",
             "serial_pk": "BIGSERIAL PRIMARY KEY"}
    v1_tables = ("larimar_namespaces", "larimar_states", "larimar_facts")
    v1_order = "seq"

    def __init__(self, dsn: str, schema: str | None, lock_timeout: float,
                 connect_timeout: float, pool_size: int) -> None:
        self.dsn, self.schema = dsn, schema
        self.lock_timeout, self.connect_timeout = lock_timeout, connect_timeout
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue(maxsize=pool_size)
        self._pid = os.getpid()
        self._closed = False

    @property
    def where(self) -> str:
        return re.sub(r"://([^:@/]*):[^@/]*@", r"://\1:***@", self.dsn)  # no password

    @contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled) as exc:
            raise StoreError(
                f"The namespace lock in {self.where} was held by another writer for more than "
                f"{self.lock_timeout:g} s. Retry later, or find the client that keeps a "
                "transaction open."
            ) from exc
        except psycopg.OperationalError as exc:
            raise StoreError(
                f"Cannot reach PostgreSQL at {self.where} ({exc}). Check that the server is up; "
                "the call can be retried."
            ) from exc
        except psycopg.IntegrityError as exc:
            raise StoreError(f"Constraint violated in {self.where}: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL error on {self.where}: {exc}") from exc

    def _connect(self) -> psycopg.Connection[Any]:
        # Keep the DSN's own options (e.g. ?options=-csearch_path%3Dx) and add ours after them.
        try:
            options = conninfo_to_dict(self.dsn).get("options") or ""
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"Invalid PostgreSQL DSN {self.where}: {exc}") from exc
        options = f"{options} -c lock_timeout={int(self.lock_timeout * 1000)}".strip()
        if self.schema:
            options += f" -c search_path={self.schema}"
        with self.errors():
            return psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout)),
                options=options, application_name="larimar-memory",
            )

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
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

    def begin(self, conn: psycopg.Connection[Any], lock: str | None) -> None:
        # one round trip for both (a query without parameters may hold several statements);
        # the key is an int, formatted as one
        key = int(_lock_key(self.schema or "", _INIT_LOCK if lock is None else lock))
        conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({key})")
        if lock is None and self.schema:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')

    def rollback(self, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.broken:
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:  # the connection is unusable; the pool will drop it
            logger.debug("rollback failed", exc_info=True)
            conn.close()

    def tables(self, conn: psycopg.Connection[Any]) -> set[str]:
        with self.errors():
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "current_schema() AND table_name LIKE 'larimar%'"
            ).fetchall()
        return {r[0] for r in rows}

    def metadata_equals(self, field: str, value: Any) -> tuple[str, list[Any]]:
        # jsonb equality: numbers compare numerically, true is not 1, a missing key is not null.
        return "(metadata::jsonb -> ?::text) = ?::jsonb", [field, json.dumps(value)]

    def storable(self, *texts: str | None) -> bool:
        return not any(t is not None and "\x00" in t for t in texts)

    def close(self) -> None:
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


class PostgresStore(SQLStore):
    """The store for several replicas: the fact log in PostgreSQL tables.

    Setup:
        ``pip install larimar-memory[server]`` (psycopg 3) and a PostgreSQL >= 12 you can
        create tables in; ``scripts/postgres.sh start`` makes a throwaway one.
    Instantiate:
        ``PostgresStore("postgresql://user@db-host/larimar")``; ``schema="tenant_x"`` keeps the
        tables in their own schema (created if missing).
    Use:
        ``Larimar(store=PostgresStore(dsn))``, or ``larimar serve --store postgresql://...``.

    Any thread can run any call (``pool_size`` idle connections are kept); a connection that
    broke is dropped, the call raises `StoreError`, and the next call connects afresh.
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
        self.dsn, self.schema = dsn, schema
        self.lock_timeout = float(lock_timeout)
        super().__init__(PostgresDialect(dsn, schema, self.lock_timeout, float(connect_timeout),
                                         pool_size))

    def vacuum(self, full: bool = False) -> None:
        """VACUUM the store's tables: dead rows of forgotten facts become reusable space
        (``full=True`` rewrites the tables into new files, locking them while it runs). Neither
        overwrites the old bytes on disk; see docs/deploy.md."""
        with self._read() as q:
            for table in ("larimar_facts", "larimar_namespaces"):
                q.run(f"VACUUM {'FULL ' if full else ''}{table}")

    def __repr__(self) -> str:
        return f"PostgresStore({self.dialect.where!r}, schema={self.schema!r})"
