"""`Larimar.recall_many`: several callers' recalls in one embedder pass and one reading pass,
each with its own result or error, the same as if made alone."""

from __future__ import annotations

import pytest

from larimar_memory.errors import ArgumentError, EmptyInputError
from larimar_memory.service import RecallCall
from larimar_memory.testing import tiny_larimar

FACTS = {"a": ["Ada writes code.", "Bob likes tea.", "Cy plays chess."],
         "b": ["Dee swims daily.", "Eve reads books."]}


@pytest.fixture
def mem(tmp_path):
    codes = {"latent": "token-codes", "num_latent_tokens": 32, "latent_token_dim": 16,
             "max_text_tokens": 31}  # texts read back exactly, without a trained model
    with tiny_larimar(tmp_path / "s.sqlite3", decoder="llama", block_rows=8,
                      model_overrides=codes) as m:
        for ns, texts in FACTS.items():
            m.remember(texts, namespace=ns, metadata=[{"n": i} for i in range(len(texts))])
        yield m


class CountingReads:
    """Counts embedder passes and memory-reading passes."""

    def __init__(self, mem, monkeypatch):
        self.embeds: list[list[str]] = []
        self.reads: list[int] = []
        embed, read = mem.embedder.embed, mem.model.read_facts
        monkeypatch.setattr(mem.embedder, "embed",
                            lambda texts: self.embeds.append(list(texts)) or embed(texts))
        monkeypatch.setattr(mem.model, "read_facts",
                            lambda readouts: self.reads.append(len(readouts)) or read(readouts))


def _calls() -> list[RecallCall]:
    return [RecallCall(query="Who writes code?", k=2, namespace="a"),
            RecallCall(query="Who swims?", namespace="b"),
            RecallCall(query="tea", k=3, namespace="a", decode=False),
            RecallCall(query="chess", namespace="a", filter={"n": 2}),
            RecallCall(query="anything", namespace="empty")]


def test_one_embedder_pass_one_reading_pass_and_the_results_of_lone_calls(mem, monkeypatch):
    alone = [mem.recall(c.query, k=c.k, namespace=c.namespace, decode=c.decode,
                        filter=c.filter) for c in _calls()]
    counting = CountingReads(mem, monkeypatch)
    batched = mem.recall_many(_calls())
    assert len(counting.embeds) == 1 and len(counting.embeds[0]) == 5
    assert counting.reads == [2 + 1 + 1]  # the decoded hits of every call, together
    for one, many in zip(alone, batched, strict=True):
        assert many.model_dump() == one.model_dump()
    assert batched[0].hits[0].text in FACTS["a"] and batched[2].hits[0].text == ""
    assert [h.fact.metadata for h in batched[3].hits] == [{"n": 2}]
    assert batched[4].hits == [] and not batched[4].scope.in_scope


def test_a_bad_call_keeps_its_error_and_the_others_are_answered(mem):
    calls = [RecallCall(query="Who writes code?", namespace="a"), RecallCall(query="   "),
             RecallCall(query="tea", k=0, namespace="a"),
             RecallCall(query="Who swims?", namespace="b")]
    results = mem.recall_many(calls)
    assert isinstance(results[1], EmptyInputError) and isinstance(results[2], ArgumentError)
    assert results[0].hits[0].text == "Ada writes code."
    assert results[3].hits[0].text == "Dee swims daily."


def test_a_failing_namespace_fails_only_its_calls(mem, monkeypatch):
    synced = mem._namespaces.synced

    def broken(ns_name):
        if ns_name == "b":
            raise RuntimeError("store of b unreadable")
        return synced(ns_name)

    monkeypatch.setattr(mem._namespaces, "synced", broken)
    results = mem.recall_many([RecallCall(query="Who swims?", namespace="b"),
                               RecallCall(query="Who writes code?", namespace="a")])
    assert isinstance(results[0], RuntimeError)
    assert results[1].hits[0].text == "Ada writes code."
