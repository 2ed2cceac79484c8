"""Remote mode never loads the model stack: against a real server (uvicorn in this process),
the block, the query engine and the tool spec run in a fresh interpreter that never imports
torch or transformers."""

from __future__ import annotations

from larimar_memory.server import ServerSettings, create_app
from larimar_memory.testing import ThreadedServer, modules_imported_by

FACT = "Alice's favourite colour is green."
QUESTION = "What is Alice's favourite colour?"


def test_components_over_http_import_no_model_stack(larimar) -> None:
    with ThreadedServer(create_app(larimar, ServerSettings(auth=False))) as server:
        code = f"""
import asyncio
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import Memory
from llama_index.memory.larimar import LarimarMemoryBlock, LarimarQueryEngine, LarimarToolSpec
from larimar_memory.server.client import LarimarClient

client = LarimarClient({server.url!r})
tools = LarimarToolSpec(client, namespace="session:1")
assert {FACT!r} in tools.remember({FACT!r})
response = LarimarQueryEngine(client, k=1, namespace="session:1").query({QUESTION!r})
assert [n.node.text for n in response.source_nodes] == [{FACT!r}]

async def block() -> None:
    memory = Memory.from_defaults(session_id="session:1", token_limit=4000,
                                  memory_blocks=[LarimarMemoryBlock(client, eager=False)])
    await memory.aput(ChatMessage(role="user", content={QUESTION!r}))
    system = [m for m in await memory.aget() if m.role == "system"]
    assert system and {FACT!r} in system[0].content

asyncio.run(block())
"""
        assert modules_imported_by(code) == []
    assert "session:1" in larimar.namespaces()
