"""LarimarQueryEngine on the tiny Larimar: routing, source nodes, async, QueryEngineTool."""

from __future__ import annotations

import asyncio
import time

import pytest
from llama_index.core.base.response.schema import Response
from llama_index.core.schema import QueryBundle
from llama_index.core.tools import QueryEngineTool
from llama_index.memory.larimar import LarimarQueryEngine

FACT = "Alice's favourite colour is green."
QUESTION = "What is Alice's favourite colour?"
UNRELATED = "Where did the meteor land yesterday?"


@pytest.fixture
def stored(larimar):
    return larimar.remember(FACT).ids[0]


def test_in_scope_query_cites_the_top_k_facts(larimar, stored):
    other = larimar.remember("Alice's favourite food is pasta.").ids[0]
    response = LarimarQueryEngine(larimar, k=2).query(QUESTION)
    expected = larimar.ask(QUESTION)  # the answer reads ask_k facts; k is what it cites
    recall = larimar.recall(QUESTION, k=2)
    assert isinstance(response, Response)
    assert response.response == expected.answer
    assert response.metadata["route"] == "memory"
    assert response.metadata["fact_id"] == stored
    assert [n.node.node_id for n in response.source_nodes] == [h.fact.id for h in recall.hits]
    assert set(n.node.node_id for n in response.source_nodes) == {stored, other}
    first = response.source_nodes[0]
    assert first.node.text == recall.hits[0].text  # read back from the memory
    assert first.score == pytest.approx(recall.hits[0].score)
    assert first.node.metadata["fact_text"] == FACT and first.node.metadata["rank"] == 0
    assert len(LarimarQueryEngine(larimar, k=1).query(QUESTION).source_nodes) == 1
    two = LarimarQueryEngine(larimar, k=2, answer_k=2).query(QUESTION)
    assert two.response == larimar.ask(QUESTION, k=2).answer
    assert two.metadata["fact_ids"] == [h.fact.id for h in recall.hits]


def test_out_of_scope_query_is_answered_plainly_without_sources(larimar, stored):
    response = LarimarQueryEngine(larimar).query(UNRELATED)
    assert response.metadata["route"] == "plain"
    assert response.metadata["in_scope"] is False
    assert response.source_nodes == []
    assert response.response == larimar.ask(UNRELATED).answer


def test_stored_text_sources(larimar, stored):
    response = LarimarQueryEngine(larimar, context_source="stored", k=1).query(QUESTION)
    assert response.source_nodes[0].node.text == FACT


def test_namespace_is_respected(larimar, stored):
    engine = LarimarQueryEngine(larimar, namespace="bob")
    assert engine.query(QUESTION).metadata["route"] == "plain"
    larimar.remember(FACT, namespace="bob")
    assert engine.query(QUESTION).metadata["route"] == "memory"


async def test_async_query_matches_sync(larimar, stored):
    engine = LarimarQueryEngine(larimar)
    sync, async_ = engine.query(QUESTION), await engine.aquery(QUESTION)
    assert async_.response == sync.response
    assert async_.metadata == sync.metadata
    assert [n.node.text for n in async_.source_nodes] == [n.node.text for n in sync.source_nodes]
    hooked = await engine._aquery(QueryBundle(QUESTION))
    assert hooked.response == sync.response


async def test_async_query_does_not_block_the_event_loop(larimar, stored, monkeypatch):
    """The core's aask/arecall run in a worker thread; a slow decode (simulated) must leave the
    loop free for other coroutines."""
    calls: list[str] = []
    real_ask, real_recall = larimar.ask, larimar.recall

    def slow(name, fn):
        def wrapper(*args, **kwargs):
            calls.append(name)
            time.sleep(0.3)  # blocking, as a real decode is
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(larimar, "ask", slow("ask", real_ask))
    monkeypatch.setattr(larimar, "recall", slow("recall", real_recall))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        response = await LarimarQueryEngine(larimar).aquery(QUESTION)
    finally:
        task.cancel()
    assert calls == ["ask", "recall"]
    assert response.metadata["route"] == "memory"
    assert ticks >= 20  # ~60 possible in 0.6 s; a blocked loop would give ~0


def test_usable_through_query_engine_tool(larimar, stored):
    tool = QueryEngineTool.from_defaults(
        LarimarQueryEngine(larimar), name="larimar_memory",
        description="Answers questions about facts the user told earlier.",
    )
    output = tool.call(input=QUESTION)
    assert output.content == larimar.ask(QUESTION).answer
    assert output.raw_output.metadata["route"] == "memory"


async def test_usable_through_query_engine_tool_async(larimar, stored):
    tool = QueryEngineTool.from_defaults(LarimarQueryEngine(larimar), name="larimar_memory")
    output = await tool.acall(input=QUESTION)
    assert output.raw_output.source_nodes[0].node.metadata["fact_text"] == FACT


def test_from_defaults_refuses_both_a_larimar_and_a_store(larimar, tmp_path):
    with pytest.raises(ValueError, match="either larimar=... or store=..."):
        LarimarQueryEngine.from_defaults(larimar, store=tmp_path / "other.sqlite3")
    engine = LarimarQueryEngine.from_defaults(larimar, namespace="x")
    assert engine.larimar is larimar and engine.namespace == "x"


def test_a_question_about_the_user_with_nothing_stored_gets_the_unknown_route(larimar, stored):
    """Route ``unknown`` the same in process and over HTTP: the fixed answer, no sources."""
    from larimar_memory.routing import UNKNOWN_ANSWER
    from larimar_memory.server import ServerSettings, create_app
    from larimar_memory.server.client import LarimarClient
    from larimar_memory.testing import ThreadedServer

    with ThreadedServer(create_app(larimar, ServerSettings(auth=False))) as server:
        for memory in (larimar, LarimarClient(server.url)):
            engine = LarimarQueryEngine(memory)
            response = engine.query("Where did I park my bike yesterday?")
            assert response.metadata["route"] == "unknown"
            assert response.response == UNKNOWN_ANSWER and response.source_nodes == []
            assert engine.query(UNRELATED).metadata["route"] == "plain"
            assert engine.query(QUESTION).metadata["route"] == "memory"
