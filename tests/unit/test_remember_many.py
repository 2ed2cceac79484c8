"""`Larimar.remember_many`: several callers' remembers in one embedder pass and one transaction
per namespace, each with its own outcome or error, as if made one after another."""

from __future__ import annotations

import pytest

from larimar_memory.errors import ArgumentError, EmptyInputError, RequestConflictError
from larimar_memory.service import RememberCall
from larimar_memory.testing import tiny_larimar


@pytest.fixture
def mem(tmp_path):
    with tiny_larimar(tmp_path / "s.sqlite3", block_rows=8) as m:
        yield m


class CountingEmbedder:
    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, texts):
        self.calls.append(list(texts))
        return self.inner.embed(texts)


def test_one_embedder_pass_one_commit_per_namespace_and_own_results(mem):
    counting = CountingEmbedder(mem.embedder)
    mem.embedder = counting
    versions = {}
    commits = []
    real = mem._namespaces.commit

    def commit(tx, ns):
        commits.append(tx)
        real(tx, ns)

    mem._namespaces.commit = commit
    calls = [RememberCall(text=f"fact {i} about person {i}", namespace=f"ns{i % 3}")
             for i in range(8)]
    results = mem.remember_many(calls)
    assert len(counting.calls) == 1 and len(counting.calls[0]) == 8  # one pass, every key
    assert len(commits) == 3  # one transaction per namespace
    for call, result in zip(calls, results, strict=True):
        assert [o.status for o in result.outcomes] == ["written"]
        assert mem.get(result.ids[0], namespace=call.namespace).text == call.text
    assert len({r.ids[0] for r in results}) == 8
    for n in range(3):
        versions[n] = mem.store.version(f"ns{n}")
        assert len(mem.list(namespace=f"ns{n}")) == len(calls[n::3])


def test_a_bad_call_keeps_its_error_and_the_others_are_written(mem):
    mem.remember("already here", namespace="a", request_id="r0")
    calls = [
        RememberCall(text="good one", namespace="a"),
        RememberCall(text="   ", namespace="a"),  # refused before embedding
        RememberCall(text=["x", "y"], ids=["same", "same"], namespace="a"),  # refused in plan
        RememberCall(text="other text", namespace="a", request_id="r0"),  # reused request id
        RememberCall(text="good two", namespace="b"),
        RememberCall(text="good one", namespace="a"),  # duplicate of the first call
    ]
    results = mem.remember_many(calls)
    assert isinstance(results[1], EmptyInputError)
    assert isinstance(results[2], ArgumentError)
    assert isinstance(results[3], RequestConflictError)
    assert results[0].outcomes[0].status == "written"
    assert results[4].outcomes[0].status == "written"
    assert results[5].outcomes[0].status == "duplicate"
    assert results[5].ids == results[0].ids
    assert sorted(f.text for f in mem.list(namespace="a")) == ["already here", "good one"]
    assert [f.text for f in mem.list(namespace="b")] == ["good two"]


def test_request_ids_idempotent_within_and_across_batches(mem):
    first = mem.remember_many([
        RememberCall(text="Alice lives in Lisbon.", namespace="n", request_id="req-1"),
        RememberCall(text="Alice lives in Lisbon.", namespace="n", request_id="req-1"),
    ])
    assert not first[0].duplicate_request and first[1].duplicate_request
    assert first[1].ids == first[0].ids
    again = mem.remember_many([RememberCall(text="Alice lives in Lisbon.", namespace="n",
                                            request_id="req-1")])[0]
    assert again.duplicate_request and again.ids == first[0].ids
    alone = mem.remember("Alice lives in Lisbon.", namespace="n", request_id="req-1")
    assert alone.duplicate_request and alone.ids == first[0].ids
    assert len(mem.list(namespace="n")) == 1


def test_same_outcome_as_sequential_remembers(tmp_path):
    calls = [
        RememberCall(text="Bob likes tea.", metadata={"user_id": "bob"}),
        RememberCall(text="Bob likes coffee.", key="bob drink", metadata={"user_id": "bob"}),
        RememberCall(text="Bob likes water.", key="bob drink", metadata={"user_id": "bob"}),
        RememberCall(text=["Carol sings.", "Dan runs."], ids=["c", "d"]),
        RememberCall(text="Carol dances.", ids="c"),
    ]
    with tiny_larimar(tmp_path / "a.sqlite3") as a, tiny_larimar(tmp_path / "b.sqlite3") as b:
        batched = a.remember_many(calls)
        one_by_one = [b.remember(**c.arguments()) for c in calls]
        assert [[o.status for o in r.outcomes] for r in batched] == \
               [[o.status for o in r.outcomes] for r in one_by_one]
        assert sorted(f.text for f in a.list()) == sorted(f.text for f in b.list())
        # the memory holds what the log holds: each live fact is found by its key and reads
        # back the same text as in the memory written call by call
        for fact in a.list():
            hit = a.recall(fact.key, k=1).hits[0]
            assert hit.fact.id == fact.id
            assert hit.text == b.recall(fact.key, k=1).hits[0].text


def test_a_failing_namespace_transaction_is_redone_call_by_call(mem, monkeypatch):
    real = mem._writer.apply
    state = {"failed": False}

    def flaky(tx, ns, p):
        if not state["failed"]:
            state["failed"] = True
            raise OSError("disk hiccup")
        return real(tx, ns, p)

    monkeypatch.setattr(mem._writer, "apply", flaky)
    results = mem.remember_many([RememberCall(text=f"fact {i}") for i in range(3)])
    assert all(r.outcomes[0].status == "written" for r in results)
    assert sorted(f.text for f in mem.list()) == ["fact 0", "fact 1", "fact 2"]


def test_extra_keys_travel_in_a_batch(mem):
    results = mem.remember_many([
        RememberCall(text="Ana moved to Porto.", extra_keys=["where does Ana live"]),
        RememberCall(text="Bo likes jazz.", namespace="other"),
    ])
    fact = mem.get(results[0].ids[0])
    assert fact.text == "Ana moved to Porto."
    record = mem.store.get_fact("default", fact.id)
    assert list(record.extra_key_texts) == ["where does Ana live"]
