"""`OneHotMemory`: the exact least-squares memory of rows addressed one-hot, kept compact.

`EpisodicMemory` (``memory.py``) keeps the dense state of eq. 4: the precision
``Cov = λI + Σ s·WᵀW`` (K×K), its inverse (K×K), the moment (K×C) and the solution (K×C). When
every weight row is a unit vector ``e_r`` (what `BlockMemory`'s addressing gives, see
``blocks.py``), ``WᵀW`` is diagonal: ``Cov = diag(λ + n_r)`` with ``n_r`` the number of live
writes to row ``r``, and the solution decouples row by row,

    ``M_r = (λ·M_prior,r + Σ_{writes to r} z) / (λ + n_r)``.

So this class keeps no K×K matrix, only per row the moment ``S_r = Σ_{writes to r} z`` and the
integer count ``n_r``, and solves ``M_r = S_r / (λ + n_r)`` for the rows a read touches (the
prior is zero: the service's). A write or forget of ``m`` rows adds or subtracts their values:
O(m·C). Each moment is kept packed (``packed.py``): only its columns up to the last non-zero
one, in float16 when that holds it exactly. A row written once holds exactly the value written,
so a token-code fact rounded to float16 costs ~2 bytes per filled slot entry instead of 4 per
column of the whole width. Results equal the dense solution (the tests compare them). A forget
that brings a row's count back to 0 drops its moment, exactly, so it needs no values: a replica
can forget a fact whose record is already gone from the store.

Pure tensors, no text.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from .errors import MemoryInputError, NotWrittenError
from .packed import pack, unpack

_BYTES = sys.getsizeof(b"")
"""What a bytes object holds beyond its length (its header): `sys.getsizeof` without a call."""


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
        self.ridge, self.dtype, self.width = float(ridge), dtype, width
        self._moments: list[bytes | None] = [None] * slots  # packed S_r, None when n_r = 0
        self._held = 0  # bytes of the moments (a cache sums every block's on every write)
        self.counts = torch.zeros(slots, dtype=torch.int32)  # (K,): live writes per row

    @property
    def slots(self) -> int:
        return len(self._moments)

    @property
    def memory(self) -> torch.Tensor:
        """The whole solution ``M`` (K×C), what the dense memory keeps (for reads by weights
        and for tests: a one-hot read takes `rows`)."""
        return self.rows(list(range(self.slots)))

    @property
    def precision(self) -> torch.Tensor:
        """The diagonal of ``Cov = λI + WᵀW`` (K,), what the dense memory keeps as a K×K."""
        return self.ridge + self.counts.to(self.dtype)

    def state_bytes(self) -> int:
        """Bytes held: the packed moments (with their object headers), a pointer per row and
        the counts."""
        return self._held + 8 * self.slots + self.counts.numel() * self.counts.element_size()

    def grow(self, slots: int) -> None:
        """Add empty rows up to ``slots`` (they read the zero prior; the others are unchanged)."""
        if slots < self.slots:
            raise MemoryInputError(f"a memory can only grow: {slots} < {self.slots} slots")
        self._moments += [None] * (slots - self.slots)
        self.counts = torch.cat([self.counts, torch.zeros(slots - len(self.counts),
                                                          dtype=torch.int32)])

    def rows(self, rows: list[int]) -> torch.Tensor:
        """``M_r = S_r / (λ + n_r)`` for ``rows`` ``(m, C)``: the readout of one-hot weights."""
        out = torch.zeros(len(rows), self.width, dtype=self.dtype)
        for i, row in enumerate(rows):
            moment = self._moments[row]
            if moment is not None:
                out[i] = torch.from_numpy(self._unpack(moment)[0]) / (
                    self.ridge + float(self.counts[row]))
        return out

    def write_rows(self, rows: list[int], values: torch.Tensor) -> None:
        """The +1 update of ``values[i]`` addressed to ``e_{rows[i]}``."""
        index, values = self._check(rows, values)
        self._update(index, values, sign=1)

    def load_rows(self, rows: list[int], moments: list[bytes]) -> None:
        """The +1 update of values already packed (`packed.py`, one ``(1, C)`` row each) to
        rows that hold nothing: a row written once holds exactly its value, so each moment is
        its blob as it is, neither unpacked nor packed again (what a load from the store gives;
        `write_rows` of the unpacked values ends in the same state). A blob that does not fit
        the width is refused when the row is read."""
        index, _ = self._check(rows, None)
        if len(moments) != len(rows) or len(set(rows)) != len(rows) or bool(
                self.counts[index].any()):
            raise MemoryInputError(
                f"load_rows takes one packed value per row, to distinct empty rows; got "
                f"{len(moments)} values for rows {sorted(rows)[:8]}"
            )
        for row, moment in zip(rows, moments, strict=True):
            self._moments[row] = moment
        self._held += sum(map(len, moments)) + _BYTES * len(moments)
        self.counts[index] = 1

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
            for row in index.tolist():
                self._set(row, None)
            return
        self._update(index, values, sign=-1)

    def read(self, weights: torch.Tensor) -> torch.Tensor:
        """Readout ``W·M`` for any weights ``(N, K)`` (one-hot weights read rows)."""
        if weights.dim() != 2 or weights.shape[1] != self.slots:
            raise MemoryInputError(
                f"weights must be (N, {self.slots}), got {tuple(weights.shape)}"
            )
        return weights.to(self.dtype) @ self.memory

    def _unpack(self, moment: bytes) -> np.ndarray:
        try:
            return unpack(moment, 1, self.width, self.dtype_np)
        except ValueError as exc:
            raise MemoryInputError(f"a packed row does not fit this memory: {exc}") from exc

    @property
    def dtype_np(self) -> np.dtype:
        return np.dtype("float64" if self.dtype == torch.float64 else "float32")

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
        # S_r' = S_r + s·Σz and n_r' = n_r + s·m_r for the touched rows only: O(m·C); a row
        # whose count reaches 0 drops its moment (the prior, exactly). The sums start at -0.0,
        # the additive identity that keeps a single value's bits (a -0.0 entry included), so a
        # row written once packs exactly as its value does (`load_rows`).
        touched, slot = torch.unique(index, return_inverse=True)
        sums = torch.full((len(touched), self.width), -0.0, dtype=self.dtype)
        sums.index_add_(0, slot, values)
        after = self.counts[touched] + sign * torch.bincount(
            slot, minlength=len(touched)).to(torch.int32)
        for i, row in enumerate(touched.tolist()):
            moment = self._moments[row]
            total = sign * sums[i].numpy()
            if moment is not None:
                total = self._unpack(moment)[0] + total
            self._set(row, pack(total[None]) if int(after[i]) else None)
        self.counts[touched] = after

    def _set(self, row: int, moment: bytes | None) -> None:
        old = self._moments[row]
        self._held += (0 if moment is None else len(moment) + _BYTES) - (
            0 if old is None else len(old) + _BYTES)
        self._moments[row] = moment
