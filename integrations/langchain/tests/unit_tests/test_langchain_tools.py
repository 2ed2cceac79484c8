"""The remember / recall / forget tools, the toolkit, and the retriever."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
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
    assert found.startswith(f"From memory: {texts.fact} (id {fact_id}; scope score 0.")
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


def test_correction_replaces(larimar, texts) -> None:
    remember = LarimarToolkit(larimar=larimar).get_tools()[0]
    remember.invoke({"fact": texts.fact})
    said = remember.invoke({"fact": texts.fact})
    assert f"It replaces: {texts.fact}." in said and len(larimar.list()) == 1


def test_namespace_fixed_or_from_config(larimar, texts) -> None:
    remember, recall, _ = LarimarToolkit(larimar=larimar).get_tools()
    remember.invoke({"fact": texts.fact}, config={"configurable": {"user_id": "alice"}})
    assert [f.text for f in larimar.list(namespace="user:alice")] == [texts.fact]
    assert recall.invoke({"query": texts.question}).startswith("Nothing")
    fixed = LarimarToolkit(larimar=larimar, namespace="user:alice").get_tools()[1]
    assert fixed.invoke({"query": texts.question}).startswith("From memory")


@pytest.mark.asyncio
async def test_async_tools(larimar, texts) -> None:
    remember, recall, forget = LarimarToolkit(larimar=larimar).get_tools()
    assert (await remember.ainvoke({"fact": texts.fact})).startswith("Remembered")
    assert (await recall.ainvoke({"query": texts.question})).startswith("From memory")
    assert (await forget.ainvoke({"fact": texts.description})).startswith("Forgot")
    assert "no stored fact" in await forget.ainvoke({"fact": texts.description})


def test_retriever_documents(larimar, texts) -> None:
    retriever = LarimarRetriever(larimar=larimar)
    assert retriever.invoke(texts.question) == []  # empty memory
    fact_id = larimar.remember(texts.fact).ids[0]
    [doc] = retriever.invoke(texts.question)
    recall = larimar.recall(texts.question)
    assert isinstance(doc, Document) and doc.page_content == recall.text  # the decoded readout
    assert doc.id == fact_id
    meta = doc.metadata
    assert meta["fact_id"] == fact_id and meta["fact_text"] == texts.fact
    assert meta["route"] == "memory" and meta["in_scope"] is True
    assert meta["scope_score"] == pytest.approx(recall.scope.score)
    assert meta["decoded_text"] == recall.text and meta["namespace"] == "default"
    assert retriever.invoke(texts.unrelated) == []
    [out] = LarimarRetriever(larimar=larimar, include_out_of_scope=True).invoke(texts.unrelated)
    assert out.metadata["route"] == "plain"
    stored = LarimarRetriever(larimar=larimar, context_source="stored")
    assert stored.invoke(texts.question)[0].page_content == texts.fact


@pytest.mark.asyncio
async def test_retriever_async_and_namespace(larimar, texts) -> None:
    larimar.remember(texts.fact, namespace="user:alice")
    retriever = LarimarRetriever(larimar=larimar, context_source="stored")
    assert await retriever.ainvoke(texts.question) == []
    docs = await retriever.ainvoke(
        texts.question, config={"configurable": {"user_id": "alice"}}
    )
    assert [d.page_content for d in docs] == [texts.fact]
    assert docs[0].metadata["namespace"] == "user:alice"


def test_create_retriever_tool(larimar, texts) -> None:
    larimar.remember(texts.fact)
    tool = create_retriever_tool(
        LarimarRetriever(larimar=larimar, context_source="stored"),
        "search_memory", "Look up long-term memory.",
    )
    assert tool.invoke({"query": texts.question}) == texts.fact
    assert tool.invoke({"query": texts.unrelated}) == ""


class WithoutForgetMatching:
    """A client-like object that cannot forget by description (only by id or exact text)."""

    def __init__(self, larimar: Any) -> None:
        self.inner = larimar

    def __getattr__(self, name: str) -> Any:
        if name in ("forget_matching", "aforget_matching"):
            raise AttributeError(name)
        return getattr(self.inner, name)


@pytest.mark.asyncio
async def test_a_client_without_forget_matching(larimar, texts) -> None:
    remember, recall, forget = LarimarToolkit(larimar=WithoutForgetMatching(larimar)).get_tools()
    remember.invoke({"fact": texts.fact})
    assert recall.invoke({"query": texts.question}).startswith("From memory")
    said = forget.invoke({"fact": texts.description})
    assert "cannot forget by description" in said and "forget it by id" in said
    assert "cannot forget by description" in await forget.ainvoke({"fact": texts.description})
    assert forget.invoke({"fact": larimar.list()[0].id}).startswith("Forgot")
