"""SQLiteStore: round trips, atomicity, no lost updates across processes, secure forgetting."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from larimar_memory.errors import FactNotFoundError, StoreError, TextInputError
from larimar_memory.store import (
    FORMAT_VERSION,
    STORE_ENV,
    FactRecord,
    MemoryStore,
    SQLiteStore,
    default_store_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
D, C, K = 8, 6, 16


def make_record(ns: str, text: str, slot: int = 0, seed: int = 0, **kw) -> FactRecord:
    rng = np.random.default_rng(seed)
    weights = np.zeros(K, dtype=np.float32)
    weights[slot % K] = 1.0
    return FactRecord(
        namespace=ns,
        text=text,
        key=rng.standard_normal(D),
        value=rng.standard_normal(C),
        weights=weights,
        slot=slot,
        **kw,
    )


@pytest.fixture
def store(tmp_path: Path):
    with SQLiteStore(tmp_path / "store" / "larimar.sqlite3") as s:
        yield s


def assert_same_record(a: FactRecord, b: FactRecord) -> None:
    assert (a.id, a.namespace, a.text, a.key_text, a.slot) == (
        b.id,
        b.namespace,
        b.text,
        b.key_text,
        b.slot,
    )
    assert (a.metadata, a.created_at, a.request_id) == (b.metadata, b.created_at, b.request_id)
    for name in ("key", "value", "weights"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.float32
        np.testing.assert_array_equal(x, y)


# --- records and round trips ---------------------------------------------------------------------


def test_fact_record_defaults_and_validation() -> None:
    r = make_record("ns", "Paris is in France.")
    assert len(r.id) == 32 and int(r.id, 16) >= 0
    assert r.key_text == r.text
    assert r.key.dtype == np.float32 and r.key.shape == (D,)
    assert r.created_at <= time.time()
    with pytest.raises(TextInputError):
        make_record("", "x")
    with pytest.raises(TextInputError, match="JSON"):
        make_record("ns", "x", metadata={"bad": object()})
    with pytest.raises(TextInputError, match="UTF-8"):
        make_record("ns", "bad \ud800 surrogate")
    with pytest.raises(ValueError, match="1-D"):
        FactRecord(
            namespace="ns",
            text="x",
            key=np.ones((2, 2)),
            value=np.ones(2),
            weights=np.ones(2),
            slot=0,
        )


def test_sqlite_store_is_a_memory_store(store: SQLiteStore) -> None:
    assert isinstance(store, MemoryStore)


def test_round_trip_records_and_state(store: SQLiteStore) -> None:
    records = [
        make_record("alice", "Paris is the capital of France.", slot=0, seed=1),
        make_record(
            "alice",
            "The Eiffel Tower is in Paris.",
            slot=3,
            seed=2,
            key_text="The Eiffel Tower is in",
            metadata={"source": "chat", "tags": ["a", 1, None]},
            request_id="req-1",
        ),
    ]
    tensors = {"memory": torch.randn(K, C), "cov": torch.eye(K), "reference": torch.randn(K, D)}
    with store.transaction("alice") as tx:
        assert tx.load_state() is None
        tx.add_facts(records)
        version = tx.save_state(tensors, {"slots": str(K)})
        assert tx.count() == 2
    assert version == 1

    assert store.count("alice") == 2
    got = store.list_facts("alice")
    for a, b in zip(records, got, strict=True):
        assert_same_record(a, b)
    assert_same_record(store.get_fact("alice", records[1].id), records[1])

    loaded = store.load_state("alice")
    assert loaded is not None
    state, v = loaded
    assert v == version == store.version("alice")
    assert state.keys() == tensors.keys()
    for name, t in tensors.items():
        assert torch.equal(state[name], t)
    assert store.state_meta("alice") == {"slots": str(K)}
    assert store.namespaces() == ["alice"]

    with store.transaction("alice") as tx:
        assert [r.id for r in tx.get_facts([records[1].id, records[0].id])] == [
            records[1].id,
            records[0].id,
        ]
        assert tx.used_slots() == {0, 3}
        assert [r.id for r in tx.find_by_request_id("req-1")] == [records[1].id]
        assert tx.find_by_request_id("nope") == []
        assert [r.id for r in tx.find_facts_by_text(records[0].text)] == [records[0].id]
        assert [r.id for r in tx.all_facts()] == [r.id for r in records]
        state2, v2 = tx.load_state()  # type: ignore[misc]
        assert v2 == 1
        assert tx.state_meta() == {"slots": str(K)}


def test_reopen_sees_committed_data(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    rec = make_record("ns", "persisted")
    with SQLiteStore(path) as s, s.transaction("ns") as tx:
        tx.add_facts([rec])
        tx.save_state({"m": torch.ones(2, 2)})
    with SQLiteStore(path) as s:
        assert_same_record(s.get_fact("ns", rec.id), rec)
        assert s.load_state("ns")[1] == 1  # type: ignore[index]


def test_version_bumps_once_per_changing_transaction(store: SQLiteStore) -> None:
    assert store.version("ns") == 0
    with store.transaction("ns") as tx:
        tx.add_facts([make_record("ns", "a")])
        tx.add_facts([make_record("ns", "b")])
        assert tx.save_state({"m": torch.zeros(1)}) == 1
        assert tx.save_state({"m": torch.ones(1)}) == 1
    with store.transaction("ns") as tx:  # read-only: no bump
        tx.all_facts()
    assert store.version("ns") == 1
    with store.transaction("ns") as tx:
        tx.delete_facts([store.list_facts("ns")[0].id])
    assert store.version("ns") == 2
    assert store.load_state("ns")[1] == 2  # type: ignore[index]


def test_pagination_search_and_namespace_isolation(store: SQLiteStore) -> None:
    recs = [make_record("a", f"fact {i}", slot=i, created_at=1000.0 + i) for i in range(10)]
    with store.transaction("a") as tx:
        tx.add_facts(recs)
    with store.transaction("b") as tx:
        tx.add_facts([make_record("b", "fact 3")])
    assert [r.text for r in store.list_facts("a", limit=3, offset=2)] == [
        "fact 2",
        "fact 3",
        "fact 4",
    ]
    assert [r.text for r in store.list_facts("a", offset=8)] == ["fact 8", "fact 9"]
    assert store.list_facts("a", limit=0) == []
    assert [r.id for r in store.find_facts_by_text("a", "fact 3")] == [recs[3].id]
    assert len(store.find_facts_by_text("b", "fact 3")) == 1
    assert store.find_facts_by_text("a", "fact") == []
    assert store.namespaces() == ["a", "b"]
    assert store.count("missing") == 0
    assert store.load_state("missing") is None
    with pytest.raises(FactNotFoundError):
        store.get_fact("b", recs[0].id)  # ids do not leak across namespaces
    with pytest.raises(ValueError):
        store.list_facts("a", offset=-1)


def test_clear(store: SQLiteStore) -> None:
    with store.transaction("a") as tx:
        tx.add_facts([make_record("a", f"x{i}") for i in range(5)])
        tx.save_state({"m": torch.ones(3)})
    with store.transaction("b") as tx:
        tx.add_facts([make_record("b", "keep")])
    v = store.version("a")
    assert store.clear("a") == 5
    assert store.count("a") == 0 and store.load_state("a") is None
    assert store.version("a") == v + 1  # never reused, so caches keyed by version stay valid
    assert store.namespaces() == ["b"]
    assert store.count("b") == 1
    assert store.clear("never-written") == 0


# --- atomicity -----------------------------------------------------------------------------------


def test_rollback_on_exception_leaves_nothing(store: SQLiteStore) -> None:
    with store.transaction("ns") as tx:
        tx.save_state({"m": torch.zeros(2)})
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", f"f{i}") for i in range(20)])
            tx.save_state({"m": torch.ones(2)})
            raise RuntimeError("boom")
    assert store.count("ns") == 0
    state, version = store.load_state("ns")  # type: ignore[misc]
    assert version == 1 and torch.equal(state["m"], torch.zeros(2))
    with pytest.raises(StoreError, match="ended"):
        tx.add_facts([make_record("ns", "late")])
    with pytest.raises(StoreError, match="ended"):
        tx.all_facts()
    with store.transaction("ns") as tx:  # the connection is usable again
        tx.add_facts([make_record("ns", "after")])
    assert store.count("ns") == 1


def test_unknown_id_raises_and_changes_nothing(store: SQLiteStore) -> None:
    recs = [make_record("ns", f"f{i}") for i in range(3)]
    with store.transaction("ns") as tx:
        tx.add_facts(recs)
    version = store.version("ns")
    with pytest.raises(FactNotFoundError, match="not-an-id"):
        with store.transaction("ns") as tx:
            tx.delete_facts([recs[0].id, "not-an-id"])
    assert store.count("ns") == 3 and store.version("ns") == version
    with store.transaction("ns") as tx:  # caught inside the transaction: still nothing deleted
        with pytest.raises(FactNotFoundError):
            tx.delete_facts([recs[1].id, "missing"])
        assert tx.count() == 3
        with pytest.raises(FactNotFoundError):
            tx.get_facts(["missing"])
    assert store.count("ns") == 3 and store.version("ns") == version
    with pytest.raises(FactNotFoundError):
        store.get_fact("ns", "missing")
    with store.transaction("ns") as tx:
        deleted = tx.delete_facts([recs[2].id, recs[2].id])  # duplicates collapse
    assert [r.id for r in deleted] == [recs[2].id]
    assert deleted[0].text == "f2"
    assert store.count("ns") == 2


def test_add_to_wrong_namespace_or_duplicate_id(store: SQLiteStore) -> None:
    rec = make_record("other", "x")
    with pytest.raises(StoreError, match="namespace"):
        with store.transaction("ns") as tx:
            tx.add_facts([rec])
    same = make_record("ns", "y")
    with store.transaction("ns") as tx:
        tx.add_facts([same])
    with pytest.raises(StoreError, match="unique"):
        with store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", "z"), same])
    assert store.count("ns") == 1


def test_nested_transaction_on_one_thread_is_refused(store: SQLiteStore) -> None:
    with store.transaction("a"):
        with pytest.raises(StoreError, match="already open"):
            with store.transaction("b"):
                pass


def test_locked_store_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    holder = SQLiteStore(path)
    waiter = SQLiteStore(path, busy_timeout=0.2)
    try:
        with holder.transaction("ns"):
            t0 = time.monotonic()
            with pytest.raises(StoreError, match="locked"):
                with waiter.transaction("ns"):
                    pass
            assert time.monotonic() - t0 < 5
            assert waiter.count("ns") == 0  # readers are not blocked by the writer (WAL)
    finally:
        holder.close()
        waiter.close()


def test_threads_sharing_one_store_lose_no_update(store: SQLiteStore) -> None:
    with store.transaction("ns") as tx:
        tx.save_state({"counter": torch.zeros((), dtype=torch.int64)})

    def work() -> None:
        for _ in range(15):
            with store.transaction("ns") as tx:
                state, _ = tx.load_state()  # type: ignore[misc]
                tx.add_facts([make_record("ns", "t")])
                tx.save_state({"counter": state["counter"] + 1})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state, _ = store.load_state("ns")  # type: ignore[misc]
    assert store.count("ns") == 60 and int(state["counter"]) == 60


def _process_worker(path: str, n: int, tag: str) -> None:
    """Runs in a spawned process: n read-modify-write transactions on one namespace."""
    with SQLiteStore(path) as store:
        for i in range(n):
            with store.transaction("shared") as tx:
                loaded = tx.load_state()
                counter = loaded[0]["counter"] if loaded else torch.zeros((), dtype=torch.int64)
                tx.add_facts([make_record("shared", f"{tag}-{i}", slot=i)])
                tx.save_state({"counter": counter + 1})


def test_two_processes_lose_no_update(tmp_path: Path) -> None:
    path = str(tmp_path / "mp.sqlite3")
    SQLiteStore(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_process_worker, args=(path, 50, f"p{j}")) for j in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with SQLiteStore(path) as store:
        state, version = store.load_state("shared")  # type: ignore[misc]
        assert store.count("shared") == 100
        assert int(state["counter"]) == 100
        assert version == 100


_CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np, torch
    from larimar_memory.store import FactRecord, SQLiteStore

    path, mode = sys.argv[1], sys.argv[2]
    store = SQLiteStore(path)

    def batch(tag):
        return [
            FactRecord(namespace="crash", text=f"{tag} fact {i}", key=np.full(8, i),
                       value=np.ones(6), weights=np.ones(16) / 16, slot=i % 16)
            for i in range(500)
        ]

    if mode == "sleep":  # dies inside the transaction, before commit
        with store.transaction("crash") as tx:
            tx.add_facts(batch("doomed"))
            tx.save_state({"counter": torch.tensor(-1)})
            print("ready", flush=True)
            time.sleep(120)
    else:  # commits batches of 500 until killed at a random moment
        i = 0
        while True:
            with store.transaction("crash") as tx:
                state, _ = tx.load_state()
                tx.add_facts(batch(f"b{i}"))
                tx.save_state({"counter": state["counter"] + 1})
            i += 1
            print(f"committed {i}", flush=True)
    """
)


def _start_crash_child(tmp_path: Path, path: Path, mode: str) -> subprocess.Popen[str]:
    script = tmp_path / "crash_child.py"
    script.write_text(_CRASH_SCRIPT)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.Popen(
        [sys.executable, str(script), str(path), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _seed_crash_store(path: Path) -> None:
    with SQLiteStore(path) as store, store.transaction("crash") as tx:
        tx.save_state({"counter": torch.tensor(0)})


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_inside_transaction_leaves_old_state(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    _seed_crash_store(path)
    child = _start_crash_child(tmp_path, path, "sleep")
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with SQLiteStore(path, busy_timeout=5) as store:
        assert store.count("crash") in (0, 500)
        assert store.count("crash") == 0  # it never committed
        state, version = store.load_state("crash")  # type: ignore[misc]
        assert version == 1 and int(state["counter"]) == 0
        with store.transaction("crash") as tx:  # the dead writer's lock is gone
            tx.add_facts([make_record("crash", "after the crash")])
        assert store.count("crash") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_at_random_moment_never_leaves_a_partial_batch(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    _seed_crash_store(path)
    child = _start_crash_child(tmp_path, path, "loop")
    try:
        assert child.stdout is not None
        assert child.stdout.readline().startswith("committed")
        time.sleep(float(np.random.default_rng().uniform(0.0, 0.3)))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with SQLiteStore(path, busy_timeout=5) as store:
        n = store.count("crash")
        state, version = store.load_state("crash")  # type: ignore[misc]
        assert n >= 500 and n % 500 == 0
        assert int(state["counter"]) == n // 500
        assert version == 1 + n // 500


# --- secure forgetting ---------------------------------------------------------------------------


def _store_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_forgotten_text_leaves_no_bytes_in_any_file(tmp_path: Path) -> None:
    folder = tmp_path / "secure"
    secret = "Zanzibar-Quokka-7731 owes Mallory 4000 dollars"
    key_secret = "Zanzibar-Quokka-7731 owes"
    store = SQLiteStore(folder / "larimar.sqlite3")
    try:
        filler = [make_record("ns", f"ordinary fact number {i} " * 5, slot=i) for i in range(300)]
        target = make_record("ns", secret, slot=7, key_text=key_secret, metadata={"note": secret})
        with store.transaction("ns") as tx:
            tx.add_facts(filler[:150] + [target] + filler[150:])
            tx.save_state({"m": torch.randn(K, C)})
        store.list_facts("ns")  # a reader connection on another code path
        blobs = _store_bytes(folder)
        assert any(secret.encode() in b for b in blobs.values())  # the grep can see it

        with store.transaction("ns") as tx:
            forgotten = tx.delete_facts([target.id])
            tx.save_state({"m": torch.randn(K, C)})
        assert forgotten[0].text == secret
        assert store.count("ns") == 300

        blobs = _store_bytes(folder)
        assert {"larimar.sqlite3"} <= set(blobs)
        for name, data in blobs.items():
            assert key_secret.encode() not in data, f"forgotten text found in {name}"
        assert store.find_facts_by_text("ns", secret) == []
    finally:
        store.close()
    for name, data in _store_bytes(folder).items():
        assert key_secret.encode() not in data, f"forgotten text found in {name} after close"


def test_cleared_namespace_leaves_no_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "secure"
    with SQLiteStore(folder / "larimar.sqlite3") as store:
        with store.transaction("gone") as tx:
            tx.add_facts([make_record("gone", f"Pelican-Oboe-{i} secret") for i in range(50)])
        with store.transaction("kept") as tx:
            tx.add_facts([make_record("kept", "harmless")])
        assert store.clear("gone") == 50
        for name, data in _store_bytes(folder).items():
            assert b"Pelican-Oboe" not in data, f"cleared text found in {name}"
        assert store.count("kept") == 1


# --- corrupted or foreign files ------------------------------------------------------------------


def test_format_version_mismatch_raises(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE larimar_meta SET value = '999' WHERE key = 'format_version'")
    raw.close()
    with pytest.raises(
        StoreError, match=f"format version '999'.*reads format version {FORMAT_VERSION}"
    ):
        SQLiteStore(path)


def test_not_a_store_raises(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite database"):
        SQLiteStore(junk)
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as raw:
        raw.execute("CREATE TABLE customers (id INTEGER)")
    raw.close()
    with pytest.raises(StoreError, match="not a larimar store"):
        SQLiteStore(foreign)


def test_corrupted_array_length_raises(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    rec = make_record("ns", "x")
    with SQLiteStore(path) as s, s.transaction("ns") as tx:
        tx.add_facts([rec])
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE facts SET weights = x'00000000' WHERE id = ?", (rec.id,))
    raw.close()
    with SQLiteStore(path) as s:
        with pytest.raises(StoreError, match="weights has 4 bytes.*corrupted"):
            s.get_fact("ns", rec.id)
        with pytest.raises(StoreError, match="corrupted"):
            s.list_facts("ns")


def test_corrupted_state_raises(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with SQLiteStore(path) as s, s.transaction("ns") as tx:
        tx.save_state({"m": torch.ones(3)})
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE states SET tensors = x'0102030405'")
    raw.close()
    with SQLiteStore(path) as s, pytest.raises(StoreError, match="cannot be decoded"):
        s.load_state("ns")


# --- configuration -------------------------------------------------------------------------------


def test_default_path_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "env" / "custom.sqlite3"
    monkeypatch.setenv(STORE_ENV, str(target))
    assert default_store_path() == target
    with SQLiteStore() as s:
        assert s.path == target
    assert target.is_file()
    monkeypatch.delenv(STORE_ENV)
    default = default_store_path()
    assert default.name == "larimar.sqlite3" and "larimar-memory" in str(default)


def test_memory_path_and_closed_store_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="file path"):
        SQLiteStore(":memory:")
    s = SQLiteStore(tmp_path / "s.sqlite3")
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.count("ns")


def test_state_needs_tensors_and_string_meta(store: SQLiteStore) -> None:
    with pytest.raises(ValueError):
        with store.transaction("ns") as tx:
            tx.save_state({})
    with pytest.raises(ValueError, match="str"):
        with store.transaction("ns") as tx:
            tx.save_state({"m": torch.ones(1)}, {"n": 3})  # type: ignore[dict-item]
    shared = torch.arange(6.0)
    with store.transaction("ns") as tx:  # views sharing storage and non-contiguous tensors
        tx.save_state({"a": shared[:3], "b": shared, "t": torch.ones(3, 2).T})
    state, _ = store.load_state("ns")  # type: ignore[misc]
    assert torch.equal(state["a"], shared[:3]) and state["t"].shape == (2, 3)
