"""`PostgresStore`: the `MemoryStore` for several server replicas sharing one database.

Same schema, queries and semantics as `SQLiteStore` (both are ``store_sql.py``); this file holds
what is PostgreSQL's own. Connections come from a small pool. The write lock is a
transaction-scoped advisory lock on a 64-bit hash of (schema, namespace), taken right after
``BEGIN``; at READ COMMITTED every later statement of the transaction sees what the previous lock
holder committed. A lock wait longer than ``lock_timeout`` seconds raises `StoreError`.
Different namespaces never wait on each other (a hash collision only makes two share a lock).

Forgetting: a DELETE makes the row invisible at commit, but PostgreSQL does not zero the bytes.
Measured (PostgreSQL 15, one short fact and one 5 kB fact with its metadata, extra key and
request id): after the DELETE and a CHECKPOINT the short text was 5 times in the heap file, once
in the request-id index and 11 times in ``pg_wal`` (the insert, then full-page images of the
pages the DELETE touched); the long one twice in the TOAST file (not at all when it compresses)
and 4 times in ``pg_wal``. A plain VACUUM removes the TOAST chunks but not the heap's dead tuple
bytes; ANALYZE copies short texts into ``pg_statistic`` (histogram bounds). So after every
transaction that deleted something the purge:

1. rewrites the tables that hold text, ``VACUUM (FULL) larimar_facts, larimar_namespaces,
   larimar_changes, larimar_history`` (the logs name the namespace): new
   heap, TOAST and index files with the live rows only; the old files are truncated at once and
   unlinked at the next checkpoint. It needs the tables' ACCESS EXCLUSIVE lock, waited for at
   most `PURGE_WAIT_S` seconds (0.1 s for a retry), so a long reader (``pg_dump``, an open
   transaction) makes it `PurgePendingError` instead of stalling writers behind it; while it
   runs (about the time to copy the fact table) other writes wait;
2. ``pg_switch_wal()`` then ``CHECKPOINT``: the WAL moves to a new segment and the checkpoint
   removes every older one, when the settings allow (`erasure_limits`: ``wal_recycle = off``,
   no archiving, ``wal_keep_size = 0``, no replication slot, and the right to run both).

Columns that carry text keep no planner statistics (``SET STATISTICS 0``), so ANALYZE never
copies them into ``pg_statistic``. A store warns at start when the server keeps forgotten text
somewhere (``erasure_limits``); see docs/deploy.md.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from .errors import StoreError
from .store import redact_url
from .store_sql import Dialect, SQLStore

__all__ = ["PostgresStore"]

logger = logging.getLogger(__name__)

PURGE_WAIT_S = 2.0
"""How long a purge waits for the text tables' lock after a delete before `PurgePendingError`."""
_RETRY_WAIT_S = 0.1  # the same wait when a later write retries a pending purge
_TEXT_TABLES = ("larimar_facts", "larimar_namespaces", "larimar_changes", "larimar_history")
_NO_STATISTICS = {
    "larimar_facts": ("namespace", "id", "text", "key_text", "key", "vals", "metadata",
                      "request_id", "extra_key_texts"),
    "larimar_namespaces": ("name", "meta"),
    "larimar_changes": ("namespace", "fact_id"),
    "larimar_history": ("namespace", "fact_id"),
}
"""Columns whose values ANALYZE would copy into pg_statistic (most common values, histograms)."""
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_INIT_LOCK = "\x00schema"  # lock name for schema creation; no namespace can contain NUL


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key (stable across processes)."""
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


BULK_WORK_MEM = "64MB"
"""``work_mem`` of a namespace load's transaction only (`PostgresDialect.bulk_rows`)."""


class PostgresDialect(Dialect):
    placeholder = "%s"
    types = {"blob": "BYTEA", "real": "DOUBLE PRECISION", "bigint": "BIGINT",
             "serial_pk": "BIGSERIAL PRIMARY KEY"}
    v1_tables = ("larimar_namespaces", "larimar_states", "larimar_facts")
    v1_order = "seq"
    purges = True
    pending_reason = (f"the rewrite of its text tables (VACUUM FULL) could not take their lock "
                      f"within {PURGE_WAIT_S:g} s: another transaction (a pg_dump, a long query, "
                      "an idle transaction) holds them open; the forgotten text remains in the "
                      "tables' files and pg_wal until the purge runs")

    def __init__(self, dsn: str, schema: str | None, lock_timeout: float,
                 connect_timeout: float, pool_size: int) -> None:
        self.dsn, self.schema = dsn, schema
        self.lock_timeout, self.connect_timeout = lock_timeout, connect_timeout
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue(maxsize=pool_size)
        self._pid = os.getpid()
        self._closed = False
        self._wal_refused = False

    @property
    def where(self) -> str:
        return redact_url(self.dsn)

    def bulk_rows(self, conn: Any, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """In binary: the key and value blobs cross as bytes, not hex text (half the bytes and
        no hex decoding). The rows come in age order from the (namespace, created_at, seq)
        index: the text columns keep no statistics (module docstring), so the planner takes a
        namespace for small and picks a bitmap scan and a sort, which spilled 16 MB to disk at
        10,000 facts (``work_mem`` keeps any sort that remains in memory). A 10,000-fact
        namespace's fetch: ~250 → ~110 ms."""
        conn.execute(f"SET LOCAL work_mem = '{BULK_WORK_MEM}'")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        return list(conn.execute(query, tuple(params), binary=True).fetchall())

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

    def begin_snapshot(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

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

    def tune(self, q: Any) -> None:
        for table, columns in _NO_STATISTICS.items():
            kept = [r[0] for r in q.q(
                "SELECT attname FROM pg_attribute WHERE attrelid = ?::regclass AND attname = "
                "ANY(?) AND attstattarget IS DISTINCT FROM 0", (table, list(columns)))]
            for column in kept:
                q.run(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS 0")

    def purge(self, conn: psycopg.Connection[Any], wait: bool) -> bool:
        """Rewrite the text tables, then switch the WAL and checkpoint (module docstring)."""
        timeout_ms = int((PURGE_WAIT_S if wait else _RETRY_WAIT_S) * 1000)
        with self.errors():
            conn.execute(f"SET lock_timeout = {timeout_ms}")
            try:
                conn.execute(f"VACUUM (FULL) {', '.join(_TEXT_TABLES)}")
            except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled):
                return False
            finally:
                conn.execute(f"SET lock_timeout = {int(self.lock_timeout * 1000)}")
            try:
                conn.execute("SELECT pg_switch_wal()")
                conn.execute("CHECKPOINT")
            except (pg_errors.InsufficientPrivilege, pg_errors.ObjectNotInPrerequisiteState):
                if not self._wal_refused:
                    logger.warning("%s: the tables are rewritten after a forget, but this role "
                                   "may not switch the WAL and checkpoint, so pg_wal keeps "
                                   "forgotten text until the server recycles it (see "
                                   "`larimar purge`)", self.where, exc_info=True)
                self._wal_refused = True
        return True

    def erasure_limits(self, conn: psycopg.Connection[Any]) -> list[str]:
        with self.errors():
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('wal_recycle', "
                "'archive_mode', 'wal_keep_size', 'min_wal_size', 'log_statement', "
                "'log_min_duration_statement', 'server_version_num')").fetchall())
            slots = [r[0] for r in conn.execute(
                "SELECT slot_name FROM pg_replication_slots ORDER BY 1").fetchall()]
            standbys = conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0]
            may_checkpoint = conn.execute(
                "SELECT rolsuper OR (SELECT count(*) > 0 FROM pg_roles WHERE rolname = "
                "'pg_checkpoint' AND pg_has_role(current_user, oid, 'MEMBER')) FROM pg_roles "
                "WHERE rolname = current_user").fetchone()[0]
            may_switch = conn.execute(
                "SELECT has_function_privilege('pg_switch_wal()', 'EXECUTE')").fetchone()[0]
        limits = []
        if settings.get("wal_recycle") == "on":
            limits.append(
                "wal_recycle = on: a checkpoint renames old WAL segments for reuse instead of "
                f"deleting them (up to min_wal_size = {settings.get('min_wal_size')} MB), so "
                "forgotten text stays in pg_wal until overwritten; set it off: ALTER SYSTEM SET "
                "wal_recycle = off, then SELECT pg_reload_conf()"
            )
        if settings.get("archive_mode", "off") != "off":
            limits.append(
                f"archive_mode = {settings['archive_mode']}: archive_command copies every WAL "
                "segment, with the text of every fact ever written, to the WAL archive; bound "
                "its retention, or encrypt the store (key file) so a clear makes it unreadable"
            )
        if settings.get("wal_keep_size", "0") != "0":
            limits.append(f"wal_keep_size = {settings['wal_keep_size']} MB keeps that much old "
                          "WAL in pg_wal after a checkpoint; set it to 0")
        if slots:
            limits.append(f"replication slots ({', '.join(slots)}) keep WAL until their "
                          "consumers confirm it; drop unused slots")
        if standbys:
            limits.append(f"{standbys} streaming standby(s) replay the rewrite but keep their "
                          "own WAL (set wal_recycle = off there too) and any archive")
        if not may_checkpoint or not may_switch:
            limits.append(
                "this role may not run CHECKPOINT or pg_switch_wal(), so old WAL is removed only "
                "when the server checkpoints by itself; GRANT pg_checkpoint (PostgreSQL 15+) and "
                "EXECUTE ON FUNCTION pg_switch_wal() to it, or run `larimar purge` as a superuser"
            )
        if settings.get("log_statement") in ("mod", "all") or settings.get(
                "log_min_duration_statement", "-1") != "-1":
            limits.append(
                "statements are logged with their parameters (log_statement / "
                "log_min_duration_statement), so the server log holds remembered text; turn "
                "statement logging off or encrypt the store"
            )
        return limits

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
        tables in their own schema (created if missing); ``key_file=`` (or ``$LARIMAR_KEY_FILE``)
        creates the store encrypted with per-namespace keys (``store_keys.py``).
    Use:
        ``Larimar(store=PostgresStore(dsn))``, or ``larimar serve --store postgresql://...``.

    Any thread can run any call (``pool_size`` idle connections are kept); a connection that
    broke is dropped, the call raises `StoreError`, and the next call connects afresh.
    """

    def __init__(
        self, dsn: str, *, schema: str | None = None, lock_timeout: float = 30.0,
        connect_timeout: float = 10.0, pool_size: int = 16,
        key_file: str | os.PathLike[str] | None = None,
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
                                         pool_size), key_file)
        with self._read() as q:
            limits = self.dialect.erasure_limits(q.conn)
        if limits:
            logger.warning("%s: a forget cannot remove every copy of a fact on this server: %s",
                           self.dialect.where, "; ".join(limits))

    def __repr__(self) -> str:
        return f"PostgresStore({self.dialect.where!r}, schema={self.schema!r})"
