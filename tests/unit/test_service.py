"""`Larimar`, the object users hold, on a tiny model: remember / recall / ask / forget."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from larimar_memory import EmptyInputError, FactNotFoundError, TextInputError
from larimar_memory.errors import (
    ArgumentError,
    MemoryInputError,
    RequestConflictError,
    StoreMismatchError,
)
from larimar_memory.memory import least_squares_memory
from larimar_memory.routing import UNKNOWN_ANSWER
from larimar_memory.scope import SentenceEmbedder
from larimar_memory.service.cache import state_bytes
from larimar_memory.testing import HashingEmbedder, tiny_larimar

FACTS = [
    "Alice lives in Lisbon.",
    "Bob plays the cello every Sunday.",
    "The team meeting moved to Thursday afternoon.",
]


def _blocks(larimar, namespace="default"):
    ns = larimar._namespaces.synced(namespace)
    return [block.memory.clone() for block in ns.memory.blocks]


def test_remember_list_and_ids(larimar):
    result = larimar.remember(FACTS)
    assert len(result.ids) == 3 and len(set(result.ids)) == 3
    assert [o.status for o in result.outcomes] == ["written"] * 3
    listed = larimar.list()
    assert [f.text for f in listed] == FACTS
    assert [f.id for f in listed] == result.ids


@pytest.mark.parametrize("reopen", [False, True])
def test_each_block_equals_batch_least_squares_of_its_live_facts(tmp_path, reopen):
    first = tiny_larimar(tmp_path / "s.sqlite3", block_rows=4)
    ids = first.remember([f"fact number {i} about topic {i}" for i in range(11)]).ids
    first.forget(ids[1])
    first.forget(ids[6])
    if reopen:  # rebuilt from the fact log alone
        first.close()
        first = tiny_larimar(tmp_path / "s.sqlite3", block_rows=4)
    with first as mem:
        ns = mem._namespaces.synced("default")
        assert len(ns.memory.blocks) >= 3
        records = {r.id: r for r in mem.store.list_facts("default")}
        for b, block in enumerate(ns.memory.blocks):
            rows, values = [], []
            for r in records.values():
                for row, value in zip(r.rows, r.values, strict=True):
                    if row // 4 == b:
                        rows.append(int(row) % 4)
                        values.append(torch.from_numpy(value).double())
            W = torch.zeros(len(rows), block.slots, dtype=torch.float64)
            W[torch.arange(len(rows)), rows] = 1.0
            Z = torch.stack(values) if values else torch.zeros(0, block.width, dtype=torch.float64)
            expected = least_squares_memory(W, Z, mem.settings.ridge)
            # float32 rows (the default): exact to float32 rounding
            torch.testing.assert_close(block.memory.double(), expected, rtol=1e-6, atol=1e-7)


def test_recall_reads_the_addressed_fact_from_its_rows(larimar):
    larimar.remember(FACTS)
    result = larimar.recall("Alice lives in which city?")
    assert result.fact is not None and result.fact.text == FACTS[0]
    assert result.weight == result.hits[0].score > 0.5
    ns = larimar._namespaces.synced("default")
    stored = larimar.store.get_fact("default", result.fact.id).values
    readout = ns.memory.readout(result.fact.id) * (1 + larimar.settings.ridge)
    assert torch.allclose(readout.double(), torch.from_numpy(stored).double(), atol=1e-6)


def test_recall_top_k_is_ranked_and_bounded(larimar):
    larimar.remember(FACTS)
    result = larimar.recall("Alice lives in which city?", k=2)
    assert len(result.hits) == 2 and result.hits[0].fact.text == FACTS[0]
    assert result.hits[0].score >= result.hits[1].score
    assert len(larimar.recall("Alice", k=50).hits) == 3  # k above what is stored: what there is
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ArgumentError, match="k must be"):
            larimar.recall("Alice", k=bad)


def test_recall_filters_on_metadata(larimar):
    larimar.remember(["I like tea.", "I like tea and cake."],
                     metadata=[{"speaker": "Ann"}, {"speaker": "Ben"}])
    hits = larimar.recall("tea", k=5, filter={"speaker": "Ben"}).hits
    assert [h.fact.metadata["speaker"] for h in hits] == ["Ben"]
    assert [f.text for f in larimar.list(filter={"speaker": "Ann"})] == ["I like tea."]
    assert larimar.recall("tea", k=5, filter={"speaker": "Zed"}).hits == []
    with pytest.raises(ArgumentError, match="filter"):
        larimar.recall("tea", filter={"speaker": {"$like": "Ann"}})


def test_recall_without_decoding(larimar):
    larimar.remember(FACTS)
    result = larimar.recall("Alice lives in which city?", decode=False)
    assert result.text == "" and result.fact.text == FACTS[0] and result.scope.in_scope


def test_long_facts_take_several_rows_and_are_forgotten_whole(larimar):
    long_text = " ".join(f"sentence {i} of a long conversation turn." for i in range(10))
    fact = larimar.remember(long_text)
    stored = larimar.get(fact.ids[0])
    assert len(stored.rows) > 1 and stored.text == long_text
    assert larimar.recall("long conversation turn", k=1).fact.id == fact.ids[0]
    larimar.forget(fact.ids[0])
    assert larimar.list() == [] and all(torch.all(m.abs() < 1e-6) for m in _blocks(larimar) or [])


def test_ask_routes_by_scope(larimar):
    larimar.remember(FACTS)
    inside = larimar.ask("Alice lives in which city?")
    assert inside.route == "memory" and inside.scope.in_scope
    assert inside.fact is not None and inside.fact.text == FACTS[0]
    assert [f.text for f in larimar.ask("Alice lives in which city?", k=2).facts][:1] == FACTS[:1]
    outside = larimar.ask("Quantum chromodynamics describes what force?")
    assert outside.route == "plain" and not outside.scope.in_scope and outside.fact is None


def test_ask_on_empty_memory_is_plain(larimar):
    result = larimar.ask("What is the capital of France?")
    assert result.route == "plain" and result.scope.score == 0.0


def test_ask_about_the_user_with_nothing_relevant_stored_says_so(larimar):
    empty = larimar.ask("Where do I live?")
    assert empty.route == "unknown" and empty.answer == UNKNOWN_ANSWER and empty.fact is None
    larimar.remember(FACTS)
    unrelated = larimar.ask("What is my cat called?")
    assert not unrelated.scope.in_scope
    assert unrelated.route == "unknown" and unrelated.answer == UNKNOWN_ANSWER
    assert unrelated.facts == []
    larimar.remember("My cat is called Miso.")
    assert larimar.ask("What is my cat called?").route == "memory"


def test_forget_by_id_and_text_removes_the_fact_and_its_contribution(larimar):
    ids = larimar.remember(FACTS).ids
    before = _blocks(larimar)
    extra = larimar.remember("Dave collects stamps.").ids[0]
    forgotten = larimar.forget("Dave collects stamps.")
    assert [f.id for f in forgotten] == [extra]
    after = _blocks(larimar)
    for a, b in zip(after, before, strict=True):
        assert torch.allclose(a[: b.shape[0]], b, atol=1e-6)
    larimar.forget(ids[0])
    assert [f.text for f in larimar.list()] == FACTS[1:]
    with pytest.raises(FactNotFoundError, match="no fact"):
        larimar.forget(ids[0])


def test_explicit_key_from_the_same_owner_replaces(larimar):
    first = larimar.remember("Paris", key="capital of France").ids[0]
    result = larimar.remember("Lyon", key="capital of France")
    assert result.outcomes[0].status == "replaced"
    assert [f.id for f in result.replaced] == [first]
    assert [f.text for f in larimar.list()] == ["Lyon"]
    other = larimar.remember("Marseille", key="capital of France", metadata={"user_id": "u2"})
    assert other.outcomes[0].status == "written"  # another owner: never replaced
    assert len(larimar.list()) == 2


def test_caller_chosen_ids_are_upserts(larimar):
    a = larimar.remember("Alice likes tea.", ids="pref-1")
    assert a.ids == ["pref-1"] and a.outcomes[0].status == "written"
    b = larimar.remember("Alice likes coffee.", ids="pref-1")
    assert b.outcomes[0].status == "replaced" and b.outcomes[0].replaced.text == "Alice likes tea."
    assert [(f.id, f.text) for f in larimar.list()] == [("pref-1", "Alice likes coffee.")]
    with pytest.raises(ArgumentError, match="twice"):
        larimar.remember(["x one", "x two"], ids=["same", "same"])


def test_similar_but_distinct_facts_are_all_kept(larimar):
    probe = [
        "Order #10231 shipped to Berlin.", "Order #10232 shipped to Berlin.",
        "Tom is Ana's father.", "Ana is Tom's father.",
        "The meeting is on Monday at 10.", "The meeting is on Tuesday at 10.",
        "Write to sam@example.com.", "Write to sam@example.org.",
    ] + [f"The parcel was delivered on time (record A{i})." for i in range(121)]
    result = larimar.remember(probe)
    assert [o.status for o in result.outcomes] == ["written"] * len(probe)
    assert len(larimar.list()) == len(probe)
    thanks = larimar.remember(["Thanks!", "Thanks!"],
                              metadata=[{"speaker": "Caroline"}, {"speaker": "Melanie"}])
    assert [o.status for o in thanks.outcomes] == ["written", "written"]


def test_results_line_up_with_inputs(larimar):
    texts = ["Thanks!", "Carol owns a red bicycle.", "Thanks!", "Dan lives in Oslo."]
    result = larimar.remember(texts)
    assert len(result.ids) == len(result.outcomes) == 4
    assert [o.status for o in result.outcomes] == ["written", "written", "duplicate", "written"]
    assert result.ids[2] == result.ids[0]
    stored = {f.id: f.text for f in larimar.list()}
    assert [stored[i] for i in result.ids] == texts


def test_similarity_replacement_is_opt_in_and_reported(tmp_path):
    with tiny_larimar(tmp_path / "s.sqlite3", correction_threshold=0.9) as mem:
        mem.remember("Alice lives in Lisbon now.")
        result = mem.remember("Alice lives in Lisbon now!")
        assert result.outcomes[0].status in ("replaced", "duplicate")
        assert len(mem.list()) == 1


def test_request_id_makes_remember_idempotent(larimar):
    a = larimar.remember(FACTS[:2], request_id="req-1")
    b = larimar.remember(FACTS[:2], request_id="req-1")
    assert b.duplicate_request and b.ids == a.ids
    assert len(larimar.list()) == 2
    with pytest.raises(RequestConflictError, match="request_id"):
        larimar.remember("Something else entirely.", request_id="req-1")
    assert len(larimar.list()) == 2


def test_namespaces_are_isolated(larimar):
    larimar.remember("Alice lives in Lisbon.", namespace="alice")
    larimar.remember("Bob lives in Berlin.", namespace="bob")
    assert [f.text for f in larimar.list(namespace="alice")] == ["Alice lives in Lisbon."]
    fact = larimar.ask("Where does Bob live?", namespace="alice").fact
    assert fact is None or fact.namespace == "alice"
    assert larimar.clear(namespace="alice") == 1
    assert larimar.list(namespace="alice") == []
    assert len(larimar.list(namespace="bob")) == 1


def test_state_survives_reopening_the_store(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path, block_rows=2) as first:
        ids = first.remember(FACTS + ["Erin paints.", "Fay sings."]).ids
        first.forget(ids[2])
        expected = _blocks(first)
        memory = first._namespaces.synced("default").memory
        readouts = {i: memory.readout(i) for i in ids if i != ids[2]}
    with tiny_larimar(path, block_rows=2) as second:
        assert [f.text for f in second.list()] == FACTS[:2] + ["Erin paints.", "Fay sings."]
        for a, b in zip(_blocks(second), expected, strict=True):
            assert torch.allclose(a, b, atol=1e-6)
        for fact_id, readout in readouts.items():
            again = second._namespaces.synced("default").memory.readout(fact_id)
            assert torch.allclose(again, readout, atol=1e-9)


def test_two_instances_on_one_store_see_each_others_writes(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as a, tiny_larimar(path) as b:
        a.remember(FACTS[0])
        b.remember(FACTS[1])  # b must rebuild from the store before writing: no lost update
        a.remember(FACTS[2])
        assert len(a.list()) == len(b.list()) == 3
        for x, y in zip(_blocks(a), _blocks(b), strict=True):
            assert torch.allclose(x, y, atol=1e-6)


def test_many_facts_fill_several_blocks_without_sharing(tmp_path):
    with tiny_larimar(tmp_path / "a.sqlite3", block_rows=8) as mem:
        texts = [f"item{i} belongs to owner{i}" for i in range(40)]
        mem.remember(texts)
        stats = mem.stats()
        assert stats["facts"] == 40 and stats["blocks"] == 5 and stats["rows"] == 40
        rows = [r for f in mem.list() for r in f.rows]
        assert len(set(rows)) == len(rows)  # no shared rows
        assert mem.recall("item17 belongs to owner17").fact.text == texts[17]


def test_idle_namespaces_are_evicted_and_rebuilt(tmp_path):
    with tiny_larimar(tmp_path / "a.sqlite3", cache_bytes=20_000) as mem:
        for i in range(30):
            mem.remember(f"user {i} likes the number {i}", namespace=f"user-{i}")
        assert mem.stats(namespace="user-29")["cached_bytes"] <= 20_000 + 5_000
        assert len(mem._namespaces) < 30
        for i in range(30):  # nothing lost: evicted namespaces come back from the log
            assert mem.recall(f"user {i} likes", namespace=f"user-{i}").fact.text == (
                f"user {i} likes the number {i}"
            )


def test_cache_counts_hits_loads_and_evictions_under_a_one_namespace_budget(tmp_path):
    with tiny_larimar(tmp_path / "a.sqlite3") as mem:
        mem.remember("alpha likes tea", namespace="a")
        mem.remember("beta likes coffee", namespace="b")
        one = mem.cache_stats()["bytes"] // 2 + 1  # about one namespace's bytes
    with tiny_larimar(tmp_path / "a.sqlite3", cache_bytes=one) as mem:
        for _ in range(3):
            for name in ("a", "b"):
                mem.recall("who likes what", namespace=name)
        stats = mem.cache_stats()
        assert stats["loads"] == 6 and stats["evictions"] == 5 and stats["hits"] == 0
        mem.recall("who likes what", namespace="b")
        assert mem.cache_stats()["hits"] == 1 and mem.stats(namespace="b")["cache"]["hits"] == 2
        assert mem.cache_stats()["namespaces"] == 1
        assert mem.cache_stats()["bytes"] == mem._namespaces.cached_bytes() <= one


def test_a_namespace_larger_than_the_budget_works_and_reports_the_overrun(tmp_path):
    with tiny_larimar(tmp_path / "a.sqlite3", cache_bytes=1) as mem:
        mem.remember("gamma likes cocoa", namespace="g")
        mem.remember(["delta likes juice", "delta likes milk"], namespace="d")
        assert mem.recall("who likes juice", namespace="d").fact.text == "delta likes juice"
        stats = mem.cache_stats()
        assert stats["namespaces"] == 1 and stats["evictions"] >= 1
        assert stats["over_budget_bytes"] == stats["bytes"] - 1 > 0
        assert mem.recall("who likes cocoa", namespace="g").fact.text == "gamma likes cocoa"
    with tiny_larimar(tmp_path / "a.sqlite3") as mem:  # the default budget holds both
        mem.recall("who likes cocoa", namespace="g")
        assert mem.cache_stats()["over_budget_bytes"] == 0


def test_cache_byte_total_follows_writes_and_drops(tmp_path):
    with tiny_larimar(tmp_path / "a.sqlite3") as mem:
        for i in range(5):
            mem.remember([f"user {i} fact {j}" for j in range(i + 1)], namespace=f"u{i}")
        mem.forget(mem.list(namespace="u3")[0].id, namespace="u3")
        mem.clear(namespace="u1")
        cache = mem._namespaces
        assert cache.cached_bytes() == sum(state_bytes(ns) for ns in cache._cache.values())


def test_reads_of_empty_namespaces_allocate_nothing(larimar):
    for i in range(50):
        assert larimar.recall("anything", namespace=f"nobody-{i}").hits == []
        assert larimar.ask("anything?", namespace=f"nobody-{i}").route == "plain"
    assert len(larimar._namespaces) == 0 and larimar.namespaces() == []


@pytest.mark.parametrize(
    "bad, error",
    [("", EmptyInputError), ("   \n\t", EmptyInputError), ([], EmptyInputError),
     ("\u200b\u200c\u2060", EmptyInputError),
     (b"\xff\xfe bad", TextInputError), ("x" * 20000, TextInputError),
     ("\ud800 lone surrogate", TextInputError), (42, TextInputError)],
)
def test_bad_text_is_refused_and_loses_nothing(larimar, bad, error):
    larimar.remember(FACTS[0])
    before = _blocks(larimar)
    with pytest.raises(error):
        larimar.remember(bad)
    assert [f.text for f in larimar.list()] == [FACTS[0]]
    assert all(torch.equal(a, b) for a, b in zip(_blocks(larimar), before, strict=True))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"key": "k" * 3000}, TextInputError, "key"),
     ({"metadata": [1, 2]}, TextInputError, "metadata"),
     ({"metadata": {"score": float("nan")}}, TextInputError, "NaN"),
     ({"metadata": {1: "int key"}}, TextInputError, "metadata"),
     ({"namespace": "bad\ud800name"}, TextInputError, "surrogate"),
     ({"ids": [""]}, TextInputError, "id")],
)
def test_bad_arguments_get_specific_errors(larimar, kwargs, error, match):
    with pytest.raises(error, match=match):
        larimar.remember("Alice lives in Lisbon.", **kwargs)
    assert larimar.list() == []


def test_deep_metadata_is_refused_without_recursion_error(larimar):
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(TextInputError, match="deep|nest"):
        larimar.remember("Alice lives in Lisbon.", metadata=deep)


def test_nan_keys_are_refused(tmp_path):
    class NaNEmbedder(HashingEmbedder):
        def encode(self, sentences, **kw):
            out = super().encode(sentences)
            out[:, 0] = np.nan
            return out

    with tiny_larimar(tmp_path / "a.sqlite3") as mem:
        mem.embedder = SentenceEmbedder(model=NaNEmbedder())
        with pytest.raises(MemoryInputError, match="NaN"):
            mem.remember("Alice lives in Lisbon.")
        assert mem.list() == []


def test_text_longer_than_the_token_limit_is_refused_with_advice(larimar):
    long_text = "word " * 200  # 1000 byte tokens > max_fact_tokens (512)
    with pytest.raises(TextInputError, match="max_fact_tokens=512"):
        larimar.remember(long_text)
    assert larimar.list() == []


def test_unknown_fact_id(larimar):
    with pytest.raises(FactNotFoundError):
        larimar.forget("0123456789abcdef")


def test_a_namespace_written_with_other_settings_is_refused_until_reencoded(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as first:
        first.remember(FACTS)
    with tiny_larimar(path, block_rows=4) as second:
        with pytest.raises(StoreMismatchError, match="block_rows.*reencode"):
            second.recall("Alice")
        with pytest.raises(StoreMismatchError):
            second.remember(FACTS[0])
        assert second.reencode() == 3
        assert second.recall("Alice lives in which city?").fact.text == FACTS[0]


async def test_async_methods(larimar):
    ids = (await larimar.aremember(FACTS)).ids
    recalled, answered = await asyncio.gather(
        larimar.arecall("Alice lives in which city?"),
        larimar.aask("Bob plays the cello every what?"),
    )
    assert recalled.fact.text == FACTS[0]
    assert answered.route == "memory"
    assert (await larimar.aget(ids[1])).text == FACTS[1]
    await larimar.aforget(ids[0])
    assert len(await larimar.alist()) == 2
    assert await larimar.aclear() == 2


def test_extra_keys_route_to_the_fact_and_survive_a_reopen(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as mem:
        ids = mem.remember(
            ["Caroline: I went to the support group.", "Melanie: I painted a lake."],
            extra_keys=[["Melanie asked what Caroline did yesterday"], []],
        ).ids
        assert mem.get(ids[0]).extra_keys == ["Melanie asked what Caroline did yesterday"]
        assert mem.recall("what did Caroline do yesterday", k=1).fact.id == ids[0]
    with tiny_larimar(path) as again:
        assert again.recall("what did Caroline do yesterday", k=1).fact.id == ids[0]
        again.forget(ids[0])
        assert again.recall("what did Caroline do yesterday", k=2).fact.id == ids[1]
        with pytest.raises(ArgumentError, match="extra_keys"):
            again.remember(["a b c", "d e f"], extra_keys=["only one"])


def test_restating_a_keyed_fact_is_a_duplicate(larimar):
    first = larimar.remember("Alice lives in Lisbon.", key="Alice lives in").ids
    again = larimar.remember("Alice lives in Lisbon.", key="Alice lives in")
    assert again.outcomes[0].status == "duplicate" and again.ids == first
    assert [f.id for f in larimar.list()] == first  # not rewritten under a new id
