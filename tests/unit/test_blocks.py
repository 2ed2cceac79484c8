"""BlockMemory: each block stays the exact least-squares memory of the facts left in it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from larimar_memory.blocks import BlockMemory, BlockWrite
from larimar_memory.errors import FactNotFoundError, MemoryInputError
from larimar_memory.memory import least_squares_memory
from larimar_memory.packed import pack
from larimar_memory.store_columns import FactColumns

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


def _packed(facts: list[BlockWrite], rows: dict[str, tuple[int, ...]]) -> FactColumns:
    """The columns a store load gives for ``facts`` at ``rows``: one packed value per row."""
    if not facts:
        return FactColumns()
    extra = [f.extra_keys if f.extra_keys is not None else torch.zeros(0, KEY_WIDTH)
             for f in facts]
    return FactColumns(
        ids=[f.fact_id for f in facts],
        keys=np.stack([f.key.float().numpy() for f in facts]),
        extra_keys=torch.cat(extra).float().numpy().reshape(-1, KEY_WIDTH),
        extra_offsets=np.cumsum([0] + [len(e) for e in extra]),
        rows=np.array([r for f in facts for r in rows[f.fact_id]], dtype=np.int64),
        row_offsets=np.cumsum([0] + [len(rows[f.fact_id]) for f in facts]),
        moments=[pack(v[None].numpy()) for f in facts for v in f.values], value_dim=WIDTH,
    )


def _state(mem: BlockMemory) -> tuple:
    """Everything a memory holds: keys by id (slot reuse orders an index differently), and
    each written row's packed moment and count (a block keeps the rows it grew to, and a
    load grows it to the rows it is given: empty rows read the prior either way)."""
    keys = [{fid: key.tolist() for fid, key in zip(*index.items(), strict=True)}
            for index in mem.key_indices if len(index.items()[0])]
    used = list(mem._used)
    while used and not used[-1]:
        used.pop()
    held = {b * mem.block_rows + r: (block._moments[r], int(block.counts[r]))
            for b, block in enumerate(mem.blocks) for r in range(block.slots)
            if block.counts[r]}
    return {f: mem.rows_of(f) for f in mem.fact_ids()}, used, keys, held


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3), st.integers(0, 2), st.integers(0, 999)),
                min_size=1, max_size=30), st.integers(0, 30))
def test_bulk_load_equals_the_sequential_writes(ops, split):
    """A memory loaded from packed columns (in one call, or in two as a catch-up does) holds
    exactly what the writes and forgets left: the same rows, keys and packed moments."""
    gen = torch.Generator().manual_seed(len(ops))
    mem = BlockMemory(WIDTH, KEY_WIDTH, block_rows=BLOCK_ROWS, dtype=torch.float64)
    live: dict[str, BlockWrite] = {}
    for i, (write, n_rows, n_extra, pick) in enumerate(ops):
        if write or not live:
            fact = _fact(i, n_rows, gen)
            values = fact.values.clone()
            values[0, pick % WIDTH] = -0.0  # the sign of a zero is kept too
            fact = BlockWrite(fact.fact_id, fact.key, values,
                              extra_keys=torch.randn(n_extra, KEY_WIDTH, generator=gen,
                                                     dtype=torch.float64) if n_extra else None)
            mem.write([fact])
            live[fact.fact_id] = fact
        else:
            mem.forget(live.pop(sorted(live)[pick % len(live)]).fact_id)
    rows = {f: mem.rows_of(f) for f in live}
    facts = list(live.values())
    whole = BlockMemory(WIDTH, KEY_WIDTH, block_rows=BLOCK_ROWS, dtype=torch.float64)
    whole.load(_packed(facts, rows))
    parts = BlockMemory(WIDTH, KEY_WIDTH, block_rows=BLOCK_ROWS, dtype=torch.float64)
    parts.load(_packed(facts[:split], rows))
    parts.load(_packed(facts[split:], rows))
    assert _state(whole) == _state(mem) == _state(parts)
    for f in live:
        assert torch.equal(whole.readout(f), mem.readout(f))


def test_bulk_load_refuses_what_does_not_fit_and_changes_nothing():
    gen = torch.Generator().manual_seed(3)
    mem = BlockMemory(WIDTH, KEY_WIDTH, block_rows=BLOCK_ROWS, dtype=torch.float64)
    a, b = _fact(0, 2, gen), _fact(1, 2, gen)
    mem.load(_packed([a], {"f0": (0, 1)}))
    before = _state(mem)
    for facts, rows in (([a], {"f0": (2, 3)}),  # here already
                        ([b], {"f1": (1, 2)}),  # row 1 is a's
                        ([b], {"f1": (4, 5)}),  # two blocks
                        ([b, b], {"f1": (2, 3)})):  # twice
        with pytest.raises(MemoryInputError):
            mem.load(_packed(facts, rows))
        assert _state(mem) == before
    wide = _packed([b], {"f1": (2, 3)})
    wide.value_dim = WIDTH + 1
    with pytest.raises(MemoryInputError, match="do not fit"):
        mem.load(wide)


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
