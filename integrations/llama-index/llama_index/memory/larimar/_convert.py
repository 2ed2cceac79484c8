"""Small pure helpers turning Larimar results into LlamaIndex types and agent-readable text."""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.base.response.schema import Response
from llama_index.core.schema import NodeWithScore, TextNode

from larimar_memory.types import AskResult, Fact, RecallResult, RememberResult

from ._client import ContextSource, hit_text


def source_nodes(recall: RecallResult, source: ContextSource) -> list[NodeWithScore]:
    """One node per recalled fact, best first: its text (read back from the memory, or the
    stored copy), scored by the hit's score."""
    nodes: list[NodeWithScore] = []
    for rank, hit in enumerate(recall.hits):
        fact = hit.fact
        node = TextNode(
            text=hit_text(hit, source),
            metadata={
                "fact_id": fact.id,
                "fact_text": fact.text,
                "memory_text": hit.text,
                "namespace": fact.namespace,
                "rank": rank,
                "scope_score": recall.scope.score,
            },
        )
        node.id_ = fact.id
        nodes.append(NodeWithScore(node=node, score=hit.score))
    return nodes


def to_response(
    answer: AskResult, recall: RecallResult | None, source: ContextSource = "decoded"
) -> Response:
    """A LlamaIndex `Response`: the answer, the recalled facts as source nodes when the scope
    decision calls them relevant (`ScopeInfo.relevant`: always on the memory route; on the
    ``unknown`` route when a question about the user is near a stored fact of theirs, so an
    agent reading the sources still sees it), and the routing in metadata."""
    nodes = source_nodes(recall, source) if answer.scope.relevant and recall else []
    return Response(
        response=answer.answer,
        source_nodes=nodes,
        metadata={
            "route": answer.route,
            "scope_score": answer.scope.score,
            "in_scope": answer.scope.in_scope,
            "relevant": answer.scope.relevant,
            "scope_threshold": answer.scope.threshold,
            "fact_id": answer.fact.id if answer.fact else None,
            "fact_ids": [f.id for f in answer.facts],
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


def describe_recall(result: RecallResult, source: ContextSource = "decoded") -> str:
    """Scope-gated recall for the agent: the recalled facts (best first, with ids and scores)
    when the query is about stored facts, an explicit "nothing" otherwise (so it does not
    guess)."""
    scope = result.scope
    if not scope.relevant or not result.hits:
        return (
            f"Nothing in memory about this (scope score {scope.score:.2f} < threshold "
            f"{scope.threshold:.2f})."
        )
    lines = [
        f"- {hit_text(hit, source) or hit.fact.text} [fact id {hit.fact.id}; score {hit.score:.2f}]"
        for hit in result.hits
    ]
    return f"From memory (scope score {scope.score:.2f}):\n" + "\n".join(lines)


def describe_forgotten(facts: list[Fact]) -> str:
    noun = "fact" if len(facts) == 1 else "facts"
    return f"Forgot {len(facts)} {noun}: " + "; ".join(f"{f.text!r} (id {f.id})" for f in facts)
