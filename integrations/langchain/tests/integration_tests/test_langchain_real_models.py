"""End to end on the real packaged models (all-MiniLM-L6-v2 keys and scope, the SmolLM2-based
``larimar-smol``): the LCEL chain, ChatLarimar, the retriever, and an agent with the middleware
and the tools. Slow (model load ~30 s, each recall decodes on the CPU), hence ``integration``.

These tests check routing, scope and the stored text; what the trained checkpoint decodes is
checked in the core's tests/integration/test_trained_checkpoint.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel
from langchain_core.messages import AIMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langgraph.checkpoint.memory import InMemorySaver
from larimar_memory.errors import ModelNotFoundError
from larimar_memory.service import Larimar, LarimarSettings

from langchain_larimar import (
    ChatLarimar,
    LarimarMemory,
    LarimarMiddleware,
    LarimarRetriever,
    LarimarToolkit,
)

pytestmark = pytest.mark.integration

# Pairs the packaged all-MiniLM-L6-v2 scores in scope (cosine 0.74 and 0.81; threshold 0.56).
# Not "I live in Lisbon." / "Where do I live?": that pair scores 0.46, out of scope.
SISTER = "My sister is called Ana."
SISTER_Q = "What is my sister called?"
COLOUR = "My favourite colour is green."
COLOUR_Q = "What is my favourite colour?"
UNRELATED = "What is the capital of Peru?"
# Decoded readouts are checked in the core's tests: keep them short so recalls are quick.
SETTINGS = LarimarSettings(max_new_tokens=8)


@pytest.fixture(scope="module")
def real_seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Larimar]:
    """Loaded once per module: the packaged models, shared by each test's Larimar."""
    try:
        seed = Larimar(store=tmp_path_factory.mktemp("real") / "seed.sqlite3", settings=SETTINGS)
    except ModelNotFoundError as exc:
        pytest.skip(f"packaged models not installed: {exc}")
    yield seed
    seed.close()


@pytest.fixture
def real(real_seed: Larimar, tmp_path: Path) -> Iterator[Larimar]:
    memory = Larimar(
        real_seed.model, store=tmp_path / "facts.sqlite3", embedder=real_seed.embedder,
        settings=SETTINGS,
    )
    yield memory
    memory.close()


@pytest.mark.asyncio
async def test_chain_and_retriever(real: Larimar) -> None:
    memory = LarimarMemory(larimar=real, k=1)
    turn = memory.observe(f"Hello! {SISTER} {COLOUR}")
    assert len(turn.remembered) == 2
    # top-k, best first, read back from the memory rows (default k=3: both facts stored)
    assert LarimarMemory(larimar=real).invoke(SISTER_Q).splitlines() == [SISTER, COLOUR]
    prompt = ChatPromptTemplate.from_template("Known facts: {context}\nQuestion: {question}")
    chain = {"context": memory, "question": RunnablePassthrough()} | prompt | ParrotFakeChatModel()
    assert chain.invoke(SISTER_Q).content == f"Known facts: {SISTER}\nQuestion: {SISTER_Q}"
    assert (await chain.ainvoke(UNRELATED)).content.startswith("Known facts: \n")

    docs = await LarimarRetriever(larimar=real).ainvoke(COLOUR_Q)  # k=3, both facts, best first
    assert [d.page_content for d in docs] == [COLOUR, SISTER]
    assert docs[0].metadata["fact_text"] == COLOUR and docs[0].metadata["route"] == "memory"
    assert docs[0].metadata["score"] > docs[1].metadata["score"]


@pytest.mark.asyncio
async def test_chat_model_routes(real: Larimar) -> None:
    real.remember(SISTER)
    llm = ChatLarimar(larimar=real, max_tokens=8)
    reply = llm.invoke(SISTER_Q)
    assert reply.response_metadata["route"] == "memory"
    assert reply.response_metadata["fact_id"] == real.list()[0].id
    chunks = [chunk async for chunk in llm.astream("What is the capital of France?")]
    assert chunks[-1].response_metadata["route"] == "plain"
    assert "Paris" in "".join(chunk.text for chunk in chunks)  # the plain decoder is SmolLM2


def test_agent_with_middleware_and_tools(real: Larimar, scripted: Any) -> None:
    model = scripted(messages=iter([
        AIMessage("Noted."),
        scripted.tool_call("recall", {"query": SISTER_Q}, "c1"),
        AIMessage("Your sister is called Ana."),
        AIMessage("Done."),
    ]))
    agent = create_agent(
        model, tools=LarimarToolkit(larimar=real).get_tools(),
        middleware=[LarimarMiddleware(real)], checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": "t", "user_id": "ana"}}

    def say(text: str) -> list[Any]:
        return agent.invoke({"messages": [{"role": "user", "content": text}]}, config)["messages"]

    say(SISTER)
    assert [f.text for f in real.list(namespace="user:ana")] == [SISTER]
    messages = say(SISTER_Q)
    assert messages[-2].content.startswith("From memory") and SISTER in messages[-2].content
    system = [m for m in model.seen[1] if isinstance(m, SystemMessage)]
    assert system and SISTER in system[0].text
    say("Please forget my sister's name.")
    assert real.list(namespace="user:ana") == []
