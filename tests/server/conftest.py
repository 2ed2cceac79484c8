"""Fixtures for the server tests: PostgreSQL (skipped without ``LARIMAR_TEST_PG_DSN``), a tiny
model app, and uvicorn servers on free loopback ports (in a thread or a subprocess)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_testing import KEY_A, KEY_B, ThreadedServer, drop_schema

from larimar_memory.server.settings import ServerSettings

PG_ENV = "LARIMAR_TEST_PG_DSN"
# Forked servers must not inherit a tokenizers thread pool (it would deadlock in the child).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    # Tests share 2 cores with other work: one torch thread per call avoids oversubscription
    # (several times faster under load than torch's default). Restored for other tests.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def warm_imports() -> None:
    """Import what a tiny server needs once, so forked servers start in about a second."""
    from larimar_memory.server.app import create_app  # noqa: F401
    from larimar_memory.testing import tiny_test_model

    tiny_test_model()


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"{PG_ENV} is not set; start one with: eval \"$(scripts/postgres.sh start)\"")
    return dsn


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema per test, dropped afterwards."""
    schema = "t_" + uuid.uuid4().hex[:12]
    yield schema
    drop_schema(pg_dsn, schema)


@pytest.fixture
def pg_store(pg_dsn: str, pg_schema: str):
    from larimar_memory.store_postgres import PostgresStore

    with PostgresStore(pg_dsn, schema=pg_schema) as store:
        yield store


@pytest.fixture
def settings() -> ServerSettings:
    return ServerSettings(api_keys={KEY_A: "acme", KEY_B: "globex"})


@pytest.fixture
def memory(tmp_path: Path):
    """A tiny Larimar on a temp SQLite store, for in-process app tests."""
    from larimar_memory.testing import tiny_larimar

    m = tiny_larimar(tmp_path / "store.sqlite3")
    yield m
    m.close()


@pytest.fixture
def client(memory, settings: ServerSettings):
    """A FastAPI TestClient on the app serving ``memory``."""
    from fastapi.testclient import TestClient

    from larimar_memory.server import create_app

    with TestClient(create_app(memory, settings)) as c:
        yield c


@pytest.fixture
def served(tmp_path: Path, settings: ServerSettings) -> Iterator[ThreadedServer]:
    """A uvicorn server in a thread, serving a tiny Larimar on a temp SQLite store."""
    from larimar_memory.server import create_app
    from larimar_memory.testing import tiny_larimar

    memory = tiny_larimar(tmp_path / "store.sqlite3")
    with ThreadedServer(create_app(memory, settings)) as server:
        server.memory = memory
        yield server
    memory.close()
