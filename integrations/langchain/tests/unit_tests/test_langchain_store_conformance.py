"""The `BaseStore` contract, side by side: every test in the first part runs against
LangGraph's `InMemoryStore` (the reference, embedding with the same hashing embedder as the tiny
Larimar) and `LarimarStore`, with the same assertions. What only `LarimarStore` has (TTL,
the richer filter operators, a refused custom embedder) follows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore
from larimar_memory.testing import HashingEmbedder

from langchain_larimar import LarimarStore
from langchain_larimar import store as store_module
from langchain_larimar.store import MAX_TTL_MINUTES

FIELDS = ["title", "body", "sections[*].text"]


def hashing_embed(texts: list[str]) -> list[list[float]]:
    return HashingEmbedder().encode(list(texts)).tolist()


@pytest.fixture(params=["InMemoryStore", "LarimarStore"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "InMemoryStore":
        return InMemoryStore(index={"dims": 256, "embed": hashing_embed, "fields": FIELDS})
    return LarimarStore(request.getfixturevalue("larimar"), index={"fields": FIELDS})


def keys(items: list[Any]) -> list[str]:
    return [i.key for i in items]


# -- the contract, on both stores ---------------------------------------------------------------


def test_namespaces_and_their_listing(store: Any) -> None:
    for ns in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "x"), ("z", "y/z")]:
        store.put(ns, "k", {"title": "A fact stored here."})
    assert store.list_namespaces() == [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "x"),
                                       ("z", "y/z")]
    assert store.list_namespaces(prefix=("a", "b")) == [("a", "b", "c"), ("a", "b", "d", "e")]
    assert store.list_namespaces(suffix=("e",)) == [("a", "b", "d", "e")]
    assert store.list_namespaces(prefix=("a", "*", "c")) == [("a", "b", "c")]
    assert store.list_namespaces(max_depth=2) == [("a", "b"), ("a", "x"), ("z", "y/z")]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "x")]
    assert store.get(("a", "x"), "k").value == {"title": "A fact stored here."}
    assert store.get(("a",), "k") is None  # a prefix is not a namespace


def test_paging_lists_in_insertion_order(store: Any) -> None:
    for i in range(5):
        store.put(("p",), f"k{i}", {"title": f"Item number {i}.", "n": i})
    assert keys(store.search(("p",), limit=2)) == ["k0", "k1"]
    assert keys(store.search(("p",), limit=2, offset=2)) == ["k2", "k3"]
    assert keys(store.search(("p",), limit=10, offset=4)) == ["k4"]
    assert store.search(("p",), limit=3, offset=5) == []


def test_filters(store: Any) -> None:
    store.put(("f",), "a", {"title": "Alice lives in Lisbon.", "kind": "place", "n": 1,
                            "doc": {"lang": "en"}})
    store.put(("f",), "b", {"title": "Alice likes tea.", "kind": "taste", "n": 2,
                            "doc": {"lang": "pt"}})
    store.put(("f",), "c", {"title": "Bob lives in Porto.", "kind": "place", "n": 3})
    assert keys(store.search(("f",), filter={"kind": "place"})) == ["a", "c"]
    assert keys(store.search(("f",), filter={"kind": "place", "n": 3})) == ["c"]
    assert keys(store.search(("f",), filter={"n": {"$gt": 1}})) == ["b", "c"]
    assert keys(store.search(("f",), filter={"n": {"$gte": 2, "$lt": 3}})) == ["b"]
    assert keys(store.search(("f",), filter={"n": {"$lte": 1}})) == ["a"]
    assert keys(store.search(("f",), filter={"kind": {"$ne": "place"}})) == ["b"]
    assert keys(store.search(("f",), filter={"kind": {"$eq": "taste"}})) == ["b"]
    assert keys(store.search(("f",), filter={"doc": {"lang": "pt"}})) == ["b"]
    found = store.search(("f",), query="Where does Alice live?", filter={"kind": "place"})
    assert sorted(keys(found)) == ["a", "c"]


def test_each_field_and_path_is_embedded_on_its_own(store: Any) -> None:
    store.put(("e",), "title", {"title": "Alice lives in Lisbon.",
                                "body": "Shopping list: eggs, bread, butter, flour, sugar."})
    store.put(("e",), "body", {"title": "Weekly planning notes.",
                               "body": "Bob works at the harbour in Porto."})
    store.put(("e",), "path", {"title": "Diary.", "sections": [
        {"text": "Monday was rainy and cold."}, {"text": "Carol plays the violin."}]})
    for query, best in [("Where does Alice live?", "title"), ("Where does Bob work?", "body"),
                        ("Who plays the violin?", "path")]:
        assert store.search(("e",), query=query, limit=1)[0].key == best, query
    # a put's own index overrides the store's fields
    store.put(("e",), "own", {"title": "Dave likes chess.", "note": "Erin owns a red kayak."},
              index=["note"])
    assert store.search(("e",), query="Who owns a red kayak?", limit=1)[0].key == "own"


def test_index_false_items_come_last_without_a_score(store: Any) -> None:
    store.put(("i",), "seen", {"title": "Alice lives in Lisbon."})
    store.put(("i",), "hidden", {"title": "Alice lives in Lisbon."}, index=False)
    found = store.search(("i",), query="Where does Alice live?")
    assert keys(found) == ["seen", "hidden"]
    assert found[0].score is not None and found[1].score is None
    assert keys(store.search(("i",), query="Where does Alice live?", limit=1)) == ["seen"]
    assert store.get(("i",), "hidden").value == {"title": "Alice lives in Lisbon."}


def test_updates_keep_created_at_and_deletes_remove(store: Any) -> None:
    store.put(("u",), "k", {"title": "Alice likes tea."})
    first = store.get(("u",), "k")
    store.put(("u",), "k", {"title": "Alice likes coffee."})
    second = store.get(("u",), "k")
    assert second.value == {"title": "Alice likes coffee."}
    assert second.updated_at >= first.updated_at
    assert keys(store.search(("u",), query="What does Alice like?")) == ["k"]
    store.delete(("u",), "k")
    assert store.get(("u",), "k") is None and store.search(("u",)) == []


def test_batch_runs_reads_before_writes(store: Any) -> None:
    store.put(("b",), "a", {"title": "Alice likes tea."})
    results = store.batch([
        PutOp(("b",), "a", {"title": "Alice likes coffee."}),
        GetOp(("b",), "a"),
        SearchOp(("b",), query=None, limit=10),
        PutOp(("b",), "c", {"title": "Carol likes juice."}),
        ListNamespacesOp(match_conditions=None, limit=10),
        PutOp(("b",), "a", {"title": "Alice likes water."}),
    ])
    assert results[0] is None and results[3] is None and results[5] is None
    assert results[1].value == {"title": "Alice likes tea."}
    assert keys(results[2]) == ["a"]
    assert results[4] == [("b",)]
    assert store.get(("b",), "a").value == {"title": "Alice likes water."}
    assert sorted(keys(store.search(("b",)))) == ["a", "c"]


async def test_async_api(store: Any) -> None:
    await asyncio.gather(*(store.aput(("as", str(i)), "k", {"title": f"Fact {i}."})
                           for i in range(3)))
    assert await store.alist_namespaces() == [("as", "0"), ("as", "1"), ("as", "2")]
    assert (await store.aget(("as", "1"), "k")).value == {"title": "Fact 1."}
    [hit] = await store.asearch(("as", "2"), query="Fact 2.", limit=1)
    assert hit.key == "k" and hit.score is not None
    await store.adelete(("as", "1"), "k")
    assert await store.aget(("as", "1"), "k") is None
    results = await store.abatch([GetOp(("as", "0"), "k"), GetOp(("as", "1"), "k")])
    assert results[0].value == {"title": "Fact 0."} and results[1] is None


# -- LarimarStore only --------------------------------------------------------------------------


@pytest.fixture
def larimar_store(larimar: Any) -> LarimarStore:
    return LarimarStore(larimar, index={"fields": FIELDS})


def test_richer_filters(larimar_store: LarimarStore) -> None:
    for key, kind in [("a", "place"), ("b", "taste"), ("c", "todo")]:
        larimar_store.put(("r",), key, {"title": f"A {kind} fact.", "kind": kind})
    assert keys(larimar_store.search(("r",), filter={"kind": {"$in": ["place", "todo"]}})) == [
        "a", "c"]
    assert keys(larimar_store.search(("r",), filter={"kind": {"$nin": ["place", "todo"]}})) == [
        "b"]
    assert keys(larimar_store.search(("r",), filter={"$or": [{"kind": "todo"},
                                                             {"kind": "taste"}]})) == ["b", "c"]
    with pytest.raises(ValueError, match="unknown operator"):
        larimar_store.search(("r",), filter={"kind": {"$like": "pl%"}})
    with pytest.raises(ValueError, match="own metadata field"):
        larimar_store.search(("r",), filter={"langgraph_store": {"key": "a"}})
    with pytest.raises(ValueError, match="Rename the field"):
        larimar_store.put(("r",), "x", {"langgraph_store": 1})


def test_value_is_stored_once(larimar_store: LarimarStore, larimar: Any) -> None:
    value = {"title": "Alice lives in Lisbon.", "kind": "place"}
    larimar_store.put(("o",), "k", value)
    [fact] = larimar.list(namespace=larimar_store.larimar_namespace(("o",)))
    assert "value" not in fact.metadata["langgraph_store"]
    assert {k: v for k, v in fact.metadata.items() if k != "langgraph_store"} == value
    assert larimar_store.get(("o",), "k").value == value


def test_fields_become_the_fact_keys(larimar_store: LarimarStore, larimar: Any) -> None:
    larimar_store.put(("o",), "k", {"title": "Diary.", "sections": [{"text": "Monday."},
                                                                    {"text": "Tuesday."}]})
    fact = larimar.get("k", namespace=larimar_store.larimar_namespace(("o",)))
    assert fact.text == "Diary.\nMonday.\nTuesday."
    assert (fact.key, fact.extra_keys) == ("Diary.", ["Monday.", "Tuesday."])


@pytest.mark.parametrize("index", [{"dims": 256, "embed": hashing_embed},
                                   {"embed": "openai:text-embedding-3-small"},
                                   {"fields": ["a"], "dims": 384}])
def test_a_custom_embedder_is_refused(larimar: Any, index: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="memory's own key embedder"):
        LarimarStore(larimar, index=index)  # type: ignore[arg-type]


def test_unknown_index_options_are_refused(larimar: Any) -> None:
    with pytest.raises(ValueError, match="unknown index option"):
        LarimarStore(larimar, index={"fields": ["a"], "ann": True})  # type: ignore[typeddict-unknown-key]


# -- TTL ----------------------------------------------------------------------------------------


class Clock:
    """The store module's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    monkeypatch.setattr(store_module, "_clock", clock)
    yield clock


def stored_ids(larimar: Any, store: LarimarStore, ns: tuple[str, ...]) -> list[str]:
    return sorted(f.id for f in larimar.list(namespace=store.larimar_namespace(ns)))


def test_ttl_expires_items_and_purges_their_facts(larimar_store: LarimarStore, larimar: Any,
                                                   clock: Clock) -> None:
    ns = ("t",)
    larimar_store.put(ns, "short", {"title": "Alice lives in Lisbon."}, ttl=1)
    larimar_store.put(ns, "long", {"title": "Alice likes tea."}, ttl=60)
    larimar_store.put(ns, "forever", {"title": "Alice has a cat."})
    clock.advance(0.5)
    assert larimar_store.get(ns, "short", refresh_ttl=False) is not None
    clock.advance(1)
    assert larimar_store.get(ns, "short") is None  # expired: not returned, and forgotten
    assert stored_ids(larimar, larimar_store, ns) == ["forever", "long"]
    clock.advance(60)
    assert keys(larimar_store.search(ns, query="Alice")) == ["forever"]
    assert stored_ids(larimar, larimar_store, ns) == ["forever"]


def test_ttl_refresh_on_read(larimar_store: LarimarStore, clock: Clock) -> None:
    ns = ("t",)
    larimar_store.put(ns, "k", {"title": "Alice lives in Lisbon."}, ttl=10)
    clock.advance(8)
    assert larimar_store.get(ns, "k") is not None  # refresh_ttl defaults to True
    clock.advance(8)
    assert larimar_store.search(ns, query="Where does Alice live?", limit=1)[0].key == "k"
    clock.advance(8)
    assert larimar_store.get(ns, "k", refresh_ttl=False) is not None
    clock.advance(8)  # 16 minutes since the last refresh
    assert larimar_store.get(ns, "k") is None


def test_a_search_refreshes_only_what_it_returns(larimar_store: LarimarStore,
                                                 clock: Clock) -> None:
    ns = ("t",)
    larimar_store.put(ns, "asked", {"title": "Alice lives in Lisbon."}, ttl=10)
    larimar_store.put(ns, "other", {"title": "Bob has a red kayak."}, ttl=10)
    clock.advance(8)
    assert keys(larimar_store.search(ns, query="Where does Alice live?", limit=1)) == ["asked"]
    clock.advance(8)
    assert larimar_store.get(ns, "asked", refresh_ttl=False) is not None
    assert larimar_store.get(ns, "other") is None


def test_ttl_config_default_and_no_refresh(larimar: Any, clock: Clock) -> None:
    store = LarimarStore(larimar, ttl={"default_ttl": 5, "refresh_on_read": False})
    store.put(("d",), "k", {"title": "Alice lives in Lisbon."})
    store.put(("d",), "kept", {"title": "Alice likes tea."}, ttl=None)
    clock.advance(4)
    assert store.get(("d",), "k") is not None  # read, not refreshed
    clock.advance(2)
    assert store.get(("d",), "k") is None and store.get(("d",), "kept") is not None


def test_sweep_forgets_expired_items_nobody_reads(larimar_store: LarimarStore, larimar: Any,
                                                  clock: Clock) -> None:
    for i in range(3):
        larimar_store.put(("s", str(i)), "k", {"title": f"Fact {i}."}, ttl=1 + i)
    clock.advance(2.5)
    assert larimar_store.sweep_ttl() == 2
    assert larimar_store.list_namespaces() == [("s", "2")]
    assert asyncio.run(larimar_store.asweep_ttl()) == 0


def test_sweeper_thread_starts_and_stops(larimar_store: LarimarStore) -> None:
    future = larimar_store.start_ttl_sweeper(sweep_interval_minutes=0.001)
    assert larimar_store.start_ttl_sweeper() is future  # one sweeper
    time.sleep(0.3)
    assert larimar_store.stop_ttl_sweeper(timeout=30)
    assert future.done() and future.exception() is None


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), MAX_TTL_MINUTES * 2, "5",
                                 True])
def test_bad_ttls_are_refused(larimar_store: LarimarStore, larimar: Any, ttl: Any) -> None:
    with pytest.raises(ValueError, match="minutes until the item expires"):
        larimar_store.put(("t",), "k", {"title": "Alice lives in Lisbon."}, ttl=ttl)
    assert larimar_store.get(("t",), "k") is None  # nothing written
    with pytest.raises(ValueError, match="default_ttl"):
        LarimarStore(larimar, ttl={"default_ttl": ttl})
