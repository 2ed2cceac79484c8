"""`LarimarMemoryBlock`: Larimar episodic memory as a block of LlamaIndex's `Memory`.

The block writes user messages one-shot into Larimar through
`larimar_memory.conversation.observe` (stated facts written, "forget …" requests honoured):
eagerly, as soon as it reads the latest user message (an agent reads memory right after putting
the message), and otherwise when `Memory` flushes the message out of its short-term queue. Its
``aget`` recalls, for each sentence of the latest user message, the ``k`` facts the scope
detector finds in scope, as read back from the memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory.memory import BaseMemoryBlock

from larimar_memory.conversation import (
    extract_facts,
    observe,
    parse_forget_request,
    statement_metadata,
)
from larimar_memory.errors import LarimarError
from larimar_memory.sentences import split_sentences
from larimar_memory.types import RecallResult

from ._client import LarimarBinding, hit_texts
from ._convert import latest_user_text

logger = logging.getLogger(__name__)


class LarimarMemoryBlock(LarimarBinding, BaseMemoryBlock[str]):
    """Long-term memory for a LlamaIndex `Memory`, kept in Larimar.

    Setup:
        ``pip install -e integrations/llama-index`` (with ``larimar-memory``)
    Instantiate:
        ``block = LarimarMemoryBlock(larimar=Larimar(store="facts.sqlite3"), k=3)``
        ``memory = Memory.from_defaults(session_id="alice", memory_blocks=[block])``
    Use:
        ``FunctionAgent(..., ).run("What is my sister called?", memory=memory)``: the facts a user
        states are written when the block first reads their message (eager mode, the default;
        an agent reads memory right after putting the message), into namespace ``"alice"``.
    """

    name: str = Field(default="larimar_memory", description="Name of the block in the prompt.")
    description: str | None = Field(
        default="Facts recalled from Larimar episodic memory for the latest user message.",
        description="What the block holds.",
    )
    namespace: str | None = Field(
        default=None,
        description=(
            "Larimar namespace for every session. None: one namespace per Memory session_id "
            "(Memory passes it to blocks), or the Larimar's own namespace when none is given."
        ),
    )
    assistant_facts: bool = Field(
        default=False,
        description=(
            "Also write the statements of flushed assistant messages. Off by default: they mostly "
            "repeat the user or the memory itself, and would overwrite the user's own wording."
        ),
    )
    eager: bool = Field(
        default=True,
        description=(
            "Apply the latest user message (its facts and 'forget …' requests) as soon as the "
            "block reads it, so a fact is kept even if the process ends before Memory flushes "
            "the message, and a forgotten fact never reaches the prompt again. False: only "
            "messages flushed out of Memory's short-term queue are written."
        ),
    )

    # (namespace, message text) of user messages applied eagerly and not yet flushed: the flush
    # skips them, so one message is applied once (a forget request applied twice would forget a
    # second, different fact).
    _applied: set[tuple[str | None, str]] = PrivateAttr(default_factory=set)

    def namespace_for(self, session_id: str | None) -> str | None:
        """The Larimar namespace of a session (None: the Larimar's default namespace)."""
        return self.namespace if self.namespace is not None else session_id

    # -- reading -------------------------------------------------------------------------------

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        """The ``k`` facts recalled for each sentence of the latest user message, when relevant
        (`ScopeInfo.relevant`), one ``- fact`` line each ("" if none)."""
        query = latest_user_text(messages)
        if not query:
            return ""
        namespace = self.namespace_for(block_kwargs.get("session_id"))
        if self.eager and (namespace, query) not in self._applied:
            self._applied.add((namespace, query))
            await asyncio.to_thread(self._observe, query, namespace)
        lines: list[str] = []
        for sentence in split_sentences(query) or [query]:
            if parse_forget_request(sentence) is not None:
                continue
            result = await self._recall(sentence, namespace)
            if not result.scope.relevant:
                continue
            lines += [line for line in hit_texts(result, self.context_source) if line not in lines]
        return "\n".join(f"- {line}" for line in lines)

    async def _recall(self, sentence: str, namespace: str | None) -> RecallResult:
        # One top-k recall per sentence: O(k), never a listing of the namespace.
        return await self._larimar.arecall(sentence, **self.recall_kwargs(namespace))

    # -- writing -------------------------------------------------------------------------------

    async def _aput(self, messages: list[ChatMessage]) -> None:
        """Write flushed messages in order (order matters: a later "forget" undoes an earlier
        statement), skipping user messages already applied eagerly. ``Memory`` puts the session
        id into each message's additional_kwargs."""
        for message in messages:
            text = (message.content or "").strip()
            if not text:
                continue
            namespace = self.namespace_for(message.additional_kwargs.get("session_id"))
            if message.role == MessageRole.USER:
                if (namespace, text) in self._applied:
                    self._applied.discard((namespace, text))
                    continue
                await asyncio.to_thread(self._observe, text, namespace)
            elif message.role == MessageRole.ASSISTANT and self.assistant_facts:
                await asyncio.to_thread(self._remember_each, extract_facts(text), namespace)

    def _observe(self, text: str, namespace: str | None) -> None:
        try:
            turn = observe(self._larimar, text, namespace=namespace,  # type: ignore[arg-type]
                           metadata={"speaker": "user"})
        except LarimarError as exc:
            # One unstorable sentence (e.g. too long) must not lose the message's other facts,
            # nor break the conversation: write the facts one by one instead.
            logger.warning("writing a message in one batch failed (%s); writing facts singly", exc)
            self._remember_each(extract_facts(text), namespace)
            return
        logger.debug(
            "observed message: %d written, %d forgotten", len(turn.remembered), len(turn.forgotten)
        )

    def _remember_each(self, facts: list[str], namespace: str | None) -> None:
        for fact in facts:
            try:
                # the speaker and slot observe would give it, so a correction replaces it
                self._larimar.remember(fact, metadata=statement_metadata(fact, "assistant"),
                                       namespace=namespace)
            except LarimarError as exc:
                logger.warning("skipped fact %r: %s", fact[:80], exc)
