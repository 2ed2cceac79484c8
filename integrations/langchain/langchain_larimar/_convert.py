"""Small pure conversions between LangChain values and the core's results. No memory logic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.prompt_values import PromptValue
from larimar_memory.types import RecallResult

ContextSource = Literal["decoded", "stored", "both"]
"""Which text of a recall to show:

* ``"decoded"``: `RecallResult.text`, the memory readout decoded by the memory-conditioned
  decoder, i.e. what the memory itself returns. Only as faithful as the checkpoint (the
  packaged ``larimar-smol`` reads short facts back exactly).
* ``"stored"``: `RecallResult.fact.text`, the fact-log text of the slot the query addressed most
  strongly (exact, but it is the log's copy, not the memory's readout).
* ``"both"``: the stored text, then the decoded readout, on labelled lines.
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


def recall_text(recall: RecallResult, source: ContextSource) -> str:
    """The text of a recall chosen by ``source``, whatever the scope decision."""
    stored = recall.fact.text if recall.fact is not None else ""
    if source == "stored":
        return stored
    if source == "decoded":
        return recall.text
    lines = [f"Stored fact: {stored}" if stored else "", f"Memory readout: {recall.text}"]
    return "\n".join(line for line in lines if line)


def context_text(recall: RecallResult, source: ContextSource) -> str:
    """The memory context for a prompt: empty when the scope detector says the query is not
    about stored facts, else the text chosen by ``source``."""
    return recall_text(recall, source) if recall.scope.in_scope else ""


def recall_document(recall: RecallResult, source: ContextSource, namespace: str | None) -> Document:
    """One `Document` for a recall: the chosen text as content, the scope decision, route and
    addressed fact in metadata."""
    fact = recall.fact
    return Document(
        page_content=recall_text(recall, source),
        id=fact.id if fact is not None else None,
        metadata={
            "source": "larimar",
            "query": recall.query,
            "decoded_text": recall.text,
            "scope_score": recall.scope.score,
            "in_scope": recall.scope.in_scope,
            "scope_threshold": recall.scope.threshold,
            "route": "memory" if recall.scope.in_scope else "plain",
            "fact_id": fact.id if fact is not None else None,
            "fact_text": fact.text if fact is not None else None,
            "weight": recall.weight,
            "namespace": fact.namespace if fact is not None else namespace,
        },
    )
