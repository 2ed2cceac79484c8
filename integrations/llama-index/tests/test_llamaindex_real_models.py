"""The components on the real packaged models (all-MiniLM-L6-v2 keys, SmolLM2 decoder).

Slow: loading takes ~30-60 s (the first load also converts the GGUF decoder, then it is cached)
and each decoding several seconds on CPU, so decoding is capped at 8 tokens. Run alone with
``python -m pytest integrations/llama-index/tests -m integration``.
"""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.memory.larimar import LarimarMemoryBlock, LarimarQueryEngine, LarimarToolSpec

from larimar_memory.errors import ModelNotFoundError

pytestmark = pytest.mark.integration

FACT = "Alice's favourite colour is green."
QUESTION = "What is Alice's favourite colour?"
UNRELATED = "What is the capital of France?"


@pytest.fixture(scope="module")
def real_larimar(tmp_path_factory):
    from larimar_memory.service import Larimar, LarimarSettings

    try:
        memory = Larimar(
            store=tmp_path_factory.mktemp("real") / "facts.sqlite3",
            settings=LarimarSettings(max_new_tokens=8),
        )
    except ModelNotFoundError as exc:
        pytest.skip(f"packaged models not installed: {exc}")
    memory.remember(FACT)
    yield memory
    memory.close()


def check_memory_response(response, larimar) -> None:
    assert response.metadata["route"] == "memory"
    source = response.source_nodes[0]
    assert source.node.metadata["fact_text"] == FACT
    assert source.score == pytest.approx(larimar.recall(QUESTION, k=1).hits[0].score, abs=1e-5)
    assert isinstance(response.response, str)


def test_query_engine_routes_with_the_real_scope_detector(real_larimar):
    engine = LarimarQueryEngine(real_larimar, context_source="stored", k=1)
    check_memory_response(engine.query(QUESTION), real_larimar)
    plain = engine.query(UNRELATED)
    assert plain.metadata["route"] == "plain" and plain.source_nodes == []


async def test_query_engine_async_reads_facts_back_exactly(real_larimar):
    response = await LarimarQueryEngine(real_larimar, k=1).aquery(QUESTION)
    check_memory_response(response, real_larimar)
    assert response.source_nodes[0].node.text == FACT  # exact for the packaged model


async def test_memory_block_and_tools(real_larimar):
    block = LarimarMemoryBlock(real_larimar, namespace="default", k=1)
    got = await block.aget([ChatMessage(role="user", content=QUESTION)])
    assert got == f"- {FACT}"
    assert await block.aget([ChatMessage(role="user", content=UNRELATED)]) == ""
    tools = LarimarToolSpec(real_larimar, namespace="scratch")
    await tools.aremember("Bob was born in Oslo.")
    assert "Nothing forgotten" in tools.forget("the price of tea")
    assert tools.forget("where Bob was born").startswith("Forgot 1 fact")
    assert real_larimar.list(namespace="scratch") == []
