"""`OneHotMemory`: the exact least-squares memory of rows addressed one-hot, kept compact.

`EpisodicMemory` (``memory.py``) keeps the dense state of eq. 4: the precision
``Cov = λI + Σ s·WᵀW`` (K×K), its inverse (K×K), the moment (K×C) and the solution (K×C). When
every weight row is a unit vector ``e_r`` (what `BlockMemory`'s addressing gives, see
``blocks.py``), ``WᵀW`` is diagonal: ``Cov = diag(λ + n_r)`` with ``n_r`` the number of live
writes to row ``r``, and the solution decouples row by row,

    ``M_r = (λ·M_prior,r + Σ_{writes to r} z) / (λ + n_r)``.

So this class keeps only ``M`` (K×C) and the integer counts ``n`` (K,): no K×K matrix, no
reference, no moment (it is ``(λ + n_r)·M_r``). A write or forget of ``m`` rows costs O(m·C).
Results equal the dense solution (the tests compare them); the prior is zero (the service's).
A forget that brings a row's count back to 0 resets the row to its prior exactly, so it needs
no values: a replica can forget a fact whose record is already gone from the store.

Pure tensors, no text.
"""

from __future__ import annotations

import torch

from .errors import MemoryInputError, NotWrittenError


class OneHotMemory:
    """``K`` rows of width ``C``, each the ridge least-squares mean of the values written to it.

    >>> mem = OneHotMemory(slots=4, width=2, ridge=1.0)
    >>> mem.write_rows([1], torch.ones(1, 2))
    >>> mem.memory[1].tolist(), mem.forget_rows([1]), mem.memory[1].tolist()
    ([0.5, 0.5], None, [0.0, 0.0])
    """

    def __init__(self, slots: int, width: int, *, ridge: float = 1e-3,
                 dtype: torch.dtype = torch.float64) -> None:
        if slots < 1 or width < 1 or not ridge > 0:
            raise MemoryInputError(
                f"OneHotMemory needs slots >= 1, width >= 1 and ridge > 0; got slots={slots}, "
                f"width={width}, ridge={ridge}"
            )
        self.ridge, self.dtype = float(ridge), dtype
        self.memory = torch.zeros(slots, width, dtype=dtype)  # (K, C): the solution M
        self.counts = torch.zeros(slots, dtype=torch.int32)  # (K,): live writes per row

    @property
    def slots(self) -> int:
        return self.memory.shape[0]

    @property
    def width(self) -> int:
        return self.memory.shape[1]

    @property
    def precision(self) -> torch.Tensor:
        """The diagonal of ``Cov = λI + WᵀW`` (K,), what the dense memory keeps as a K×K."""
        return self.ridge + self.counts.to(self.dtype)

    def state_bytes(self) -> int:
        return (self.memory.numel() * self.memory.element_size()
                + self.counts.numel() * self.counts.element_size())

    def grow(self, slots: int) -> None:
        """Add empty rows up to ``slots`` (they read the zero prior; the others are unchanged)."""
        if slots < self.slots:
            raise MemoryInputError(f"a memory can only grow: {slots} < {self.slots} slots")
        extra = slots - self.slots
        self.memory = torch.cat([self.memory, torch.zeros(extra, self.width, dtype=self.dtype)])
        self.counts = torch.cat([self.counts, torch.zeros(extra, dtype=torch.int32)])

    def write_rows(self, rows: list[int], values: torch.Tensor) -> None:
        """The +1 update of ``values[i]`` addressed to ``e_{rows[i]}``."""
        index, values = self._check(rows, values)
        self._update(index, values, sign=1)

    def forget_rows(self, rows: list[int], values: torch.Tensor | None = None) -> None:
        """The −1 update of rows written earlier. ``values`` may be omitted when each row loses
        its last write (then it is back to the prior, exactly); otherwise they must be the ones
        written. Raises `NotWrittenError` (state unchanged) for rows not written that often."""
        index, values = self._check(rows, values)
        lost = torch.bincount(index, minlength=self.slots).to(torch.int32)
        if bool((lost > self.counts).any()):
            raise NotWrittenError(
                f"forget of rows {sorted(set(rows))}: some were never written (or were already "
                "forgotten); the memory is unchanged"
            )
        if values is None:
            if bool((self.counts[index] != lost[index]).any()):
                raise MemoryInputError(
                    "forget without values only empties rows; these rows hold further writes, "
                    "pass the values that were written"
                )
            self.counts[index] = 0
            self.memory[index] = 0
            return
        self._update(index, values, sign=-1)

    def read(self, weights: torch.Tensor) -> torch.Tensor:
        """Readout ``W·M`` for any weights ``(N, K)`` (one-hot weights read rows)."""
        if weights.dim() != 2 or weights.shape[1] != self.slots:
            raise MemoryInputError(
                f"weights must be (N, {self.slots}), got {tuple(weights.shape)}"
            )
        return weights.to(self.dtype) @ self.memory

    def _check(self, rows: list[int], values: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        index = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        if index.numel() == 0 or int(index.min()) < 0 or int(index.max()) >= self.slots:
            raise MemoryInputError(f"rows must be a non-empty list in [0, {self.slots}), "
                                   f"got {list(rows)}")
        if values is None:
            return index, None
        if values.dim() != 2 or values.shape != (index.numel(), self.width):
            raise MemoryInputError(
                f"values must be ({index.numel()}, {self.width}), got {tuple(values.shape)}"
            )
        return index, values.to(self.dtype)

    def _update(self, index: torch.Tensor, values: torch.Tensor, sign: int) -> None:
        # M_r' = (d_r·M_r + s·Σz) / d_r', d = λ + n: the moment is rebuilt from the solution,
        # updated, and divided by the new precision; rows whose count reaches 0 hold the prior.
        # Only the touched rows are read or written: O(m·C).
        touched, slot = torch.unique(index, return_inverse=True)
        sums = torch.zeros(len(touched), self.width, dtype=self.dtype)
        sums.index_add_(0, slot, values)
        before = self.counts[touched]
        after = before + sign * torch.bincount(slot, minlength=len(touched)).to(torch.int32)
        rows = ((self.ridge + before.to(self.dtype))[:, None] * self.memory[touched]
                + sign * sums) / (self.ridge + after.to(self.dtype))[:, None]
        rows[after == 0] = 0
        self.memory[touched] = rows
        self.counts[touched] = after
