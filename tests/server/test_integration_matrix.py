"""The integration x transport matrix: one scenario (remember, recall top-k with a filter,
correct, forget, list, clear) through every integration, each test body run against `Larimar`
in this process and against `LarimarClient` talking to a real ``larimar serve --tiny``
subprocess, with the same assertions.

Both transports serve the same tiny model (``larimar serve --tiny`` builds exactly
``tiny_larimar(store)``), so scores, scope and rankings agree. The tiny model's memory readout
is random, so the integrations show the fact log's text (``context_source="stored"``). One
server process serves the whole module; each test writes to namespaces of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

pytest.importorskip("langchain_larimar")
pytest.importorskip("llama_index.memory.larimar")
mcp = pytest.importorskip("mcp")

from langchain.agents import create_agent  # noqa: E402
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage  # noqa: E402
from langchain_larimar import (  # noqa: E402
    LarimarMemory,
    LarimarMiddleware,
    LarimarRetriever,
    LarimarStore,
    LarimarToolkit,
)
from llama_index.core.base.llms.types import ChatMessage, MessageRole  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.memory.larimar import (  # noqa: E402
    LarimarMemoryBlock,
    LarimarQueryEngine,
    LarimarToolSpec,
)
from pydantic import Field  # noqa: E402
from server_testing import KEY_A, SubprocessServer  # noqa: E402

from larimar_memory.mcp_server import create_mcp_server  # noqa: E402
from larimar_memory.scoping import ScopedMemory  # noqa: E402
from larimar_memory.server.client import LarimarClient  # noqa: E402
from larimar_memory.testing import tiny_larimar  # noqa: E402

FACT = "My favourite colour is green."
QUESTION = "What is my favourite colour?"
CORRECTION = "Actually, my favourite colour is blue now."
CORRECTED = "My favourite colour is blue now."  # what the correction stores
TOPIC = "my favourite colour"
OTHER = "My sister is called Ana."
MILK = "When do I buy milk?"
TRANSPORTS = ("in-process", "server")


@pytest.fixture(scope="module")
def larimar_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubprocessServer]:
    """``larimar serve --tiny`` in its own interpreter, for the whole module."""
    tmp = tmp_path_factory.mktemp("matrix-server")
    server = SubprocessServer(str(tmp / "store.sqlite3"), tmp)
    try:
        server.start()
    except Exception:
        server.stop()
        raise AssertionError(f"larimar serve did not start:\n{server.log_tail()}") from None
    yield server
    server.stop()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    memory = tiny_larimar(tmp_path_factory.mktemp("matrix-local") / "store.sqlite3")
    yield memory
    memory.close()


@pytest.fixture(params=TRANSPORTS)
def backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The memory every integration is handed: `Larimar`, or a client of the real server."""
    if request.param == "in-process":
        yield request.getfixturevalue("in_process")
        return
    server = request.getfixturevalue("larimar_serve")
    with LarimarClient(server.url, api_key=KEY_A) as client:
        yield client


@pytest.fixture
def ns() -> str:
    return f"m{uuid.uuid4().hex[:12]}"


def texts(facts: Sequence[Any]) -> list[str]:
    return sorted(f.text for f in facts)


# -- LangChain: create_agent with the tools and the middleware --------------------------------


class ScriptedChatModel(GenericFakeChatModel):
    """A chat model `create_agent` can bind tools to; replies scripted, calls recorded."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])


def test_langchain_agent_with_tools_and_middleware(backend: Any, ns: str) -> None:
    model = ScriptedChatModel(messages=iter([
        AIMessage("Noted."),  # turn 1: the middleware writes the stated fact
        call("recall", {"query": QUESTION}, "c1"), AIMessage("Green."),  # turn 2
        AIMessage("Got it."),  # turn 3: the middleware applies the correction
        call("remember", {"fact": OTHER}, "c2"), AIMessage("Stored."),  # turn 4
        call("forget", {"fact": TOPIC}, "c3"), AIMessage("Forgotten."),  # turn 5
    ]))
    agent = create_agent(
        model, tools=LarimarToolkit(larimar=backend, context_source="stored").get_tools(),
        middleware=[LarimarMiddleware(backend, context_source="stored")],
    )
    config = {"configurable": {"user_id": ns, "thread_id": ns}}
    user = f"user:{ns}"

    def turn(text: str) -> list[str]:
        result = agent.invoke({"messages": [{"role": "user", "content": text}]}, config)
        return [str(m.content) for m in result["messages"] if isinstance(m, ToolMessage)]

    assert turn(FACT) == []
    assert texts(backend.list(namespace=user)) == [FACT]
    [recalled] = turn(QUESTION)
    assert FACT in recalled
    assert FACT in str(model.seen[-2][0].content)  # the middleware's context, system message
    turn(CORRECTION)
    assert texts(backend.list(namespace=user)) == [CORRECTED]
    [remembered] = turn("Please keep this for later.")
    assert remembered.startswith(f"Remembered: {OTHER}")
    assert texts(backend.list(namespace=user)) == [CORRECTED, OTHER]
    [forgotten] = turn("Forget my favourite colour, please.")
    assert forgotten.startswith(f"Forgot: {CORRECTED}")
    assert texts(backend.list(namespace=user)) == [OTHER]
    assert backend.clear(namespace=user) == 1
    assert user not in backend.namespaces()


# -- LangChain: memory and retriever ------------------------------------------------------------


def test_langchain_memory_and_retriever(backend: Any, ns: str) -> None:
    memory = LarimarMemory(larimar=backend, namespace=ns, context_source="stored", k=1)
    memory.observe(FACT)
    memory.observe(OTHER)
    retriever = LarimarRetriever(larimar=backend, namespace=ns, k=2, context_source="stored",
                                 include_out_of_scope=True)
    assert [d.page_content for d in retriever.invoke(QUESTION)] == [FACT, OTHER]
    for wanted in ({"slot": {"$in": ["my sister"]}},
                   {"slot": {"$ne": TOPIC}, "time": {"$gt": "2"}}):
        narrowed = LarimarRetriever(larimar=backend, namespace=ns, k=2, filter=wanted,
                                    context_source="stored", include_out_of_scope=True)
        assert [d.page_content for d in narrowed.invoke(QUESTION)] == [OTHER]
    assert memory.invoke(QUESTION) == FACT
    memory.observe(CORRECTION)
    assert memory.invoke(QUESTION) == CORRECTED
    memory.observe("Forget my favourite colour.")
    assert texts(backend.list(namespace=ns)) == [OTHER]
    assert memory.clear() == 1 and backend.list(namespace=ns) == []


# -- LangGraph: the store -----------------------------------------------------------------------


async def test_langgraph_store(backend: Any, ns: str) -> None:
    store = LarimarStore(backend, index={"fields": ["text"]}, root=ns)
    store.put(("memories", "alice"), "m1", {"text": FACT, "kind": "profile", "n": 1})
    store.put(("memories", "alice"), "m2", {"text": OTHER, "kind": "family", "n": 2})
    await store.aput(("notes", "alice"), "m3", {"text": "Buy milk on Monday.", "kind": "todo",
                                               "n": 3})
    assert store.list_namespaces() == [("memories", "alice"), ("notes", "alice")]
    found = store.search(("memories",), query=QUESTION, limit=2)
    assert [i.key for i in found] == ["m1", "m2"] and found[0].score > found[1].score
    assert sorted(i.key for i in store.search((), query=QUESTION, filter={"n": {"$gte": 2}})) \
        == ["m2", "m3"]
    assert [i.key for i in await store.asearch((), filter={"kind": {"$in": ["family"]}})] == [
        "m2"]
    store.put(("memories", "alice"), "m1", {"text": CORRECTED, "kind": "profile", "n": 1})
    assert store.get(("memories", "alice"), "m1").value["text"] == CORRECTED
    [best] = store.search(("memories",), query=QUESTION, limit=1)
    assert (best.key, best.value["text"]) == ("m1", CORRECTED)
    store.delete(("memories", "alice"), "m1")
    assert store.get(("memories", "alice"), "m1") is None
    assert [i.key for i in store.search(("memories",))] == ["m2"]
    store.delete(("memories", "alice"), "m2")
    await store.adelete(("notes", "alice"), "m3")
    assert store.list_namespaces() == []


# -- LlamaIndex: memory block, query engine, tool spec ------------------------------------------


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


async def test_llamaindex_block_query_engine_and_tools(backend: Any, ns: str) -> None:
    block = LarimarMemoryBlock(backend, namespace=ns, k=2, context_source="stored")
    await block.aget(user(FACT))  # eager: the statement is written when the block reads it
    assert texts(backend.list(namespace=ns)) == [FACT]
    assert await block.aget(user(QUESTION)) == f"- {FACT}"

    tools = LarimarToolSpec(backend, namespace=ns, k=2, context_source="stored")
    assert tools.remember(OTHER).startswith("Remembered")
    backend.remember("Buy milk on Monday.", metadata={"kind": "todo"}, namespace=ns)
    recalled = tools.recall(QUESTION)
    assert FACT in recalled

    engine = LarimarQueryEngine(backend, namespace=ns, k=2, context_source="stored")
    response = engine.query(QUESTION)
    assert response.metadata["route"] == "memory"
    assert [n.node.text for n in response.source_nodes][0] == FACT
    assert response.response == backend.ask(QUESTION, k=2, namespace=ns).answer
    todo = MetadataFilters(filters=[MetadataFilter(key="kind", value="todo")])
    filtered = LarimarQueryEngine(backend, namespace=ns, k=2, context_source="stored",
                                  filters=todo)
    assert [n.node.text for n in filtered.query(MILK).source_nodes] == ["Buy milk on Monday."]
    # the colour is not a todo, and the question is about the user: nothing stored to answer it
    assert filtered.query(QUESTION).metadata["route"] == "unknown"
    not_todo = MetadataFilters(filters=[
        MetadataFilter(key="kind", value="todo", operator=FilterOperator.NE)])
    assert await LarimarMemoryBlock(backend, namespace=ns, filters=not_todo,
                                    context_source="stored").aget(user(MILK)) == ""
    assert (await block.aget(user(MILK))).startswith("- Buy milk on Monday.\n")

    await block.aget(user(CORRECTION))
    assert texts(backend.list(namespace=ns)) == ["Buy milk on Monday.", CORRECTED, OTHER]
    assert tools.forget(TOPIC).startswith("Forgot")
    assert texts(backend.list(namespace=ns)) == ["Buy milk on Monday.", OTHER]
    assert backend.clear(namespace=ns) == 2


# -- MCP ----------------------------------------------------------------------------------------


async def test_mcp_tools(backend: Any, ns: str) -> None:
    async with mcp.Client(create_mcp_server(backend, namespace=ns)) as client:
        ids = []
        for text in (FACT, OTHER):
            written = await client.call_tool("remember", {"text": text, "key": text[:-1],
                                                          "metadata": {"source": "mcp"}})
            assert not written.is_error, written.content
            ids += written.structured_content["ids"]
        fact_id, other_id = ids
        await client.call_tool("remember", {"text": "Buy milk on Monday.",
                                            "metadata": {"source": "todo"}})
        recalled = await client.call_tool("recall", {"query": QUESTION, "k": 2,
                                                     "filter": {"source": "mcp"}})
        hits = recalled.structured_content["hits"]
        assert [h["fact"]["id"] for h in hits] == [fact_id, other_id]
        listed = await client.call_tool("list", {"filter": {"source": {"$ne": "mcp"}}})
        assert [f["text"] for f in listed.structured_content["result"]] == [
            "Buy milk on Monday."]
        corrected = await client.call_tool("remember", {"text": CORRECTED, "key": FACT[:-1],
                                                        "metadata": {"source": "mcp"}})
        assert corrected.structured_content["outcomes"][0]["status"] == "replaced"
        forgotten = await client.call_tool("forget", {"fact": other_id})
        assert [f["id"] for f in forgotten.structured_content["result"]] == [other_id]
        listed = await client.call_tool("list", {"filter": {"source": "mcp"}})
        assert [f["text"] for f in listed.structured_content["result"]] == [CORRECTED]
        bad = await client.call_tool("recall", {"query": QUESTION, "filter": {"n": {"$x": 1}}})
        assert bad.is_error and "unknown operator" in bad.content[0].text
    assert backend.clear(namespace=ns) == 2



# -- the protocol itself: update ----------------------------------------------------------------


async def test_update_replaces_the_text_under_the_same_id(backend: Any, ns: str) -> None:
    from larimar_memory.errors import FactNotFoundError, TextInputError

    [fact_id] = backend.remember(FACT, key="colour", metadata={"topic": "colour"},
                                 namespace=ns).ids
    result = backend.update(fact_id, CORRECTED, namespace=ns)
    assert [(o.id, o.status) for o in result.outcomes] == [(fact_id, "replaced")]
    fact = backend.get(fact_id, namespace=ns)
    assert (fact.text, fact.key, fact.metadata) == (CORRECTED, "colour", {"topic": "colour"})
    await backend.aupdate(fact_id, FACT, namespace=ns, metadata={"topic": "again"})
    assert [(f.id, f.text, f.metadata) for f in backend.list(namespace=ns)] == [
        (fact_id, FACT, {"topic": "again"})]
    with pytest.raises(FactNotFoundError):
        backend.update("no-such-fact", FACT, namespace=ns)
    with pytest.raises(TextInputError, match="one text"):
        backend.update(fact_id, [FACT, OTHER], namespace=ns)
    assert backend.clear(namespace=ns) == 1


# -- mem0's scoping (user_id / agent_id / run_id) through every integration ---------------------

BOBS = "My favourite colour is red."


def test_scoping_in_langchain_agent_memory_and_retriever(backend: Any, ns: str) -> None:
    """Two users in one namespace: each component bound to a user_id reads, corrects and
    forgets only that user's facts."""
    def agent_for(user_id: str, replies: list[AIMessage]) -> Any:
        toolkit = LarimarToolkit(larimar=backend, namespace=ns, context_source="stored",
                                 user_id=user_id)
        return create_agent(ScriptedChatModel(messages=iter(replies)), tools=toolkit.get_tools(),
                            middleware=[LarimarMiddleware(backend, namespace=ns,
                                                          context_source="stored",
                                                          user_id=user_id)])

    alice = agent_for("alice", [AIMessage("Noted."), call("recall", {"query": QUESTION}, "a1"),
                                AIMessage("Green."), call("forget", {"fact": TOPIC}, "a2"),
                                AIMessage("Done.")])
    bob = agent_for("bob", [AIMessage("Noted.")])

    def turn(agent: Any, text: str) -> list[str]:
        result = agent.invoke({"messages": [{"role": "user", "content": text}]},
                              {"configurable": {"thread_id": ns}})
        return [str(m.content) for m in result["messages"] if isinstance(m, ToolMessage)]

    turn(alice, FACT)
    turn(bob, BOBS)
    assert texts(backend.list(namespace=ns, user_id="alice")) == [FACT]
    [recalled] = turn(alice, QUESTION)
    assert FACT in recalled and BOBS not in recalled
    [forgotten] = turn(alice, "Forget my favourite colour, please.")
    assert forgotten.startswith(f"Forgot: {FACT}")  # bob's colour was never a candidate
    assert texts(backend.list(namespace=ns)) == [BOBS]

    memory = LarimarMemory(larimar=backend, namespace=ns, context_source="stored",
                           user_id="alice")
    memory.observe(FACT)
    retriever = LarimarRetriever(larimar=backend, namespace=ns, k=5, context_source="stored",
                                 include_out_of_scope=True, user_id="bob")
    assert [d.page_content for d in retriever.invoke(QUESTION)] == [BOBS]
    assert memory.invoke(QUESTION) == FACT
    assert memory.clear() == 1  # alice's facts only
    assert texts(backend.list(namespace=ns)) == [BOBS]
    assert backend.clear(namespace=ns, user_id="bob") == 1


async def test_scoping_in_langgraph_llamaindex_and_mcp(backend: Any, ns: str) -> None:
    # LangGraph: the store over a memory bound to one user
    store = LarimarStore(ScopedMemory(backend, user_id="alice"), index={"fields": ["text"]},
                         root=ns)
    store.put(("memories",), "m1", {"text": FACT})
    backend.remember(BOBS, namespace=f"{ns}/memories", user_id="bob")
    assert [i.key for i in store.search(("memories",), query=QUESTION, limit=5)] == ["m1"]
    store.delete(("memories",), "m1")
    assert texts(backend.list(namespace=f"{ns}/memories")) == [BOBS]
    backend.clear(namespace=f"{ns}/memories")

    # LlamaIndex: block, query engine and tools bound to one user
    backend.remember(BOBS, namespace=ns, user_id="bob")
    block = LarimarMemoryBlock(backend, namespace=ns, k=3, context_source="stored",
                               user_id="alice")
    await block.aget(user(FACT))
    assert texts(backend.list(namespace=ns, user_id="alice")) == [FACT]
    assert await block.aget(user(QUESTION)) == f"- {FACT}"
    engine = LarimarQueryEngine(backend, namespace=ns, k=3, context_source="stored",
                                user_id="carol")
    assert engine.query(QUESTION).metadata["route"] == "unknown"  # carol stored nothing
    tools = LarimarToolSpec(backend, namespace=ns, context_source="stored", user_id="bob")
    assert tools.forget(TOPIC).startswith(f"Forgot 1 fact: {BOBS!r}")
    assert texts(backend.list(namespace=ns)) == [FACT]

    # MCP: the tools take the scope ids
    async with mcp.Client(create_mcp_server(backend, namespace=ns)) as client:
        written = await client.call_tool("remember", {"text": BOBS, "user_id": "bob"})
        assert not written.is_error, written.content
        recalled = await client.call_tool("recall", {"query": QUESTION, "k": 5,
                                                     "user_id": "alice"})
        assert [h["fact"]["text"] for h in recalled.structured_content["hits"]] == [FACT]
        listed = await client.call_tool("list", {"user_id": "bob"})
        assert [f["text"] for f in listed.structured_content["result"]] == [BOBS]
        [bobs_id] = written.structured_content["ids"]
        refused = await client.call_tool("forget", {"fact": bobs_id, "user_id": "alice"})
        assert refused.is_error and "FactNotFoundError" in refused.content[0].text
        bad = await client.call_tool("list", {"user_id": ""})
        assert bad.is_error and "user_id" in bad.content[0].text
    assert backend.clear(namespace=ns, user_id="alice") == 1
    assert texts(backend.list(namespace=ns)) == [BOBS]
    assert backend.clear(namespace=ns) == 1


# -- the protocol itself: history ---------------------------------------------------------------


async def test_history_outlives_the_fact_but_not_its_text(backend: Any, ns: str) -> None:
    from larimar_memory.errors import FactNotFoundError

    [fact_id] = backend.remember(FACT, namespace=ns, user_id="alice").ids
    backend.update(fact_id, CORRECTED, namespace=ns)
    [replacer] = backend.remember(messages=[{"role": "user", "content": OTHER}],
                                  namespace=ns).ids
    backend.forget(fact_id, namespace=ns)
    events = backend.history(fact_id, namespace=ns)
    assert [e.event for e in events] == ["written", "updated", "forgotten"]
    assert [e.version for e in events] == sorted(e.version for e in events)
    assert all(e.fact_id == fact_id and e.namespace == ns for e in events)
    assert "colour" not in repr(events)  # never the text
    assert [e.event for e in await backend.ahistory(replacer, namespace=ns)] == ["written"]
    with pytest.raises(FactNotFoundError):
        backend.history("never-stored", namespace=ns)
    assert backend.clear(namespace=ns) == 1
    with pytest.raises(FactNotFoundError):  # clearing a namespace deletes every trace
        backend.history(fact_id, namespace=ns)
