"""What the components need from a Larimar: the in-process `Larimar` or a remote client.

The components are typed against `LarimarLike`, a structural protocol, so the remote
`LarimarClient` (same methods, over HTTP) plugs in without this package importing the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from larimar_memory.types import AskResult, Fact, RecallResult, RememberResult

#: methods every component calls; checked on construction so a wrong object fails early
REQUIRED_METHODS = (
    "remember", "recall", "ask", "forget", "forget_matching", "list",
    "aremember", "arecall", "aask", "aforget", "aforget_matching",
)


@runtime_checkable
class LarimarLike(Protocol):
    """The `larimar_memory.service.Larimar` interface the components use."""

    def remember(self, text: str | list[str], **kwargs: Any) -> RememberResult: ...
    def recall(self, query: str, **kwargs: Any) -> RecallResult: ...
    def ask(self, question: str, **kwargs: Any) -> AskResult: ...
    def forget(self, fact: str, **kwargs: Any) -> list[Fact]: ...
    def forget_matching(self, description: str, **kwargs: Any) -> list[Fact]: ...
    def list(self, **kwargs: Any) -> list[Fact]: ...
    async def aremember(self, text: str | list[str], **kwargs: Any) -> RememberResult: ...
    async def arecall(self, query: str, **kwargs: Any) -> RecallResult: ...
    async def aask(self, question: str, **kwargs: Any) -> AskResult: ...
    async def aforget(self, fact: str, **kwargs: Any) -> list[Fact]: ...
    async def aforget_matching(self, description: str, **kwargs: Any) -> list[Fact]: ...


def check_larimar(larimar: object, owner: str) -> LarimarLike:
    """Return ``larimar`` if it has the Larimar interface, else raise a TypeError naming what
    is missing (a wrong object would otherwise fail deep inside an agent run)."""
    missing = [name for name in REQUIRED_METHODS if not callable(getattr(larimar, name, None))]
    if missing:
        raise TypeError(
            f"{owner} needs a Larimar (larimar_memory.service.Larimar or a client with the same "
            f"interface), but got {type(larimar).__name__} without {', '.join(missing)}; "
            f"pass larimar=Larimar(...) or use {owner}.from_defaults()"
        )
    return larimar  # type: ignore[return-value]


def default_larimar(larimar: LarimarLike | None, store: str | Path | None) -> LarimarLike:
    """``larimar`` itself, or a `Larimar` on the packaged models with its fact log at ``store``
    (None: the user data dir). Building one loads the models: seconds, longer the first time."""
    if larimar is not None:
        if store is not None:
            raise ValueError(
                f"pass either larimar=... or store=... (got both, store={str(store)!r}); the "
                "store belongs to the Larimar, so give it to Larimar(store=...)"
            )
        return larimar
    from larimar_memory.service import Larimar

    return Larimar(store=store)
