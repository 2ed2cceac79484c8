"""LarimarToolSpec: the tools directly, then inside a real FunctionAgent run."""

from __future__ import annotations

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.memory.larimar import LarimarToolSpec

# llama-index-workflows inspects agents with inspect.getmembers, tripping pydantic's
# deprecation warnings for attributes it never uses: upstream noise.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")

FACT = "Alice's favourite colour is green."
QUESTION = "What is Alice's favourite colour?"


def test_tool_list_has_sync_and_async_tools(larimar):
    tools = LarimarToolSpec(larimar).to_tool_list()
    assert [t.metadata.name for t in tools] == ["remember", "recall", "forget",
                                                "forget_everything_about"]
    for tool in tools:
        assert tool.fn is not None and tool.async_fn is not None
        assert tool.metadata.description.startswith(f"{tool.metadata.name}(")
    schema = tools[0].metadata.get_parameters_dict()
    assert schema["required"] == ["fact"]
    assert "self-contained sentence" in schema["properties"]["fact"]["description"]


def test_remember_recall_forget_sync(larimar):
    spec = LarimarToolSpec(larimar, namespace="alice")
    assert spec.remember(FACT).startswith("Remembered 1 fact")
    assert [f.text for f in larimar.list(namespace="alice")] == [FACT]
    assert larimar.list() == []  # the default namespace is untouched
    assert FACT in spec.recall(QUESTION)
    assert "Nothing in memory" in spec.recall("Where did the meteor land yesterday?")
    assert spec.forget("Alice's favourite colour").startswith("Forgot 1 fact")
    assert larimar.list(namespace="alice") == []
    assert spec.forget("Alice's favourite colour").startswith("Nothing forgotten")


def test_a_restated_fact_replaces_the_old_one(larimar):
    spec = LarimarToolSpec(larimar)
    spec.remember(FACT)
    said = spec.remember("Alice's favourite colour is blue.")
    assert f"replaced the earlier fact {FACT!r}" in said
    assert [f.text for f in larimar.list()] == ["Alice's favourite colour is blue."]


async def test_forget_by_id_async(larimar):
    spec = LarimarToolSpec(larimar)
    await spec.aremember(FACT)
    fact_id = larimar.list()[0].id
    assert fact_id in await spec.arecall(QUESTION)
    assert (await spec.aforget(fact_id)).startswith("Forgot 1 fact")
    assert "Nothing in memory" in await spec.arecall(QUESTION)


def test_rejects_an_object_without_the_larimar_interface():
    with pytest.raises(TypeError, match="MemoryBackend"):
        LarimarToolSpec(object())


async def test_function_agent_remembers_recalls_and_forgets(larimar, scripted_llm):
    llm, script = scripted_llm([
        ("remember", {"fact": FACT}),
        ("recall", {"query": QUESTION}),
        ("forget", {"fact": "Alice's favourite colour"}),
        ("recall", {"query": QUESTION}),
    ])
    agent = FunctionAgent(
        tools=LarimarToolSpec(larimar).to_tool_list(), llm=llm,
        system_prompt="Use the memory tools.",
    )

    out = await agent.run(f"Remember this: {FACT}")
    assert [c.tool_name for c in out.tool_calls] == ["remember"]
    assert [f.text for f in larimar.list()] == [FACT]

    out = await agent.run(QUESTION)
    assert [c.tool_name for c in out.tool_calls] == ["recall"]
    assert FACT in str(out.response.content)

    out = await agent.run("Please forget Alice's favourite colour.")
    assert not out.tool_calls[0].tool_output.is_error
    assert larimar.list() == []

    out = await agent.run(QUESTION)
    assert "Nothing in memory" in str(out.response.content)
    # The agent sent the tool schemas to the LLM on every call.
    assert script.calls == [] and len(script.seen) == 8
