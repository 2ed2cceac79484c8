"""Public result types of the service. Plain pydantic models: no tensors leave the service."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field, model_validator

from .routing import Route

DecoderWeights = Literal["int8", "float16", "float32", "onnx-int8"]
"""How `Larimar` stores its decoder's linear weights to decode (`larimar_memory.quantization`)."""

OWNER_FIELDS = ("speaker", "user_id", "agent_id", "run_id")
"""Metadata fields that say whose a fact is: replacements and duplicates never cross owners."""
SLOT_FIELD = "slot"
"""Metadata field naming what a fact is about ("residence", "my email"): a new fact with the
same slot from the same owner replaces the stored one (`larimar_memory.conversation` sets it)."""
CHANGE_FIELD = "changes"
"""Metadata field with the head noun of what a statement says has changed ("rate" for "the
rate is now 3.9 percent"): with no fact of the same slot, it replaces the one fact of the same
owner whose slot has that head (`larimar_memory.statements.slot_head`), if there is exactly one."""


class FactEvent(BaseModel):
    """One event of a fact's history (`Larimar.history`, mem0's ``history``). Events keep no
    text: a forgotten fact's history says when it was written and forgotten, never what it
    said (the purge guarantee)."""

    fact_id: str
    namespace: str
    event: Literal["written", "updated", "forgotten"] = Field(
        description="written; updated (the text replaced under the same id, e.g. by update() "
        "or a caller-chosen id); forgotten (by forget, a forget request or a replacement)"
    )
    version: int = Field(description="the namespace version of the change (0: before the "
                         "history was kept)")
    at: float = Field(description="seconds since the epoch")


class Fact(BaseModel):
    """A stored fact, as users see it."""

    id: str = Field(description="stable id, used to forget the fact")
    namespace: str
    text: str = Field(description="the fact as written")
    key: str = Field(description="the text that addresses the fact (the fact itself by default)")
    extra_keys: list[str] = Field(
        default_factory=list, description="further texts that address the fact"
    )
    rows: list[int] = Field(
        default_factory=list, description="memory rows that hold the fact (one per ≤47 tokens)"
    )
    created_at: float = Field(description="seconds since the epoch")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def slot(self) -> int:
        """The first memory row (kept for code written against single-row facts)."""
        return self.rows[0] if self.rows else -1


class ScopeInfo(BaseModel):
    """What the scope detector decided for a query."""

    score: float = Field(
        description="calibrated relevance of the best hit, in [0, 1] (larimar_memory.relevance)"
    )
    in_scope: bool = Field(description="score >= threshold, the calibration's operating point "
                           "(the paper's scope detector; what knowledge edits are judged by)")
    threshold: float = Field(description="the operating point of the calibration in use")
    relevant: bool | None = Field(
        None,
        description="memory worth answering from: in scope, or, for a question about the person "
        "who said the best hit, its score reaches the calibration's lower context point (a "
        "model can pass over a fact that does not answer; given nothing it cannot answer). "
        "Larimar.ask decodes from memory when this holds, and integrations that put memory in "
        "a prompt use it; None (an older server) reads as in_scope",
    )

    @model_validator(mode="after")
    def _relevant_when_in_scope(self) -> ScopeInfo:
        if self.relevant is None or self.in_scope:
            self.relevant = self.in_scope or bool(self.relevant)
        return self


class RecallHit(BaseModel):
    """One recalled fact: what the memory holds for it, and how well its key matched."""

    fact: Fact
    score: float = Field(
        description="calibrated relevance in [0, 1]: how likely the fact is what the query is "
        "about (hits are in fused-rank order, best first)"
    )
    text: str = Field("", description="the fact's text read back from the memory rows")
    evidence: dict[str, float] = Field(
        default_factory=dict,
        description="what the score was computed from: dense (best key cosine), lexical "
        "(share of the query's terms in the keys), agreement (fused rank), speaker (1: the "
        "query is about who said the fact), form (0: the query asks for a quantity the fact "
        "does not hold)",
    )


class RecallResult(BaseModel):
    """The k facts a query addresses, best first. The top-level fields describe the best one."""

    query: str
    text: str = Field("", description="the best hit's text read from the memory ('' if none)")
    scope: ScopeInfo
    fact: Fact | None = Field(None, description="the best hit's fact")
    weight: float = Field(0.0, description="the best hit's score")
    hits: list[RecallHit] = Field(default_factory=list, description="up to k hits, best first")


class AskResult(BaseModel):
    """An answer, with the route it took (`larimar_memory.routing`)."""

    question: str
    answer: str
    route: Route = Field(
        description="'memory': decoded conditioned on the readouts; 'plain': a general question, "
        "decoded with no memory; 'unknown': a question about the user with nothing relevant "
        "stored, answered that memory has nothing (never decoded, so nothing is invented)"
    )
    scope: ScopeInfo
    fact: Fact | None = Field(None, description="the best fact read (memory route only)")
    facts: list[Fact] = Field(
        default_factory=list, description="every fact whose readout conditioned the answer"
    )


WriteStatus = Literal["written", "replaced", "duplicate"]


class WriteOutcome(BaseModel):
    """What one input of a `remember` call did."""

    id: str = Field(description="the id that now holds this input")
    status: WriteStatus = Field(
        description="'written': a new fact; 'replaced': it took the place of `replaced` (same "
        "explicit key or id from the same owner); 'duplicate': the same text from the same owner "
        "was stored already as `id`, nothing was written"
    )
    replaced: Fact | None = None


class RememberResult(BaseModel):
    """One entry per input, in input order."""

    ids: list[str] = Field(description="one id per input, in input order")
    outcomes: list[WriteOutcome] = Field(default_factory=list, description="one per input")
    duplicate_request: bool = Field(
        False, description="True when the request id was seen before and nothing was written"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def replaced(self) -> list[Fact]:
        """Every fact a correction replaced."""
        return [o.replaced for o in self.outcomes if o.replaced is not None]


class Skipped(BaseModel):
    """A sentence of a message that stated nothing to store, and why."""

    text: str
    reason: str = Field(description="e.g. 'question', 'greeting', 'too long', 'forget request'")


class ForgetCandidate(BaseModel):
    fact: Fact
    score: float = Field(description="calibrated relevance of the fact to the description")


class ForgetResult(BaseModel):
    """What `forget_matching` / `forget_about` did: the facts removed, or (when no stored fact
    is clearly the one meant) nothing removed and the candidates, best first, so the caller can
    ask the user or forget by id."""

    description: str
    forgotten: list[Fact] = Field(default_factory=list)
    candidates: list[ForgetCandidate] = Field(default_factory=list)
    reason: str = Field("", description="why nothing was removed ('' when something was)")
    ambiguous: bool = Field(
        False, description="True when several facts matched about as well and none was removed"
    )

    def describe(self) -> str:
        """One reply for an agent: what was removed, or why nothing was and the candidates."""
        if self.forgotten:
            return "Forgot: " + "; ".join(f"{f.text} (id {f.id})" for f in self.forgotten) + "."
        text = f"Nothing forgotten for {self.description!r}: {self.reason}."
        if self.candidates:
            text += " Candidates (forget one by id, or ask the user which):" + "".join(
                f"\n- {c.fact.text} (id {c.fact.id}; relevance {c.score:.2f})"
                for c in self.candidates
            )
        return text


class ConversationResult(RememberResult):
    """What `remember(messages=...)` did: the facts written (``ids``/``outcomes``, in the order
    stated), the facts its forget requests removed, and every sentence it did not store."""

    forgotten: list[Fact] = Field(default_factory=list)
    ambiguous: list[ForgetResult] = Field(
        default_factory=list,
        description="forget requests that matched no fact clearly: nothing was deleted",
    )
    skipped: list[Skipped] = Field(default_factory=list)


class MemoryLimits(BaseModel):
    """What a memory accepts, so callers can split or refuse input before sending it."""

    max_fact_tokens: int = Field(description="decoder tokens one fact may have")
    max_text_chars: int = Field(description="characters one fact, key or query may have")
    max_key_chars: int = Field(description="characters an explicit key may have")
