"""`LarimarToolSpec`: remember / recall / forget as agent tools (sync and async).

The docstrings of the tool methods are what the LLM reads to choose a tool; the return values are
plain sentences the LLM can quote. Unexpected errors propagate (agents report them to the LLM as
tool errors); "nothing matched" is an ordinary answer, not an error.
"""

# No ``from __future__ import annotations``: the tool descriptions the LLM reads are built from
# these signatures, and should say ``fact: str``, not ``fact: 'str'``.
from pathlib import Path
from typing import Any

from llama_index.core.tools.tool_spec.base import SPEC_FUNCTION_TYPE, BaseToolSpec

from larimar_memory.conversation import statement_metadata
from larimar_memory.errors import FactNotFoundError
from larimar_memory.protocol import MemoryBackend
from larimar_memory.types import Fact, ForgetResult

from ._client import ContextSource, LarimarBinding, default_larimar
from ._convert import describe_forgotten, describe_recall, describe_remembered


class LarimarToolSpec(BaseToolSpec):
    """Agent tools over Larimar episodic memory.

    Setup:
        ``pip install -e integrations/llama-index`` (with ``larimar-memory``)
    Instantiate:
        ``spec = LarimarToolSpec(Larimar(store="facts.sqlite3"), namespace="alice")``
    Use:
        ``FunctionAgent(tools=spec.to_tool_list(), llm=llm)``: tools ``remember``, ``recall``
        and ``forget``, each with a sync and an async implementation.
    """

    spec_functions: list[SPEC_FUNCTION_TYPE] = [
        ("remember", "aremember"),
        ("recall", "arecall"),
        ("forget", "aforget"),
        ("forget_everything_about", "aforget_everything_about"),
    ]

    def __init__(
        self,
        larimar: MemoryBackend,
        namespace: str | None = None,
        k: int = 3,
        context_source: ContextSource = "decoded",
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """``user_id`` / ``agent_id`` / ``run_id``: mem0's scoping, for every tool."""
        self.binding = LarimarBinding(
            larimar, namespace=namespace, k=k, context_source=context_source, user_id=user_id,
            agent_id=agent_id, run_id=run_id,
        )

    @classmethod
    def from_defaults(
        cls,
        larimar: MemoryBackend | None = None,
        *,
        store: str | Path | None = None,
        **kwargs: Any,
    ) -> "LarimarToolSpec":
        """Tools on ``larimar``, or on a `Larimar` with the packaged models at ``store``."""
        return cls(default_larimar(larimar, store), **kwargs)

    @property
    def larimar(self) -> MemoryBackend:
        return self.binding.larimar

    @property
    def namespace(self) -> str | None:
        return self.binding.namespace

    @property
    def _larimar(self) -> MemoryBackend:
        return self.binding.larimar

    def remember(self, fact: str, corrects: bool = False) -> str:
        """Store a fact in long-term memory at once. Use it for lasting facts the user states
        (names, preferences, plans). A fact that restates a stored one replaces it.

        Args:
            fact (str): one short self-contained sentence, e.g. "Alice's favourite colour is green."
            corrects (bool): true when the fact updates one stored before (the user moved, a
                date changed): the old fact about the same thing is replaced.
        """
        # The speaker and slot observe gives a stated fact, so a correction through either
        # path replaces the other's fact instead of keeping both.
        result = self._larimar.remember(fact, metadata=statement_metadata(fact, corrects=corrects),
                                        namespace=self.namespace)
        return describe_remembered(result, [fact])

    async def aremember(self, fact: str, corrects: bool = False) -> str:
        """Async `remember`."""
        result = await self._larimar.aremember(
            fact, metadata=statement_metadata(fact, corrects=corrects), namespace=self.namespace)
        return describe_remembered(result, [fact])

    def recall(self, query: str) -> str:
        """Look up long-term memory. Returns the stored facts the query is about, best first,
        with their ids, or says that memory holds nothing about it (then do not guess from
        memory).

        Args:
            query (str): a question or topic, e.g. "What is Alice's favourite colour?"
        """
        result = self._larimar.recall(query, **self.binding.recall_kwargs())
        return describe_recall(result, self.binding.context_source)

    async def arecall(self, query: str) -> str:
        """Async `recall`."""
        result = await self._larimar.arecall(query, **self.binding.recall_kwargs())
        return describe_recall(result, self.binding.context_source)

    def forget(self, fact: str) -> str:
        """Remove a fact from long-term memory for good, e.g. when the user asks to forget it.

        Args:
            fact (str): the fact's id or exact text, or a description ("Alice's favourite colour")
        """
        try:
            return describe_forgotten(self._larimar.forget(fact, namespace=self.namespace))
        except FactNotFoundError:
            pass  # not an id or exact text: resolve it as a description
        return _describe(self._larimar.forget_matching(fact, namespace=self.namespace))

    async def aforget(self, fact: str) -> str:
        """Async `forget`."""
        try:
            removed: list[Fact] = await self._larimar.aforget(fact, namespace=self.namespace)
            return describe_forgotten(removed)
        except FactNotFoundError:
            pass
        return _describe(await self._larimar.aforget_matching(fact, namespace=self.namespace))

    def forget_everything_about(self, topic: str) -> str:
        """Remove every stored fact about a topic, when the user asks to forget everything
        about it ("forget everything about my sister").

        Args:
            topic (str): what to forget everything about, e.g. "my sister"
        """
        return _describe(self._larimar.forget_about(topic, namespace=self.namespace))

    async def aforget_everything_about(self, topic: str) -> str:
        """Async `forget_everything_about`."""
        return _describe(await self._larimar.aforget_about(topic, namespace=self.namespace))


def _describe(result: ForgetResult) -> str:
    """The forgotten facts as the other replies list them, or why nothing was and the
    candidates to choose from."""
    return describe_forgotten(result.forgotten) if result.forgotten else result.describe()
