"""Shared fixtures: a tiny Larimar (random tiny model + hashing embedder + temp SQLite store)."""

from __future__ import annotations

import pytest
import torch

from larimar_memory.testing import tiny_larimar

# Tests use tiny tensors: one thread avoids thread-pool overhead and oversubscription.
torch.set_num_threads(1)


@pytest.fixture
def larimar(tmp_path):
    memory = tiny_larimar(tmp_path / "store.sqlite3")
    yield memory
    memory.close()
