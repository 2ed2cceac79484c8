"""`LarimarMiddleware`: Larimar memory for agents built with ``langchain.agents.create_agent``.

Before every model call (``wrap_model_call``) it recalls the ``k`` facts the memory holds about
the latest human message and, when the scope detector says that message is about stored facts,
appends them (best first, one per line) to the system message. The context rides on the request
only, so it never piles up in the conversation state. When the agent has answered
(``after_agent``) it applies the latest human message to the memory once: facts stated are
written, "forget …" requests honoured, with no LLM call. Writing at the end of the turn matters
for agents that also have the memory tools: the model's own ``remember``/``forget`` calls run
first, and the middleware's pass then finds the request already honoured instead of racing the
tool (the turn's own message is in the conversation anyway; memory is for the turns after it).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
)
from langchain_core.messages import BaseMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.runtime import Runtime
from larimar_memory.conversation import TurnResult, observe
from larimar_memory.scoping import Scope
from larimar_memory.types import RecallResult
from typing_extensions import NotRequired, Unpack

from ._convert import ContextSource, context_text, message_text
from .memory import LarimarMemory

DEFAULT_CONTEXT_TEMPLATE = (
    "Relevant facts from long-term memory (Larimar) about this conversation's user:\n{context}"
)


class LarimarState(AgentState[Any]):
    """Agent state plus the marker of the last human message already applied to memory."""

    larimar_observed: NotRequired[Annotated[str, PrivateStateAttr]]


def _latest_human(messages: list[Any]) -> tuple[str, str, str] | None:
    """(marker, text, prompt) of the latest human message and of the AI message before it (the
    turn that prompted it, '' if none); the marker is its id, else a hash of its position and
    text, so one message is applied to memory once."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, BaseMessage) and message.type == "human":
            text = message_text(message)
            marker = message.id or hashlib.sha1(f"{index}:{text}".encode()).hexdigest()
            before = [m for m in messages[:index] if isinstance(m, BaseMessage)]
            prompt = message_text(before[-1]) if before and before[-1].type == "ai" else ""
            return marker, text, prompt
    return None


def _current_config() -> RunnableConfig | None:
    try:
        return get_config()
    except RuntimeError:  # outside a graph run (or async on Python 3.10): the runtime suffices
        return None


class LarimarMiddleware(AgentMiddleware[LarimarState, Any]):
    """Long-term memory for ``create_agent``: recalled facts in, stated facts out.

    Each model call gets the ``k`` facts recalled for the latest human message appended to its
    system message (only when the message is in scope). When the agent has answered, that human
    message is applied to the memory once: stated facts are written one-shot and "forget …"
    requests are honoured, with no LLM call; the next turn sees the change. Sync and async
    agents are both supported. With the memory tools in the same agent, a fact the user states
    and the model also stores with ``remember`` in other words may be kept twice; pass
    ``observe_messages=False`` to leave all writing to the model.

    Namespace rule (per call): the ``namespace`` given here, else ``user_id`` from the runtime
    context (``"user:<id>"``), else ``config["configurable"]["user_id"]``, else the thread id
    (``"thread:<id>"``), else the Larimar's default namespace.

    Setup:
        ``pip install langchain-larimar``

    Instantiate:
        .. code-block:: python

            from langchain.agents import create_agent
            from langchain_larimar import LarimarMiddleware, LarimarToolkit

            middleware = LarimarMiddleware()  # shared embedded Larimar(), created on first use
            agent = create_agent(llm, tools=LarimarToolkit().get_tools(), middleware=[middleware])

    Use:
        .. code-block:: python

            config = {"configurable": {"thread_id": "t1", "user_id": "alice"}}
            agent.invoke({"messages": [("user", "My sister is called Ana.")]}, config)
            agent.invoke({"messages": [("user", "What is my sister called?")]}, config)
            # the second turn's model call saw "My sister is called Ana." in its system message
    """

    state_schema = LarimarState

    def __init__(
        self,
        larimar: Any = None,
        *,
        memory: LarimarMemory | None = None,
        namespace: str | None = None,
        context_source: ContextSource | None = None,
        k: int | None = None,
        inject_context: bool = True,
        observe_messages: bool = True,
        context_template: str = DEFAULT_CONTEXT_TEMPLATE,
        forget_tools: tuple[str, ...] = ("forget",),
        **scope: Unpack[Scope],
    ) -> None:
        """``memory`` shares a `LarimarMemory`'s binding (memory, namespace, context source,
        k); otherwise one is built from ``larimar``/``namespace``/``context_source``/``k``.
        ``forget_tools``: names of the agent's forget tools; a turn in which one ran leaves
        its forget requests to the model (one owner: a request is never applied twice).
        ``user_id`` / ``agent_id`` / ``run_id``: mem0's scoping of every read and write."""
        super().__init__()
        parts = {"larimar": larimar, "namespace": namespace, "context_source": context_source,
                 "k": k, **scope}
        given = {name: value for name, value in parts.items() if value is not None}
        if memory is not None and given:
            raise ValueError(
                "Only one of 'memory' and 'larimar'/'namespace'/'context_source'/'k'/scope is "
                "allowed, "
                "but got both: configure the LarimarMemory, or pass the parts without memory="
            )
        if "{context}" not in context_template:
            raise ValueError(
                f"context_template must contain '{{context}}', got {context_template!r}"
            )
        self.memory = memory or LarimarMemory(**given)
        self.inject_context = inject_context
        self.observe_messages = observe_messages
        self.context_template = context_template
        self.forget_tools = frozenset(forget_tools)
        self.tools = []

    def namespace_for(self, runtime: Runtime[Any] | None) -> str | None:
        """The namespace of the current run, by the rule in the class docstring."""
        return self.memory.namespace_for(_current_config(), runtime=runtime)

    # -- before each model call: recalled facts into the system message --------------------------

    def _query(self, request: ModelRequest[Any]) -> str | None:
        """The latest human message, when context injection is on and there is one."""
        latest = _latest_human(request.messages) if self.inject_context else None
        return latest[1] if latest and latest[1].strip() else None

    def _with_recall(self, request: ModelRequest[Any], recall: RecallResult) -> ModelRequest[Any]:
        """The request with the recalled fact appended to its system message; unchanged when the
        scope detector says the message is not about stored facts."""
        context = context_text(recall, self.memory.context_source)
        if not context:
            return request
        block = self.context_template.format(context=context)
        system = request.system_message
        if system is None:
            return request.override(system_message=SystemMessage(content=block))
        if isinstance(system.content, str):
            content: Any = f"{system.content}\n\n{block}" if system.content else block
        else:
            content = [*system.content, {"type": "text", "text": block}]
        return request.override(system_message=SystemMessage(content=content))

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        query = self._query(request)
        if query is not None:
            kwargs = self.memory.recall_kwargs(_current_config(), runtime=request.runtime)
            request = self._with_recall(
                request, self.memory.client.recall(query, **kwargs)
            )
        return handler(request)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        query = self._query(request)
        if query is not None:
            kwargs = self.memory.recall_kwargs(_current_config(), runtime=request.runtime)
            request = self._with_recall(
                request, await self.memory.client.arecall(query, **kwargs)
            )
        return await handler(request)

    # -- after the agent's turn: the user's statements into memory, once per message -------------

    def _observe(self, text: str, namespace: str | None, prompt: str, marker: str,
                 model_forgot: bool) -> TurnResult:
        # One owner per forget: when the model already called the forget tool this turn, the
        # message's forget requests are its; the statements are written either way (a
        # statement the remember tool stored too is a duplicate or the same slot). The marker
        # makes the writes idempotent if the turn is applied again.
        return observe(self.memory.client, text, namespace=namespace,
                       metadata={"speaker": "user"}, context=prompt or None,
                       request_id=f"turn-{hashlib.sha1(marker.encode()).hexdigest()[:32]}",
                       apply_forgets=not model_forgot)

    def _model_forgot(self, state: LarimarState) -> bool:
        """Whether a forget tool ran after the latest human message (this turn)."""
        for message in reversed(state["messages"]):
            if isinstance(message, BaseMessage) and message.type == "human":
                return False
            if isinstance(message, ToolMessage) and message.name in self.forget_tools:
                return True
        return False

    def _unobserved(self, state: LarimarState) -> tuple[str, str, str] | None:
        latest = _latest_human(state["messages"])
        if not self.observe_messages or latest is None:
            return None
        return None if state.get("larimar_observed") == latest[0] else latest

    def after_agent(self, state: LarimarState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        latest = self._unobserved(state)
        if latest is None:
            return None
        if latest[1].strip():
            self._observe(latest[1], self.namespace_for(runtime), latest[2], latest[0],
                          self._model_forgot(state))
        return {"larimar_observed": latest[0]}

    async def aafter_agent(
        self, state: LarimarState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        latest = self._unobserved(state)
        if latest is None:
            return None
        if latest[1].strip():
            namespace = self.namespace_for(runtime)
            # The core's turn parser is synchronous; keep it off the event loop.
            await asyncio.to_thread(self._observe, latest[1], namespace, latest[2], latest[0],
                                    self._model_forgot(state))
        return {"larimar_observed": latest[0]}
