"""`MemoryBackend`: the one interface every integration talks to.

`Larimar` (in process), `LarimarClient` (HTTP) implement `MemoryBackend`; `AsyncLarimarClient`
implements `AsyncMemoryBackend`. Integrations (LangChain, LangGraph, LlamaIndex) and
`conversation.observe` use nothing outside these, so the same code runs against a local memory
or a server. A test checks all three against the protocols.

Every verb that reads, writes or forgets takes mem0's scope (``user_id``, ``agent_id``,
``run_id``; `larimar_memory.scoping`); `ScopedMemory` binds one to any backend.
"""

from __future__ import annotations

import builtins
from typing import Any, Protocol, runtime_checkable

from typing_extensions import Unpack

from .errors import TextInputError
from .scoping import Scope
from .types import (
    AskResult,
    Fact,
    FactEvent,
    ForgetResult,
    MemoryLimits,
    RecallResult,
    RememberResult,
)

Metadata = dict[str, Any]
Filter = dict[str, Any]


@runtime_checkable
class MemoryBackend(Protocol):
    """Remember / recall / ask / forget per namespace, with sync and async twins."""

    @property
    def namespace(self) -> str: ...

    def limits(self) -> MemoryLimits: ...

    def remember(
        self,
        text: str | builtins.list[str] | None = None,
        *,
        messages: builtins.list[dict[str, Any]] | None = None,
        key: str | builtins.list[str] | None = None,
        namespace: str | None = None,
        metadata: Metadata | builtins.list[Metadata] | None = None,
        request_id: str | None = None,
        ids: str | builtins.list[str] | None = None,
        extra_keys: builtins.list[str] | builtins.list[builtins.list[str]] | None = None,
        **scope: Unpack[Scope],
    ) -> RememberResult: ...

    def recall(
        self,
        query: str,
        *,
        k: int = 1,
        namespace: str | None = None,
        decode: bool = True,
        filter: Filter | None = None,
        **scope: Unpack[Scope],
    ) -> RecallResult: ...

    def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        namespace: str | None = None,
        max_new_tokens: int | None = None,
        filter: Filter | None = None,
        **scope: Unpack[Scope],
    ) -> AskResult: ...

    def forget(
        self, fact: str, *, namespace: str | None = None, filter: Filter | None = None,
        **scope: Unpack[Scope],
    ) -> builtins.list[Fact]: ...

    def forget_matching(
        self, description: str, *, namespace: str | None = None, threshold: float | None = None,
        margin: float | None = None, filter: Filter | None = None, **scope: Unpack[Scope],
    ) -> ForgetResult: ...

    def forget_about(
        self, description: str, *, namespace: str | None = None, threshold: float | None = None,
        limit: int = 50, filter: Filter | None = None, **scope: Unpack[Scope],
    ) -> ForgetResult: ...

    def list(
        self,
        *,
        namespace: str | None = None,
        filter: Filter | None = None,
        limit: int | None = None,
        offset: int = 0,
        **scope: Unpack[Scope],
    ) -> builtins.list[Fact]: ...

    def get(self, fact_id: str, *, namespace: str | None = None) -> Fact: ...

    def update(
        self, fact_id: str, text: str, *, namespace: str | None = None,
        metadata: Metadata | None = None,
    ) -> RememberResult: ...

    def history(self, fact_id: str, *, namespace: str | None = None
                ) -> builtins.list[FactEvent]: ...

    def clear(
        self, *, namespace: str | None = None, filter: Filter | None = None,
        **scope: Unpack[Scope],
    ) -> int: ...

    def namespaces(self) -> builtins.list[str]: ...

    async def aremember(
        self, text: str | builtins.list[str] | None = None, **kwargs: Any
    ) -> RememberResult: ...

    async def arecall(self, query: str, **kwargs: Any) -> RecallResult: ...

    async def aask(self, question: str, **kwargs: Any) -> AskResult: ...

    async def aforget(self, fact: str, **kwargs: Any) -> builtins.list[Fact]: ...

    async def aforget_matching(self, description: str, **kwargs: Any) -> ForgetResult: ...

    async def aforget_about(self, description: str, **kwargs: Any) -> ForgetResult: ...

    async def alist(self, **kwargs: Any) -> builtins.list[Fact]: ...

    async def aget(self, fact_id: str, **kwargs: Any) -> Fact: ...

    async def aupdate(self, fact_id: str, text: str, **kwargs: Any) -> RememberResult: ...

    async def ahistory(self, fact_id: str, **kwargs: Any) -> builtins.list[FactEvent]: ...

    async def aclear(self, **kwargs: Any) -> int: ...


@runtime_checkable
class AsyncMemoryBackend(Protocol):
    """The same operations, each a coroutine (`AsyncLarimarClient`)."""

    @property
    def namespace(self) -> str: ...

    async def limits(self) -> MemoryLimits: ...

    async def remember(
        self, text: str | builtins.list[str] | None = None, **kwargs: Any
    ) -> RememberResult: ...

    async def recall(self, query: str, **kwargs: Any) -> RecallResult: ...

    async def ask(self, question: str, **kwargs: Any) -> AskResult: ...

    async def forget(self, fact: str, **kwargs: Any) -> builtins.list[Fact]: ...

    async def forget_matching(self, description: str, **kwargs: Any) -> ForgetResult: ...

    async def forget_about(self, description: str, **kwargs: Any) -> ForgetResult: ...

    async def list(self, **kwargs: Any) -> builtins.list[Fact]: ...

    async def get(self, fact_id: str, **kwargs: Any) -> Fact: ...

    async def update(self, fact_id: str, text: str, **kwargs: Any) -> RememberResult: ...

    async def history(self, fact_id: str, **kwargs: Any) -> builtins.list[FactEvent]: ...

    async def clear(self, **kwargs: Any) -> int: ...

    async def namespaces(self) -> builtins.list[str]: ...


def update_arguments(fact: Fact, text: Any, metadata: Metadata | None) -> dict[str, Any]:
    """How every backend's ``update(fact_id, text)`` rewrites a fact (mem0's update): one
    ``remember`` under the same id (an exact replacement: the old text is forgotten and purged),
    keeping its explicit key and its metadata unless ``metadata`` is given; its extra keys,
    which addressed the old text, are dropped."""
    if not isinstance(text, str):
        raise TextInputError(f"update takes one text (a string), got {type(text).__name__}")
    return {"ids": [fact.id], "key": fact.key if fact.key != fact.text else None,
            "metadata": [dict(fact.metadata) if metadata is None else metadata]}


def protocol_members(protocol: type = MemoryBackend) -> tuple[str, ...]:
    """The member names a backend must have to satisfy ``protocol``, sorted."""
    members = getattr(protocol, "__protocol_attrs__", None)  # Python >= 3.12
    if members is None:
        from typing import _get_protocol_attrs  # type: ignore[attr-defined]

        members = _get_protocol_attrs(protocol)
    return tuple(sorted(members))


def missing_members(obj: object, protocol: type = MemoryBackend) -> list[str]:
    """What ``obj`` lacks of ``protocol`` (for error messages that say what is wrong)."""
    return [name for name in protocol_members(protocol) if not hasattr(obj, name)]
