"""What every component is bound to, declared once: a `MemoryBackend`, a namespace, k, and which
text of a recalled fact to show.

The components talk to the memory only through `larimar_memory.protocol.MemoryBackend`, so the
in-process `Larimar` and the remote `LarimarClient` plug in alike, without this package
importing the server. `LarimarBinding` holds the binding for the pydantic components
(`LarimarMemoryBlock`, `LarimarQueryEngine`); `LarimarToolSpec` keeps one as ``spec.binding``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from llama_index.core.bridge.pydantic import BaseModel, Field, PrivateAttr
from llama_index.core.vector_stores.types import MetadataFilters

from larimar_memory.protocol import MemoryBackend, missing_members
from larimar_memory.scoping import SCOPE_FIELDS, ScopedMemory
from larimar_memory.types import RecallHit, RecallResult

from ._filters import larimar_filter

ContextSource = Literal["decoded", "stored"]
"""Which text of a recalled fact (`RecallHit`) components show:

* ``"decoded"`` (default): `RecallHit.text`, the fact read back from the memory rows, i.e. what
  the memory itself holds. Exact for the packaged model, and fast: the rows' token codes are
  snapped back to tokens, no LM generation.
* ``"stored"``: `RecallHit.fact.text`, the fact log's copy (recall with ``decode=False``).
"""




def check_larimar(larimar: object, owner: str) -> MemoryBackend:
    """Return ``larimar`` if it is a `MemoryBackend`, else raise a TypeError naming what is
    missing (a wrong object would otherwise fail deep inside an agent run)."""
    if isinstance(larimar, MemoryBackend):
        return larimar
    missing = missing_members(larimar)
    raise TypeError(
        f"{owner} needs a Larimar (a larimar_memory.protocol.MemoryBackend: "
        f"larimar_memory.service.Larimar or LarimarClient), but got {type(larimar).__name__} "
        f"without {', '.join(missing) or 'the protocol'}; pass larimar=Larimar(...) or use "
        f"{owner}.from_defaults()"
    )


def default_larimar(larimar: MemoryBackend | None, store: str | Path | None) -> MemoryBackend:
    """``larimar`` itself, or a `Larimar` on the packaged models with its fact log at ``store``
    (None: the user data dir). Building one loads the models: seconds, longer the first time."""
    if larimar is not None:
        if store is not None:
            raise ValueError(
                f"pass either larimar=... or store=... (got both, store={str(store)!r}); the "
                "store belongs to the Larimar, so give it to Larimar(store=...)"
            )
        return larimar
    from larimar_memory import Larimar  # a clear error when the model stack is missing

    return Larimar(store=store)


def hit_text(hit: RecallHit, source: ContextSource) -> str:
    return hit.fact.text if source == "stored" else hit.text


def hit_texts(recall: RecallResult, source: ContextSource) -> list[str]:
    """The text of each hit, best first, without empty texts or repeats."""
    texts: list[str] = []
    for hit in recall.hits:
        text = hit_text(hit, source)
        if text and text not in texts:
            texts.append(text)
    return texts


class LarimarBinding(BaseModel):
    """The binding of a component: the memory (private), namespace, k and context source."""

    namespace: str | None = Field(
        default=None, description="Larimar namespace; None: the Larimar's own namespace."
    )
    k: int = Field(default=3, ge=1, description="Facts recalled per query (top-k, best first).")
    context_source: ContextSource = Field(
        default="decoded",
        description="'decoded': each fact read back from the memory (exact for the packaged "
        "model, no LM generation); 'stored': the fact log's copy.",
    )

    filters: MetadataFilters | None = Field(
        default=None,
        description="LlamaIndex metadata filters on the facts' metadata, run by the memory "
        "(operators == != > >= < <= in nin; and, or, not)",
    )

    user_id: str | None = Field(
        default=None, description="mem0's scoping: only this user's facts are read or "
        "forgotten, and every fact written carries it (larimar_memory.scoping)",
    )
    agent_id: str | None = Field(default=None, description="Scope: only this agent's facts.")
    run_id: str | None = Field(default=None, description="Scope: only this run's facts.")

    _larimar: MemoryBackend = PrivateAttr()

    def __init__(self, larimar: MemoryBackend, **data: Any) -> None:
        super().__init__(**data)
        memory = check_larimar(larimar, type(self).__name__)
        scope = {f: getattr(self, f) for f in SCOPE_FIELDS if getattr(self, f) is not None}
        self._larimar = ScopedMemory(memory, **scope) if scope else memory  # type: ignore[assignment]

    @classmethod
    def from_defaults(
        cls, larimar: MemoryBackend | None = None, *, store: str | Path | None = None, **data: Any
    ) -> Any:
        """A component on ``larimar``, or on a `Larimar` with the packaged models at ``store``."""
        return cls(larimar=default_larimar(larimar, store), **data)

    @property
    def larimar(self) -> MemoryBackend:
        return self._larimar

    def recall_kwargs(self, namespace: str | None = None) -> dict[str, Any]:
        """Keyword arguments of ``recall`` (``namespace`` overrides the bound one)."""
        return {
            "k": self.k,
            "namespace": namespace if namespace is not None else self.namespace,
            "decode": self.context_source != "stored",
            "filter": larimar_filter(self.filters),
        }
