"""`open_store`: the store a user names, as a path or a URL (``Larimar(store=...)``, ``--store``).

* None: the default SQLite file (``$LARIMAR_STORE`` or the user data folder);
* a path (str or `os.PathLike`) without a scheme: that SQLite file;
* ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``: a SQLite file, as SQLAlchemy
  writes them (three slashes, then the path);
* ``postgresql://user:pw@host:5432/db`` (or ``postgres://``): PostgreSQL, connected at once,
  so an unreachable server or a missing driver is an error here, naming which;
* a `MemoryStore`: itself.

A string with a scheme is always a URL: an unknown or malformed one raises `StoreURLError`,
never falls back to a file path (``postgresql://u@h/db`` once became a local file
``postgresql:/u@h/db``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import StoreError, StoreURLError
from .store import MemoryStore, redact_url

__all__ = ["POSTGRES_SCHEMES", "SQLITE_SCHEME", "open_store"]

SQLITE_SCHEME = "sqlite"
POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEMES = (SQLITE_SCHEME, *POSTGRES_SCHEMES)
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_KNOWN_PREFIX = re.compile(r"^(?P<scheme>sqlite|postgres(?:ql)?)(?:\+[A-Za-z0-9]+)?:", re.I)
_FORMS = ("a file path, sqlite:///relative/file.db, sqlite:////absolute/file.db, or "
          "postgresql://user:password@host:5432/database")


def open_store(spec: MemoryStore | str | os.PathLike[str] | None = None, *,
               key_file: str | os.PathLike[str] | None = None) -> MemoryStore:
    """The `MemoryStore` ``spec`` names (see the module docstring); ``key_file`` (or
    ``$LARIMAR_KEY_FILE``) turns encryption on for a store opened here."""
    if isinstance(spec, MemoryStore):
        return spec
    if spec is None:
        return _sqlite(None, key_file)
    if isinstance(spec, os.PathLike):
        return _sqlite(Path(spec), key_file)
    if not isinstance(spec, str):
        raise StoreURLError(
            f"store must be a path, a URL or a MemoryStore, got {type(spec).__name__}: "
            f"{spec!r:.80}. Give {_FORMS}"
        )
    scheme = _scheme(spec)
    if scheme is None:
        return _sqlite(Path(spec), key_file)
    if scheme == SQLITE_SCHEME:
        return _sqlite(_sqlite_path(spec), key_file)
    if scheme in POSTGRES_SCHEMES:
        return _postgres(spec, key_file)
    raise StoreURLError(
        f"unknown store URL scheme {scheme!r} in {redact_url(spec)!r}; larimar stores are "
        f"{_FORMS}"
    )


def _scheme(spec: str) -> str | None:
    """The URL scheme, lower-case; None for a plain path. ``sqlite:x`` and ``postgresql:/x``
    (a scheme we serve, without ``//``) are malformed URLs, not file names."""
    match = _URL.match(spec)
    if match:
        return match["scheme"].lower()
    known = _KNOWN_PREFIX.match(spec)
    if known:
        raise StoreURLError(
            f"malformed store URL {redact_url(spec)!r}: a {known['scheme'].lower()} URL starts "
            f"with '{known['scheme'].lower()}://'. Give {_FORMS}"
        )
    return None


def _sqlite_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc:
        raise StoreURLError(
            f"malformed SQLite URL {url!r}: SQLite has no host ({parts.netloc!r}); write "
            "sqlite:///relative/file.db or sqlite:////absolute/file.db"
        )
    if parts.query or parts.fragment:
        raise StoreURLError(
            f"SQLite URL {url!r} has options ({parts.query or parts.fragment!r}); larimar takes "
            "none: give just sqlite:///path"
        )
    path = unquote(parts.path[1:])  # the third slash ends the (empty) authority
    if not path or path == ":memory:":
        raise StoreURLError(
            f"SQLite URL {url!r} names no file; an in-memory database cannot be shared between "
            "the store's threads. Write sqlite:///relative/file.db or sqlite:////absolute/file.db"
        )
    return Path(path)


def _sqlite(path: Path | None, key_file: str | os.PathLike[str] | None) -> MemoryStore:
    from .store_sqlite import SQLiteStore

    return SQLiteStore(path, key_file=key_file)


def _postgres(url: str, key_file: str | os.PathLike[str] | None) -> MemoryStore:
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise StoreURLError(f"malformed PostgreSQL URL {redact_url(url)!r}: {exc}") from None
    try:
        from .store_postgres import PostgresStore
    except ImportError as exc:
        raise StoreError(
            f"{redact_url(url)!r} needs the PostgreSQL driver psycopg 3, which is not installed "
            f"({exc}); install it with: pip install 'larimar-memory[server]' (or "
            "'psycopg[binary]')"
        ) from exc
    return PostgresStore(url, key_file=key_file)
