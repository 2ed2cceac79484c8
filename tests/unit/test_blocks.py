"""BlockMemory: each block stays the exact least-squares memory of the facts left in it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from larimar_memory.blocks import BlockMemory, BlockWrite
from larimar_memory.errors import FactNotFoundError, MemoryInputError
from larimar_memory.memory import least_squares_memory

WIDTH, KEY_WIDTH, BLOCK_ROWS = 6, 4, 5


def _fact(i: int, n_rows: int, gen: torch.Generator) -> BlockWrite:
    key = torch.randn(KEY_WIDTH, generator=gen, dtype=torch.float64)
    return BlockWrite(f"f{i}", key / key.norm(), torch.randn(n_rows, WIDTH, generator=gen,
                                                           dtype=torch.float64))


def _check_blocks(mem: BlockMemory, live: dict[str, BlockWrite]) -> None:
    for b, block in enumerate(mem.blocks):
        rows, values = [], []
        for fid, fact in live.items():
            for row, value in zip(mem.rows_of(fid), fact.values, strict=True):
                if row // BLOCK_ROWS == b:
                    rows.append(row % BLOCK_ROWS)
                    values.append(value)
        W = torch.zeros(len(rows), block.slots, dtype=torch.float64)
        W[torch.arange(len(rows)), rows] = 1.0
        Z = torch.stack(values) if values else torch.zeros(0, WIDTH, dtype=torch.float64)
        expected = least_squares_memory(W, Z, mem.ridge)
        torch.testing.assert_close(block.memory, expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3), st.integers(0, 1000)),
                min_size=1, max_size=40))
def test_blocks_equal_batch_least_squares_after_writes_and_forgets(ops):
    gen = torch.Generator().manual_seed(0)
    mem = BlockMemory(WIDTH, KEY_WIDTH, block_rows=BLOCK_ROWS, dtype=torch.float64)
    live: dict[str, BlockWrite] = {}
    for i, (write, n_rows, pick) in enumerate(ops):
        if write or not live:
            fact = _fact(i, n_rows, gen)
            mem.write([fact])
            live[fact.fact_id] = fact
        else:
            fid = sorted(live)[pick % len(live)]
            live.pop(fid)
            mem.forget(fid)
        _check_blocks(mem, live)
    assert len(mem) == len(live)
    for fid, fact in live.items():  # every fact reads back what was written (ridge factor)
        torch.testing.assert_close(mem.readout(fid) * (1 + mem.ridge), fact.values)


def test_many_facts_use_several_blocks_and_rows_stay_in_one_block():
    gen = torch.Generator().manual_seed(1)
    mem = BlockMemory(WIDTH, KEY_WIDTH, block_rows=BLOCK_ROWS, dtype=torch.float64)
    facts = [_fact(i, 1 + i % 3, gen) for i in range(12)]
    rows = mem.write(facts)  # one batched update per block
    assert len(mem.blocks) >= 4
    for fact_rows in rows.values():
        assert len({r // BLOCK_ROWS for r in fact_rows}) == 1
    _check_blocks(mem, {f.fact_id: f for f in facts})


def test_rebuild_at_known_rows_equals_the_original():
    gen = torch.Generator().manual_seed(2)
    mem = BlockMemory(WIDTH, KEY_WIDTH, block_rows=BLOCK_ROWS, dtype=torch.float64)
    facts = [_fact(i, 2, gen) for i in range(7)]
    rows = mem.write(facts)
    mem.forget("f3")
    again = BlockMemory(WIDTH, KEY_WIDTH, block_rows=BLOCK_ROWS, dtype=torch.float64)
    again.write([BlockWrite(f.fact_id, f.key, f.values, rows[f.fact_id])
                 for f in facts if f.fact_id != "f3"])
    for f in facts:
        if f.fact_id != "f3":
            torch.testing.assert_close(again.readout(f.fact_id), mem.readout(f.fact_id))


def test_search_ranks_by_cosine_and_respects_allowed():
    mem = BlockMemory(2, 2, block_rows=4)
    keys = {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [0.0, 1.0]}
    mem.write([BlockWrite(f, torch.tensor(k), torch.ones(1, 2)) for f, k in keys.items()])
    assert [f for f, _ in mem.search(torch.tensor([1.0, 0.0]), k=2)] == ["a", "b"]
    assert [f for f, _ in mem.search(torch.tensor([1.0, 0.0]), k=5, allowed=["c"])] == ["c"]
    assert len(mem.search(torch.tensor([1.0, 0.0]), k=10)) == 3


def test_read_is_search_then_readout():
    mem = BlockMemory(2, 2, block_rows=4)
    assert mem.read(torch.tensor([1.0, 0.0]), k=1) == []
    keys = {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [0.0, 1.0]}
    mem.write([BlockWrite(f, torch.tensor(k), torch.full((1 + (f == "b"), 2), float(i + 1)))
               for i, (f, k) in enumerate(keys.items())])
    query = torch.tensor([0.0, 1.0])
    hits = mem.read(query, k=2, allowed=["a", "b"])
    assert [(f, s) for f, s, _ in hits] == mem.search(query, k=2, allowed=["a", "b"])
    assert [f for f, _, _ in hits] == ["b", "a"]
    for fid, _, readout in hits:
        torch.testing.assert_close(readout, mem.readout(fid))
    assert hits[0][2].shape == (2, 2)


def test_bytes_grow_with_facts_not_with_block_size():
    one = BlockMemory(3072, 384, block_rows=512, dtype=torch.float64)  # as the service keeps it
    one.write([BlockWrite("a", torch.ones(384), torch.ones(1, 3072))])
    assert one.nbytes() < 100_000


def test_bad_input_is_refused_and_changes_nothing():
    mem = BlockMemory(WIDTH, KEY_WIDTH, block_rows=BLOCK_ROWS)
    with pytest.raises(MemoryInputError, match="NaN"):
        mem.write([BlockWrite("x", torch.full((KEY_WIDTH,), float("nan")), torch.ones(1, WIDTH))])
    with pytest.raises(MemoryInputError, match="rows"):
        mem.write([BlockWrite("x", torch.ones(KEY_WIDTH), torch.ones(BLOCK_ROWS + 1, WIDTH))])
    with pytest.raises(FactNotFoundError):
        mem.forget("nope")
    assert len(mem) == 0 and mem.search(torch.ones(KEY_WIDTH), k=3) == []
