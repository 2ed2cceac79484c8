"""What the components need from a Larimar: the in-process `Larimar` or a remote client.

Everything here is typed against `LarimarLike`, a structural protocol, so the remote
`LarimarClient` (the same methods over HTTP) plugs in without this package importing the
server. Components built without one share a single embedded `Larimar()` per process, created
on first use: loading the packaged models takes seconds, so constructing a component stays
free (LangChain builds models and tools eagerly, e.g. in `init_chat_model` or standard tests).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, runtime_checkable

from larimar_memory.types import AskResult, Fact, RecallResult, RememberResult

#: the methods the components call; checked on construction so a wrong object fails early
REQUIRED_METHODS = (
    "remember", "recall", "ask", "forget", "list", "clear",
    "aremember", "arecall", "aask", "aforget",
)
#: used only to forget by description (the ``forget`` tool's fallback, "forget …" requests in
#: `conversation.observe`); a client without them still does everything else
OPTIONAL_METHODS = ("forget_matching", "aforget_matching")


@runtime_checkable
class LarimarLike(Protocol):
    """The `larimar_memory.service.Larimar` interface the components use. Forgetting by
    description also needs ``forget_matching``/``aforget_matching`` (see `OPTIONAL_METHODS`)."""

    def remember(self, text: str | list[str], **kwargs: Any) -> RememberResult: ...
    def recall(self, query: str, **kwargs: Any) -> RecallResult: ...
    def ask(self, question: str, **kwargs: Any) -> AskResult: ...
    def forget(self, fact: str, **kwargs: Any) -> list[Fact]: ...
    def list(self, **kwargs: Any) -> list[Fact]: ...
    def clear(self, **kwargs: Any) -> int: ...
    async def aremember(self, text: str | list[str], **kwargs: Any) -> RememberResult: ...
    async def arecall(self, query: str, **kwargs: Any) -> RecallResult: ...
    async def aask(self, question: str, **kwargs: Any) -> AskResult: ...
    async def aforget(self, fact: str, **kwargs: Any) -> list[Fact]: ...


def check_larimar(larimar: Any, owner: str) -> LarimarLike | None:
    """``larimar`` if it is None or has the Larimar interface, else a TypeError naming what is
    missing (a wrong object would otherwise fail deep inside an agent run)."""
    if larimar is None:
        return None
    missing = [name for name in REQUIRED_METHODS if not callable(getattr(larimar, name, None))]
    if missing:
        raise TypeError(
            f"{owner} needs a Larimar (larimar_memory.service.Larimar, or a client with the same "
            f"interface), but got {type(larimar).__name__} without {', '.join(missing)}; pass "
            f"larimar=Larimar(...), or nothing to use the embedded default"
        )
    return larimar  # type: ignore[no-any-return]


_default: LarimarLike | None = None
_default_lock = threading.Lock()


def default_larimar() -> LarimarLike:
    """The process-wide embedded `Larimar()` (packaged models, fact log in the user data dir),
    created on first call and shared by every component built without ``larimar=``."""
    global _default
    with _default_lock:
        if _default is None:
            from larimar_memory.service import Larimar

            _default = Larimar()
        return _default
