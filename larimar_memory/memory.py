"""Larimar's episodic memory: a fixed-size matrix written in one shot and kept the exact
(ridge) least-squares solution under sequential writes and forgets.

Pure tensors, no text. Notation: ``K`` slots, latent width ``C``, key width ``D``,
a batch of ``N`` latents ``Z (N, C)``, addressing weights ``W (N, K)``, memory ``M (K, C)``.

The state solves  ``min_M Σ_written ‖Z − W·M‖² + λ‖M − M_prior‖²``:
it keeps the precision ``Cov = λI + Σ s·WᵀW`` (K×K), the moment ``B = λ·M_prior + Σ s·WᵀZ``
(K×C), the solution ``M = Cov⁻¹·B`` and a cached ``Cov⁻¹``. A write (s = +1) or forget (s = −1)
of ``n`` rows costs

* ``n < K/4`` (Woodbury):   O(n·K² + n·K·C + n³)   — one fact at K=512, C=768: ~0.7 MFLOP;
* otherwise (Cholesky):     O(n·K² + K³ + K²·C + n·K·C).

A read costs O(N·K·D) addressing + O(N·K·C) readout. The state is O(K² + K·C) whatever the
number of facts. ``refresh()`` recomputes ``M`` and ``Cov⁻¹`` from ``Cov`` and ``B`` by Cholesky,
which removes any drift of the cached inverse.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .addressing import AddressingMode, address, random_reference
from .errors import EmptyInputError, MemoryInputError, NotWrittenError, StateFileError

FORMAT_NAME = "larimar-memory/episodic-memory"
FORMAT_VERSION = 1
_STATE_TENSORS = ("memory", "prior", "precision", "moment", "reference")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# ---------------------------------------------------------------------------------------------
# Functional, differentiable operations (used by training on batches of episodes)
# ---------------------------------------------------------------------------------------------


def write_episode(Z: torch.Tensor, M0: torch.Tensor, noise_std: float = 0.0) -> torch.Tensor:
    """One-shot episode write (paper Algorithm 1): ``W0 = Z·M0⁺``, ``M = W0⁺·Z``.

    ``Z (..., N, C)``, ``M0 (K, C)`` → ``M (..., K, C)``. ``noise_std`` is the observation
    noise ξ added to the latents being written. Differentiable.
    """
    if noise_std > 0:
        Z = Z + noise_std * torch.randn_like(Z)
    W0 = Z @ torch.linalg.pinv(M0)  # (..., N, K)
    return torch.linalg.pinv(W0) @ Z  # (..., K, C)


def read_memory(
    Zq: torch.Tensor, M: torch.Tensor, sigma_w: float | torch.Tensor = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read: ``w̄ = Zq·M⁺``, ``w ~ N(w̄, σ_w²)``, readout ``Zr = w·M``.

    ``Zq (..., N, C)``, ``M (..., K, C)`` → ``(Zr (..., N, C), w̄ (..., N, K))``. Differentiable,
    also in ``sigma_w`` (reparameterised).
    """
    w_mean = Zq @ torch.linalg.pinv(M)
    w = w_mean
    if isinstance(sigma_w, torch.Tensor) or sigma_w > 0:
        w = w_mean + sigma_w * torch.randn_like(w_mean)
    return w @ M, w_mean


def least_squares_memory(
    W: torch.Tensor, Z: torch.Tensor, ridge: float, prior: torch.Tensor | None = None
) -> torch.Tensor:
    """Batch ridge least squares ``argmin_M ‖Z − W·M‖² + ridge·‖M − prior‖²`` — the solution
    that sequential writes must equal. O(N·K² + K³ + K²·C)."""
    K = W.shape[-1]
    eye = torch.eye(K, dtype=W.dtype, device=W.device)
    precision = W.transpose(-1, -2) @ W + ridge * eye
    moment = W.transpose(-1, -2) @ Z
    if prior is not None:
        moment = moment + ridge * prior
    L = torch.linalg.cholesky(precision)
    return torch.cholesky_solve(moment, L)


# ---------------------------------------------------------------------------------------------
# Stateful memory (used by the service)
# ---------------------------------------------------------------------------------------------


class MemoryConfig(BaseModel):
    """Shape and behaviour of one episodic memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slots: int = Field(512, gt=0, le=65536, description="K, number of memory rows")
    width: int = Field(768, gt=0, description="C, width of a stored latent")
    key_width: int | None = Field(
        None, gt=0, description="D, width of addressing keys; None means keys are latents (D=C)"
    )
    addressing: AddressingMode = Field("gaussian", description="how keys find slots")
    gaussian_a: float = Field(1e-3, gt=0, description="kernel sharpness a (small = one-hot)")
    ridge: float = Field(
        1e-3, gt=0, description="λ of the ridge prior; keeps the system well-posed when N < K"
    )
    readout_noise: float = Field(0.0, ge=0, description="σ_w used by read(sample=True)")
    woodbury_fraction: float = Field(
        0.25, gt=0, le=1, description="batches smaller than this fraction of K use Woodbury"
    )
    refresh_every: int = Field(
        1000, ge=0, description="Woodbury updates between automatic refreshes (0 = never)"
    )
    seed: int = Field(0, description="seed of the fixed random reference memory")
    # float64 by default: a forget subtracts nearly equal numbers, and float32 loses ~1e-2 of the
    # remaining facts over hundreds of sequential edits (see docs/results/memory_bench.json).
    dtype: Literal["float32", "float64"] = "float64"

    @model_validator(mode="after")
    def _check_kernel(self) -> MemoryConfig:
        if not math.isfinite(self.gaussian_a) or not math.isfinite(self.ridge):
            raise ValueError("gaussian_a and ridge must be finite numbers")
        return self

    @property
    def resolved_key_width(self) -> int:
        return self.key_width or self.width

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]


class EpisodicMemory:
    """The memory matrix ``M`` with exact sequential least-squares writes and forgets.

    >>> mem = EpisodicMemory(MemoryConfig(slots=64, width=16))
    >>> W = mem.write(torch.randn(3, 16))      # returns the addressing weights used
    >>> mem.read(torch.randn(2, 16)).shape
    torch.Size([2, 16])
    """

    def __init__(
        self,
        config: MemoryConfig | None = None,
        *,
        prior: torch.Tensor | None = None,
        reference: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.config = config or MemoryConfig()
        cfg = self.config
        self.device = torch.device(device)
        self.dtype = cfg.torch_dtype
        K, C, D = cfg.slots, cfg.width, cfg.resolved_key_width
        if reference is None:
            reference = random_reference(K, D, seed=cfg.seed)
        # A zero prior (the default) is not stored: for a memory of many small blocks it would
        # be a third of the bytes.
        self._prior = None if prior is None else self._as_state_tensor(prior, (K, C), "prior")
        self.reference = self._as_state_tensor(reference, (K, D), "reference")
        self.reset()

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: back to the prior."""
        K = self.config.slots
        lam = self.config.ridge
        eye = torch.eye(K, dtype=self.dtype, device=self.device)
        self.precision = lam * eye
        self.moment = lam * self.prior
        self.memory = self.prior.clone()
        self._inverse = eye / lam
        self._updates_since_refresh = 0

    @property
    def prior(self) -> torch.Tensor:
        """The prior memory ``M_prior (K, C)`` (a fresh zero tensor when none was given)."""
        if self._prior is None:
            return torch.zeros(self.slots, self.width, dtype=self.dtype, device=self.device)
        return self._prior

    @property
    def slots(self) -> int:
        return self.config.slots

    @property
    def width(self) -> int:
        return self.config.width

    def grow(self, slots: int) -> None:
        """Add empty rows up to ``slots``. Exact: a row no fact has addressed contributes ``λI``
        to the precision and its prior row to the moment, so the solution over the old rows is
        unchanged and the new rows read their prior (zero). Lets a memory hold as many rows as
        it has facts instead of allocating all ``K`` up front."""
        K = self.slots
        if slots < K:
            raise MemoryInputError(f"a memory can only grow: {slots} < {K} slots")
        if slots == K:
            return
        lam, extra = self.config.ridge, slots - K
        C, D = self.width, self.config.resolved_key_width
        kw = {"dtype": self.dtype, "device": self.device}
        self.precision = torch.block_diag(self.precision, lam * torch.eye(extra, **kw))
        self._inverse = torch.block_diag(self._inverse, torch.eye(extra, **kw) / lam)
        self.memory = torch.cat([self.memory, torch.zeros(extra, C, **kw)])
        self.moment = torch.cat([self.moment, torch.zeros(extra, C, **kw)])
        if self._prior is not None:
            self._prior = torch.cat([self._prior, torch.zeros(extra, C, **kw)])
        fresh = random_reference(slots, D, seed=self.config.seed, dtype=self.dtype)[K:]
        self.reference = torch.cat([self.reference, fresh.to(self.device)])
        self.config = self.config.model_copy(update={"slots": slots})

    def refresh(self) -> None:
        """Recompute ``M = Cov⁻¹·B`` and the cached inverse by Cholesky (removes drift)."""
        L = self._cholesky_or_raise(self.precision, "refresh")
        self._set_solution(torch.cholesky_solve(self.moment, L), torch.cholesky_inverse(L))

    def rebuild(self, weights: torch.Tensor, latents: torch.Tensor) -> None:
        """Recompute the state from scratch from every live fact's weights and latents."""
        if weights.numel() == 0:
            self.reset()
            return
        W = self._check_matrix(weights, self.slots, "weights")
        Z = self._check_matrix(latents, self.width, "latents", rows=W.shape[0])
        lam = self.config.ridge
        eye = torch.eye(self.slots, dtype=self.dtype, device=self.device)
        self.precision = lam * eye + W.T @ W
        self.moment = lam * self.prior + W.T @ Z
        self.refresh()

    # -- addressing ----------------------------------------------------------------------------

    def address(self, keys: torch.Tensor) -> torch.Tensor:
        """Addressing weights ``(N, K)`` of keys against the fixed reference memory."""
        keys = self._check_matrix(keys, self.config.resolved_key_width, "keys")
        return address(keys, self.reference, self.config.addressing, self.config.gaussian_a)

    def set_reference_rows(self, slots: torch.Tensor | list[int], keys: torch.Tensor) -> None:
        """Pin reference rows to given keys (slot allocation). Weights of facts already written
        are not recomputed: callers keep the weights they wrote with, for exact forgetting."""
        keys = self._check_matrix(keys, self.config.resolved_key_width, "keys")
        index = torch.as_tensor(slots, dtype=torch.long, device=self.device).reshape(-1)
        if index.numel() != keys.shape[0]:
            raise MemoryInputError(
                f"got {index.numel()} slots for {keys.shape[0]} keys; pass one slot per key"
            )
        if index.numel() and (index.min() < 0 or index.max() >= self.slots):
            raise MemoryInputError(f"slots must lie in [0, {self.slots}), got {index.tolist()}")
        reference = self.reference.clone()
        reference[index] = keys
        self.reference = reference

    # -- operations ----------------------------------------------------------------------------

    def write(
        self,
        Z: torch.Tensor,
        keys: torch.Tensor | None = None,
        *,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sequential least-squares write (sign +1). Returns the weights ``(N, K)`` used, which
        a caller keeps if it wants to forget exactly these rows later."""
        return self._update(Z, keys, weights, sign=1.0)

    def forget(
        self,
        Z: torch.Tensor,
        keys: torch.Tensor | None = None,
        *,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sequential forget (sign −1): removes rows written earlier with the same latents and
        weights. Raises ``NotWrittenError`` (state unchanged) if they were never written."""
        return self._update(Z, keys, weights, sign=-1.0)

    def write_episode(self, Z: torch.Tensor) -> torch.Tensor:
        """One-shot episode write (Algorithm 1): reset, then write ``Z`` addressed by the
        pseudo-inverse of the reference, ``W0 = Z·R⁺``; ``M`` becomes the ridge-regularised
        ``W0⁺·Z``. Requires keys to be latents (``key_width`` unset or equal to ``width``)."""
        Z = self._check_matrix(Z, self.width, "Z")
        if self.config.resolved_key_width != self.width:
            raise MemoryInputError(
                "write_episode addresses latents against the reference, so key_width must equal "
                f"width; got key_width={self.config.key_width}, width={self.width}"
            )
        W0 = address(Z, self.reference, "pseudo_inverse")
        self.rebuild(W0, Z)
        return W0

    def read(
        self,
        Zq: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
        *,
        weights: torch.Tensor | None = None,
        sample: bool = False,
        via_memory: bool = False,
    ) -> torch.Tensor:
        """Readout ``Zr = w·M`` ``(N, C)``.

        Weights come from ``weights`` if given, else from ``keys`` against the reference memory,
        else from the query latents: against the reference (default) or, with
        ``via_memory=True``, the paper's ``w̄ = Zq·M⁺``. ``sample=True`` adds N(0, σ_w²) noise.
        """
        if weights is not None:
            W = self._check_matrix(weights, self.slots, "weights")
        elif keys is not None:
            W = self.address(keys)
        elif Zq is not None:
            Zq = self._check_matrix(Zq, self.width, "Zq")
            if via_memory:
                W = Zq @ torch.linalg.pinv(self.memory)
            else:
                W = self.address(Zq)
        else:
            raise EmptyInputError("read needs query latents Zq, keys, or weights; got none")
        if sample and self.config.readout_noise > 0:
            W = W + self.config.readout_noise * torch.randn_like(W)
        return W @ self.memory

    def generate(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``n`` latents from the memory: ``w ~ N(0, I)``, ``Z = w·M``."""
        if n <= 0:
            raise EmptyInputError(f"generate needs n >= 1, got {n}")
        w = torch.randn(n, self.slots, generator=generator, dtype=self.dtype).to(self.device)
        return w @ self.memory

    # -- persistence ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "memory": self.memory.clone(),
            "prior": self.prior.clone(),
            "precision": self.precision.clone(),
            "moment": self.moment.clone(),
            "reference": self.reference.clone(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a state, checking names, shapes, dtypes and finiteness first; on any problem
        raise ``StateFileError`` and keep the current state."""
        missing = [name for name in _STATE_TENSORS if name not in state]
        unexpected = [name for name in state if name not in _STATE_TENSORS]
        if missing or unexpected:
            raise StateFileError(
                f"memory state has missing tensors {missing} and unexpected tensors {unexpected}"
            )
        K, C, D = self.slots, self.width, self.config.resolved_key_width
        shapes = {"memory": (K, C), "prior": (K, C), "precision": (K, K), "moment": (K, C),
                  "reference": (K, D)}
        loaded = {}
        for name, shape in shapes.items():
            tensor = state[name]
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
                got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
                raise StateFileError(
                    f"memory state tensor {name!r} has shape {got}, but this memory "
                    f"(slots={K}, width={C}, key_width={D}) needs {shape}"
                )
            if tensor.dtype != self.dtype:
                raise StateFileError(
                    f"memory state tensor {name!r} has dtype {tensor.dtype}, but the memory is "
                    f"configured for {self.dtype}; load it into MemoryConfig(dtype=...) to match"
                )
            if not torch.isfinite(tensor).all():
                raise StateFileError(f"memory state tensor {name!r} contains NaN or Inf")
            loaded[name] = tensor.to(self.device).clone()
        try:
            L = torch.linalg.cholesky(loaded["precision"])
        except torch.linalg.LinAlgError as exc:
            raise StateFileError("memory state precision is not positive definite") from exc
        self.memory = loaded["memory"]
        self._prior = loaded["prior"] if bool(loaded["prior"].any()) else None
        self.precision, self.moment = loaded["precision"], loaded["moment"]
        self.reference = loaded["reference"]
        self._set_solution(self.memory, torch.cholesky_inverse(L))

    def save(self, path: str | Path) -> None:
        """Save to safetensors with the config and format version in the header."""
        metadata = {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "config": self.config.model_dump_json(),
        }
        tensors = {name: t.detach().cpu().contiguous() for name, t in self.state_dict().items()}
        save_file(tensors, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> EpisodicMemory:
        """Load a memory saved by ``save``; raises ``StateFileError`` saying what is wrong."""
        path = Path(path)
        if not path.is_file():
            raise StateFileError(f"no memory state file at {path}")
        try:
            with open(path, "rb") as handle:
                header_len = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(header_len))
            tensors = load_file(str(path))
        except (SafetensorError, ValueError, OSError, json.JSONDecodeError) as exc:
            raise StateFileError(
                f"{path} is not a readable safetensors memory state: {exc}"
            ) from exc
        metadata = header.get("__metadata__") or {}
        if metadata.get("format") != FORMAT_NAME:
            raise StateFileError(
                f"{path} is not a Larimar memory state (format {metadata.get('format')!r})"
            )
        version = metadata.get("format_version")
        if version != str(FORMAT_VERSION):
            raise StateFileError(
                f"{path} has memory format version {version}; this library reads version "
                f"{FORMAT_VERSION}. Upgrade larimar-memory or re-create the memory."
            )
        try:
            config = MemoryConfig.model_validate_json(metadata["config"])
        except (KeyError, ValueError) as exc:
            raise StateFileError(f"{path} has a missing or invalid memory config: {exc}") from exc
        memory = cls(config, device=device)
        memory.load_state_dict(tensors)
        return memory

    def state_bytes(self) -> int:
        """Bytes held by the state (independent of how many facts were written)."""
        tensors = [self.memory, self.precision, self.moment, self.reference, self._inverse]
        if self._prior is not None:
            tensors.append(self._prior)
        return sum(t.numel() * t.element_size() for t in tensors)

    # -- internals -----------------------------------------------------------------------------

    def _update(
        self, Z: torch.Tensor, keys: torch.Tensor | None, weights: torch.Tensor | None,
        sign: float,
    ) -> torch.Tensor:
        Z = self._check_matrix(Z, self.width, "Z")
        if weights is not None:
            W = self._check_matrix(weights, self.slots, "weights", rows=Z.shape[0])
        else:
            W = self.address(keys if keys is not None else Z)
            if W.shape[0] != Z.shape[0]:
                raise MemoryInputError(
                    f"got {W.shape[0]} keys for {Z.shape[0]} latents; pass one key per latent"
                )
        n, K = W.shape[0], self.slots
        if n < self.config.woodbury_fraction * K:
            self._woodbury_update(W, Z, sign)
        else:
            self._cholesky_update(W, Z, sign)
        every = self.config.refresh_every
        if every and self._updates_since_refresh >= every:
            self.refresh()
        return W

    def _woodbury_update(self, W: torch.Tensor, Z: torch.Tensor, sign: float) -> None:
        # Cov' = Cov + s·WᵀW. With U = Cov⁻¹Wᵀ, Q = W·U:
        #   M' = M + U (sI + Q)⁻¹ (Z − W·M),   Cov'⁻¹ = Cov⁻¹ − U (sI + Q)⁻¹ Uᵀ
        # Only the slots W addresses (cols) and the rows where U is non-zero (rows) change. With
        # the service's one-hot rows both are the written rows, so an update costs O(n·C), not
        # O(K·C + K²): skipping exact zeros leaves every result as the dense products give it.
        cols = W.abs().sum(dim=0).nonzero().flatten()
        Wc = W[:, cols]  # (n, m)
        U = self._inverse[:, cols] @ Wc.T  # (K, n)
        rows = U.abs().sum(dim=1).nonzero().flatten()
        Ur = U[rows]  # (r, n)
        Q = Wc @ U[cols]  # (n, n)
        eye = torch.eye(W.shape[0], dtype=self.dtype, device=self.device)
        residual = Z - Wc @ self.memory[cols]  # (n, C)
        if sign > 0:
            L = torch.linalg.cholesky(eye + Q)
            gain_in = torch.cholesky_solve(torch.cat([residual, Ur.T], dim=1), L)
        else:
            # (−I + Q)⁻¹ = −(I − Q)⁻¹ and I − Q must be positive definite: for rows that were
            # written, its eigenvalues are ≥ λ/(λ + ‖W‖²) (Woodbury), for unwritten rows ≤ 0.
            T = eye - Q
            self._check_forgettable(T, W)
            L = torch.linalg.cholesky(T)
            gain_in = -torch.cholesky_solve(torch.cat([residual, Ur.T], dim=1), L)
        C = self.width
        # In place: allocating fresh K×K tensors costs more than the arithmetic (page faults).
        self.memory.index_add_(0, rows, Ur @ gain_in[:, :C])
        self._inverse[rows.unsqueeze(1), rows] -= Ur @ gain_in[:, C:]
        self.precision[cols.unsqueeze(1), cols] += sign * (Wc.T @ Wc)
        self.moment.index_add_(0, cols, Wc.T @ Z, alpha=sign)
        self._updates_since_refresh += 1

    def _cholesky_update(self, W: torch.Tensor, Z: torch.Tensor, sign: float) -> None:
        precision = self.precision + sign * (W.T @ W)
        moment = self.moment + sign * (W.T @ Z)
        L = self._cholesky_or_raise(precision, "forget" if sign < 0 else "write")
        if sign < 0:
            # The precision must stay ≥ λI: anything less means rows are removed that were
            # never written (or were already forgotten).
            min_eig = torch.linalg.eigvalsh(precision)[0]
            if min_eig < 0.5 * self.config.ridge:
                raise NotWrittenError(self._not_written_message())
        self.precision, self.moment = precision, moment
        self._set_solution(torch.cholesky_solve(moment, L), torch.cholesky_inverse(L))

    def _set_solution(self, memory: torch.Tensor, inverse: torch.Tensor) -> None:
        # LAPACK returns column-major results; the in-place Woodbury updates are ~15x slower on
        # them, so store row-major copies.
        self.memory = memory.contiguous()
        self._inverse = inverse.contiguous()
        self._updates_since_refresh = 0

    def _check_forgettable(self, T: torch.Tensor, W: torch.Tensor) -> None:
        lam = self.config.ridge
        bound = lam / (lam + float(W.pow(2).sum()))
        if torch.linalg.eigvalsh(T)[0] < 0.5 * bound:
            raise NotWrittenError(self._not_written_message())

    @staticmethod
    def _not_written_message() -> str:
        return (
            "forget would remove rows that were never written (or were already forgotten): the "
            "key covariance would lose positive definiteness. Pass the same latents and weights "
            "that were written; the memory is unchanged."
        )

    def _cholesky_or_raise(self, matrix: torch.Tensor, operation: str) -> torch.Tensor:
        L, info = torch.linalg.cholesky_ex(matrix)
        if int(info) != 0:
            if operation == "forget":
                raise NotWrittenError(self._not_written_message())
            raise MemoryInputError(
                f"{operation}: the key covariance is not positive definite (numerical breakdown);"
                " call rebuild() with the live facts"
            )
        return L

    def _as_state_tensor(
        self, tensor: torch.Tensor, shape: tuple[int, ...], name: str
    ) -> torch.Tensor:
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
            raise MemoryInputError(f"{name} must have shape {shape}, got {got}")
        if not torch.isfinite(tensor).all():
            raise MemoryInputError(f"{name} contains NaN or Inf")
        return tensor.to(device=self.device, dtype=self.dtype).clone()

    def _check_matrix(
        self, tensor: torch.Tensor, width: int, name: str, rows: int | None = None
    ) -> torch.Tensor:
        """Validate a batch ``(N, width)``: type, rank, width, row count, dtype, device, values."""
        if not isinstance(tensor, torch.Tensor):
            raise MemoryInputError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dim() != 2:
            raise MemoryInputError(
                f"{name} must be 2-D (N, {width}), got shape {tuple(tensor.shape)}; "
                "use tensor.unsqueeze(0) for a single row"
            )
        if tensor.shape[0] == 0:
            raise EmptyInputError(f"{name} is an empty batch (0 rows); pass at least one row")
        if tensor.shape[1] != width:
            raise MemoryInputError(
                f"{name} must have width {width}, got shape {tuple(tensor.shape)}"
            )
        if rows is not None and tensor.shape[0] != rows:
            raise MemoryInputError(f"{name} must have {rows} rows, got {tensor.shape[0]}")
        if tensor.dtype != self.dtype:
            raise MemoryInputError(
                f"{name} has dtype {tensor.dtype} but the memory uses {self.dtype}; "
                f"convert with .to({self.dtype})"
            )
        if tensor.device != self.device:
            raise MemoryInputError(
                f"{name} is on {tensor.device} but the memory is on {self.device}"
            )
        if not torch.isfinite(tensor).all():
            raise MemoryInputError(f"{name} contains NaN or Inf values")
        return tensor
