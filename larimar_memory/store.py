"""The fact log: one `FactRecord` per remembered fact, and the `MemoryStore` that keeps them.

A fact is its text, the sentence embedding `key` of its key text, and the latents `values` it
wrote into the memory rows `rows`: enough to rebuild a namespace's memory by replaying the log,
and to undo one fact exactly. The log is the truth; the memory is derived from it.

`MemoryStore` is backend-neutral; ``store_sql.py`` implements it once in SQL, and the dialects
``store_sqlite.py`` (`SQLiteStore`, the embedded default) and ``store_postgres.py``
(`PostgresStore`, for replicas) supply what differs. Writers go through
`store.transaction(namespace)`, which holds the namespace's write lock from the first read to the
commit, so read-modify-write cycles from several threads or processes serialise and never lose an
update, and a crash leaves either the old or the new log, never a mix.

Forgetting must really forget: after every delete the store purges the deleted bytes from its
files (SQLite: ``secure_delete`` and a truncated write-ahead log; PostgreSQL: the text tables
rewritten and the WAL switched, see ``store_postgres.py``); when something prevents that, the
delete still commits and `PurgePendingError` says so. What no purge reaches (backups, WAL
archives) is covered by per-namespace encryption keys that `clear` destroys (``store_keys.py``,
on when a key file is given).
"""

from __future__ import annotations

import abc
import math
import os
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MemoryInputError, TextInputError
from .store_columns import FactColumns
from .values import (  # noqa: F401 - the store's checks; importers may take them from here
    METADATA_MAX_BYTES,
    METADATA_MAX_DEPTH,
    check_json_value,
    check_metadata,
    check_storable,
    check_utf8,
)

if TYPE_CHECKING:
    from .store_sqlite import SQLiteStore
    from .store_url import open_store

__all__ = [
    "FORMAT_VERSION",
    "STORE_ENV",
    "Change",
    "ChangeLog",
    "FactColumns",
    "FactRecord",
    "MemoryStore",
    "NamespaceLoad",
    "PurgeReport",
    "SQLiteStore",
    "StoreTransaction",
    "check_metadata",
    "default_store_path",
    "open_store",
    "redact_url",
]

FORMAT_VERSION = 4
"""Version of the on-disk layout. Bump it (and add a migration) whenever the schema changes.
1: one slot, one value and the addressing weights per fact, plus a table of memory states.
2: the log alone: per fact its key, the latents written and the memory rows that hold them.
3: plus the change log: one row per committed write or forget (version, op, fact id).
4: plus the fact history: one row per write or forget of a fact (id, version, event, time),
   never trimmed, never any text; and values packed (`packed.py`: trailing zero columns
   dropped, float16 when exact); the raw float32 values of format 3 stay readable as they are."""

STORE_ENV = "LARIMAR_STORE"
"""Environment variable naming the SQLite file used when no path is given."""

STORE_FILE_NAME = "larimar.sqlite3"
APP_NAME = "larimar-memory"



# --- records ---------------------------------------------------------------------------------


def _float_array(name: str, array: Any, ndim: int, shape_hint: str) -> np.ndarray:
    """A C-contiguous float32 copy of `array` with `ndim` dimensions, none empty, all finite."""
    if hasattr(array, "detach"):  # a torch tensor, without importing torch
        array = array.detach().cpu().numpy()
    try:
        out = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    except (TypeError, ValueError) as exc:
        raise MemoryInputError(f"FactRecord.{name} must be numeric {shape_hint}: {exc}") from exc
    if out.ndim != ndim or 0 in out.shape:
        raise MemoryInputError(
            f"FactRecord.{name} must have shape {shape_hint}, got {tuple(out.shape)}."
        )
    if not np.isfinite(out).all():
        raise MemoryInputError(
            f"FactRecord.{name} contains NaN or Inf; the model produced a non-finite "
            "tensor, and storing it would poison the memory rebuilt from the log."
        )
    return out


def _row_indices(rows: Any, n_values: int) -> np.ndarray:
    if hasattr(rows, "detach"):
        rows = rows.detach().cpu().numpy()
    arr = np.asarray(rows)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise MemoryInputError(
            f"FactRecord.rows must be a 1-D array of integer row indices, got shape "
            f"{tuple(arr.shape)} and dtype {arr.dtype}."
        )
    out = np.ascontiguousarray(arr.astype(np.int64))
    if len(out) != n_values:
        raise MemoryInputError(
            f"FactRecord.rows has {len(out)} entries but values has {n_values} rows; "
            "give one memory row per written latent."
        )
    if (out < 0).any():
        raise MemoryInputError(f"FactRecord.rows must be >= 0, got {out.tolist()}.")
    if len(np.unique(out)) != len(out):
        raise MemoryInputError(
            f"FactRecord.rows must be distinct, got {out.tolist()}; write each row once."
        )
    return out


def _check_text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TextInputError(f"FactRecord.{name} must be str, got {type(value).__name__}.")
    check_utf8(value, f"FactRecord.{name}")


@dataclass(eq=False, kw_only=True)
class FactRecord:
    """One remembered fact: its text, its key, and the latents it wrote into which memory rows.

    `key` (D,) is the sentence embedding of `key_text` (the text itself unless a separate key,
    e.g. the prompt, was given); `extra_keys` (m, D) embed `extra_key_texts`, further texts that
    address the fact (paraphrases, the message that prompted it: the paper's rephrase-augmented
    keys); `values` (n_rows, C) are the latents written, one per memory
    row; `rows` (n_rows,) the global memory rows that hold them, distinct and >= 0. Arrays are
    stored as float32 / int64 and come back with those dtypes. Keyword-only; `id` (uuid4 hex,
    unique within a namespace; callers may choose their own) and `created_at` (Unix time) are
    filled in when not given. Invalid input raises `MemoryInputError` (arrays) or
    `TextInputError` (text, metadata).
    """

    namespace: str
    text: str
    key: np.ndarray
    values: np.ndarray
    rows: np.ndarray
    key_text: str = ""
    extra_keys: np.ndarray | None = None
    extra_key_texts: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not isinstance(self.namespace, str) or not self.namespace:
            raise TextInputError(f"namespace must be a non-empty string, got {self.namespace!r}.")
        _check_text("text", self.text)
        if not self.key_text:
            self.key_text = self.text
        _check_text("key_text", self.key_text)
        if not isinstance(self.id, str) or not self.id:
            raise TextInputError(f"FactRecord.id must be a non-empty string, got {self.id!r}.")
        if self.request_id is not None:
            _check_text("request_id", self.request_id)
        self.key = _float_array("key", self.key, 1, "(D,)")
        self.extra_key_texts = list(self.extra_key_texts)
        for text in self.extra_key_texts:
            _check_text("extra_key_texts[]", text)
        if self.extra_keys is None or np.size(self.extra_keys) == 0:
            self.extra_keys = np.zeros((0, self.key.shape[0]), dtype=np.float32)
        else:
            self.extra_keys = _float_array("extra_keys", self.extra_keys, 2, "(m, D)")
        if self.extra_keys.shape != (len(self.extra_key_texts), self.key.shape[0]):
            raise MemoryInputError(
                f"FactRecord.extra_keys has shape {self.extra_keys.shape} but there are "
                f"{len(self.extra_key_texts)} extra key texts of width {self.key.shape[0]}; "
                "give one embedding per extra key text."
            )
        self.values = _float_array("values", self.values, 2, "(n_rows, C); one row: v[None]")
        self.rows = _row_indices(self.rows, self.values.shape[0])
        check_metadata(self.metadata, allow_nul=True)  # old stores kept NUL: still readable
        self.created_at = float(self.created_at)
        if not math.isfinite(self.created_at):
            raise MemoryInputError(f"FactRecord.created_at must be finite, got {self.created_at}.")


@dataclass(frozen=True)
class Change:
    """One entry of the change log: at `version` the fact `fact_id` was written or forgotten
    (`op` ``write`` / ``forget``), the namespace meta set (``meta``), or the version bumped
    (``version``: one per committed version, so a gap in the log is visible)."""

    version: int
    op: str
    fact_id: str = ""


@dataclass
class ChangeLog:
    """What a cache at version `since` needs to reach `version`, read in one snapshot.

    `changes` are every change after `since` in commit order; `facts` the facts they wrote
    that still exist. The log is complete only after `floor` (older entries were compacted, or
    the namespace was created there): a cache at or below it must rebuild."""

    since: int
    version: int
    floor: int
    changes: list[Change]
    facts: FactColumns


@dataclass
class NamespaceLoad:
    """Every fact of a namespace as columns, with the version and meta they are at, read in
    one snapshot: what a cache without a copy loads (`MemoryStore.load`)."""

    version: int
    meta: dict[str, str] | None
    facts: FactColumns


@dataclass(frozen=True)
class HistoryEntry:
    """One event of a fact's history: at `version` (0: before the history was kept) and time
    `at` the fact was ``written`` or ``forgotten``."""

    version: int
    event: str
    at: float


def fact_events(entries: list[HistoryEntry]) -> list[tuple[str, HistoryEntry]]:
    """A fact's stored history as users read it: a forget and a write of the same id in one
    version (an update under the same id) is one ``updated`` event."""
    out: list[tuple[str, HistoryEntry]] = []
    for entry in entries:
        if (entry.event == "written" and out and out[-1][0] == "forgotten"
                and out[-1][1].version == entry.version and entry.version):
            out[-1] = ("updated", entry)
        else:
            out.append((entry.event, entry))
    return out


@dataclass
class PurgeReport:
    """What `MemoryStore.purge` did, and what no purge of this store can reach."""

    purged: bool
    """Every delete so far is purged from the store's own files."""
    pending: int
    """Deletes whose bytes may still be in the store's files (`MemoryStore.pending_purges`)."""
    out_of_reach: list[str] = field(default_factory=list)
    """Places that may keep copies of forgotten facts, each with what to do about it."""
    encrypted: bool = False
    """Facts are sealed with per-namespace keys; a cleared namespace's key is destroyed."""


# --- the interface -----------------------------------------------------------------------------


class StoreTransaction(abc.ABC):
    """Everything a writer may do to one namespace while it holds the write lock.

    Obtained from `MemoryStore.transaction`; committed on clean exit, rolled back on exception.
    Any change (facts added or deleted, meta set) bumps the namespace version once.
    """

    namespace: str

    @abc.abstractmethod
    def namespace_meta(self) -> dict[str, str] | None:
        """The namespace's string metadata, or None when none was set."""

    @abc.abstractmethod
    def set_namespace_meta(self, meta: dict[str, str]) -> None:
        """Replace the namespace's string metadata (e.g. model and widths it was written with)."""

    @abc.abstractmethod
    def version(self) -> int:
        """The namespace's version as this transaction sees it (0 if it does not exist)."""

    @abc.abstractmethod
    def all_facts(self) -> list[FactRecord]:
        """Every fact of the namespace, oldest first."""

    @abc.abstractmethod
    def load(self) -> NamespaceLoad:
        """Every fact of the namespace as columns, oldest first (see `MemoryStore.load`)."""

    @abc.abstractmethod
    def add_facts(self, records: Iterable[FactRecord]) -> None:
        """Append facts (all of this namespace, ids new to it) to the log."""

    @abc.abstractmethod
    def delete_facts(self, ids: Sequence[str]) -> list[FactRecord]:
        """Delete facts by id and return them in the order asked; an unknown id raises
        `FactNotFoundError` and deletes nothing."""

    @abc.abstractmethod
    def get_facts(self, ids: Sequence[str]) -> list[FactRecord]:
        """Facts by id, in the order asked; an unknown id raises `FactNotFoundError`."""

    @abc.abstractmethod
    def find_by_request_id(self, request_id: str) -> list[FactRecord]:
        """Facts written by the request with this id, oldest first (idempotent retries)."""

    @abc.abstractmethod
    def commit_version(self) -> int:
        """Bump the namespace version (once per transaction) and return the value it has after
        the commit."""

    @abc.abstractmethod
    def changes(self, since: int) -> ChangeLog:
        """The change log after version `since` (see `ChangeLog`)."""

    @abc.abstractmethod
    def trim_changes(self, keep: int) -> int:
        """Drop change-log entries more than `keep` versions old (caches further behind rebuild
        in full); returns how many went."""


class MemoryStore(abc.ABC):
    """Backend-neutral fact log (`SQLiteStore`, `PostgresStore`).

    Reads outside a transaction each see one committed snapshot; writes go through
    `transaction`. Versions of a namespace only grow and never repeat, even across `clear`, so
    a cache keyed by (namespace, version) is never stale. Usable as a context manager that
    closes the store.
    """

    @abc.abstractmethod
    def transaction(self, namespace: str) -> AbstractContextManager[StoreTransaction]:
        """A context manager yielding a `StoreTransaction` that holds the namespace's write
        lock; commit on clean exit, rollback on exception."""

    @abc.abstractmethod
    def version(self, namespace: str) -> int:
        """The namespace's change counter (0 if it does not exist); cheap, for cache checks."""

    @abc.abstractmethod
    def namespace_meta(self, namespace: str) -> dict[str, str] | None:
        """The namespace's string metadata, or None."""

    @abc.abstractmethod
    def changes(self, namespace: str, since: int) -> ChangeLog:
        """The change log of a namespace after version `since`, with the facts it wrote that
        still exist, read in one snapshot (see `ChangeLog`)."""

    @abc.abstractmethod
    def load(self, namespace: str) -> NamespaceLoad:
        """Every fact of a namespace as columns, oldest first, with its version and meta, in
        one snapshot: the bulk read that loads a memory (``store_columns.py``). A stored row
        that is invalid raises `StoreError`."""

    @abc.abstractmethod
    def history(self, namespace: str, fact_id: str) -> list[HistoryEntry]:
        """Every write and forget of a fact id, oldest first (empty for an id never stored).
        Kept after the fact is forgotten, until its namespace is cleared; holds no text."""

    @abc.abstractmethod
    def list_facts(
        self,
        namespace: str,
        limit: int | None = None,
        offset: int = 0,
        where: dict[str, Any] | None = None,
    ) -> list[FactRecord]:
        """Facts oldest first, paginated; `where` keeps those whose metadata passes a filter
        (`larimar_memory.filters`: equality pushed down to SQL, richer filters evaluated)."""

    @abc.abstractmethod
    def get_fact(self, namespace: str, id: str) -> FactRecord:
        """One fact; `FactNotFoundError` if the id is unknown in this namespace."""

    @abc.abstractmethod
    def count(self, namespace: str) -> int:
        """Number of facts (0 for an unknown namespace)."""

    @abc.abstractmethod
    def namespaces(self) -> list[str]:
        """Names of the existing namespaces, sorted."""

    @abc.abstractmethod
    def clear(self, namespace: str) -> int:
        """Delete every fact and the namespace itself (its name leaves the store); returns the
        number of facts deleted."""

    @property
    def pending_purges(self) -> int:
        """Deletes whose bytes may still be on disk because a purge could not run yet."""
        return 0

    def purge(self) -> PurgeReport:
        """Purge the bytes of every delete from the store's files now (waiting a bounded time
        for readers), and say what remains out of reach."""
        return PurgeReport(purged=True, pending=0)

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


def redact_url(url: str) -> str:
    """``url`` with its password shown as ``***`` (for messages and logs)."""
    return re.sub(r"://([^:@/]*):[^@/]*@", r"://\1:***@", url)


def __getattr__(name: str) -> Any:
    # `SQLiteStore` and `open_store` live in modules that import this one: resolve them lazily.
    if name == "SQLiteStore":
        from .store_sqlite import SQLiteStore

        return SQLiteStore
    if name == "open_store":  # paths and URLs: store_url.py (which imports this module)
        from .store_url import open_store

        return open_store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
