"""Crypto-shredding: per-namespace keys in a key file the operator controls, and the cipher
that seals a fact's content with its namespace's key.

What no rewrite reaches (WAL archives, backups, replicas, the file system's freed blocks) keeps
only ciphertext when the store encrypts; `KeyFile.destroy` (run by `clear`) removes the
namespace's key, and every copy of its facts becomes unreadable. Off by default: a store
encrypts when it is given a key file (``key_file=`` or ``$LARIMAR_KEY_FILE``), and only a store
created that way (the choice is recorded in the store) can be opened with one.

The key file is JSON, ``{"format": 1, "stores": {store_id: {namespace: {"key", "created_at"}}}}``,
keys base64. It is created with mode 0600 and refused when group or others can read it;
changes are written to a temporary file, fsynced and renamed over it, under an exclusive
``flock`` on ``<file>.lock``, so processes on one host (uvicorn workers, CLI calls) share it
safely. Replicas on several hosts need the same file on a shared file system with working
locks. Keys are grouped by the store's id, so two stores pointed at one key file never share or
destroy each other's keys.

Sealed content: AES-256-GCM (``cryptography``) with a random 96-bit nonce per fact, bound to
its namespace and id as associated data; the sealed bytes hold the text, key text, extra key
texts, metadata, request id, the key embeddings and the latents (which the decoder turns back
into the text). Request ids are also stored as an HMAC-SHA256 under the namespace key, so a
retried request is found by equality without its id in clear.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import StoreError

__all__ = ["KEY_FILE_ENV", "KeyFile", "NamespaceCipher", "key_file_from_env"]

KEY_FILE_ENV = "LARIMAR_KEY_FILE"
"""Environment variable naming the key file; set, it turns encryption on for new stores."""

SCHEME = "aes-256-gcm-1"
"""Recorded in the store's meta; the sealed layout below."""

_FORMAT = 1
_NONCE = 12
_VERSION = b"\x01"  # first byte of every sealed value


def key_file_from_env(key_file: str | os.PathLike[str] | None) -> Path | None:
    """The key file to use: the argument, else ``$LARIMAR_KEY_FILE``, else None (no
    encryption)."""
    chosen = key_file if key_file is not None else os.environ.get(KEY_FILE_ENV) or None
    return None if chosen is None else Path(chosen).expanduser()


def _aesgcm() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise StoreError(
            "Encryption at rest needs the `cryptography` package: pip install "
            "'larimar-memory[encryption]'."
        ) from exc
    return AESGCM


class NamespaceCipher:
    """Seals and opens one namespace's fact payloads with its key."""

    def __init__(self, namespace: str, key: bytes) -> None:
        self.namespace = namespace
        self._key = key
        self._aead = _aesgcm()(hashlib.sha256(b"larimar seal\x00" + key).digest())
        self._mac = hashlib.sha256(b"larimar request id\x00" + key).digest()

    def _aad(self, fact_id: str) -> bytes:
        return b"larimar\x00" + self.namespace.encode() + b"\x00" + fact_id.encode()

    def seal(self, fact_id: str, payload: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, payload, self._aad(fact_id))

    def open(self, fact_id: str, sealed: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if sealed[:1] != _VERSION or len(sealed) < 1 + _NONCE + 16:
            raise StoreError(
                f"Fact {fact_id} in namespace {self.namespace!r} is not sealed with a format "
                "this library reads; the store is corrupted or was written by a newer version."
            )
        try:
            return self._aead.decrypt(sealed[1:1 + _NONCE], sealed[1 + _NONCE:],
                                      self._aad(fact_id))
        except InvalidTag as exc:
            raise StoreError(
                f"Fact {fact_id} in namespace {self.namespace!r} does not open with the "
                "namespace's key: the key file holds another key for it (replaced or restored "
                "from elsewhere) or the row was altered."
            ) from exc

    def tag(self, value: str) -> str:
        """A keyed hash of ``value`` (request ids): equal inputs, equal tags; no key, no link."""
        return "h1:" + hmac.new(self._mac, value.encode(), hashlib.sha256).hexdigest()


class KeyFile:
    """The per-namespace keys of one store (``store_id``) in an operator-controlled file."""

    def __init__(self, path: Path, store_id: str) -> None:
        self.path = path
        self.store_id = store_id
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, bytes] = {}
        self._ciphers: dict[str, NamespaceCipher] = {}
        _aesgcm()  # fail at open, not at the first write, when cryptography is missing

    # -- the file ----------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {"format": _FORMAT, "stores": {}}
        except OSError as exc:
            raise StoreError(f"Cannot read the key file {self.path}: {exc}") from exc
        self._check_private(st)
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"The key file {self.path} is not readable JSON ({exc}); restore "
                             "it from where the operator keeps it.") from exc
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT or not isinstance(
                doc.get("stores"), dict):
            raise StoreError(f"The key file {self.path} is not a larimar key file of format "
                             f"{_FORMAT}.")
        return doc

    def _check_private(self, st: os.stat_result) -> None:
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise StoreError(
                f"The key file {self.path} is accessible to group or others (mode "
                f"{stat.S_IMODE(st.st_mode):o}); it holds the keys to every namespace. Run "
                f"`chmod 600 {self.path}`."
            )

    def _write(self, doc: dict[str, Any]) -> None:
        """Atomically replace the file: temp file (0600) in the same folder, fsync, rename,
        fsync the folder."""
        folder = self.path.parent
        tmp = folder / f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        data = json.dumps(doc, indent=1, sort_keys=True).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"Cannot write the key file {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[dict[str, Any]]:
        """The file's content under an exclusive lock across threads and processes."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT,
                         0o600)
        except OSError as exc:
            raise StoreError(f"Cannot lock the key file {self.path}: {exc}") from exc
        try:
            with self._lock:
                try:
                    import fcntl

                    fcntl.flock(fd, fcntl.LOCK_EX)
                except ImportError:  # pragma: no cover - not POSIX: one process only
                    pass
                yield self._read()
        finally:
            os.close(fd)  # releases the flock

    def _refresh(self) -> None:
        """Reload the keys when the file changed (another process added or destroyed one)."""
        try:
            st = self.path.stat()
            self._check_private(st)  # also when unchanged: a chmod does not touch the stamp
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            raise StoreError(f"Cannot read the key file {self.path}: {exc}") from exc
        if stamp is not None and stamp == self._stamp:
            return
        self._load(self._read(), stamp)

    def _load(self, doc: dict[str, Any], stamp: tuple[int, int, int] | None) -> None:
        entries = doc["stores"].get(self.store_id, {})
        try:
            keys = {ns: base64.b64decode(e["key"], validate=True) for ns, e in entries.items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"The key file {self.path} has a malformed entry ({exc}).") from exc
        self._keys, self._stamp = keys, stamp
        self._ciphers = {ns: c for ns, c in self._ciphers.items() if keys.get(ns) == c._key}

    # -- keys ----------------------------------------------------------------------------------

    def cipher(self, namespace: str) -> NamespaceCipher | None:
        """The namespace's cipher, or None when it has no key (never written, or cleared)."""
        with self._lock:
            self._refresh()
            key = self._keys.get(namespace)
            if key is None:
                return None
            cipher = self._ciphers.get(namespace)
            if cipher is None:
                cipher = self._ciphers[namespace] = NamespaceCipher(namespace, key)
            return cipher

    def create(self, namespace: str) -> NamespaceCipher:
        """The namespace's cipher, creating (and saving) a fresh random key if it has none."""
        found = self.cipher(namespace)
        if found is not None:
            return found
        with self._exclusive() as doc:
            entries = doc["stores"].setdefault(self.store_id, {})
            if namespace not in entries:
                entries[namespace] = {"key": base64.b64encode(os.urandom(32)).decode(),
                                      "created_at": time.time()}
                self._write(doc)
            self._stamp = None
        cipher = self.cipher(namespace)
        assert cipher is not None
        return cipher

    def destroy(self, namespace: str) -> bool:
        """Remove the namespace's key from the file; False if it had none."""
        with self._exclusive() as doc:
            entries = doc["stores"].get(self.store_id, {})
            found = entries.pop(namespace, None) is not None
            if found:
                if not entries:
                    doc["stores"].pop(self.store_id, None)
                self._write(doc)
            self._stamp = None
            self._keys.pop(namespace, None)
            self._ciphers.pop(namespace, None)
        return found
