"""Where the memory runs: in this process (a `Larimar`) or in a ``larimar serve`` subprocess
reached through `LarimarClient`.

The server accepts namespace names of letters, digits, '.', '_' and '-' only, while the
integrations derive names like ``user:alice`` (LangChain's namespace rule) and
``langgraph/memories/alice`` (`LarimarStore`). Until the server accepts those, `ServerNames`
maps every name reversibly into the server's alphabet (``user:alice`` → ``user_calice``) on the
way in and back on the way out, so each mode runs unchanged over HTTP. Results still carry the
mapped name in ``Fact.namespace`` (no mode reads it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import LarimarError

_KEEP = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_ESCAPE = {"_": "__", ":": "_c", "/": "_s"}
_UNESCAPE = {v[1]: k for k, v in _ESCAPE.items()}
API_KEY = "dialogues-eval-key-0123456789"


def server_name(name: str) -> str:
    """``name`` in the server's namespace alphabet, reversibly (see `plain_name`)."""
    out = []
    for ch in name:
        if ch in _KEEP:
            out.append(ch)
        elif ch in _ESCAPE:
            out.append(_ESCAPE[ch])
        else:
            out.append(f"_x{ord(ch):06x}")
    return "".join(out)


def plain_name(name: str) -> str:
    """The inverse of `server_name`."""
    out, i = [], 0
    while i < len(name):
        if name[i] == "_" and i + 1 < len(name):
            tag = name[i + 1]
            if tag == "x":
                out.append(chr(int(name[i + 2 : i + 8], 16)))
                i += 8
                continue
            out.append(_UNESCAPE.get(tag, tag))
            i += 2
            continue
        out.append(name[i])
        i += 1
    return "".join(out)


class ServerNames:
    """A `MemoryBackend` that forwards to ``inner`` (a `LarimarClient`) with every namespace
    mapped by `server_name` (see the module docstring)."""

    def __init__(self, inner: Any) -> None:
        from ...protocol import protocol_members

        self._inner = inner
        self._members = frozenset(protocol_members())

    @property
    def namespace(self) -> str:
        return plain_name(self._inner.namespace)

    def namespaces(self) -> list[str]:
        return [plain_name(name) for name in self._inner.namespaces()]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._members:
            raise AttributeError(name)
        method = getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("namespace") is not None:
                kwargs["namespace"] = server_name(kwargs["namespace"])
            return method(*args, **kwargs)

        return call


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(*, tiny: bool = False, threads: int = 1, timeout_s: float = 300.0,
          decoder_weights: str | None = None) -> Iterator[Any]:
    """A ``larimar serve`` subprocess on a fresh SQLite store (the packaged models, or the tiny
    random one; ``decoder_weights``: its ``--decoder-weights``, else the server's default),
    yielding a `LarimarClient` on it wrapped in `ServerNames`; stopped on exit."""
    import httpx

    from ...server.client import LarimarClient

    with tempfile.TemporaryDirectory(prefix="larimar-dialogues-") as tmp:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "LARIMAR_API_KEYS": f"{API_KEY}:eval",
               "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(threads)}
        log_path = Path(tmp) / "server.log"
        command = [sys.executable, "-m", "larimar_memory.server.cli", "--host", "127.0.0.1",
                   "--port", str(port), "--store", str(Path(tmp) / "facts.sqlite3"),
                   "--torch-threads", str(threads), "--log-level", "warning",
                   *(["--tiny"] if tiny else []),
                   *(["--decoder-weights", decoder_weights] if decoder_weights else [])]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise LarimarError(f"larimar serve exited with {proc.returncode}: "
                                       f"{log_path.read_text(errors='replace')[-2000:]}")
                try:
                    if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise LarimarError(f"larimar serve not healthy after {timeout_s:.0f} s")
                time.sleep(0.2)
            with LarimarClient(url, api_key=API_KEY, namespace="default") as client:
                yield ServerNames(client)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
