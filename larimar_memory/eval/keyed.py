"""`KeyedMemory`: facts kept the way `Larimar` (the service) keeps them, without its fact log.

Why not the service itself: thousands of edits through SQLite transactions measure the store, not
the memory, and the experiments need raw readouts. The keying is the service's: each fact takes
a free slot ``k`` (``R_k = key``), is written with Gaussian weights (a = 1e-3, nearly one-hot)
against the reference, and reads address only slots that hold facts. Past ``K`` facts a fact
shares the slot of its nearest key (the service's ``overflow="share"``). Pseudo-inverse
addressing (``W = key · R_used⁺``) is offered for the comparison of the sequential experiment.
"""

from __future__ import annotations

import torch

from ..addressing import AddressingMode, gaussian_weights, random_reference
from ..memory import EpisodicMemory, MemoryConfig


class KeyedMemory:
    """An `EpisodicMemory` whose facts are addressed by sentence-embedding keys.

    >>> mem = KeyedMemory(slots=8, width=4, key_width=3)
    >>> ids = mem.write(torch.eye(3)[:2], torch.randn(2, 4))
    >>> mem.read(torch.eye(3)[:1]).shape
    torch.Size([1, 4])
    """

    def __init__(
        self,
        slots: int,
        width: int,
        key_width: int,
        *,
        addressing: AddressingMode = "gaussian",
        gaussian_a: float = 1e-3,
        ridge: float = 1e-3,
        seed: int = 0,
    ) -> None:
        config = MemoryConfig(
            slots=slots, width=width, key_width=key_width, addressing=addressing,
            gaussian_a=gaussian_a, ridge=ridge, dtype="float64",
        )
        self.base_reference = random_reference(slots, key_width, seed=seed, dtype=torch.float64)
        self.memory = EpisodicMemory(config, reference=self.base_reference)
        self.addressing: AddressingMode = addressing
        self.gaussian_a = gaussian_a
        self._slot: list[int] = []  # fact id -> slot
        self._weights: list[torch.Tensor] = []  # fact id -> (K,) weights used to write it
        self._values: list[torch.Tensor] = []  # fact id -> (C,) value written
        self._keys: list[torch.Tensor] = []  # fact id -> (D,) key it was written under
        self._alive: list[bool] = []
        self._sharers: dict[int, int] = {}  # slot -> live facts in it

    @property
    def slots(self) -> int:
        return self.memory.slots

    @property
    def used_slots(self) -> list[int]:
        return sorted(self._sharers)

    def __len__(self) -> int:
        return sum(self._alive)

    def live_ids(self) -> list[int]:
        """Ids of facts written and not forgotten."""
        return [i for i, alive in enumerate(self._alive) if alive]

    def live_keys(self) -> torch.Tensor:
        """Keys ``(n_live, D)`` of the live facts (what a scope detector compares with)."""
        live = self.live_ids()
        if not live:
            return torch.zeros(0, self.memory.config.resolved_key_width, dtype=torch.float64)
        return torch.stack([self._keys[i] for i in live])

    def write(self, keys: torch.Tensor, values: torch.Tensor) -> list[int]:
        """Write ``n`` facts at once (one least-squares update); returns their fact ids."""
        keys, values = _f64(keys), _f64(values)
        slots = [self._allocate(key) for key in keys]
        W = self._address(keys, self.used_slots, exclusive=False)
        self.memory.write(values, weights=W)
        ids = []
        for slot, w, key, value in zip(slots, W, keys, values, strict=True):
            ids.append(len(self._slot))
            self._slot.append(slot)
            self._keys.append(key.clone())
            self._weights.append(w.clone())
            self._values.append(value.clone())
            self._alive.append(True)
        return ids

    def forget(self, fact_id: int) -> None:
        """Remove one fact exactly (the −1 update with the weights it was written with)."""
        if not self._alive[fact_id]:
            raise KeyError(f"fact {fact_id} was already forgotten")
        self.memory.forget(self._values[fact_id][None], weights=self._weights[fact_id][None])
        self._alive[fact_id] = False
        slot = self._slot[fact_id]
        self._sharers[slot] -= 1
        if self._sharers[slot] == 0:
            del self._sharers[slot]
            self.memory.set_reference_rows([slot], self.base_reference[slot][None])

    def read(
        self,
        keys: torch.Tensor,
        sigma_w: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Readouts ``(n, C)`` for query keys, addressing only slots that hold facts; with
        ``sigma_w`` the weights get N(0, σ_w²) noise on every slot (the paper's read)."""
        W = self.weights(keys)
        if sigma_w > 0:
            noise = torch.randn(W.shape, generator=generator, dtype=torch.float64)
            W = W + sigma_w * noise
        return W @ self.memory.memory

    def weights(self, keys: torch.Tensor) -> torch.Tensor:
        """Read weights ``(n, K)`` of query keys over the used slots."""
        keys = _f64(keys)
        used = self.used_slots
        if not used:
            return torch.zeros(keys.shape[0], self.slots, dtype=torch.float64)
        return self._address(keys, used, exclusive=True)

    def nearest_fact_slot(self, keys: torch.Tensor) -> list[int]:
        """The used slot each query key weighs most."""
        return [int(i) for i in self.weights(keys).argmax(dim=1)]

    def fact_slot(self, fact_id: int) -> int:
        return self._slot[fact_id]

    def value(self, fact_id: int) -> torch.Tensor:
        return self._values[fact_id]

    # -- internals -----------------------------------------------------------------------------

    def _allocate(self, key: torch.Tensor) -> int:
        free = next((k for k in range(self.slots) if k not in self._sharers), None)
        if free is not None:
            self.memory.set_reference_rows([free], key[None])
            slot = free
        else:
            used = self.used_slots
            sims = self.memory.reference[used] @ key
            slot = used[int(sims.argmax())]
        self._sharers[slot] = self._sharers.get(slot, 0) + 1
        return slot

    def _address(self, keys: torch.Tensor, used: list[int], exclusive: bool) -> torch.Tensor:
        """Weights over all K slots. Gaussian writes weigh the whole reference (as the service
        does; free rows are random and far); reads (``exclusive``) only the used rows.
        Pseudo-inverse weights always come from the used rows, ``keys · R_used⁺``."""
        reference = self.memory.reference
        if self.addressing == "gaussian" and not exclusive:
            return gaussian_weights(keys, reference, self.gaussian_a)
        W = torch.zeros(keys.shape[0], self.slots, dtype=torch.float64)
        rows = reference[used]
        if self.addressing == "gaussian":
            W[:, used] = gaussian_weights(keys, rows, self.gaussian_a)
        else:
            W[:, used] = keys @ torch.linalg.pinv(rows)
        return W


def _f64(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach().cpu().to(torch.float64)
    return tensor[None] if tensor.dim() == 1 else tensor
