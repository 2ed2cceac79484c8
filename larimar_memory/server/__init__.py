"""HTTP server and client for larimar-memory.

``create_app`` (FastAPI) serves a `Larimar`; ``LarimarClient`` and ``AsyncLarimarClient`` speak
to it with the same methods, results and exceptions as the local object. The server half needs
``pip install larimar-memory[server]``; imports are lazy so the client alone needs only httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import ServerSettings

if TYPE_CHECKING:
    from .app import create_app
    from .client import AsyncLarimarClient, LarimarClient, LarimarHTTPError

__all__ = [
    "AsyncLarimarClient",
    "LarimarClient",
    "LarimarHTTPError",
    "ServerSettings",
    "create_app",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("LarimarClient", "AsyncLarimarClient", "LarimarHTTPError"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
