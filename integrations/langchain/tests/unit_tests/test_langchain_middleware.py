"""`LarimarMiddleware` in real `create_agent` runs driven by a scripted chat model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver

from langchain_larimar import LarimarMemory, LarimarMiddleware, LarimarToolkit

SYSTEM = "You are a helpful assistant."


@dataclass
class UserContext:
    user_id: str


class CountingLarimar:
    """A stand-in with the Larimar interface (like a remote client) that counts writes."""

    def __init__(self, larimar: Any) -> None:
        self.inner, self.remember_calls = larimar, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def remember(self, *args: Any, **kwargs: Any) -> Any:
        self.remember_calls += 1
        return self.inner.remember(*args, **kwargs)


def system_text(messages: list[Any]) -> str:
    return "\n".join(m.text for m in messages if isinstance(m, SystemMessage))


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_facts_written_after_the_turn_and_recalled_into_the_next(larimar, texts, scripted):
    model = scripted(messages=iter([AIMessage("Noted."), AIMessage("Green.")]))
    agent = create_agent(
        model, middleware=[LarimarMiddleware(larimar)], system_prompt=SYSTEM,
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": "t1"}}
    agent.invoke(user(texts.fact), config)
    assert [f.text for f in larimar.list(namespace="thread:t1")] == [texts.fact]
    assert system_text(model.seen[0]) == SYSTEM  # nothing stored yet: prompt untouched

    result = agent.invoke(user(texts.question), config)
    assert result["messages"][-1].content == "Green."
    second = system_text(model.seen[1])
    assert second.startswith(SYSTEM) and texts.fact in second
    # the injected context is per request: it never enters the conversation state
    assert not any(isinstance(m, SystemMessage) for m in result["messages"])
    assert "larimar_observed" not in result


def test_out_of_scope_question_gets_no_context(larimar, texts, scripted):
    larimar.remember(texts.fact)
    model = scripted(messages=iter([AIMessage("Meow.")]))
    agent = create_agent(model, middleware=[LarimarMiddleware(larimar, namespace="default")])
    agent.invoke(user(texts.unrelated))
    assert system_text(model.seen[0]) == ""


def test_with_memory_tools_in_the_same_agent(larimar, texts, scripted):
    counting = CountingLarimar(larimar)
    call = scripted.tool_call
    model = scripted(messages=iter([
        call("recall", {"query": texts.fact}, "c1"), AIMessage("Noted."),
        call("recall", {"query": texts.question}, "c2"), AIMessage("Green."),
        call("forget", {"fact": texts.description}, "c3"), AIMessage("Forgotten."),
    ]))
    tools = LarimarToolkit(larimar=counting).get_tools()
    agent = create_agent(
        model, tools=tools, middleware=[LarimarMiddleware(counting)], checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "t2"}}
    first = agent.invoke(user(texts.fact), config)  # a tool loop: two model calls, one write
    assert counting.remember_calls == 1
    assert first["messages"][2].content.startswith("Nothing relevant")  # written at turn end

    second = agent.invoke(user(texts.question), config)
    assert texts.fact in system_text(model.seen[2])
    # the tools resolve the same namespace (thread:t2) as the middleware
    assert second["messages"][-2].content.startswith("From memory")
    assert texts.fact in second["messages"][-2].content

    # the model's forget runs first; the middleware then finds nothing left to forget
    third = agent.invoke(user(f"Please forget {texts.description}."), config)
    assert third["messages"][-2].content.startswith(f"Forgot: {texts.fact}")
    assert larimar.list(namespace="thread:t2") == []


def test_user_id_in_context_follows_the_user_across_threads(larimar, texts, scripted):
    model = scripted(messages=iter([AIMessage("Noted."), AIMessage("Green.")]))
    agent = create_agent(
        model, middleware=[LarimarMemory(larimar=larimar).as_middleware()],
        context_schema=UserContext, checkpointer=InMemorySaver(),
    )
    alice = UserContext(user_id="alice")
    agent.invoke(user(texts.fact), {"configurable": {"thread_id": "a"}}, context=alice)
    assert [f.text for f in larimar.list(namespace="user:alice")] == [texts.fact]
    agent.invoke(user(texts.question), {"configurable": {"thread_id": "b"}}, context=alice)
    assert texts.fact in system_text(model.seen[1])


@pytest.mark.asyncio
async def test_async_agent(larimar, texts, scripted):
    model = scripted(messages=iter([AIMessage("Noted."), AIMessage("Green."), AIMessage("Ok.")]))
    agent = create_agent(
        model, middleware=[LarimarMiddleware(larimar)], system_prompt=SYSTEM,
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"user_id": "bob", "thread_id": "t3"}}
    await agent.ainvoke(user(texts.fact), config)
    assert [f.text for f in larimar.list(namespace="user:bob")] == [texts.fact]
    await agent.ainvoke(user(texts.question), config)
    assert texts.fact in system_text(model.seen[1])
    await agent.ainvoke(user(f"Forget {texts.description}."), config)
    assert larimar.list(namespace="user:bob") == []


def test_switches_and_argument_errors(larimar, texts, scripted):
    larimar.remember(texts.fact)
    model = scripted(messages=iter([AIMessage("Ok.")]))
    quiet = LarimarMiddleware(larimar, inject_context=False, observe_messages=False)
    create_agent(model, middleware=[quiet]).invoke(user(f"{texts.question} {texts.other_fact}"))
    assert system_text(model.seen[0]) == ""
    assert [f.text for f in larimar.list()] == [texts.fact]
    with pytest.raises(ValueError, match="Only one of 'memory'"):
        LarimarMiddleware(larimar, memory=LarimarMemory(larimar=larimar))
    with pytest.raises(ValueError, match="Only one of 'memory'"):
        LarimarMiddleware(memory=LarimarMemory(larimar=larimar), k=2)
    assert LarimarMiddleware(larimar, k=2).memory.k == 2
    with pytest.raises(ValueError, match="context_template"):
        LarimarMiddleware(larimar, context_template="no placeholder")
