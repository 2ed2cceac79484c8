"""Public result types of the service. Plain pydantic models: no tensors leave the service."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Fact(BaseModel):
    """A stored fact, as users see it."""

    id: str = Field(description="stable id, used to forget the fact")
    namespace: str
    text: str = Field(description="the fact as written")
    key: str = Field(description="the text that addresses the fact (the fact itself by default)")
    slot: int = Field(description="memory row the fact is written to")
    created_at: float = Field(description="seconds since the epoch")
    metadata: dict[str, Any] = Field(default_factory=dict)


class ScopeInfo(BaseModel):
    """What the scope detector decided for a query."""

    score: float = Field(description="max cosine of the query (or its sentences) to stored keys")
    in_scope: bool
    threshold: float


class RecallResult(BaseModel):
    """The memory readout for a query, decoded to text."""

    query: str
    text: str = Field(description="the memory readout decoded by the memory-conditioned decoder")
    scope: ScopeInfo
    fact: Fact | None = Field(
        None, description="the stored fact whose slot the query addressed most strongly"
    )
    weight: float = Field(0.0, description="addressing weight on that fact's slot (0..1)")


class AskResult(BaseModel):
    """An answer, with the route the scope detector chose."""

    question: str
    answer: str
    route: Literal["memory", "plain"] = Field(
        description="'memory': decoded conditioned on the readout; 'plain': no memory"
    )
    scope: ScopeInfo
    fact: Fact | None = None


class RememberResult(BaseModel):
    """Ids written by one remember call, and the facts a correction replaced."""

    ids: list[str]
    replaced: list[Fact] = Field(default_factory=list)
    duplicate_request: bool = Field(
        False, description="True when the request id was seen before and nothing was written"
    )
