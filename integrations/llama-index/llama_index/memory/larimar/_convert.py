"""Small pure helpers turning Larimar results into LlamaIndex types and agent-readable text."""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.base.response.schema import Response
from llama_index.core.schema import NodeWithScore, TextNode

from larimar_memory.types import AskResult, Fact, RecallResult, RememberResult


def source_node(answer: AskResult, recall: RecallResult | None) -> NodeWithScore | None:
    """The memory behind a memory-routed answer: the decoded readout (or, without a recall, the
    addressed fact's stored text), scored by the scope detector's cosine."""
    fact = recall.fact if recall is not None else answer.fact
    if recall is not None:
        text = recall.text
    elif fact is not None:
        text = fact.text
    else:
        return None
    metadata = {
        "fact_id": fact.id if fact else None,
        "fact_text": fact.text if fact else None,
        "route": answer.route,
        "scope_score": answer.scope.score,
    }
    node = TextNode(text=text, metadata=metadata)
    if fact is not None:
        node.id_ = fact.id
    return NodeWithScore(node=node, score=answer.scope.score)


def to_response(answer: AskResult, recall: RecallResult | None) -> Response:
    """A LlamaIndex `Response`: the answer, the memory as source node when the scope detector
    routed to memory (none when it answered plainly), and the routing in ``metadata``."""
    node = source_node(answer, recall) if answer.route == "memory" else None
    return Response(
        response=answer.answer,
        source_nodes=[node] if node is not None else [],
        metadata={
            "route": answer.route,
            "scope_score": answer.scope.score,
            "in_scope": answer.scope.in_scope,
            "scope_threshold": answer.scope.threshold,
            "fact_id": answer.fact.id if answer.fact else None,
        },
    )


def latest_user_text(messages: Sequence[ChatMessage] | None) -> str:
    """Text of the last user message ("" when there is none): what the conversation is about
    now, so what to recall."""
    for message in reversed(messages or []):
        if message.role == MessageRole.USER:
            return (message.content or "").strip()
    return ""


def describe_remembered(result: RememberResult, texts: list[str]) -> str:
    """Tell the agent what was written, and which earlier facts a correction replaced."""
    if result.duplicate_request:
        return f"Already remembered (ids {', '.join(result.ids)}); nothing new was written."
    noun = "fact" if len(result.ids) == 1 else "facts"
    ids = ", ".join(result.ids)
    parts = [f"Remembered {len(result.ids)} {noun}: {'; '.join(texts)} (ids {ids})."]
    parts += [f"It replaced the earlier fact {f.text!r} (id {f.id})." for f in result.replaced]
    return " ".join(parts)


def describe_recall(result: RecallResult) -> str:
    """Scope-gated recall for the agent: the addressed fact and the memory readout when the
    query is about stored facts, an explicit "nothing" otherwise (so it does not guess)."""
    scope = result.scope
    if not scope.in_scope or result.fact is None:
        return (
            f"Nothing in memory about this (scope score {scope.score:.2f} < threshold "
            f"{scope.threshold:.2f})."
        )
    return (
        f"From memory (scope score {scope.score:.2f}): {result.fact.text} "
        f"[fact id {result.fact.id}; memory readout: {result.text!r}]"
    )


def describe_forgotten(facts: list[Fact]) -> str:
    noun = "fact" if len(facts) == 1 else "facts"
    return f"Forgot {len(facts)} {noun}: " + "; ".join(f"{f.text!r} (id {f.id})" for f in facts)
