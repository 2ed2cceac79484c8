"""The agent set-ups a dialogue is driven through, each built the way its docs show.

* ``middleware``: ``create_agent(model, middleware=[LarimarMiddleware(lar)])``; the middleware
  writes what the user states and honours "forget …" (rules, no LLM);
* ``middleware+tools``: the same plus ``tools=LarimarToolkit(larimar=lar).get_tools()``; the
  model calls ``forget`` on forget requests and ``remember`` on corrections;
* ``store``: ``create_agent(model, tools=[langmem's manage_memory, search_memory],
  store=LarimarStore(lar))``; the model stores each stated fact, searches memory for every
  question, and updates or deletes the top search hit on a correction or forget request;
* ``store+scope``: the same with ``LarimarStore(lar, relevant_only=True)``: a search returns
  hits only when the scope decision calls them relevant;
* ``llama-memory``: LlamaIndex ``Memory.from_defaults(memory_blocks=[LarimarMemoryBlock])``; what
  the block returns from ``get`` is the context;
* ``llama-query-engine``: `LarimarQueryEngine` answers questions (its source nodes are the
  context); a scripted LlamaIndex agent writes through `LarimarToolSpec`'s ``remember`` and
  ``forget``.

No LLM runs: `ScriptedChatModel` emits the tool calls a tool-calling model would make, read off
the annotated turn (the clean fact sentence to store, the description to forget), and records
every prompt it gets. This module imports LangChain, LangGraph, langmem and LlamaIndex, so it is
imported only when a run starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_larimar import LarimarMiddleware, LarimarStore, LarimarToolkit
from langchain_larimar.middleware import DEFAULT_CONTEXT_TEMPLATE
from langgraph.checkpoint.memory import InMemorySaver
from langmem import create_manage_memory_tool, create_search_memory_tool
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import Memory
from llama_index.memory.larimar import LarimarMemoryBlock, LarimarQueryEngine, LarimarToolSpec
from pydantic import ConfigDict, Field

from .schema import Dialogue, Turn

MODES = ("middleware", "middleware+tools", "store", "store+scope", "llama-memory",
         "llama-query-engine")
_PREFIX = {"middleware": "mw", "middleware+tools": "mt", "store": "st", "store+scope": "ss",
           "llama-memory": "lm", "llama-query-engine": "lq"}
_CONTEXT_HEADER = DEFAULT_CONTEXT_TEMPLATE.split("{context}")[0]
_BLOCK = re.compile(r"<larimar_memory>(.*?)</larimar_memory>", re.S)
ToolCall = tuple[str, dict[str, Any]]


class ScriptedChatModel(BaseChatModel):
    """A chat model with no LLM: ``planner(messages)`` decides each reply (tool calls or text),
    and every prompt is kept in ``seen``. Binding tools returns the model itself."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    planner: Callable[[list[BaseMessage]], AIMessage] = Field(exclude=True)
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "larimar-scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=self.planner(messages))])


def _this_turn(messages: list[BaseMessage]) -> list[ToolMessage]:
    """The tool results since the latest human message."""
    last = max((i for i, m in enumerate(messages) if m.type == "human"), default=-1)
    return [m for m in messages[last + 1:] if isinstance(m, ToolMessage)]


def _search_keys(result: ToolMessage) -> list[str]:
    """The item keys of a langmem ``search_memory`` result, best first."""
    try:
        return [str(item["key"]) for item in json.loads(str(result.content))]
    except (ValueError, TypeError, KeyError):
        return []


def _search_texts(result: ToolMessage) -> list[str]:
    try:
        items = json.loads(str(result.content))
    except ValueError:
        return []
    return [str((item.get("value") or {}).get("content", "")) for item in items]


class TurnPlanner:
    """The tool calls a tool-calling model makes for the current turn (``turn``, set by the
    runner), one per model call, given the tool results it has seen so far in the turn."""

    def __init__(self, mode: str, dialogue: Dialogue) -> None:
        self.mode, self.dialogue = mode, dialogue
        self.turn: Turn | None = None
        self.calls = 0

    def _forgets(self, turn: Turn) -> int:
        return len(turn.forgets) if turn.all else 1

    def toolkit_calls(self, turn: Turn, results: list[ToolMessage]) -> ToolCall | None:
        """``middleware+tools``: one ``forget(about, everything)`` for a forget request
        (``everything`` for "forget everything about X"), ``remember(new fact)`` per
        correction."""
        if turn.forgets and not results:  # one call; "everything about X" says so
            return "forget", {"fact": turn.about, "everything": turn.all}
        news = list(turn.corrects.values())
        done = len(results) - int(bool(turn.forgets))
        if done < len(news):
            return "remember", {"fact": self.dialogue.facts[news[done]].text, "corrects": True}
        return None

    def store_calls(self, turn: Turn, results: list[ToolMessage]) -> ToolCall | None:
        """``store``: create each stated fact; search every question; for a correction or a
        forget, search the slot, then update or delete the top hit(s)."""
        facts = self.dialogue.facts
        if turn.states:
            if len(results) < len(turn.states):
                return "manage_memory", {"action": "create",
                                         "content": facts[turn.states[len(results)]].text}
            return None
        if turn.asks or turn.off_topic:
            return None if results else ("search_memory", {"query": turn.say})
        if not turn.removes:
            return None
        if not results:
            return "search_memory", {"query": turn.about}
        keys, done = _search_keys(results[0]), len(results) - 1
        if turn.corrects:
            if done:
                return None
            content = facts[next(iter(turn.corrects.values()))].text
            if not keys:
                return "manage_memory", {"action": "create", "content": content}
            return "manage_memory", {"action": "update", "id": keys[0], "content": content}
        if done < min(self._forgets(turn), len(keys)):
            return "manage_memory", {"action": "delete", "id": keys[done]}
        return None

    def __call__(self, messages: list[BaseMessage]) -> AIMessage:
        turn = self.turn
        if turn is None:
            raise RuntimeError("TurnPlanner.turn is not set: the runner sets it before a turn")
        results = _this_turn(messages)
        plan = self.toolkit_calls if self.mode == "middleware+tools" else self.store_calls
        call = None if self.mode == "middleware" else plan(turn, results)
        if call is None:
            return AIMessage(content="OK.")
        self.calls += 1
        return AIMessage(content="", tool_calls=[{"name": call[0], "args": call[1],
                                                  "id": f"call-{self.calls}"}])


def _texts(memory: Any, namespace: str) -> list[str]:
    return [fact.text for fact in memory.list(namespace=namespace)]


class LangChainAgent:
    """Modes ``middleware``, ``middleware+tools`` and ``store``: one ``create_agent`` per
    dialogue, one thread per session, the user's id in the config."""

    def __init__(self, mode: str, memory: Any, dialogue: Dialogue) -> None:
        self.mode, self.memory = mode, memory
        self.user = f"{_PREFIX[mode]}-{dialogue.id}"
        self.planner = TurnPlanner(mode, dialogue)
        self.model = ScriptedChatModel(planner=self.planner)
        self.thread = f"{self.user}-s0"
        kwargs: dict[str, Any] = {"checkpointer": InMemorySaver()}
        if mode.startswith("store"):
            self.store = LarimarStore(memory, relevant_only=mode == "store+scope")
            space = ("memories", "{user_id}")
            kwargs.update(store=self.store, tools=[create_manage_memory_tool(space),
                                                   create_search_memory_tool(space)])
            self.namespace = self.store.larimar_namespace(("memories", self.user))
        else:
            kwargs["middleware"] = [LarimarMiddleware(memory)]
            if mode == "middleware+tools":
                kwargs["tools"] = LarimarToolkit(larimar=memory).get_tools()
            self.namespace = f"user:{self.user}"  # langchain_larimar's namespace rule
        self.agent = create_agent(self.model, **kwargs)

    def start_session(self, index: int) -> None:
        self.thread = f"{self.user}-s{index}"

    def stored(self) -> list[str]:
        return _texts(self.memory, self.namespace)

    def turn(self, turn: Turn) -> list[str]:
        self.planner.turn = turn
        first = len(self.model.seen)
        config = {"configurable": {"thread_id": self.thread, "user_id": self.user}}
        self.agent.invoke({"messages": [{"role": "user", "content": turn.say}]}, config)
        prompts = self.model.seen[first:]
        if self.mode.startswith("store"):
            context = [text for prompt in prompts for m in _this_turn(prompt)
                       if m.name == "search_memory" for text in _search_texts(m)]
        else:
            context = [line for prompt in prompts for line in _system_context(prompt)]
        return list(dict.fromkeys(context))


def _system_context(prompt: list[BaseMessage]) -> list[str]:
    """The memory lines `LarimarMiddleware` appended to a prompt's system message."""
    texts = [str(m.text) for m in prompt if isinstance(m, SystemMessage)]
    lines: list[str] = []
    for text in texts:
        _, found, block = text.partition(_CONTEXT_HEADER)
        if found:
            lines += [line for line in block.splitlines() if line.strip()]
    return lines


class LlamaMemory:
    """Mode ``llama-memory``: a `Memory` per session (short-term history starts empty), one
    `LarimarMemoryBlock`, the user's id as the session id (the block's namespace)."""

    def __init__(self, mode: str, memory: Any, dialogue: Dialogue) -> None:
        self.memory = memory
        self.namespace = f"{_PREFIX[mode]}-{dialogue.id}"
        self.block = LarimarMemoryBlock(larimar=memory)
        self.start_session(0)

    def start_session(self, index: int) -> None:
        self.chat = Memory.from_defaults(session_id=self.namespace, memory_blocks=[self.block])

    def stored(self) -> list[str]:
        return _texts(self.memory, self.namespace)

    def turn(self, turn: Turn) -> list[str]:
        self.chat.put(ChatMessage(role="user", content=turn.say))
        messages = self.chat.get()
        self.chat.put(ChatMessage(role="assistant", content="OK."))
        lines: list[str] = []
        for message in messages:
            if message.role == "system":
                for block in _BLOCK.findall(message.content or ""):
                    lines += [line.strip().removeprefix("- ") for line in block.splitlines()
                              if line.strip()]
        return list(dict.fromkeys(lines))


class LlamaQueryEngine:
    """Mode ``llama-query-engine``: questions go to `LarimarQueryEngine`; a scripted agent
    writes stated facts and corrections with ``remember`` and forgets with ``forget``
    (`LarimarToolSpec`)."""

    def __init__(self, mode: str, memory: Any, dialogue: Dialogue) -> None:
        self.memory, self.dialogue = memory, dialogue
        self.namespace = f"{_PREFIX[mode]}-{dialogue.id}"
        self.engine = LarimarQueryEngine(larimar=memory, namespace=self.namespace)
        self.tools = LarimarToolSpec(memory, namespace=self.namespace)

    def start_session(self, index: int) -> None:
        pass  # the engine and the tools keep no conversation state

    def stored(self) -> list[str]:
        return _texts(self.memory, self.namespace)

    def turn(self, turn: Turn) -> list[str]:
        facts = self.dialogue.facts
        if turn.asks or turn.off_topic:
            response = self.engine.query(turn.say)
            return [node.node.get_content() for node in response.source_nodes]
        for name in turn.states:
            self.tools.remember(facts[name].text)
        for name in turn.corrects.values():
            self.tools.remember(facts[name].text, corrects=True)
        if turn.forgets:
            forget = self.tools.forget_everything_about if turn.all else self.tools.forget
            forget(turn.about or "")
        return []


_BUILDERS: dict[str, type] = {
    "middleware": LangChainAgent, "middleware+tools": LangChainAgent, "store": LangChainAgent,
    "store+scope": LangChainAgent,
    "llama-memory": LlamaMemory, "llama-query-engine": LlamaQueryEngine,
}


def build(mode: str, memory: Any, dialogue: Dialogue) -> Any:
    """The set-up of ``mode`` for one dialogue on ``memory`` (a `MemoryBackend`)."""
    return _BUILDERS[mode](mode, memory, dialogue)
