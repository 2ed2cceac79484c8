"""Every component runs on a backend that has the `MemoryBackend` members and nothing else (as a
remote `LarimarClient`): the package may use nothing of `Larimar` outside the protocol."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import Memory
from llama_index.memory.larimar import (
    LarimarMemoryBlock,
    LarimarQueryEngine,
    LarimarToolSpec,
    MemoryBackend,
)

from larimar_memory.testing import ProtocolOnly

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")

FACT = "Alice's favourite colour is green."
QUESTION = "What is Alice's favourite colour?"


@pytest.fixture
def backend(larimar) -> ProtocolOnly:
    proxy = ProtocolOnly(larimar)
    assert isinstance(proxy, MemoryBackend)
    return proxy


async def test_tools_and_query_engine(backend, larimar):
    tools = LarimarToolSpec(backend)
    assert FACT in tools.remember(FACT)
    assert FACT in tools.recall(QUESTION)
    response = LarimarQueryEngine(backend, k=1).query(QUESTION)
    assert [n.node.text for n in response.source_nodes] == [FACT]
    assert FACT in await tools.arecall(QUESTION)
    tools.forget("Alice's favourite colour")
    assert larimar.list() == []


async def test_memory_block_reads_without_observing(backend, larimar):
    larimar.remember(FACT, namespace="alice")
    block = LarimarMemoryBlock(backend, eager=False)
    memory = Memory.from_defaults(session_id="alice", token_limit=4000, memory_blocks=[block])
    await memory.aput(ChatMessage(role="user", content=QUESTION))
    system = [m for m in await memory.aget() if m.role == "system"]
    assert system and FACT in system[0].content


async def test_memory_block_observes_eagerly(backend, larimar):
    block = LarimarMemoryBlock(backend)
    memory = Memory.from_defaults(session_id="alice", token_limit=4000, memory_blocks=[block])
    await memory.aput(ChatMessage(role="user", content=FACT))
    await memory.aget()
    assert [f.text for f in larimar.list(namespace="alice")] == [FACT]
