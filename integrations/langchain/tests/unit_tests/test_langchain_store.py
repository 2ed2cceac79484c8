"""`LarimarStore`: the LangGraph `BaseStore` API on a tiny Larimar, in `create_agent`, with
langmem's memory tools, and differentially against LangGraph's `InMemoryStore`."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.config import get_store
from langgraph.store.base import Item, SearchItem
from langgraph.store.memory import InMemoryStore
from larimar_memory.service import Larimar

from langchain_larimar import LarimarStore
from langchain_larimar.store import META_KEY

NS = ("memories", "alice")


@pytest.fixture
def store(larimar) -> LarimarStore:
    return LarimarStore(larimar, index={"fields": ["content"]})


def test_namespaces_map_reversibly(store, larimar) -> None:
    odd = ("a/b", "c%2F", "user:1")
    name = store.larimar_namespace(odd)
    assert name == "langgraph/a%2Fb/c%252F/user:1"
    assert store.store_namespace(name) == odd
    assert store.store_namespace("user:alice") is None  # not one of the store's
    store.put(odd, "k", {"content": "My favourite colour is green."})
    assert larimar.namespaces() == [name]
    assert store.list_namespaces() == [odd]


def test_put_get_update_delete(store, larimar, texts) -> None:
    assert store.get(NS, "m1") is None
    store.put(NS, "m1", {"content": texts.fact, "kind": "profile"})
    item = store.get(NS, "m1")
    assert isinstance(item, Item)
    assert (item.namespace, item.key, item.value) == (NS, "m1", {"content": texts.fact,
                                                               "kind": "profile"})
    [fact] = larimar.list(namespace=store.larimar_namespace(NS))
    assert fact.id == "m1" and fact.text == texts.fact  # the indexed field is the fact text
    assert fact.metadata["kind"] == "profile" and fact.metadata[META_KEY]["key"] == "m1"

    store.put(NS, "m1", {"content": texts.other_fact})  # same key: an exact replacement
    updated = store.get(NS, "m1")
    assert updated.value == {"content": texts.other_fact}
    assert updated.created_at == item.created_at and updated.updated_at >= item.updated_at
    assert [f.text for f in larimar.list(namespace=store.larimar_namespace(NS))] == [
        texts.other_fact
    ]
    store.delete(NS, "m1")
    assert store.get(NS, "m1") is None
    assert larimar.list(namespace=store.larimar_namespace(NS)) == []
    store.delete(NS, "m1")  # deleting a missing key is a no-op
    store.put(NS, "m2", {"content": texts.fact})
    store.put(NS, "m2", None)  # put None = delete
    assert store.get(NS, "m2") is None
    assert store.list_namespaces() == []  # a namespace exists while it holds items


def test_similar_facts_under_other_keys_are_kept(store, texts) -> None:
    store.put(NS, "a", {"content": texts.fact})
    store.put(NS, "b", {"content": "My favourite colour is blue."})
    assert {i.key for i in store.search(NS)} == {"a", "b"}


def test_search_top_k_by_query_across_a_prefix(store, texts) -> None:
    store.put(NS, "colour", {"content": texts.fact})
    store.put(NS, "sister", {"content": texts.other_fact})
    store.put(("memories", "bob"), "colour", {"content": "My favourite colour is red."})
    hits = store.search(("memories",), query=texts.question, limit=2)
    assert len(hits) == 2 and all(isinstance(h, SearchItem) for h in hits)
    assert all(h.score is not None for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].key == "colour"
    assert {h.namespace for h in hits} <= {NS, ("memories", "bob")}
    assert len(store.search(("memories",), query=texts.question, limit=10)) == 3
    assert len(store.search(("memories",), query=texts.question, limit=10, offset=2)) == 1
    [only] = store.search(NS, query=texts.other_question, limit=1)
    assert only.key == "sister"


def test_relevant_only_search_returns_hits_only_when_the_scope_calls_them_relevant(
        larimar, texts) -> None:
    """Default: every item ranked, as `InMemoryStore`. ``relevant_only``: a general question
    gets nothing; a question about a stored fact gets the hits."""
    ranked = LarimarStore(larimar, index={"fields": ["content"]})
    scoped = LarimarStore(larimar, index={"fields": ["content"]}, relevant_only=True)
    ranked.put(NS, "colour", {"content": texts.fact})
    ranked.put(NS, "sister", {"content": texts.other_fact})
    general = "quantum chromodynamics lecture notes"
    assert not larimar.recall(general, namespace=ranked.larimar_namespace(NS)).scope.relevant
    assert len(ranked.search(NS, query=general)) == 2
    assert scoped.search(NS, query=general) == []
    assert larimar.recall(texts.question, namespace=ranked.larimar_namespace(NS)).scope.relevant
    assert scoped.search(NS, query=texts.question)[0].key == "colour"
    assert len(scoped.search(NS)) == 2  # listing without a query is not judged


def test_search_without_query_lists_by_filter(store) -> None:
    store.put(NS, "a", {"content": "Alice lives in Lisbon.", "kind": "place", "n": 1})
    store.put(NS, "b", {"content": "Alice likes tea.", "kind": "taste", "n": 2})
    store.put(("memories", "bob"), "c", {"content": "Bob lives in Porto.", "kind": "place"})
    assert {i.key for i in store.search(("memories",), filter={"kind": "place"})} == {"a", "c"}
    assert [i.key for i in store.search(NS, filter={"n": {"$gt": 1}})] == ["b"]
    assert [i.key for i in store.search(NS, filter={"kind": {"$ne": "place"}})] == ["b"]
    assert [i.score for i in store.search(NS)] == [None, None]
    assert len(store.search(("memories",), limit=2)) == 2
    hits = store.search(("memories",), query="Where does Alice live?", filter={"kind": "place"})
    assert {h.key for h in hits} == {"a", "c"}


def test_list_namespaces(store) -> None:
    for ns in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "x"), ("z",)]:
        store.put(ns, "k", {"content": "A fact stored here."})
    assert store.list_namespaces() == [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "x"), ("z",)]
    assert store.list_namespaces(prefix=("a", "b")) == [("a", "b", "c"), ("a", "b", "d", "e")]
    assert store.list_namespaces(suffix=("e",)) == [("a", "b", "d", "e")]
    assert store.list_namespaces(prefix=("a", "*", "c")) == [("a", "b", "c")]
    assert store.list_namespaces(max_depth=2) == [("a", "b"), ("a", "x"), ("z",)]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "x")]


def test_default_index_is_the_whole_value(larimar) -> None:
    store = LarimarStore(larimar)
    store.put(NS, "k", {"content": "Alice lives in Lisbon.", "n": 1})
    [fact] = larimar.list(namespace=store.larimar_namespace(NS))
    assert fact.text == "Alice lives in Lisbon.\nn: 1"  # its strings, not its JSON
    store.put(NS, "nested", {"trip": {"to": "Oslo", "days": [2, 3]}, "ok": True})
    assert larimar.get("nested", namespace=store.larimar_namespace(NS)).text == (
        "ok: true\ndays: 2\ndays: 3\nOslo")
    store.put(NS, "empty", {})
    assert larimar.get("empty", namespace=store.larimar_namespace(NS)).text == "{}"
    store.put(NS, "j", {"title": "Trip", "body": "Alice flies on Monday."}, index=["body"])
    assert larimar.get("j", namespace=store.larimar_namespace(NS)).text == (
        "Alice flies on Monday."
    )
    store.put(NS, "hidden", {"content": "Alice lives in Lisbon."}, index=False)
    found = store.search(NS, query="Where does Alice live?")
    assert [h.key for h in found][-1] == "hidden"  # after the scored items, as InMemoryStore
    assert found[-1].score is None and all(h.score is not None for h in found[:-1])
    assert store.get(NS, "hidden") is not None


def test_batch_reads_see_the_state_before_the_writes(store) -> None:
    from langgraph.store.base import GetOp, PutOp

    store.put(NS, "a", {"content": "Alice likes tea."})
    results = store.batch([
        PutOp(NS, "a", {"content": "Alice likes coffee."}),
        GetOp(NS, "a"),
        PutOp(NS, "a", {"content": "Alice likes juice."}),
    ])
    assert results[1].value == {"content": "Alice likes tea."}
    assert store.get(NS, "a").value == {"content": "Alice likes juice."}


@pytest.mark.asyncio
async def test_async_api(store, texts) -> None:
    await store.aput(NS, "m1", {"content": texts.fact})
    assert (await store.aget(NS, "m1")).value == {"content": texts.fact}
    [hit] = await store.asearch(NS, query=texts.question, limit=1)
    assert hit.key == "m1"
    assert await store.alist_namespaces() == [NS]
    await store.adelete(NS, "m1")
    assert await store.aget(NS, "m1") is None


def test_persists_across_larimar_instances(tiny_seed, tmp_path, texts) -> None:
    def open_larimar() -> Larimar:
        return Larimar(tiny_seed.model, store=tmp_path / "s.sqlite3",
                       embedder=tiny_seed.embedder, settings=tiny_seed.settings)

    first = open_larimar()
    LarimarStore(first).put(NS, "m1", {"content": texts.fact, "kind": "profile"})
    first.close()
    second = open_larimar()
    try:
        item = LarimarStore(second).get(NS, "m1")
        assert item is not None and item.value == {"content": texts.fact, "kind": "profile"}
    finally:
        second.close()


# -- agents ------------------------------------------------------------------------------------


def test_create_agent_tools_use_the_store(larimar, texts, scripted) -> None:
    from langchain_core.tools import tool

    @tool
    def save(fact: str) -> str:
        """Save a fact."""
        get_store().put(NS, "fact-1", {"content": fact})
        return "saved"

    @tool
    def lookup(query: str) -> str:
        """Look a fact up."""
        return "\n".join(i.value["content"] for i in get_store().search(NS, query=query, limit=1))

    call = scripted.tool_call
    model = scripted(messages=iter([
        call("save", {"fact": texts.fact}, "c1"),
        call("lookup", {"query": texts.question}, "c2"),
        AIMessage("Green."),
    ]))
    store = LarimarStore(larimar, index={"fields": ["content"]})
    agent = create_agent(model, tools=[save, lookup], store=store)
    result = agent.invoke({"messages": [{"role": "user", "content": "Remember my colour."}]})
    tool_out = [m.content for m in result["messages"] if isinstance(m, ToolMessage)]
    assert tool_out == ["saved", texts.fact]
    assert store.get(NS, "fact-1").value == {"content": texts.fact}


def test_langmem_tools_on_the_store(larimar, texts, scripted) -> None:
    from langmem import create_manage_memory_tool, create_search_memory_tool

    store = LarimarStore(larimar, index={"fields": ["content"]})
    manage = create_manage_memory_tool(namespace=("memories", "{langgraph_user_id}"))
    search = create_search_memory_tool(namespace=("memories", "{langgraph_user_id}"))
    call = scripted.tool_call
    model = scripted(messages=iter([
        call("manage_memory", {"content": texts.fact, "action": "create"}, "c1"),
        call("search_memory", {"query": texts.question}, "c2"),
        AIMessage("Green."),
    ]))
    agent = create_agent(model, tools=[manage, search], store=store)
    config: Any = {"configurable": {"langgraph_user_id": "alice"}}
    result = agent.invoke({"messages": [{"role": "user", "content": "Remember it."}]}, config)
    created, found = [m.content for m in result["messages"] if isinstance(m, ToolMessage)]
    memory_id = created.split()[-1]
    assert created.startswith("created memory")
    assert texts.fact in found and memory_id in found
    assert store.get(NS, memory_id).value == {"content": texts.fact}
    # update, then delete, through the tool directly (it runs outside a graph on `store=`)
    direct = create_manage_memory_tool(namespace=NS, store=store)
    direct.invoke({"content": texts.other_fact, "action": "update", "id": memory_id})
    assert store.get(NS, memory_id).value == {"content": texts.other_fact}
    direct.invoke({"action": "delete", "id": memory_id})
    assert store.get(NS, memory_id) is None


# -- differential: InMemoryStore is the reference -------------------------------------------


class _Reference(InMemoryStore):
    """`InMemoryStore` minus its bookkeeping quirk: a namespace is listed only while it holds
    items (a Larimar namespace without facts does not exist)."""

    def batch(self, ops: Any) -> Any:
        results = super().batch(ops)
        for ns in [ns for ns, items in self._data.items() if not items]:
            del self._data[ns]
        return results


LABELS = st.sampled_from(["a", "b", "c/d", "%"])
NAMESPACES = st.lists(LABELS, min_size=1, max_size=3).map(tuple)
KEYS = st.sampled_from(["k1", "k2", "k3"])
WORDS = ["apple", "river", "green", "seven", "quiet", "stone", "music"]
VALUES = st.fixed_dictionaries({
    "content": st.lists(st.sampled_from(WORDS), min_size=2, max_size=5).map(
        lambda w: "The " + " ".join(w) + "."
    ),
    "kind": st.sampled_from(["x", "y"]),
})


def _view(items: list[Any]) -> list[tuple[Any, ...]]:
    return sorted((i.namespace, i.key, sorted(i.value.items())) for i in items)


@settings(max_examples=15, stateful_step_count=12, deadline=None,
          suppress_health_check=list(HealthCheck))
class StoreMachine(RuleBasedStateMachine):
    """The same random operations on both stores must give equal results (search results
    compared as sets: order and scores differ by design)."""

    larimar: Larimar

    @initialize()
    def setup(self) -> None:
        self.reference = _Reference()
        self.store = LarimarStore(self.larimar, index={"fields": ["content"]})
        self.larimar.clear()
        for name in self.larimar.namespaces():
            self.larimar.clear(namespace=name)

    @rule(ns=NAMESPACES, key=KEYS, value=VALUES)
    def put(self, ns: tuple[str, ...], key: str, value: dict[str, Any]) -> None:
        self.reference.put(ns, key, value)
        self.store.put(ns, key, value)

    @rule(ns=NAMESPACES, key=KEYS)
    def delete(self, ns: tuple[str, ...], key: str) -> None:
        self.reference.delete(ns, key)
        self.store.delete(ns, key)

    @rule(ns=NAMESPACES, key=KEYS)
    def get(self, ns: tuple[str, ...], key: str) -> None:
        want, got = self.reference.get(ns, key), self.store.get(ns, key)
        assert (want is None) == (got is None)
        if want is not None:
            assert (got.namespace, got.key, got.value) == (want.namespace, want.key, want.value)

    @rule(prefix=st.lists(LABELS, max_size=2).map(tuple),
          kind=st.none() | st.sampled_from(["x", "y"]))
    def search(self, prefix: tuple[str, ...], kind: str | None) -> None:
        filter = {"kind": kind} if kind else None
        want = self.reference.search(prefix, filter=filter, limit=100)
        got = self.store.search(prefix, filter=filter, limit=100)
        assert _view(got) == _view(want)

    @rule(prefix=st.none() | st.lists(LABELS, max_size=2).map(tuple),
          depth=st.none() | st.integers(1, 3))
    def list_namespaces(self, prefix: tuple[str, ...] | None, depth: int | None) -> None:
        kwargs = {"prefix": prefix, "max_depth": depth, "limit": 100}
        assert self.store.list_namespaces(**kwargs) == self.reference.list_namespaces(**kwargs)

    @invariant()
    def same_namespaces(self) -> None:
        if hasattr(self, "store"):
            assert self.store.list_namespaces(limit=1000) == sorted(
                self.reference.list_namespaces(limit=1000)
            )


def test_differential_against_in_memory_store(larimar) -> None:
    StoreMachine.larimar = larimar
    StoreMachine.TestCase().runTest()
