"""A real `create_agent` loop, driven by a scripted chat model, that remembers, recalls and
forgets with the Larimar tools and sees the memory change."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage

from langchain_larimar import LarimarToolkit


def script(scripted: Any, texts: Any) -> Any:
    call = scripted.tool_call
    return scripted(messages=iter([
        call("remember", {"fact": texts.fact}, "c1"),
        call("recall", {"query": texts.question}, "c2"),
        call("forget", {"fact": texts.description}, "c3"),
        call("recall", {"query": texts.question}, "c4"),
        AIMessage("I remembered it, recalled it and forgot it."),
    ]))


def tool_results(messages: list[Any]) -> list[str]:
    return [str(m.content) for m in messages if isinstance(m, ToolMessage)]


def check(results: list[str], texts: Any) -> None:
    remembered, recalled, forgotten, after = results
    assert remembered.startswith(f"Remembered: {texts.fact}")
    assert recalled.startswith("From memory (scope score") and texts.fact in recalled
    assert forgotten.startswith(f"Forgot: {texts.fact}")
    assert after.startswith("Nothing relevant is stored")


def test_agent_remembers_recalls_forgets(larimar, texts, scripted) -> None:
    model = script(scripted, texts)
    agent = create_agent(model, tools=LarimarToolkit(larimar=larimar).get_tools())
    result = agent.invoke({"messages": [{"role": "user", "content": "Remember my colour."}]})
    check(tool_results(result["messages"]), texts)
    assert result["messages"][-1].content == "I remembered it, recalled it and forgot it."
    assert larimar.list() == [] and len(model.seen) == 5


@pytest.mark.asyncio
async def test_agent_remembers_recalls_forgets_async(larimar, texts, scripted) -> None:
    agent = create_agent(script(scripted, texts), tools=LarimarToolkit(larimar=larimar).get_tools())
    result = await agent.ainvoke(
        {"messages": [{"role": "user", "content": "Remember my colour."}]},
        {"configurable": {"user_id": "carol"}},
    )
    check(tool_results(result["messages"]), texts)
    assert larimar.list(namespace="user:carol") == []
    assert larimar.namespaces() == ["user:carol"]  # every write went to the user's namespace
