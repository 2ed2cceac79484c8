"""What every component is bound to: a `MemoryBackend`, a namespace, what text to show, and k.

The components talk to the memory only through `larimar_memory.protocol.MemoryBackend`, so the
in-process `Larimar` and the remote `LarimarClient` plug in alike and this package never imports
the server. `LarimarBinding` declares the binding once (the memory, its namespace, the per-call
namespace rule) and `RecallBinding` adds what a reading component shows (``context_source``,
``k``); `LarimarMemory`, `LarimarRetriever`, `LarimarToolkit`, the tools and `ChatLarimar` all
inherit them instead of repeating the fields.

Components built without a memory share a single embedded `Larimar()` per process, created on
first use: loading the packaged models takes seconds, so constructing a component stays free
(LangChain builds models and tools eagerly, e.g. in `init_chat_model` or standard tests).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from larimar_memory.protocol import MemoryBackend, missing_members
from larimar_memory.scoping import SCOPE_FIELDS, Scope, ScopedMemory
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._convert import ContextSource
from ._namespace import resolve_namespace


def check_larimar(larimar: Any, owner: str) -> MemoryBackend | None:
    """``larimar`` if it is None or a `MemoryBackend`, else a TypeError naming what is missing
    (a wrong object would otherwise fail deep inside an agent run)."""
    if larimar is None or isinstance(larimar, MemoryBackend):
        return larimar
    missing = missing_members(larimar)
    raise TypeError(
        f"{owner} needs a larimar_memory MemoryBackend (larimar_memory.service.Larimar, or a "
        f"client implementing larimar_memory.protocol.MemoryBackend), but got "
        f"{type(larimar).__name__} without {', '.join(missing) or 'the protocol'}; pass "
        f"larimar=Larimar(...), or nothing to use the embedded default"
    )


_default: MemoryBackend | None = None
_default_lock = threading.Lock()


def default_larimar() -> MemoryBackend:
    """The process-wide embedded `Larimar()` (packaged models, fact log in the user data dir),
    created on first call and shared by every component built without ``larimar=``."""
    global _default
    with _default_lock:
        if _default is None:
            from larimar_memory import Larimar  # a clear error when the model stack is missing

            _default = Larimar()
        return _default


class LarimarBinding(BaseModel):
    """The memory a component is bound to and the namespace it uses; declared once here."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    larimar: Any = Field(
        default=None,
        exclude=True,
        description="a larimar_memory MemoryBackend (Larimar or LarimarClient); None: the shared "
        "embedded Larimar(), created on first use",
    )
    namespace: str | None = Field(
        default=None,
        description="memory namespace; None: resolved per call from the config (user_id, then "
        "thread_id), else the memory's own",
    )
    user_id: str | None = Field(
        default=None, description="mem0's scoping: only this user's facts are read or "
        "forgotten, and every fact written carries it (larimar_memory.scoping)",
    )
    agent_id: str | None = Field(default=None, description="scope: only this agent's facts")
    run_id: str | None = Field(default=None, description="scope: only this run's facts")

    @field_validator("larimar")
    @classmethod
    def _check_larimar(cls, value: Any) -> Any:
        return check_larimar(value, cls.__name__)

    @property
    def scope(self) -> Scope:
        """The scope ids this component was given (mem0's ``user_id`` …)."""
        return {f: getattr(self, f) for f in SCOPE_FIELDS  # type: ignore[return-value]
                if getattr(self, f) is not None}

    @property
    def client(self) -> MemoryBackend:
        """The memory this component uses (the shared embedded one when none was given),
        seen through the component's scope when it has one."""
        memory = self.larimar if self.larimar is not None else default_larimar()
        scope = self.scope
        return ScopedMemory(memory, **scope) if scope else memory  # type: ignore[return-value]

    def namespace_for(
        self, config: Mapping[str, Any] | None = None, *, runtime: Any = None
    ) -> str | None:
        """The namespace a call with ``config`` (and LangGraph ``runtime``) uses; None: the
        memory's default. See ``langchain_larimar._namespace``."""
        return resolve_namespace(self.namespace, config, runtime=runtime)


class RecallBinding(LarimarBinding):
    """A binding that reads: how many facts to recall and which of their texts to show."""

    k: int = Field(default=3, ge=1, description="facts recalled per query (top-k, best first)")
    context_source: ContextSource = Field(
        default="decoded",
        description="'decoded' (default): each hit's text read back from the memory rows "
        "(exact for the packaged model, no LM generation); 'stored': the fact log's copy; "
        "'both'. See langchain_larimar.ContextSource",
    )

    @property
    def needs_decoding(self) -> bool:
        """Whether the shown text is read back from the memory (``decode=True``)."""
        return self.context_source != "stored"

    def recall_kwargs(
        self, config: Mapping[str, Any] | None = None, *, runtime: Any = None
    ) -> dict[str, Any]:
        """The keyword arguments of ``recall`` for a call with ``config``."""
        return {
            "k": self.k,
            "namespace": self.namespace_for(config, runtime=runtime),
            "decode": self.needs_decoding,
        }
