"""The remember / recall / forget tools, the toolkit, and the retriever."""

from __future__ import annotations

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import create_retriever_tool

from langchain_larimar import LarimarRetriever, LarimarToolkit
from langchain_larimar.tools import ForgetInput, RecallInput, RememberInput


def test_toolkit_tools_and_schemas(larimar) -> None:
    tools = LarimarToolkit(larimar=larimar).get_tools()
    assert [t.name for t in tools] == ["remember", "recall", "forget"]
    assert [t.args_schema for t in tools] == [RememberInput, RecallInput, ForgetInput]
    for tool in tools:
        assert tool.description and "config" not in tool.tool_call_schema.model_json_schema()[
            "properties"
        ]


def test_remember_recall_forget(larimar, texts) -> None:
    remember, recall, forget = LarimarToolkit(larimar=larimar).get_tools()
    assert recall.invoke({"query": texts.question}).startswith("Nothing relevant is stored")
    said = remember.invoke({"fact": texts.fact})
    fact_id = larimar.list()[0].id
    assert said == f"Remembered: {texts.fact} (id {fact_id})."
    found = recall.invoke({"query": texts.question})
    assert found.startswith("From memory (scope score ")
    assert f"\n- {larimar.recall(texts.question).hits[0].text} (id {fact_id}; score " in found
    assert recall.invoke({"query": texts.unrelated}).startswith("Nothing relevant")

    assert forget.invoke({"fact": texts.description}) == f"Forgot: {texts.fact} (id {fact_id})."
    assert larimar.list() == []
    remember.invoke({"fact": texts.fact})
    assert forget.invoke({"fact": larimar.list()[0].id}).startswith("Forgot:")  # by id
    remember.invoke({"fact": texts.fact})
    assert forget.invoke({"fact": texts.fact}).startswith("Forgot:")  # by exact text


def test_errors_come_back_as_tool_output(larimar, texts) -> None:
    remember, _, forget = LarimarToolkit(larimar=larimar).get_tools()
    missing = forget.invoke({"fact": texts.description})
    assert "no stored fact" in missing and "matches" in missing
    empty = remember.invoke({"name": "remember", "args": {"fact": "  "}, "id": "1",
                             "type": "tool_call"})
    assert isinstance(empty, ToolMessage) and "empty" in empty.content
    assert empty.status == "error"


def test_correction_replaces_and_restatement_is_a_duplicate(larimar, texts) -> None:
    remember = LarimarToolkit(larimar=larimar).get_tools()[0]
    remember.invoke({"fact": texts.fact})
    assert remember.invoke({"fact": texts.fact}).startswith("Already stored")
    said = remember.invoke({"fact": "My favourite colour is blue."})  # same subject key
    assert f"It replaces: {texts.fact}." in said and len(larimar.list()) == 1


def test_namespace_fixed_or_from_config(larimar, texts) -> None:
    remember, recall, _ = LarimarToolkit(larimar=larimar).get_tools()
    remember.invoke({"fact": texts.fact}, config={"configurable": {"user_id": "alice"}})
    assert [f.text for f in larimar.list(namespace="user:alice")] == [texts.fact]
    assert recall.invoke({"query": texts.question}).startswith("Nothing")
    fixed = LarimarToolkit(larimar=larimar, namespace="user:alice").get_tools()[1]
    assert fixed.invoke({"query": texts.question}).startswith("From memory")
    top2 = LarimarToolkit(larimar=larimar, namespace="user:alice", k=2).get_tools()[1]
    remember.invoke({"fact": texts.other_fact}, config={"configurable": {"user_id": "alice"}})
    assert top2.invoke({"query": texts.question}).count("\n- ") == 2


@pytest.mark.asyncio
async def test_async_tools(larimar, texts) -> None:
    remember, recall, forget = LarimarToolkit(larimar=larimar).get_tools()
    assert (await remember.ainvoke({"fact": texts.fact})).startswith("Remembered")
    assert (await recall.ainvoke({"query": texts.question})).startswith("From memory")
    assert (await forget.ainvoke({"fact": texts.description})).startswith("Forgot")
    assert "no stored fact" in await forget.ainvoke({"fact": texts.description})


def test_retriever_documents(larimar, texts) -> None:
    retriever = LarimarRetriever(larimar=larimar, k=2)
    assert retriever.invoke(texts.question) == []  # empty memory
    fact_id, other_id = larimar.remember([texts.fact, texts.other_fact]).ids
    docs = retriever.invoke(texts.question)
    recall = larimar.recall(texts.question, k=2)
    assert [d.id for d in docs] == [h.fact.id for h in recall.hits] and docs[0].id == fact_id
    assert [d.page_content for d in docs] == [h.text for h in recall.hits]  # read from memory
    meta = docs[0].metadata
    assert meta["fact_id"] == fact_id and meta["fact_text"] == texts.fact and meta["rank"] == 0
    assert meta["score"] == pytest.approx(recall.hits[0].score)
    assert docs[1].metadata["score"] <= meta["score"]
    assert meta["route"] == "memory" and meta["in_scope"] is True
    assert meta["scope_score"] == pytest.approx(recall.scope.score)
    assert meta["namespace"] == "default"
    assert len(retriever.invoke(texts.question, k=1)) == 1
    assert retriever.invoke(texts.unrelated) == []
    out = LarimarRetriever(larimar=larimar, include_out_of_scope=True).invoke(texts.unrelated)
    assert out and out[0].metadata["route"] == "plain"
    stored = LarimarRetriever(larimar=larimar, context_source="stored", k=1)
    assert stored.invoke(texts.question)[0].page_content == texts.fact
    assert other_id


@pytest.mark.asyncio
async def test_retriever_async_and_namespace(larimar, texts) -> None:
    larimar.remember(texts.fact, namespace="user:alice")
    retriever = LarimarRetriever(larimar=larimar, context_source="stored", k=1)
    assert await retriever.ainvoke(texts.question) == []
    docs = await retriever.ainvoke(
        texts.question, config={"configurable": {"user_id": "alice"}}
    )
    assert [d.page_content for d in docs] == [texts.fact]
    assert docs[0].metadata["namespace"] == "user:alice"


def test_create_retriever_tool(larimar, texts) -> None:
    larimar.remember(texts.fact)
    tool = create_retriever_tool(
        LarimarRetriever(larimar=larimar, context_source="stored", k=1),
        "search_memory", "Look up long-term memory.",
    )
    assert tool.invoke({"query": texts.question}) == texts.fact
    assert tool.invoke({"query": texts.unrelated}) == ""
