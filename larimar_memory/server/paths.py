"""Path parameters that may contain ``/``: a namespace (``langgraph/memories/alice``) or a fact
id (a LangGraph item key) travels as one percent-encoded URL path segment, ``/`` as ``%2F``.

ASGI servers decode the path before routing, so ``%2F`` would become a separator and the route
would not match. `SegmentPathMiddleware` rebuilds the routed path from ``raw_path`` with each
segment decoded but ``%`` and ``/`` inside it kept escaped; `decode_segment` turns a route
parameter back into the exact name. Segments without ``%2F``, ``%25`` or bytes that are not
UTF-8 route as before.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send


def _escaped(raw_segment: str) -> str:
    # bytes that are not UTF-8 become lone surrogates, which the name checks refuse (the ASGI
    # server's own decoding would turn them into U+FFFD, a valid name)
    decoded = unquote(raw_segment, errors="surrogateescape")
    return decoded.replace("%", "%25").replace("/", "%2F")


def decode_segment(value: str) -> str:
    """The name a route parameter stands for (inverse of the middleware's escaping)."""
    return unquote(value)


class SegmentPathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw and b"%" in raw:
            path = "/".join(_escaped(s) for s in raw.decode("ascii", "replace").split("/"))
            if path != scope["path"]:
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)
