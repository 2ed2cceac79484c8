"""Cold start: a `Larimar` without a copy of a namespace loads it in bulk from the store's
columns (`MemoryStore.load`), and the state it loads is the state the writer built one write
and forget at a time; a corrupted stored row is a StoreError, never a wrong memory."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from larimar_memory.errors import StoreError
from larimar_memory.testing import tiny_larimar

WORDS = ["Lisbon", "cello", "Thursday", "garden", "Porto", "violin", "Monday", "river", "tea"]


def _fact(i: int) -> str:
    return f"Fact {i}: {WORDS[i % len(WORDS)]} and {WORDS[(3 * i + 1) % len(WORDS)]} {i}."


def _state(mem) -> tuple:
    """Everything a cached namespace holds that answers a query, by fact id (slot reuse
    orders the indexes differently on the writer, which also keeps the index of a kind of
    extra key whose last fact it forgot, empty)."""
    ns = mem._namespaces.synced("default")
    memory = ns.memory
    moments = {fid: [(memory.blocks[r // memory.block_rows]._moments[r % memory.block_rows],
                      int(memory.blocks[r // memory.block_rows].counts[r % memory.block_rows]))
                     for r in memory.rows_of(fid)] for fid in memory.fact_ids()}
    keys = [{fid: key.tolist() for fid, key in zip(*index.items(), strict=True)}
            for index in memory.key_indices if len(index.items()[0])]
    lexical = [({fid: index.terms_of(fid) for fid in ns.facts}, index._total, len(index))
               for index in ns.lexical if len(index)]
    return (ns.facts, moments, keys, lexical, ns.by_text, ns.by_name,
            {fid: memory.rows_of(fid) for fid in memory.fact_ids()})


@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 100)), min_size=1, max_size=12))
def test_bulk_loaded_state_equals_the_writers(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("cold") / "s.sqlite3"
    writer = tiny_larimar(path, block_rows=4)
    try:
        for step, (write, pick) in enumerate(ops):
            live = [f.id for f in writer.list()]
            if write or not live:
                n = 1 + pick % 2
                writer.remember(
                    [_fact(step), _fact(step + 50)][:n],
                    key=[f"key {step} {i}" if pick % 3 == 0 else _fact(step + 50 * i)
                         for i in range(n)],
                    metadata=[{"slot": f"s{pick % 4}"} if pick % 5 == 0 else {}] * n,
                    extra_keys=[[f"paraphrase {step}"] * (pick % 3) for _ in range(n)])
            else:
                writer.forget(live[pick % len(live)])
        if not writer.list():
            return
        fresh = tiny_larimar(path, block_rows=4)
        try:
            assert _state(fresh) == _state(writer)
            # what each fact reads back (ranks of ties follow index slots, which slot reuse
            # orders differently on the writer, as on any instance)
            k = len(writer.list())
            assert {h.fact.id: h.text for h in fresh.recall(_fact(0), k=k).hits} == {
                h.fact.id: h.text for h in writer.recall(_fact(0), k=k).hits}
        finally:
            fresh.close()
    finally:
        writer.close()


def test_a_corrupted_row_is_a_store_error_and_nothing_is_cached(tmp_path):
    path = tmp_path / "s.sqlite3"
    writer = tiny_larimar(path)
    ids = writer.remember([_fact(1), _fact(2)]).ids
    writer.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE larimar_facts SET vals = ? WHERE id = ?",
                    (b"h" + (1).to_bytes(4, "little") + np.array([np.inf], "<f2").tobytes(),
                     ids[1]))
    raw.close()
    reader = tiny_larimar(path)
    try:
        for _ in range(2):  # the second call reads the store again: nothing half-loaded stays
            with pytest.raises(StoreError, match=f"{ids[1]}.*NaN or Inf"):
                reader.recall(_fact(1))
        assert len(reader._namespaces) == 0
    finally:
        reader.close()
