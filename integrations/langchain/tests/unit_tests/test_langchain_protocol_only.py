"""Every component runs on a backend that has the `MemoryBackend` members and nothing else (as a
remote `LarimarClient`): the package may use nothing of `Larimar` outside the protocol."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from larimar_memory.testing import ProtocolOnly

from langchain_larimar import (
    ChatLarimar,
    LarimarMemory,
    LarimarMiddleware,
    LarimarRetriever,
    LarimarStore,
    LarimarToolkit,
    MemoryBackend,
)


@pytest.fixture
def backend(larimar) -> ProtocolOnly:
    proxy = ProtocolOnly(larimar)
    assert isinstance(proxy, MemoryBackend)
    with pytest.raises(AttributeError):
        proxy.model  # noqa: B018
    return proxy


def test_tools_retriever_memory_and_chat_model(backend, larimar, texts) -> None:
    remember, recall, forget = LarimarToolkit(larimar=backend).get_tools()
    assert remember.invoke({"fact": texts.fact}).startswith("Remembered")
    assert texts.fact in recall.invoke({"query": texts.question})
    [doc] = LarimarRetriever(larimar=backend, k=1).invoke(texts.question)
    assert doc.page_content == texts.fact
    assert LarimarMemory(larimar=backend, k=1).invoke(texts.question) == texts.fact
    reply = ChatLarimar(larimar=backend, max_tokens=4).invoke(texts.question)
    assert reply.response_metadata["route"] == "memory"
    assert forget.invoke({"fact": texts.description}).startswith("Forgot:")
    assert larimar.list() == []


def test_store(backend, texts) -> None:
    store = LarimarStore(backend, index={"fields": ["content"]})
    store.put(("memories", "alice"), "m1", {"content": texts.fact})
    [item] = store.search(("memories",), query=texts.question, limit=3)
    assert item.value == {"content": texts.fact} and item.score is not None
    store.delete(("memories", "alice"), "m1")
    assert store.list_namespaces() == []


def test_middleware_injects_recalled_context(backend, larimar, texts, scripted) -> None:
    larimar.remember(texts.fact, namespace="thread:t1")
    model = scripted(messages=iter([AIMessage("Green.")]))
    agent = create_agent(model, middleware=[LarimarMiddleware(backend, observe_messages=False)])
    agent.invoke({"messages": [{"role": "user", "content": texts.question}]},
                 {"configurable": {"thread_id": "t1"}})
    assert any(texts.fact in m.text for m in model.seen[0])


def test_middleware_observes_messages(backend, larimar, texts, scripted) -> None:
    model = scripted(messages=iter([AIMessage("Noted.")]))
    agent = create_agent(model, middleware=[LarimarMiddleware(backend)])
    agent.invoke({"messages": [{"role": "user", "content": texts.fact}]},
                 {"configurable": {"thread_id": "t1"}})
    assert [f.text for f in larimar.list(namespace="thread:t1")] == [texts.fact]
