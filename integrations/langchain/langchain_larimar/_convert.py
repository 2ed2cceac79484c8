"""Small pure conversions between LangChain values and the core's results. No memory logic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.prompt_values import PromptValue
from larimar_memory.routing import choose_route
from larimar_memory.types import RecallHit, RecallResult

ContextSource = Literal["decoded", "stored", "both"]
"""Which text of each recalled fact (`RecallHit`) to show:

* ``"decoded"`` (the default): `RecallHit.text`, the fact read back from the memory rows the query
  addressed, i.e. what the memory itself holds. With token-code latents this is exact for the
  packaged model and costs no LM generation (the rows' codes are snapped back to tokens), so it
  is both the faithful and the fast choice.
* ``"stored"``: `RecallHit.fact.text`, the fact log's copy of the fact (exact by construction;
  the recall is made with ``decode=False``, so nothing is read back).
* ``"both"``: the stored text, then the memory's text when it differs, on labelled lines.
"""


def message_text(message: BaseMessage) -> str:
    """The plain text of a message, whatever its content blocks."""
    return str(message.text)


def last_human_text(messages: Sequence[BaseMessage]) -> str | None:
    """Text of the latest human message, or None when there is none."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage) or message.type == "human":
            return message_text(message)
    return None


def query_text(value: Any, input_key: str, owner: str) -> str:
    """The user's question inside a Runnable input: a string, a message, a list of messages or
    a prompt value (the latest human message), or a mapping holding one of those at
    ``input_key``."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseMessage):
        return message_text(value)
    if isinstance(value, PromptValue):
        value = value.to_messages()
    if isinstance(value, Mapping):
        if input_key not in value:
            raise KeyError(
                f"{owner} got a mapping without the input key {input_key!r} (keys: "
                f"{sorted(map(str, value))}); set input_key= to the key that holds the question"
            )
        return query_text(value[input_key], input_key, owner)
    if isinstance(value, Sequence) and all(isinstance(m, BaseMessage) for m in value):
        text = last_human_text(value)
        if text is None:
            raise ValueError(f"{owner} got {len(value)} messages but none from the human")
        return text
    raise TypeError(
        f"{owner} takes a string, a message, a list of messages or a mapping with "
        f"{input_key!r}; got {type(value).__name__}"
    )


def hit_text(hit: RecallHit, source: ContextSource) -> str:
    """The text of one recalled fact chosen by ``source``."""
    stored = hit.fact.text
    if source == "stored":
        return stored
    if source == "decoded":
        return hit.text
    if not hit.text or hit.text == stored:
        return f"Stored fact: {stored}"
    return f"Stored fact: {stored}\nMemory readout: {hit.text}"


def recall_texts(recall: RecallResult, source: ContextSource) -> list[str]:
    """The text of each hit (best first), chosen by ``source``, whatever the scope decision;
    empty texts and repeats are dropped."""
    texts: list[str] = []
    for hit in recall.hits:
        text = hit_text(hit, source)
        if text and text not in texts:
            texts.append(text)
    return texts


def recall_text(recall: RecallResult, source: ContextSource) -> str:
    """The hits' texts, one per line, best first."""
    return "\n".join(recall_texts(recall, source))


def context_text(recall: RecallResult, source: ContextSource) -> str:
    """The memory context for a prompt: empty unless the scope decision calls the memory worth
    showing a model (`ScopeInfo.relevant`), else the text of each hit (best first), one per
    line."""
    return recall_text(recall, source) if recall.scope.relevant else ""


def hit_document(
    recall: RecallResult, hit: RecallHit, rank: int, source: ContextSource
) -> Document:
    """One `Document` per hit: the chosen text as content; the hit's score and rank, the fact
    and the query's scope decision in metadata."""
    fact = hit.fact
    return Document(
        page_content=hit_text(hit, source),
        id=fact.id,
        metadata={
            "source": "larimar",
            "query": recall.query,
            "score": hit.score,
            "rank": rank,
            "fact_id": fact.id,
            "fact_text": fact.text,
            "memory_text": hit.text,
            "fact_metadata": dict(fact.metadata),
            "created_at": fact.created_at,
            "namespace": fact.namespace,
            "scope_score": recall.scope.score,
            "in_scope": recall.scope.in_scope,
            "relevant": recall.scope.relevant,
            "scope_threshold": recall.scope.threshold,
            "route": choose_route(recall.query, bool(recall.scope.relevant)),
        },
    )


def recall_documents(recall: RecallResult, source: ContextSource) -> list[Document]:
    """One `Document` per hit, best first."""
    return [hit_document(recall, hit, i, source) for i, hit in enumerate(recall.hits)]
