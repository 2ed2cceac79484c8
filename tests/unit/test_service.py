"""`Larimar`, the object users hold, on a tiny model: remember / recall / ask / forget."""

from __future__ import annotations

import asyncio

import pytest
import torch

from larimar_memory import (
    CapacityError,
    EmptyInputError,
    FactNotFoundError,
    StoreError,
    TextInputError,
)
from larimar_memory.memory import least_squares_memory
from larimar_memory.testing import tiny_larimar

FACTS = [
    "Alice lives in Lisbon.",
    "Bob plays the cello every Sunday.",
    "The team meeting moved to Thursday afternoon.",
]


def test_remember_list_and_ids(larimar):
    result = larimar.remember(FACTS)
    assert len(result.ids) == 3 and len(set(result.ids)) == 3
    listed = larimar.list()
    assert [f.text for f in listed] == FACTS
    assert {f.slot for f in listed} == {0, 1, 2}


def test_memory_equals_batch_least_squares_of_live_facts(larimar):
    ids = larimar.remember(FACTS).ids
    larimar.remember("Carol drinks green tea.")
    larimar.forget(ids[1])
    ns = larimar._synced("default")
    records = list(ns.facts.values())
    W = torch.stack([torch.from_numpy(r.weights).double() for r in records])
    Z = torch.stack([torch.from_numpy(r.value).double() for r in records])
    expected = least_squares_memory(W, Z, larimar.settings.ridge)
    assert torch.allclose(ns.memory.memory, expected, atol=1e-8)


def test_recall_reads_the_addressed_fact(larimar):
    larimar.remember(FACTS)
    result = larimar.recall("Alice lives in which city?")
    assert result.fact is not None and result.fact.text == FACTS[0]
    assert result.weight > 0.99
    assert isinstance(result.text, str)
    # the readout is the stored latent of the addressed fact (one-hot Gaussian addressing)
    ns = larimar._synced("default")
    _, readout, _, _ = larimar._read(ns, "Alice lives in which city?")
    value = torch.from_numpy(ns.facts[result.fact.id].value)
    assert torch.allclose(readout[0].float(), value, rtol=1e-2, atol=1e-3)


def test_recall_without_decoding(larimar):
    larimar.remember(FACTS)
    result = larimar.recall("Alice lives in which city?", decode=False)
    assert result.text == "" and result.fact.text == FACTS[0] and result.scope.in_scope


def test_ask_routes_by_scope(larimar):
    larimar.remember(FACTS)
    inside = larimar.ask("Alice lives in which city?")
    assert inside.route == "memory" and inside.scope.in_scope
    assert inside.fact is not None and inside.fact.text == FACTS[0]
    outside = larimar.ask("Quantum chromodynamics describes what force?")
    assert outside.route == "plain" and not outside.scope.in_scope and outside.fact is None


def test_ask_on_empty_memory_is_plain(larimar):
    result = larimar.ask("What is the capital of France?")
    assert result.route == "plain" and result.scope.score == 0.0


def test_forget_by_id_and_text_removes_the_fact_and_its_contribution(larimar):
    ids = larimar.remember(FACTS).ids
    before = larimar._synced("default").memory.memory.clone()
    extra = larimar.remember("Dave collects stamps.").ids[0]
    forgotten = larimar.forget("Dave collects stamps.")
    assert [f.id for f in forgotten] == [extra]
    after = larimar._synced("default").memory.memory
    assert torch.allclose(after, before, atol=1e-9)
    larimar.forget(ids[0])
    assert [f.text for f in larimar.list()] == FACTS[1:]
    with pytest.raises(FactNotFoundError, match="no fact"):
        larimar.forget(ids[0])


def test_a_matching_key_replaces_the_old_fact(larimar):
    first = larimar.remember("Paris", key="capital of France").ids[0]
    result = larimar.remember("Lyon", key="capital of France")
    assert [f.id for f in result.replaced] == [first]
    assert [f.text for f in larimar.list()] == ["Lyon"]


def test_request_id_makes_remember_idempotent(larimar):
    a = larimar.remember(FACTS[:2], request_id="req-1")
    b = larimar.remember(FACTS[:2], request_id="req-1")
    assert b.duplicate_request and b.ids == a.ids
    assert len(larimar.list()) == 2


def test_namespaces_are_isolated(larimar):
    larimar.remember("Alice lives in Lisbon.", namespace="alice")
    larimar.remember("Bob lives in Berlin.", namespace="bob")
    assert [f.text for f in larimar.list(namespace="alice")] == ["Alice lives in Lisbon."]
    assert larimar.ask("Where does Bob live?", namespace="alice").fact is None or (
        larimar.ask("Where does Bob live?", namespace="alice").fact.namespace == "alice"
    )
    assert larimar.clear(namespace="alice") == 1
    assert larimar.list(namespace="alice") == []
    assert len(larimar.list(namespace="bob")) == 1


def test_state_survives_reopening_the_store(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as first:
        ids = first.remember(FACTS).ids
        first.forget(ids[2])
        expected = first._synced("default").memory.memory.clone()
    with tiny_larimar(path) as second:
        assert [f.text for f in second.list()] == FACTS[:2]
        assert torch.allclose(second._synced("default").memory.memory, expected, atol=1e-10)


def test_two_instances_on_one_store_see_each_others_writes(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as a, tiny_larimar(path) as b:
        a.remember(FACTS[0])
        b.remember(FACTS[1])  # b must rebuild from the store before writing: no lost update
        a.remember(FACTS[2])
        assert len(a.list()) == len(b.list()) == 3
        assert torch.allclose(
            a._synced("default").memory.memory, b._synced("default").memory.memory, atol=1e-10
        )


def test_over_capacity_shares_or_refuses(tmp_path):
    with tiny_larimar(tmp_path / "a.sqlite3") as shared:
        texts = [f"item{i} belongs to owner{i}" for i in range(20)]  # 16 slots
        shared.remember(texts)
        assert len(shared.list()) == 20
        assert shared.stats()["slots_used"] == 16
    with tiny_larimar(tmp_path / "b.sqlite3", overflow="error") as strict:
        strict.remember([f"item{i} belongs to owner{i}" for i in range(16)])
        with pytest.raises(CapacityError, match="slots"):
            strict.remember("one fact too many about zebras")
        assert len(strict.list()) == 16


@pytest.mark.parametrize(
    "bad, error",
    [("", EmptyInputError), ("   \n\t", EmptyInputError), ([], EmptyInputError),
     (b"\xff\xfe bad", TextInputError), ("x" * 5000, TextInputError),
     ("\ud800 lone surrogate", TextInputError), (42, TextInputError)],
)
def test_bad_text_is_refused_and_loses_nothing(larimar, bad, error):
    larimar.remember(FACTS[0])
    before = larimar._synced("default").memory.memory.clone()
    with pytest.raises(error):
        larimar.remember(bad)
    assert [f.text for f in larimar.list()] == [FACTS[0]]
    assert torch.equal(larimar._synced("default").memory.memory, before)


def test_text_longer_than_the_token_limit_is_refused_with_advice(larimar):
    long_text = "word " * 200  # 1000 chars < max_text_chars, but > max_text_tokens
    with pytest.raises(TextInputError, match="Split it into shorter facts"):
        larimar.remember(long_text)
    assert larimar.list() == []


def test_unknown_fact_id(larimar):
    with pytest.raises(FactNotFoundError):
        larimar.forget("0123456789abcdef")


def test_incompatible_namespace_state_is_refused(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as first:
        first.remember(FACTS[0])
        with first.store.transaction("default") as tx:
            meta = dict(tx.state_meta())
            meta["format_version"] = "999"
            tx.save_state({"counts": torch.zeros(2)}, meta)
    with tiny_larimar(path) as second:
        with pytest.raises(StoreError, match="incompatible"):
            second.remember(FACTS[1])
        with pytest.raises(StoreError, match="incompatible"):
            second.ask("anything")


async def test_async_methods(larimar):
    ids = (await larimar.aremember(FACTS)).ids
    recalled, answered = await asyncio.gather(
        larimar.arecall("Alice lives in which city?"),
        larimar.aask("Bob plays the cello every what?"),
    )
    assert recalled.fact.text == FACTS[0]
    assert answered.route == "memory"
    await larimar.aforget(ids[0])
    assert len(await larimar.alist()) == 2
    assert await larimar.aclear() == 2
