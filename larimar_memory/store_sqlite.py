"""`SQLiteStore`: the embedded default store, one SQLite file in WAL mode (see ``store_sql.py``).

What is SQLite's own: a connection per thread (the service calls in through
`asyncio.to_thread`), ``BEGIN IMMEDIATE`` as the write lock (one lock for the whole file, taken
before the first read so read-modify-write cycles serialise), and the purge of deleted bytes:
``secure_delete`` zeroes freed pages, and after every delete ``wal_checkpoint(TRUNCATE)`` copies
the zeroed pages into the database file and empties the ``-wal`` file. The ``-shm`` file holds
only the WAL index (page and frame numbers), never row contents.

A reader holding a snapshot older than the delete (an open read transaction in any process)
blocks that checkpoint. The store waits about `PURGE_WAIT_S` seconds, then raises
`PurgePendingError`: the delete has committed, but the text may remain in the ``-wal`` file until
the reader finishes. `pending_purges` counts such deletes; the purge is retried at the start and
end of every later write transaction and at close.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import StoreError
from .store import default_store_path
from .store_sql import Dialect, SQLStore

__all__ = ["SQLiteStore"]

logger = logging.getLogger(__name__)

PURGE_WAIT_S = 2.0
"""How long a delete waits for old readers before it reports `PurgePendingError`."""
_PURGE_TRIES = 8


class SQLiteDialect(Dialect):
    types = {"blob": "BLOB", "real": "REAL", "bigint": "INTEGER",
             "serial_pk": "INTEGER PRIMARY KEY"}
    purges = True
    pending_reason = ("another connection, a reader holding an old snapshot, kept the "
                      "write-ahead log in use; the forgotten text may remain in the -wal file "
                      "until that reader finishes")
    v1_tables = ("namespaces", "states", "facts")
    v1_order = "rowid"

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def where(self) -> str:
        return str(self.path)

    @contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        code = getattr(exc, "sqlite_errorname", "") or ""
        msg = str(exc)
        if "locked" in msg or "busy" in msg or code.startswith("SQLITE_BUSY"):
            return StoreError(
                f"The store {self.path} is locked: another writer held it for more than "
                f"{self.busy_timeout:g} s. Retry later, or find the process that keeps a "
                "transaction open."
            )
        if code.startswith("SQLITE_IOERR") or "disk I/O error" in msg:
            return StoreError(
                f"disk I/O error on {self.path} ({code or msg}): the -wal or -shm file may have "
                "been deleted while the store was open, or the disk is failing. Close every "
                "process using the store and reopen it; if the error stays, restore the file "
                "from a backup."
            )
        if code.startswith("SQLITE_READONLY") or "readonly" in msg:
            return StoreError(
                f"{self.path} cannot be written ({msg}): check the file's permissions, or whether "
                "it was moved or deleted while open; then reopen the store."
            )
        if isinstance(exc, sqlite3.IntegrityError):
            return StoreError(f"Constraint violated in {self.path}: {exc}")
        if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or (
            isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
        ):
            return StoreError(
                f"{self.path} is not a readable SQLite database ({msg}); it is corrupted or not "
                "a larimar store. Restore it from a backup (or try `sqlite3 FILE .recover`), or "
                "point the store elsewhere."
            )
        return StoreError(f"SQLite error on {self.path}: {msg}")

    def _connect(self) -> sqlite3.Connection:
        with self.errors():
            conn = sqlite3.connect(
                str(self.path),
                timeout=self.busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # only so close() may close it from another thread
            )
            for pragma in ("secure_delete = ON", "foreign_keys = ON", "synchronous = FULL",
                           f"busy_timeout = {int(self.busy_timeout * 1000)}"):
                conn.execute(f"PRAGMA {pragma}")
        with self._lock:
            self._conns.append(conn)
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        if os.getpid() != self._pid:  # forked: never reuse the parent's connections
            self._local, self._conns, self._lock = threading.local(), [], threading.Lock()
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        yield conn

    def begin(self, conn: sqlite3.Connection, lock: str | None) -> None:
        if lock is None:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.warning("%s: journal_mode is %s, not WAL (no shared memory?)", self.path,
                               mode)
        conn.execute("BEGIN IMMEDIATE")

    def rollback(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:  # SQLite already rolled back after a fatal error
            logger.debug("rollback failed", exc_info=True)

    def tables(self, conn: sqlite3.Connection) -> set[str]:
        with self.errors():
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {r[0] for r in rows}

    def metadata_equals(self, field: str, value: Any) -> tuple[str, list[Any]]:
        # json_each's key column is the exact key (no JSON-path quoting), type its JSON type.
        head = "EXISTS (SELECT 1 FROM json_each(larimar_facts.metadata) m WHERE m.key = ?"
        if value is None or isinstance(value, bool):
            kind = "null" if value is None else ("true" if value else "false")
            return f"{head} AND m.type = ?)", [field, kind]
        if isinstance(value, str):
            return f"{head} AND m.type = 'text' AND m.atom = ?)", [field, value]
        return f"{head} AND m.type IN ('integer', 'real') AND m.atom = ?)", [field, value]

    def purge(self, conn: sqlite3.Connection, wait: bool) -> bool:
        """Checkpoint and truncate the WAL, waiting up to `PURGE_WAIT_S` when `wait`."""
        tries = _PURGE_TRIES if wait else 1
        step_ms = int(PURGE_WAIT_S * 1000 / _PURGE_TRIES) if wait else 0
        try:
            with self.errors():
                conn.execute(f"PRAGMA busy_timeout = {step_ms}")
                for i in range(tries):
                    busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                    if not busy:
                        return True
                    if i + 1 < tries:
                        time.sleep(0.01)
                return False
        finally:
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            except sqlite3.Error:  # the connection broke; errors() reported why
                logger.debug("restoring busy_timeout failed", exc_info=True)

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                logger.debug("closing a connection failed", exc_info=True)


class SQLiteStore(SQLStore):
    """The embedded default store: one SQLite file in WAL mode, safe across threads and processes.

    A writer waits up to `busy_timeout` seconds for the file's write lock, then gets a
    `StoreError`. A delete that cannot purge its bytes at once raises `PurgePendingError` after
    committing (see the module docstring).

    Setup:
        ``pip install larimar-memory``; nothing else, SQLite ships with Python.
    Instantiate:
        ``store = SQLiteStore()`` (default file, or ``$LARIMAR_STORE``) or
        ``SQLiteStore("/path/to/larimar.sqlite3")``; ``key_file="/etc/larimar/keys.json"`` (or
        ``$LARIMAR_KEY_FILE``) creates it encrypted with per-namespace keys (``store_keys.py``).
    Use:
        ``with store.transaction("alice") as tx: tx.add_facts([...]); tx.commit_version()``
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, busy_timeout: float = 30.0,
                 *, key_file: str | os.PathLike[str] | None = None):
        if path is not None and (str(path) in ("", ":memory:") or str(path).startswith("file:")):
            raise StoreError(
                f"SQLiteStore needs a file path, got {str(path)!r}: every thread opens its own "
                "connection, which an in-memory database cannot share. Use a temporary file."
            )
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.busy_timeout = float(busy_timeout)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the store's folder {self.path.parent}: {exc}") from exc
        super().__init__(SQLiteDialect(self.path, self.busy_timeout), key_file)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
