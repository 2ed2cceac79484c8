"""The memory math: sequential writes/forgets equal batch least squares, one-hot recall,
capacity behaviour, persistence and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from larimar_memory import (
    EmptyInputError,
    EpisodicMemory,
    MemoryConfig,
    MemoryInputError,
    NotWrittenError,
    StateFileError,
)
from larimar_memory.addressing import gaussian_weights, pseudo_inverse_weights
from larimar_memory.memory import least_squares_memory, read_memory, write_episode

F64 = torch.float64


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def make_memory(K=32, C=8, D=None, mode="pseudo_inverse", ridge=1e-3, **kw) -> EpisodicMemory:
    return EpisodicMemory(
        MemoryConfig(slots=K, width=C, key_width=D, addressing=mode, ridge=ridge, **kw)
    )


def unit_keys(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=F64), dim=-1)


def state_snapshot(mem: EpisodicMemory) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in mem.state_dict().items()}


def assert_state_equal(mem: EpisodicMemory, snap: dict[str, torch.Tensor]) -> None:
    for name, tensor in mem.state_dict().items():
        assert torch.equal(tensor, snap[name]), name


# -- sequential = batch least squares ---------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(st.integers(1, 12), min_size=1, max_size=8),
    K=st.sampled_from([8, 16, 40]),
    C=st.sampled_from([3, 8]),
    mode=st.sampled_from(["pseudo_inverse", "gaussian"]),
    seed=st.integers(0, 10_000),
)
def test_sequential_writes_equal_batch_least_squares(batches, K, C, mode, seed):
    torch.manual_seed(seed)
    mem = make_memory(K=K, C=C, mode=mode)
    Ws, Zs = [], []
    for n in batches:
        Z = torch.randn(n, C, dtype=F64)
        Ws.append(mem.write(Z))
        Zs.append(Z)
    expected = least_squares_memory(torch.cat(Ws), torch.cat(Zs), mem.config.ridge, mem.prior)
    assert rel_err(mem.memory, expected) <= 1e-4


@settings(max_examples=25, deadline=None)
@given(n_keep=st.integers(1, 20), n_drop=st.integers(1, 20), seed=st.integers(0, 10_000))
def test_write_then_forget_returns_previous_memory(n_keep, n_drop, seed):
    torch.manual_seed(seed)
    mem = make_memory(K=48, C=6)
    mem.write(torch.randn(n_keep, 6, dtype=F64))
    before = mem.memory.clone()
    Z = torch.randn(n_drop, 6, dtype=F64)
    W = mem.write(Z)
    mem.forget(Z, weights=W)
    assert rel_err(mem.memory, before) <= 1e-6


def test_forget_one_of_n_keeps_the_others_and_removes_it():
    K, C, D, N = 64, 16, 12, 40
    mem = make_memory(K=K, C=C, D=D, mode="gaussian")
    keys = unit_keys(N, D, seed=1)
    mem.set_reference_rows(list(range(N)), keys)
    Z = torch.randn(N, C, dtype=F64)
    weights = [mem.write(Z[i : i + 1], keys[i : i + 1]) for i in range(N)]
    before = mem.read(keys=keys)
    mem.forget(Z[7:8], weights=weights[7])
    after = mem.read(keys=keys)
    others = [i for i in range(N) if i != 7]
    assert rel_err(after[others], before[others]) <= 1e-8
    # the forgotten slot now reads the prior (zeros): nothing of the fact is left
    assert float(after[7].norm() / Z[7].norm()) <= 1e-6
    # and the state equals a memory that never saw fact 7
    fresh = make_memory(K=K, C=C, D=D, mode="gaussian")
    fresh.set_reference_rows(list(range(N)), keys)
    for i in others:
        fresh.write(Z[i : i + 1], weights=weights[i])
    assert rel_err(mem.memory, fresh.memory) <= 1e-8


def test_large_batches_take_the_cholesky_path_and_agree():
    torch.manual_seed(0)
    mem = make_memory(K=16, C=4)
    Z1 = torch.randn(30, 4, dtype=F64)  # 30 >= K/4: Cholesky path
    W1 = mem.write(Z1)
    Z2 = torch.randn(2, 4, dtype=F64)  # Woodbury path
    W2 = mem.write(Z2)
    expected = least_squares_memory(torch.cat([W1, W2]), torch.cat([Z1, Z2]), 1e-3)
    assert rel_err(mem.memory, expected) <= 1e-8
    mem.forget(Z1, weights=W1)
    expected = least_squares_memory(W2, Z2, 1e-3)
    assert rel_err(mem.memory, expected) <= 1e-6


def test_refresh_removes_drift_and_rebuild_matches():
    torch.manual_seed(0)
    mem = make_memory(K=24, C=5, refresh_every=0)
    Ws, Zs = [], []
    for _ in range(200):
        Z = torch.randn(1, 5, dtype=F64)
        Ws.append(mem.write(Z))
        Zs.append(Z)
    drifted = mem.memory.clone()
    mem.refresh()
    assert rel_err(drifted, mem.memory) <= 1e-8
    other = make_memory(K=24, C=5)
    other.rebuild(torch.cat(Ws), torch.cat(Zs))
    assert rel_err(other.memory, mem.memory) <= 1e-8


# -- one-hot Gaussian keys: exact recall up to K, graceful beyond -----------------------------


@settings(max_examples=10, deadline=None)
@given(N=st.integers(1, 64), seed=st.integers(0, 10_000))
def test_n_up_to_k_facts_with_gaussian_keys_read_back_exactly(N, seed):
    K, C, D = 64, 10, 16
    torch.manual_seed(seed)
    mem = make_memory(K=K, C=C, D=D, mode="gaussian", ridge=1e-6)
    keys = unit_keys(N, D, seed)
    mem.set_reference_rows(list(range(N)), keys)
    Z = torch.randn(N, C, dtype=F64)
    for i in range(N):
        mem.write(Z[i : i + 1], keys[i : i + 1])
    readout = mem.read(keys=keys)
    assert rel_err(readout, Z) <= 1e-4


def test_over_capacity_degrades_gracefully():
    """N = 2K facts on K slots: each slot holds the mean of the facts that land on it. Recall
    is measured (cosine to the written latent), not assumed perfect."""
    K, C, D = 32, 64, 16
    torch.manual_seed(0)
    mem = make_memory(K=K, C=C, D=D, mode="gaussian")
    reference_keys = unit_keys(K, D, seed=0)
    mem.set_reference_rows(list(range(K)), reference_keys)
    keys = torch.cat([reference_keys, unit_keys(K, D, seed=99)])
    Z = torch.randn(2 * K, C, dtype=F64)
    for i in range(2 * K):
        mem.write(Z[i : i + 1], keys[i : i + 1])
    cos = torch.nn.functional.cosine_similarity(mem.read(keys=keys), Z, dim=-1)
    assert torch.isfinite(cos).all()
    # Shared slots average about two facts: cosine near 1/sqrt(2) rather than 1 or 0.
    assert 0.4 < float(cos.mean()) < 0.95


# -- functional ops used by training ----------------------------------------------------------


def test_write_episode_and_read_memory_are_differentiable_and_exact_for_n_le_k():
    torch.manual_seed(0)
    M0 = torch.randn(16, 8, dtype=F64)
    Z = torch.randn(2, 5, 8, dtype=F64, requires_grad=True)
    M = write_episode(Z, M0)
    Zr, W = read_memory(Z, M)
    assert M.shape == (2, 16, 8) and W.shape == (2, 5, 16)
    assert rel_err(Zr, Z) <= 1e-6  # 5 latents in 8 dims are reproduced exactly
    Zr.sum().backward()
    assert Z.grad is not None and torch.isfinite(Z.grad).all()


def test_stateful_write_episode_matches_pseudo_inverse_solution():
    torch.manual_seed(0)
    mem = make_memory(K=16, C=8, ridge=1e-9)
    Z = torch.randn(5, 8, dtype=F64)
    W0 = mem.write_episode(Z)
    assert torch.allclose(W0, pseudo_inverse_weights(Z, mem.reference))
    assert rel_err(mem.memory, torch.linalg.pinv(W0) @ Z) <= 1e-4


def test_gaussian_weights_are_one_hot_for_exact_keys():
    R = unit_keys(10, 4, seed=3)
    W = gaussian_weights(R[[2, 5]], R)
    assert torch.allclose(W, torch.eye(10, dtype=F64)[[2, 5]])
    assert torch.allclose(W.sum(-1), torch.ones(2, dtype=F64))


def test_generate_and_sampled_read_shapes():
    mem = make_memory(K=16, C=8, readout_noise=0.1)
    mem.write(torch.randn(4, 8, dtype=F64))
    assert mem.generate(3).shape == (3, 8)
    q = torch.randn(2, 8, dtype=F64)
    assert not torch.equal(mem.read(q, sample=True), mem.read(q))
    assert mem.read(q, via_memory=True).shape == (2, 8)


def test_state_size_is_independent_of_the_number_of_facts():
    mem = make_memory(K=32, C=8)
    size = mem.state_bytes()
    mem.write(torch.randn(100, 8, dtype=F64))
    assert mem.state_bytes() == size


# -- persistence ------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    mem = make_memory(K=16, C=8, D=4, mode="gaussian")
    keys = unit_keys(3, 4, 0)
    mem.write(torch.randn(3, 8, dtype=F64), keys)
    mem.save(tmp_path / "m.safetensors")
    loaded = EpisodicMemory.load(tmp_path / "m.safetensors")
    assert loaded.config == mem.config
    assert_state_equal(loaded, state_snapshot(mem))
    q = unit_keys(2, 4, 1)
    assert torch.equal(loaded.read(keys=q), mem.read(keys=q))


def test_load_rejects_corrupted_and_mismatched_files(tmp_path):
    mem = make_memory(K=16, C=8)
    path = tmp_path / "m.safetensors"
    mem.save(path)
    (tmp_path / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(StateFileError, match="not a readable"):
        EpisodicMemory.load(tmp_path / "garbage.safetensors")
    with pytest.raises(StateFileError, match="no memory state file"):
        EpisodicMemory.load(tmp_path / "missing.safetensors")
    other = make_memory(K=8, C=8)
    with pytest.raises(StateFileError, match="shape"):
        other.load_state_dict(mem.state_dict())
    bad = mem.state_dict()
    bad["memory"][0, 0] = math.nan
    with pytest.raises(StateFileError, match="NaN"):
        mem.load_state_dict(bad)
    with pytest.raises(StateFileError, match="dtype"):
        mem.load_state_dict({k: v.float() for k, v in mem.state_dict().items()})
    with pytest.raises(StateFileError, match="missing"):
        mem.load_state_dict({"memory": mem.memory})


def test_load_rejects_other_format_versions(tmp_path):
    from safetensors.torch import save_file

    mem = make_memory(K=4, C=2)
    path = tmp_path / "v99.safetensors"
    meta = {"format": "larimar-memory/episodic-memory", "format_version": "99",
            "config": mem.config.model_dump_json()}
    save_file(mem.state_dict(), str(path), metadata=meta)
    with pytest.raises(StateFileError, match="version 99"):
        EpisodicMemory.load(path)


# -- bad input: specific errors, state unchanged ------------------------------------------------


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.randn(3, 7, dtype=F64), MemoryInputError, "width 8"),
        (torch.randn(8, dtype=F64), MemoryInputError, "2-D"),
        (torch.randn(3, 8, dtype=torch.float32), MemoryInputError, "dtype"),
        (torch.full((2, 8), math.nan, dtype=F64), MemoryInputError, "NaN"),
        (torch.full((2, 8), math.inf, dtype=F64), MemoryInputError, "NaN or Inf"),
        (torch.empty(0, 8, dtype=F64), EmptyInputError, "empty"),
        ([[1.0] * 8], MemoryInputError, "torch.Tensor"),
    ],
)
def test_bad_input_raises_and_leaves_state_unchanged(bad, error, match):
    mem = make_memory(K=16, C=8)
    mem.write(torch.randn(3, 8, dtype=F64))
    snap = state_snapshot(mem)
    for op in (mem.write, mem.forget):
        with pytest.raises(error, match=match):
            op(bad)
        assert_state_equal(mem, snap)


def test_forgetting_what_was_never_written_raises_and_changes_nothing():
    K, C, D = 16, 4, 6
    for n in (1, 8):  # Woodbury path and Cholesky path
        mem = make_memory(K=K, C=C, D=D, mode="gaussian")
        keys = unit_keys(K, D, seed=5)
        mem.set_reference_rows(list(range(K)), keys)
        mem.write(torch.randn(2, C, dtype=F64), keys[:2])
        snap = state_snapshot(mem)
        with pytest.raises(NotWrittenError, match="never written"):
            mem.forget(torch.randn(n, C, dtype=F64), keys[8 : 8 + n])
        assert_state_equal(mem, snap)


def test_forgetting_twice_raises():
    mem = make_memory(K=16, C=4, D=6, mode="gaussian")
    keys = unit_keys(16, 6, seed=5)
    mem.set_reference_rows(list(range(16)), keys)
    Z = torch.randn(1, 4, dtype=F64)
    W = mem.write(Z, keys[:1])
    mem.forget(Z, weights=W)
    with pytest.raises(NotWrittenError):
        mem.forget(Z, weights=W)


def test_mismatched_keys_and_weights_raise():
    mem = make_memory(K=16, C=4, D=6, mode="gaussian")
    with pytest.raises(MemoryInputError, match="width 6"):
        mem.write(torch.randn(2, 4, dtype=F64), torch.randn(2, 5, dtype=F64))
    with pytest.raises(MemoryInputError, match="keys for 2 latents"):
        mem.write(torch.randn(2, 4, dtype=F64), unit_keys(3, 6, 0))
    with pytest.raises(MemoryInputError, match="rows"):
        mem.write(torch.randn(2, 4, dtype=F64), weights=torch.rand(3, 16, dtype=F64))
    with pytest.raises(MemoryInputError, match="slots must lie"):
        mem.set_reference_rows([16], unit_keys(1, 6, 0))
    with pytest.raises(EmptyInputError):
        mem.read()
    with pytest.raises(EmptyInputError):
        mem.generate(0)


def test_config_validation_messages():
    with pytest.raises(ValueError, match="slots"):
        MemoryConfig(slots=0)
    with pytest.raises(ValueError, match="addressing"):
        MemoryConfig(addressing="cosine")
