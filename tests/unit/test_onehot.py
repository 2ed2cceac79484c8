"""OneHotMemory equals the dense EpisodicMemory (and batch least squares) under one-hot writes
and forgets, and forgets an emptied row exactly without values."""

from __future__ import annotations

import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from larimar_memory.errors import MemoryInputError, NotWrittenError
from larimar_memory.memory import EpisodicMemory, MemoryConfig, least_squares_memory
from larimar_memory.onehot import OneHotMemory
from larimar_memory.packed import pack

K, C, RIDGE = 6, 5, 1e-3
F64 = torch.float64


def _one_hot(rows: list[int]) -> torch.Tensor:
    weights = torch.zeros(len(rows), K, dtype=F64)
    weights[torch.arange(len(rows)), rows] = 1.0
    return weights


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(st.integers(0, K - 1), min_size=1,
                                                  max_size=3), st.integers(0, 10**6)),
                min_size=1, max_size=30))
def test_one_hot_memory_equals_the_dense_memory_and_batch_least_squares(ops):
    compact = OneHotMemory(K, C, ridge=RIDGE, dtype=F64)
    dense = EpisodicMemory(MemoryConfig(slots=K, width=C, ridge=RIDGE, dtype="float64",
                                        refresh_every=0))
    live: list[tuple[int, torch.Tensor]] = []  # (row, value) written and not forgotten
    for write, rows, seed in ops:
        gen = torch.Generator().manual_seed(seed)
        if write or not live:
            values = torch.randn(len(rows), C, generator=gen, dtype=F64)
            compact.write_rows(rows, values)
            dense.write(values, weights=_one_hot(rows))
            live += list(zip(rows, values, strict=True))
        else:
            row, value = live.pop(seed % len(live))
            compact.forget_rows([row], value[None])
            dense.forget(value[None], weights=_one_hot([row]))
        torch.testing.assert_close(compact.memory, dense.memory, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(torch.diag(dense.precision), compact.precision)
        held = sum(sys.getsizeof(m) for m in compact._moments if m is not None)
        assert compact.state_bytes() == held + 8 * K + 4 * K  # kept as a running count
        W = _one_hot([r for r, _ in live]) if live else torch.zeros(0, K, dtype=F64)
        Z = torch.stack([v for _, v in live]) if live else torch.zeros(0, C, dtype=F64)
        torch.testing.assert_close(compact.memory, least_squares_memory(W, Z, RIDGE),
                                   rtol=1e-9, atol=1e-9)


def test_forget_without_values_empties_rows_exactly():
    mem = OneHotMemory(K, C, ridge=RIDGE, dtype=torch.float32)
    values = torch.randn(2, C)
    mem.write_rows([1, 4], values)
    torch.testing.assert_close(mem.memory[[1, 4]] * (1 + RIDGE), values)
    mem.forget_rows([1, 4])
    assert torch.equal(mem.memory, torch.zeros(K, C)) and int(mem.counts.sum()) == 0


def test_refusals_leave_the_state_unchanged():
    mem = OneHotMemory(K, C, ridge=RIDGE)
    mem.write_rows([2, 2], torch.ones(2, C, dtype=F64))
    before = mem.memory.clone()
    with pytest.raises(NotWrittenError):
        mem.forget_rows([3])
    with pytest.raises(MemoryInputError, match="further writes"):
        mem.forget_rows([2])  # two writes: the values are needed
    with pytest.raises(MemoryInputError):
        mem.write_rows([K], torch.ones(1, C))
    assert torch.equal(mem.memory, before)
    mem.forget_rows([2], torch.ones(1, C, dtype=F64))
    torch.testing.assert_close(mem.memory[2], torch.ones(C, dtype=F64) / (1 + RIDGE))


def test_load_rows_equals_write_rows_bit_for_bit():
    """A row written once holds exactly its value, so a packed value loaded as it is (what
    the store gives) is the same state as writing it, a -0.0 entry included."""
    values = torch.tensor([[-0.0, 1.5, 0.0, -2.0, 0.0], [0.25, -0.0, 0.0, 0.0, 0.0]])
    written, loaded = (OneHotMemory(K, C, ridge=RIDGE, dtype=torch.float32) for _ in range(2))
    written.write_rows([4, 1], values)
    loaded.load_rows([4, 1], [pack(v[None].numpy()) for v in values])
    assert written._moments == loaded._moments and torch.equal(written.counts, loaded.counts)
    assert torch.equal(written.memory, loaded.memory)
    assert str(loaded.rows([4])[0, 0].item()) == "-0.0"
    with pytest.raises(MemoryInputError):
        loaded.load_rows([1], [pack(values[:1].numpy())])  # row 1 holds a value already
    with pytest.raises(MemoryInputError):
        loaded.load_rows([2, 2], [pack(values[:1].numpy())] * 2)
    assert written._moments == loaded._moments
