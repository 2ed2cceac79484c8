"""Reliability of `larimar serve` over loopback, on SQLite and PostgreSQL: concurrent clients
for a fixed short time (facts stored == writes acknowledged, no duplicates), the server
SIGKILLed under load and restarted (every acknowledged write survives, the store stays usable),
and forgotten text gone from the store's files, rows and exports."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import psycopg
import pytest
from server_testing import KEY_A, ForkedServer, SubprocessServer, ThreadedServer

from larimar_memory.server import LarimarClient, ServerSettings, create_app
from larimar_memory.server.client import RetryPolicy
from larimar_memory.testing import tiny_larimar

# Patient enough to ride out a restart of the server (~10-30 s on a loaded 2-core machine).
PATIENT = RetryPolicy(retries=400, base_delay=0.05, max_delay=0.25)
WRITERS, READERS = 6, 2


def unique_fact() -> str:
    # Distinct words: the tiny hashing embedder then never sees two facts as corrections.
    return " ".join(uuid.uuid4().hex[:10] for _ in range(4))


class Load:
    """Writer threads remembering unique facts and reader threads recalling, until stopped."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url, self.namespace = url, namespace
        self.acked: list[tuple[str, str]] = []  # (text, id) of every acknowledged write
        self.errors: list[BaseException] = []
        self.reads = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._write) for _ in range(WRITERS)]
        self.threads += [threading.Thread(target=self._read) for _ in range(READERS)]

    def _client(self) -> LarimarClient:
        return LarimarClient(self.url, KEY_A, namespace=self.namespace, retry=PATIENT,
                             timeout=60)

    def _write(self) -> None:
        with self._client() as client:
            while not self.stop.is_set():
                text = unique_fact()
                try:
                    result = client.remember(text)
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    self.errors.append(exc)
                    return
                self.acked.append((text, result.ids[0]))

    def _read(self) -> None:
        with self._client() as client:
            while not self.stop.is_set():
                try:
                    client.recall("what was written?")
                except BaseException as exc:  # noqa: BLE001
                    self.errors.append(exc)
                    return
                self.reads += 1

    def wait_acked(self, n: int, timeout: float = 30.0) -> None:
        """Let the load run until ``n`` writes were acknowledged (a count, not a time, so a
        slow machine gets the same test); at least 1 s."""
        start = time.monotonic()
        while time.monotonic() - start < timeout and not self.errors and (
            len(self.acked) < n or time.monotonic() - start < 1.0
        ):
            time.sleep(0.05)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)


@pytest.fixture(params=["sqlite", "postgres"])
def store_spec(request, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "served.sqlite3")
        return
    dsn = request.getfixturevalue("pg_dsn")
    schema = request.getfixturevalue("pg_schema")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in dsn else "?"
    yield f"{dsn}{sep}options=-csearch_path%3D{schema}"


def check_consistent(url: str, namespace: str, acked: list[tuple[str, str]]) -> None:
    with LarimarClient(url, KEY_A, namespace=namespace, retry=PATIENT) as client:
        stored = client.list()
        texts = [f.text for f in stored]
        assert len(texts) == len(set(texts)), "a retried write was stored twice"
        assert {(f.text, f.id) for f in stored} == set(acked)  # stored == acknowledged
        client.recall("still readable after everything?")  # the memory rebuilds from the store
    metrics = httpx.get(f"{url}/metrics").text
    assert 'status="500"' not in metrics


def test_concurrent_clients_then_sigkill_and_restart(
    store_spec: str, settings, warm_imports: None
) -> None:
    """Load, then SIGKILL under load and restart (a forked server: restarts in ~1 s)."""
    server = ForkedServer(store_spec, settings)
    server.start()
    try:
        # 1. concurrent load: stored == acknowledged, nothing twice, no 500
        with Load(server.url, "load") as load:
            load.wait_acked(30)
        assert not load.errors, load.errors[:3]
        assert len(load.acked) >= 30 and load.reads > 0
        check_consistent(server.url, "load", load.acked)

        # 2. SIGKILL under load, restart on the same port and store; clients keep retrying
        with Load(server.url, "load") as crash:
            crash.wait_acked(10)
            server.kill()  # mid-write: several requests are in flight
            killed_at = len(crash.acked)
            time.sleep(0.5)  # clients now meet a refused connection
            server.start()
            crash.wait_acked(killed_at + 10)
        assert not crash.errors, crash.errors[:3]
        assert len(crash.acked) > killed_at  # writes resumed after the restart
        check_consistent(server.url, "load", load.acked + crash.acked)
    finally:
        server.stop()


def test_cli_serve_end_to_end(tmp_path: Path) -> None:
    """The real `larimar serve --tiny` in a fresh interpreter: auth from LARIMAR_API_KEYS,
    requests served, SIGTERM shuts down cleanly, the write is in the SQLite file."""
    server = SubprocessServer(str(tmp_path / "cli.sqlite3"), tmp_path)
    server.start()
    try:
        assert httpx.get(f"{server.url}/v1/namespaces").status_code == 401
        with LarimarClient(server.url, KEY_A, namespace="cli") as client:
            ids = client.remember("Written through the CLI server.").ids
            assert [f.id for f in client.list()] == ids
        server.stop()
        # uvicorn shuts down gracefully, then re-raises SIGTERM (recent versions)
        assert server.proc is not None and server.proc.returncode in (0, -signal.SIGTERM)
        assert "Traceback" not in server.log_tail()
    except BaseException:
        print(server.log_tail())
        raise
    finally:
        server.stop()
    with closing(sqlite3.connect(tmp_path / "cli.sqlite3")) as conn:
        rows = conn.execute("SELECT namespace, text, id FROM larimar_facts").fetchall()
    assert rows == [("acme/cli", "Written through the CLI server.", ids[0])]


SECRET = "Zebulon's vault code is 7741-QUARTZ-9902."
NEEDLE = b"QUARTZ-9902"


def test_forgotten_text_leaves_sqlite_files_and_exports(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    memory = tiny_larimar(folder / "larimar.sqlite3")
    app = create_app(memory, ServerSettings(api_keys={KEY_A: "acme"}))
    with ThreadedServer(app) as server, LarimarClient(server.url, KEY_A, namespace="v") as c:
        c.remember(["Harmless fact about tea.", "Another fact about rain."])
        fact_id = c.remember(SECRET, metadata={"copy": SECRET}).ids[0]
        assert any(NEEDLE in p.read_bytes() for p in folder.iterdir())  # it was there
        c.forget(fact_id)
        assert NEEDLE.decode() not in c.export().model_dump_json()
        assert all(SECRET != f.text for f in c.list())
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        assert "larimar.sqlite3" in files
        for name, data in files.items():  # db, -wal, -shm
            assert NEEDLE not in data, f"forgotten text found in {name}"
    memory.close()


def test_forgotten_text_leaves_postgres_rows(pg_dsn: str, pg_schema: str) -> None:
    from larimar_memory.store_postgres import PostgresStore

    store = PostgresStore(pg_dsn, schema=pg_schema)
    memory = tiny_larimar(store)
    app = create_app(memory, ServerSettings(api_keys={KEY_A: "acme"}))
    with ThreadedServer(app) as server, LarimarClient(server.url, KEY_A, namespace="v") as c:
        c.remember("Harmless fact about tea.")
        fact_id = c.remember(SECRET, metadata={"copy": SECRET}).ids[0]
        c.forget(fact_id)
        assert NEEDLE.decode() not in c.export().model_dump_json()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (pg_schema,))]
        assert "larimar_facts" in tables
        for table in tables:
            hits = conn.execute(f'SELECT count(*) FROM "{pg_schema}"."{table}" t '
                                "WHERE t::text LIKE %s", ("%QUARTZ-9902%",)).fetchone()
            assert hits == (0,), f"forgotten text still in {table}"
    memory.close()
    store.close()
