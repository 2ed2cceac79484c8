"""`BlockMemory`: the memory of one namespace, any number of facts, each read back exactly.

The paper sizes the memory to what it holds (K = 1000 rows for 1000 edits) and reads long inputs
through several memories (recursive search). Here a namespace's memory is a list of blocks; each
block holds at most ``block_rows`` rows and is the exact (ridge) least-squares memory of the
facts written to it (eq. 4). A fact takes as many rows as its value has (a long
fact several), all in one block; its key routes a query to it (a top-k cosine search over the
keys), and its readout is ``w·M`` with the weights it was written with.

Addressing: Gaussian addressing (eq. 7-8) against a reference whose row ``r`` is the key that owns
it has ``σ = 0`` for that key, so its weights are exactly ``e_r``, the one-hot limit; rows of
one block are therefore linearly independent and every fact reads back what was written (up to
the ridge factor ``1/(1+λ)``). A write or forget touches one block: its cost does not depend on
how many facts the namespace holds. Blocks grow by doubling up to ``block_rows``, so bytes grow
with the facts stored, not with a fixed K.

Because the weights are one-hot, each block's precision is diagonal and its solution decouples
row by row: a block is a `OneHotMemory` (``onehot.py``: the rows and a count per row, no K×K
matrix), which equals the dense `EpisodicMemory` of the same writes (tests compare them) at a
fraction of the bytes. A forget that empties a fact's rows needs no values.

Pure tensors: ids are opaque strings, no text enters this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .errors import FactNotFoundError, MemoryInputError
from .onehot import OneHotMemory

_FIRST_BLOCK_ROWS = 1


@dataclass(frozen=True)
class BlockWrite:
    """One fact to write: its id, its key ``(D,)`` and its value rows ``(n, C)``; ``rows`` are
    its global memory rows when they are known already (rebuilding from the fact log);
    ``extra_keys`` further keys (paraphrases, context) that route queries to it."""

    fact_id: str
    key: torch.Tensor
    values: torch.Tensor
    rows: tuple[int, ...] | None = None
    extra_keys: torch.Tensor | None = None  # (m, D): further keys that address the fact


class PackedFacts(Protocol):
    """Facts whose memory rows are known and whose values are packed, as columns: what a load
    from the store gives (`store_columns.FactColumns`). Fact ``i``'s rows are
    ``rows[row_offsets[i]:row_offsets[i + 1]]``, their values ``moments`` at the same
    positions (one packed ``(1, value_dim)`` row each), its extra keys
    ``extra_keys[extra_offsets[i]:extra_offsets[i + 1]]``."""

    ids: list[str]
    keys: np.ndarray  # (n, D) float32
    extra_keys: np.ndarray  # (m, D) float32
    extra_offsets: np.ndarray  # (n + 1,)
    rows: np.ndarray  # (R,) int64
    row_offsets: np.ndarray  # (n + 1,)
    moments: list[bytes]  # (R,)
    value_dim: int


class KeyIndex:
    """Unit keys by fact id, searched by cosine; a forgotten fact's slot is reused."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._keys = torch.zeros(0, width, dtype=torch.float32)
        self._ids: list[str | None] = []
        self._live = torch.zeros(0, dtype=torch.bool)
        self._pos: dict[str, int] = {}
        self._free: list[int] = []

    def __contains__(self, fact_id: object) -> bool:
        return fact_id in self._pos

    def nbytes(self) -> int:
        return self._keys.numel() * self._keys.element_size()

    def add(self, fact_id: str, key: torch.Tensor) -> None:
        if self._free:
            pos = self._free.pop()
        else:
            pos = len(self._ids)
            if pos == self._keys.shape[0]:
                grown = torch.zeros(max(16, 2 * pos), self.width, dtype=torch.float32)
                grown[:pos] = self._keys
                self._keys = grown
                live = torch.zeros(grown.shape[0], dtype=torch.bool)
                live[:pos] = self._live[:pos]
                self._live = live
            self._ids.append(None)
        self._keys[pos] = key.to(torch.float32).reshape(-1)
        self._live[pos] = True
        self._ids[pos] = fact_id
        self._pos[fact_id] = pos

    def add_many(self, fact_ids: list[str], keys: torch.Tensor) -> None:
        """`add` of each ``(fact_id, key)`` in order: into the free slots first, then the rest
        as one block of rows."""
        reused = min(len(self._free), len(fact_ids))
        for fact_id, key in zip(fact_ids[:reused], keys[:reused], strict=True):
            self.add(fact_id, key)
        rest = fact_ids[reused:]
        start, end = len(self._ids), len(self._ids) + len(rest)
        if end > self._keys.shape[0]:  # grown as `add` grows it: one copy per doubling
            grown = torch.zeros(max(16, 2 * start, end), self.width, dtype=torch.float32)
            grown[:start] = self._keys[:start]
            self._keys = grown
            live = torch.zeros(grown.shape[0], dtype=torch.bool)
            live[:start] = self._live[:start]
            self._live = live
        self._keys[start:end] = keys[reused:].to(torch.float32)
        self._live[start:end] = True
        self._ids += rest
        self._pos.update(zip(rest, range(start, end), strict=True))

    def remove(self, fact_id: str) -> None:
        pos = self._pos.pop(fact_id, None)
        if pos is not None:
            self._ids[pos] = None
            self._keys[pos] = 0
            self._live[pos] = False
            self._free.append(pos)

    def search(
        self, query: torch.Tensor, k: int, allowed: Iterable[str] | None = None
    ) -> list[tuple[str, float]]:
        if not self._pos or k < 1:
            return []
        scores = self._keys[: len(self._ids)] @ query.to(self._keys.dtype).reshape(-1)
        if allowed is None:
            live = self._live[: len(self._ids)]
        else:
            live = torch.zeros(len(self._ids), dtype=torch.bool)
            live[[self._pos[f] for f in allowed if f in self._pos]] = True
        scores = scores.masked_fill(~live, float("-inf"))
        top = torch.topk(scores, min(k, int(live.sum())))
        return [
            (self._ids[int(i)], float(s))  # type: ignore[misc]
            for s, i in zip(top.values, top.indices, strict=True)
        ]

    def similarity(self, query: torch.Tensor, fact_ids: Sequence[str]) -> list[float]:
        positions = [self._pos[f] for f in fact_ids]
        return (self._keys[positions] @ query.to(self._keys.dtype).reshape(-1)).tolist()

    def items(self) -> tuple[list[str], torch.Tensor]:
        positions = [i for i, fid in enumerate(self._ids) if fid is not None]
        return [self._ids[i] for i in positions], self._keys[positions]  # type: ignore[misc]


class BlockMemory:
    """Facts in blocks of exact least-squares memories, routed by their keys.

    >>> mem = BlockMemory(width=4, key_width=3, block_rows=2)
    >>> rows = mem.write([BlockWrite("a", torch.ones(3), torch.ones(2, 4))])
    >>> rows["a"], mem.search(torch.ones(3), k=1)
    ((0, 1), [('a', 3.0)])
    """

    def __init__(
        self,
        width: int,
        key_width: int,
        *,
        block_rows: int = 512,
        ridge: float = 1e-3,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if block_rows < 1:
            raise MemoryInputError(f"block_rows must be >= 1, got {block_rows}")
        self.width, self.key_width, self.block_rows = width, key_width, block_rows
        self.ridge, self.dtype = ridge, dtype
        self.blocks: list[OneHotMemory] = []
        self._used: list[int] = []  # rows in use per block
        self._owner: dict[int, str] = {}  # global row -> fact id
        self._rows: dict[str, tuple[int, ...]] = {}  # fact id -> global rows
        # kind 0: every fact's key; kind j: the j-th extra key of the facts that have one
        self.key_indices: list[KeyIndex] = [KeyIndex(key_width)]

    # -- sizes -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, fact_id: object) -> bool:
        return fact_id in self._rows

    def fact_ids(self) -> list[str]:
        return list(self._rows)

    def rows_of(self, fact_id: str) -> tuple[int, ...]:
        return self._rows[self._known(fact_id)]

    def nbytes(self) -> int:
        """In-process bytes: every block's state plus the key index."""
        keys = sum(index.nbytes() for index in self.key_indices)
        return keys + sum(block.state_bytes() for block in self.blocks)

    # -- writing ---------------------------------------------------------------------------------

    def write(self, facts: Sequence[BlockWrite]) -> dict[str, tuple[int, ...]]:
        """Write facts, one least-squares update per block touched; returns each fact's rows."""
        placed: dict[int, list[tuple[int, torch.Tensor]]] = {}
        out: dict[str, tuple[int, ...]] = {}
        self._check_finite(facts)
        for fact in facts:
            values = self._check_values(fact)
            if fact.fact_id in self._rows:
                raise MemoryInputError(f"fact {fact.fact_id!r} is in the memory already")
            rows = fact.rows if fact.rows is not None else self._allocate(values.shape[0])
            self._claim(fact.fact_id, rows, values.shape[0])
            for row, value in zip(rows, values, strict=True):
                placed.setdefault(row // self.block_rows, []).append((row, value))
            self._index_keys(fact)
            out[fact.fact_id] = tuple(rows)
        for block_index, items in placed.items():
            self.blocks[block_index].write_rows([row % self.block_rows for row, _ in items],
                                                torch.stack([value for _, value in items]))
        return out

    def load(self, facts: PackedFacts) -> None:
        """Add facts at their known rows with their packed values, in bulk: the state equals
        `write` of the same facts at those rows (the tests compare them), without unpacking or
        packing a value again, the keys going in as one array. Keys and values are taken as
        finite: the store checks them when it reads (``store_columns.py``). Refused (state
        unchanged) when a fact is here already or its rows are not free rows of one block."""
        ids, rows, offsets = facts.ids, facts.rows, facts.row_offsets
        n = len(ids)
        if n == 0:
            return
        counts = np.diff(offsets)
        blocks = rows // self.block_rows
        starts = offsets[:-1]
        if facts.value_dim != self.width or tuple(facts.keys.shape) != (n, self.key_width):
            raise MemoryInputError(
                f"facts of width {facts.value_dim} with keys {tuple(facts.keys.shape)} do not "
                f"fit a memory of width {self.width} and key width {self.key_width}"
            )
        if len(set(ids)) != n or not self._rows.keys().isdisjoint(ids):
            raise MemoryInputError("load takes facts that are not in the memory, each once")
        if counts.min() < 1 or counts.max() > self.block_rows or rows.min() < 0 or bool(
                (np.minimum.reduceat(blocks, starts) != np.maximum.reduceat(blocks, starts)
                 ).any()):
            raise MemoryInputError(f"each fact needs 1 to {self.block_rows} rows >= 0, all in "
                                   "one block")
        row_list = rows.tolist()
        if len(np.unique(rows)) != len(rows) or not self._owner.keys().isdisjoint(row_list):
            raise MemoryInputError("load takes free rows, each held by one fact")
        order = np.argsort(blocks, kind="stable")  # the rows grouped by block, in order
        present, first = np.unique(blocks[order], return_index=True)
        local = (rows[order] % self.block_rows).tolist()
        moments = [facts.moments[i] for i in order.tolist()]
        for block_index, start, end in zip(present.tolist(), first.tolist(),
                                           [*first[1:].tolist(), len(order)], strict=True):
            self._ensure_block(block_index, max(local[start:end]) + 1)
            self.blocks[block_index].load_rows(local[start:end], moments[start:end])
            self._used[block_index] += end - start
        owners = np.repeat(np.arange(n), counts).tolist()
        self._owner.update(zip(row_list, [ids[i] for i in owners], strict=True))
        bounds = offsets.tolist()
        self._rows.update((fid, tuple(row_list[bounds[i]:bounds[i + 1]]))
                          for i, fid in enumerate(ids))
        self.key_indices[0].add_many(ids, torch.from_numpy(facts.keys))
        extra = np.diff(facts.extra_offsets)
        for kind in range(1, int(extra.max()) + 1):
            having = np.flatnonzero(extra >= kind)
            if kind == len(self.key_indices):
                self.key_indices.append(KeyIndex(self.key_width))
            self.key_indices[kind].add_many(
                [ids[i] for i in having],
                torch.from_numpy(facts.extra_keys[facts.extra_offsets[having] + kind - 1]))

    def forget(self, fact_id: str) -> tuple[int, ...]:
        """The exact −1 update of the block holding ``fact_id``: its rows hold only its write,
        so they return to the prior (no values needed: a replica forgets a fact whose record
        the store no longer has). Its rows and key slot are freed for reuse."""
        rows = self._rows[self._known(fact_id)]
        self.blocks[rows[0] // self.block_rows].forget_rows([r % self.block_rows for r in rows])
        for row in rows:
            del self._owner[row]
            self._used[row // self.block_rows] -= 1
        del self._rows[fact_id]
        for index in self.key_indices:
            index.remove(fact_id)
        return rows

    # -- reading ---------------------------------------------------------------------------------

    def search(
        self, query: torch.Tensor, k: int, allowed: Iterable[str] | None = None, kind: int = 0
    ) -> list[tuple[str, float]]:
        """The ``k`` facts whose keys (of ``kind``: 0 the key, j the j-th extra key) have the
        highest cosine with ``query`` (unit vectors), best first; ``allowed`` restricts the
        candidates."""
        if kind >= len(self.key_indices):
            return []
        return self.key_indices[kind].search(query, k, allowed)

    def similarity(self, query: torch.Tensor, fact_ids: Sequence[str]) -> list[float]:
        """Cosine of ``query`` with the keys of ``fact_ids``."""
        return self.key_indices[0].similarity(query, [self._known(f) for f in fact_ids])

    def readout(self, fact_id: str) -> torch.Tensor:
        """``w·M`` for the fact's rows ``(n, C)``: what the memory holds for it."""
        rows = self._rows[self._known(fact_id)]
        block = self.blocks[rows[0] // self.block_rows]
        # w·M with one-hot w is the rows themselves: solve those instead of a (n×K)·(K×C) product
        return block.rows([row % self.block_rows for row in rows])

    def read(
        self, query: torch.Tensor, k: int = 1, allowed: Iterable[str] | None = None
    ) -> list[tuple[str, float, torch.Tensor]]:
        """What a query reads: the ``k`` best facts by `search`, best first, each as
        ``(fact_id, cosine, readout (n, C))``. ``model.memory_context`` of the readouts is what
        conditions the decoder (``Larimar.ask``); ``model.read_facts`` gives their texts
        (``Larimar.recall``). Empty when the memory (or ``allowed``) holds no fact."""
        return [(fid, score, self.readout(fid)) for fid, score in self.search(query, k, allowed)]

    def keys(self) -> tuple[list[str], torch.Tensor]:
        """Live fact ids and their keys ``(n, D)``, in index order."""
        return self.key_indices[0].items()

    # -- internals -------------------------------------------------------------------------------

    def _known(self, fact_id: str) -> str:
        if fact_id not in self._rows:
            raise FactNotFoundError(f"fact {fact_id!r} is not in this memory")
        return fact_id

    def _check_values(self, fact: BlockWrite) -> torch.Tensor:
        values = fact.values
        if values.dim() != 2 or values.shape[1] != self.width or values.shape[0] == 0:
            raise MemoryInputError(
                f"fact {fact.fact_id!r}: values must be (n >= 1, {self.width}), got "
                f"{tuple(values.shape)}"
            )
        if values.shape[0] > self.block_rows:
            raise MemoryInputError(
                f"fact {fact.fact_id!r} needs {values.shape[0]} rows but a block holds "
                f"{self.block_rows}; raise block_rows or shorten the fact"
            )
        if fact.key.numel() != self.key_width:
            raise MemoryInputError(
                f"fact {fact.fact_id!r}: key must have {self.key_width} values, got "
                f"{fact.key.numel()}"
            )
        extra = fact.extra_keys
        if extra is not None and (extra.dim() != 2 or extra.shape[1] != self.key_width):
            raise MemoryInputError(
                f"fact {fact.fact_id!r}: extra_keys must be (m, {self.key_width}), got "
                f"{tuple(extra.shape)}"
            )
        return values.to(self.dtype)

    @staticmethod
    def _check_finite(facts: Sequence[BlockWrite]) -> None:
        """One pass over every key and value of a batch (a bulk load writes thousands)."""
        def parts(fact: BlockWrite) -> list[torch.Tensor]:
            extra = [] if fact.extra_keys is None else [fact.extra_keys.reshape(-1)]
            return [fact.key.reshape(-1).float(), fact.values.reshape(-1).float(), *extra]

        if facts and not bool(torch.isfinite(torch.cat([p for f in facts for p in parts(f)])
                                              ).all()):
            bad = next(f for f in facts if not all(bool(torch.isfinite(p).all())
                                                   for p in parts(f)))
            raise MemoryInputError(f"fact {bad.fact_id!r}: key or values contain NaN or Inf")

    def _allocate(self, n: int) -> tuple[int, ...]:
        """``n`` free rows in the first block that has them (a new block if none has)."""
        for b in range(len(self.blocks) + 1):
            if b == len(self.blocks) or self.block_rows - self._used[b] >= n:
                break
        start = b * self.block_rows
        free = [r for r in range(start, start + self.block_rows) if r not in self._owner]
        return tuple(free[:n])

    def _claim(self, fact_id: str, rows: Sequence[int], n: int) -> None:
        if len(rows) != n or len(set(rows)) != n:
            raise MemoryInputError(f"fact {fact_id!r}: {n} values need {n} distinct rows")
        blocks = {row // self.block_rows for row in rows}
        if len(blocks) != 1 or min(rows) < 0:
            raise MemoryInputError(f"fact {fact_id!r}: its rows {list(rows)} must lie in one block")
        taken = [row for row in rows if row in self._owner]
        if taken:
            raise MemoryInputError(
                f"fact {fact_id!r}: rows {taken} hold {self._owner[taken[0]]!r} already"
            )
        block_index = blocks.pop()
        self._ensure_block(block_index, max(rows) % self.block_rows + 1)
        for row in rows:
            self._owner[row] = fact_id
        self._used[block_index] += n
        self._rows[fact_id] = tuple(rows)

    def _ensure_block(self, block_index: int, rows_needed: int) -> None:
        while len(self.blocks) <= block_index:
            self.blocks.append(OneHotMemory(_FIRST_BLOCK_ROWS, self.width, ridge=self.ridge,
                                            dtype=self.dtype))
            self._used.append(0)
        block = self.blocks[block_index]
        if block.slots < rows_needed:
            size = block.slots
            while size < rows_needed:
                size *= 2
            block.grow(min(size, self.block_rows))

    def _index_keys(self, fact: BlockWrite) -> None:
        extra = fact.extra_keys if fact.extra_keys is not None else torch.zeros(0, self.key_width)
        for kind, key in enumerate([fact.key.reshape(-1), *extra], start=0):
            if kind == len(self.key_indices):
                self.key_indices.append(KeyIndex(self.key_width))
            self.key_indices[kind].add(fact.fact_id, key)
