"""Shared fixtures: a tiny Larimar (random tiny model + hashing embedder + temp SQLite store)."""

from __future__ import annotations

import pytest

from larimar_memory.testing import tiny_larimar


@pytest.fixture
def larimar(tmp_path):
    memory = tiny_larimar(tmp_path / "store.sqlite3")
    yield memory
    memory.close()
