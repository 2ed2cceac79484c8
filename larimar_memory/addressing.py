"""Addressing: how a key finds its memory slots.

Two modes from the paper, both pure tensor functions:

* pseudo-inverse, ``W = keys · R⁺`` — the paper's default; exact for keys in the row space of R.
* Gaussian kernel (Appendix E, eq. 7–8), ``w_k ∝ exp(-‖z − R_k‖² / (2·a·σ²))`` with
  ``σ = min_k ‖z − R_k‖``; a small ``a`` makes ``w`` almost one-hot on the nearest row, which
  is what lets N ≤ K facts be stored and read back exactly.

``R`` is a *fixed* reference memory, so the weights of a fact can be recomputed later from its
key alone (needed to forget it).
"""

from __future__ import annotations

from typing import Literal

import torch

AddressingMode = Literal["gaussian", "pseudo_inverse"]

# Below this squared distance a key is taken to sit exactly on a reference row.
_MIN_SQUARED_DISTANCE = 1e-12
# Gaussian weights below this are set to exactly zero (see gaussian_weights).
_NEGLIGIBLE_WEIGHT = 1e-20


def squared_distances(keys: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N, K) squared Euclidean distances, computed without the
    ``|a|² + |b|² − 2ab`` cancellation that makes near-zero distances negative."""
    return torch.cdist(
        keys, reference, compute_mode="donot_use_mm_for_euclid_dist"
    ).pow(2)


def gaussian_weights(
    keys: torch.Tensor, reference: torch.Tensor, a: float = 1e-3
) -> torch.Tensor:
    """Gaussian-kernel addressing (paper eq. 7–8). Rows sum to 1. O(N·K·D)."""
    d2 = squared_distances(keys, reference)
    sigma2 = d2.min(dim=-1, keepdim=True).values.clamp_min(_MIN_SQUARED_DISTANCE)
    weights = torch.softmax(-d2 / (2.0 * a * sigma2), dim=-1)
    # Weights this small change nothing at float precision but, as denormals, make every later
    # matrix product on the CPU orders of magnitude slower.
    return weights.masked_fill(weights < _NEGLIGIBLE_WEIGHT, 0.0)


def pseudo_inverse_weights(keys: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse addressing ``keys · R⁺``. O(K·D·min(K, D)) for the pseudo-inverse."""
    return keys @ torch.linalg.pinv(reference)


def address(
    keys: torch.Tensor,
    reference: torch.Tensor,
    mode: AddressingMode = "gaussian",
    a: float = 1e-3,
) -> torch.Tensor:
    """Weights ``(N, K)`` of ``keys`` against ``reference`` in the given mode."""
    if mode == "gaussian":
        return gaussian_weights(keys, reference, a)
    if mode == "pseudo_inverse":
        return pseudo_inverse_weights(keys, reference)
    raise ValueError(f"addressing mode must be 'gaussian' or 'pseudo_inverse', got {mode!r}")


def random_reference(
    slots: int, dim: int, seed: int = 0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A reproducible reference memory of unit-norm random rows: rows are far from each other
    (squared distance ≈ 2), so the Gaussian kernel keeps them apart."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randn(slots, dim, generator=generator, dtype=torch.float64)
    return (rows / rows.norm(dim=-1, keepdim=True)).to(dtype)
