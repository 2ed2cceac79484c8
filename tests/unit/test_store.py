"""SQLiteStore: the store contract, plus what is SQLite's own: record validation, crash safety,
purged forgetting (and PurgePendingError), damaged files, migration from format version 1."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from store_contract import C, D, StoreContract, make_record

from larimar_memory.errors import MemoryInputError, PurgePendingError, StoreError, TextInputError
from larimar_memory.packed import pack
from larimar_memory.store import (
    FORMAT_VERSION,
    STORE_ENV,
    FactRecord,
    SQLiteStore,
    default_store_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "larimar.sqlite3"


@pytest.fixture
def store(store_path: Path):
    with SQLiteStore(store_path) as s:
        yield s


@pytest.fixture
def store_spec(store_path: Path) -> tuple[str, str]:
    return ("sqlite", str(store_path))


class TestSQLiteContract(StoreContract):
    pass


# --- records -------------------------------------------------------------------------------------


def record(**kw) -> FactRecord:
    fields = dict(namespace="ns", text="x", key=np.ones(D), values=np.ones((1, C)), rows=[0])
    fields.update(kw)
    return FactRecord(**fields)


def test_fact_record_defaults() -> None:
    r = make_record("ns", "Paris is in France.", n_rows=2)
    assert len(r.id) == 32 and int(r.id, 16) >= 0
    assert r.key_text == r.text and r.metadata == {} and r.request_id is None
    assert r.key.dtype == np.float32 and r.key.shape == (D,)
    assert r.values.dtype == np.float32 and r.values.shape == (2, C)
    assert r.rows.dtype == np.int64 and r.rows.tolist() == [0, 1]
    assert record().created_at <= time.time()


@pytest.mark.parametrize(("kw", "match"), [
    ({"key": np.ones((2, 2))}, "key must have shape"),
    ({"values": np.ones(C)}, r"values must have shape \(n_rows, C\)"),
    ({"values": np.ones((0, C)), "rows": []}, "values must have shape"),
    ({"key": np.array([1.0, np.nan])}, "NaN"),
    ({"values": np.full((1, C), np.inf)}, "NaN or Inf"),
    ({"rows": [0, 1]}, "rows has 2 entries but values has 1"),
    ({"values": np.ones((2, C)), "rows": [3, 3]}, "distinct"),
    ({"rows": [-1]}, ">= 0"),
    ({"rows": [0.5]}, "integer"),
    ({"key": "abc"}, "numeric"),
])
def test_fact_record_arrays_are_validated(kw, match) -> None:
    with pytest.raises(MemoryInputError, match=match):
        record(**kw)


def _nested(depth: int) -> dict:
    meta: dict = {"leaf": 1}
    for _ in range(depth - 1):
        meta = {"d": meta}
    return meta


@pytest.mark.parametrize(("metadata", "match"), [
    (["a", "list"], "metadata must be a dict"),
    (3, "metadata must be a dict"),
    ("text", "metadata must be a dict"),
    ({1: "x"}, "keys must be str"),
    ({"a": {2: "x"}}, "keys must be str"),
    ({"a": [1, float("nan")]}, r"value at metadata\['a'\]\[1\] is NaN"),
    ({"a": float("inf")}, "is infinite"),
    ({"a": object()}, "not JSON-serialisable"),
    ({"a": {1, 2}}, "not JSON-serialisable"),
    ({"a": "bad \ud800"}, "UTF-8"),
    ({"a": "x" * (64 * 1024)}, "limit is 65536"),
    (_nested(33), "deeper than 32"),
    (_nested(5000), "deeper than 32"),  # never a RecursionError
])
def test_fact_record_metadata_is_validated(metadata, match) -> None:
    with pytest.raises(TextInputError, match=match):
        record(metadata=metadata)


def test_fact_record_text_is_validated() -> None:
    assert record(metadata=_nested(32)).metadata == _nested(32)  # the limit itself is fine
    with pytest.raises(TextInputError):
        record(namespace="")
    with pytest.raises(TextInputError, match="UTF-8"):
        record(text="bad \ud800 surrogate")
    with pytest.raises(TextInputError, match="str"):
        record(text=3)
    with pytest.raises(TextInputError, match="id"):
        record(id="")


def test_sqlite_refuses_nul_as_postgresql_does(store_path: Path) -> None:
    """One NUL policy on every store: PostgreSQL cannot hold NUL, so SQLite refuses it too."""
    for rec in (make_record("ns", "a\x00b"), make_record("ns", "x", metadata={"k": "v\x00"}),
                make_record("ns", "x", metadata={"k\x00": 1})):
        with SQLiteStore(store_path) as s:
            with pytest.raises(TextInputError, match="NUL"), s.transaction("ns") as tx:
                tx.add_facts([rec])
            assert s.list_facts("ns") == []


# --- locking and crashes -------------------------------------------------------------------------


def test_locked_store_raises_store_error(store_path: Path) -> None:
    with SQLiteStore(store_path) as holder, SQLiteStore(store_path, busy_timeout=0.2) as waiter:
        with holder.transaction("ns"):
            t0 = time.monotonic()
            with pytest.raises(StoreError, match="locked"):
                with waiter.transaction("ns"):
                    pass
            assert time.monotonic() - t0 < 5
            assert waiter.count("ns") == 0  # readers are not blocked by the writer (WAL)


_CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from larimar_memory.store import FactRecord, SQLiteStore

    path, mode = sys.argv[1], sys.argv[2]
    store = SQLiteStore(path)

    def batch(tag):
        return [FactRecord(namespace="crash", text=f"{tag} fact {i}", key=np.full(8, i),
                           values=np.ones((2, 6)), rows=[i, i + 500]) for i in range(500)]

    if mode == "sleep":  # dies inside the transaction, before commit
        with store.transaction("crash") as tx:
            tx.add_facts(batch("doomed"))
            tx.set_namespace_meta({"counter": "-1"})
            print("ready", flush=True)
            time.sleep(120)
    else:  # commits batches of 500 until killed at a random moment
        i = 0
        while True:
            with store.transaction("crash") as tx:
                counter = int(tx.namespace_meta()["counter"])
                tx.add_facts(batch(f"b{i}"))
                tx.set_namespace_meta({"counter": str(counter + 1)})
            i += 1
            print(f"committed {i}", flush=True)
    """
)


def _start_crash_child(tmp_path: Path, path: Path, mode: str) -> subprocess.Popen[str]:
    with SQLiteStore(path) as store, store.transaction("crash") as tx:
        tx.set_namespace_meta({"counter": "0"})
    script = tmp_path / "crash_child.py"
    script.write_text(_CRASH_SCRIPT)
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, str(script), str(path), mode],
                            stdout=subprocess.PIPE, text=True, env=env)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_inside_transaction_leaves_old_state(tmp_path: Path, store_path: Path) -> None:
    child = _start_crash_child(tmp_path, store_path, "sleep")
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with SQLiteStore(store_path, busy_timeout=5) as store:
        assert store.count("crash") == 0  # it never committed
        assert store.namespace_meta("crash") == {"counter": "0"} and store.version("crash") == 1
        with store.transaction("crash") as tx:  # the dead writer's lock is gone
            tx.add_facts([make_record("crash", "after the crash")])
        assert store.count("crash") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_at_random_moment_never_leaves_a_partial_batch(tmp_path: Path,
                                                               store_path: Path) -> None:
    child = _start_crash_child(tmp_path, store_path, "loop")
    try:
        assert child.stdout is not None and child.stdout.readline().startswith("committed")
        time.sleep(float(np.random.default_rng().uniform(0.0, 0.3)))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with SQLiteStore(store_path, busy_timeout=5) as store:
        n = store.count("crash")
        assert n >= 500 and n % 500 == 0
        assert store.namespace_meta("crash") == {"counter": str(n // 500)}
        assert store.version("crash") == 1 + n // 500


# --- forgetting purges the bytes -----------------------------------------------------------------


def _store_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _assert_no_trace(folder: Path, needle: str) -> None:
    for name, data in _store_bytes(folder).items():
        assert needle.encode() not in data, f"{needle!r} found in {name}"


def test_forgotten_text_leaves_no_bytes_in_any_file(store_path: Path) -> None:
    secret = "Zanzibar-Quokka-7731 owes Mallory 4000 dollars"
    key_secret = "Zanzibar-Quokka-7731 owes"
    store = SQLiteStore(store_path)
    try:
        filler = [make_record("ns", f"ordinary fact number {i} " * 5) for i in range(300)]
        target = make_record("ns", secret, key_text=key_secret, metadata={"note": secret})
        with store.transaction("ns") as tx:
            tx.add_facts(filler[:150] + [target] + filler[150:])
        store.list_facts("ns")
        assert any(secret.encode() in b for b in _store_bytes(store_path.parent).values())
        with store.transaction("ns") as tx:
            assert tx.delete_facts([target.id])[0].text == secret
        assert store.count("ns") == 300 and store.pending_purges == 0
        assert {"larimar.sqlite3"} <= set(_store_bytes(store_path.parent))
        _assert_no_trace(store_path.parent, key_secret)
    finally:
        store.close()
    _assert_no_trace(store_path.parent, key_secret)


def test_cleared_namespace_leaves_no_trace_of_its_name(store_path: Path) -> None:
    with SQLiteStore(store_path) as store:
        with store.transaction("Gone-Namespace-Pelican") as tx:
            tx.add_facts([make_record("Gone-Namespace-Pelican", f"Pelican-Oboe-{i} secret")
                          for i in range(50)])
            tx.set_namespace_meta({"model": "m"})
        with store.transaction("kept") as tx:
            tx.add_facts([make_record("kept", "harmless")])
        assert store.clear("Gone-Namespace-Pelican") == 50
        _assert_no_trace(store_path.parent, "Pelican-Oboe")
        _assert_no_trace(store_path.parent, "Gone-Namespace-Pelican")
        assert store.count("kept") == 1 and store.namespaces() == ["kept"]


def test_old_reader_snapshot_makes_the_purge_pending(store_path: Path) -> None:
    secret = "Halibut-Xylophone-9913 lives at 4 Elm Street"
    store = SQLiteStore(store_path)
    try:
        doomed = make_record("ns", secret)
        with store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", "harmless"), doomed])
        reader = sqlite3.connect(store_path, isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT COUNT(*) FROM larimar_facts").fetchone() == (2,)
        t0 = time.monotonic()
        match = "reader holding an old snapshot.*-wal.*retried"
        with pytest.raises(PurgePendingError, match=match):
            with store.transaction("ns") as tx:
                tx.delete_facts([doomed.id])
        assert time.monotonic() - t0 < 10  # a bounded wait, not the 30 s busy timeout
        assert store.pending_purges == 1
        assert [r.text for r in store.list_facts("ns")] == ["harmless"]  # the delete committed
        with store.transaction("ns") as tx:  # a later write while the reader lingers
            tx.add_facts([make_record("ns", "another")])
        assert store.pending_purges == 1
        reader.execute("COMMIT")
        reader.close()
        with store.transaction("ns") as tx:  # one more write retries the purge
            tx.add_facts([make_record("ns", "and one more")])
        assert store.pending_purges == 0
        _assert_no_trace(store_path.parent, secret)
    finally:
        store.close()
    _assert_no_trace(store_path.parent, secret)


def test_pending_purge_is_retried_at_close(store_path: Path) -> None:
    store = SQLiteStore(store_path)
    doomed = make_record("ns", "Marmoset-Quartz-5150")
    with store.transaction("ns") as tx:
        tx.add_facts([doomed])
    reader = sqlite3.connect(store_path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM larimar_facts").fetchone()
    with pytest.raises(PurgePendingError):
        store.clear("ns")
    reader.execute("COMMIT")
    reader.close()
    store.close()
    _assert_no_trace(store_path.parent, "Marmoset-Quartz-5150")


# --- damaged, foreign and old files --------------------------------------------------------------


def test_deleted_wal_gives_a_store_error_that_says_what_to_do(store_path: Path) -> None:
    with SQLiteStore(store_path) as store:
        with store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", "x")])
        holder = sqlite3.connect(store_path, isolation_level=None)  # keeps the WAL alive
        holder.execute("SELECT 1 FROM larimar_facts").fetchall()
        with store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", "y")])
        Path(f"{store_path}-wal").unlink()
        with pytest.raises(StoreError, match="-wal or -shm file may have been deleted.*reopen"):
            SQLiteStore(store_path).count("ns")
        holder.close()


def test_format_version_mismatch_raises(store_path: Path) -> None:
    SQLiteStore(store_path).close()
    with sqlite3.connect(store_path) as raw:
        raw.execute("UPDATE larimar_meta SET value = '999' WHERE key = 'format_version'")
    raw.close()
    with pytest.raises(StoreError, match="format version '999'.*reads format versions 1, 2"):
        SQLiteStore(store_path)


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


def test_corrupted_rows_raise_store_errors(store_path: Path) -> None:
    rec = make_record("ns", "x")
    with SQLiteStore(store_path) as s, s.transaction("ns") as tx:
        tx.add_facts([rec])
    with sqlite3.connect(store_path) as raw:
        raw.execute("UPDATE larimar_facts SET mem_rows = x'00000000'")
    raw.close()
    with SQLiteStore(store_path) as s:
        with pytest.raises(StoreError, match="rows has 4 bytes.*corrupted"):
            s.get_fact("ns", rec.id)
    with sqlite3.connect(store_path) as raw:
        raw.execute("UPDATE larimar_facts SET mem_rows = ?, metadata = '{'",
                    (np.zeros(1, "<i8").tobytes(),))
    raw.close()
    with SQLiteStore(store_path) as s, pytest.raises(StoreError, match="not valid JSON"):
        s.list_facts("ns")
    with sqlite3.connect(store_path) as raw:  # a packed blob whose width does not fit
        raw.execute("UPDATE larimar_facts SET metadata = '{}', vals = ?",
                    (b"h" + (C + 1).to_bytes(4, "little") + bytes(2 * (C + 1)),))
    raw.close()
    with SQLiteStore(store_path) as s, pytest.raises(StoreError, match="values are malformed"):
        s.get_fact("ns", rec.id)


def _nan_half() -> bytes:
    return b"h" + (2).to_bytes(4, "little") + np.array([[1, 1], [np.nan, 1]], "<f2").tobytes()


@pytest.mark.parametrize(("column", "value", "match"), [
    ("vals", _nan_half(), "values contain NaN or Inf"),
    ("vals", b"x" + bytes(8), "values are malformed"),  # no packed dtype
    ("vals", bytes(6), "values are malformed"),  # raw float32 of the wrong size
    ("key", np.full(D, np.inf, "<f4").tobytes(), "keys contain NaN or Inf"),
    ("key", bytes(4 * D - 4), "keys do not hold"),
    ("mem_rows", np.array([1, 1], "<i8").tobytes(), "holds a memory row twice"),
    ("mem_rows", np.array([-1, 2], "<i8").tobytes(), "row is < 0"),
    ("mem_rows", bytes(8), "rows do not match"),
    ("metadata", "{", "not valid JSON"),
    ("metadata", "[1]", "not a JSON dict"),
    ("extra_key_texts", '["a"]', "keys do not hold"),  # one extra text, no extra key
    ("key_dim", 0, "key width is < 1"),
    ("key_dim", D + 1, "key width differs"),
    ("value_dim", C + 1, "value width differs"),
    ("created_at", "x", "created_at is not a number"),
    ("n_rows", 2.5, "number of rows is not a number"),
])
def test_load_names_the_corrupted_fact(store_path: Path, column: str, value: object,
                                       match: str) -> None:
    """A stored row that fails a check of the bulk read is a StoreError naming its fact
    (another fact around it is fine), never a wrong memory."""
    good, bad = make_record("ns", "good", n_rows=2), make_record("ns", "bad", n_rows=2,
                                                                 first_row=2)
    with SQLiteStore(store_path) as s, s.transaction("ns") as tx:
        tx.add_facts([good, bad])
    with sqlite3.connect(store_path) as raw:
        raw.execute(f"UPDATE larimar_facts SET {column} = ? WHERE id = ?", (value, bad.id))
    raw.close()
    with SQLiteStore(store_path) as s, pytest.raises(StoreError, match=match) as caught:
        s.load("ns")
    assert bad.id in str(caught.value) and good.id not in str(caught.value)


def test_load_packs_format_3_values_row_by_row(store_path: Path) -> None:
    """Raw float32 values (format 3) load as one packed row per memory row."""
    rec = make_record("ns", "x", n_rows=2)
    with SQLiteStore(store_path) as s, s.transaction("ns") as tx:
        tx.add_facts([rec])
    with sqlite3.connect(store_path) as raw:
        raw.execute("UPDATE larimar_facts SET vals = ?", (rec.values.astype("<f4").tobytes(),))
    raw.close()
    with SQLiteStore(store_path) as s:
        assert s.load("ns").facts.moments == [pack(v[None]) for v in rec.values]


# Format version 1, verbatim from the SQLiteStore that wrote it.
V1_SCHEMA = """
CREATE TABLE larimar_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE namespaces (
    name TEXT PRIMARY KEY, version INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE states (
    namespace  TEXT PRIMARY KEY REFERENCES namespaces(name) ON DELETE CASCADE,
    version INTEGER NOT NULL, tensors BLOB NOT NULL, meta TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE facts (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    text TEXT NOT NULL, key_text TEXT NOT NULL, slot INTEGER NOT NULL,
    key BLOB NOT NULL, key_dim INTEGER NOT NULL, value BLOB NOT NULL, value_dim INTEGER NOT NULL,
    weights BLOB NOT NULL, weights_dim INTEGER NOT NULL, metadata TEXT NOT NULL,
    created_at REAL NOT NULL, request_id TEXT);
CREATE INDEX facts_ns_created ON facts(namespace, created_at);
CREATE INDEX facts_ns_text ON facts(namespace, text);
CREATE INDEX facts_ns_request ON facts(namespace, request_id);
"""


def _write_v1_store(path: Path) -> dict[str, list[tuple]]:
    """A format-1 file with two namespaces (one with a state); returns the facts written."""
    f32 = np.dtype("<f4")
    facts: dict[str, list[tuple]] = {"alice": [], "bob": []}
    raw = sqlite3.connect(path)
    raw.executescript(V1_SCHEMA)
    raw.executemany("INSERT INTO larimar_meta VALUES (?, ?)",
                    [("format_version", "1"), ("created_by", "0.1.0"), ("created_at", "1.0")])
    raw.executemany("INSERT INTO namespaces VALUES (?, ?, ?)", [("alice", 7, 1.0), ("bob", 2, 2.0)])
    meta = {"model": "tiny", "embedder": "hash", "latent_width": "6", "key_width": "8",
            "slots": "16"}
    raw.execute("INSERT INTO states VALUES ('alice', 7, x'00', ?, 3.0)", (json.dumps(meta),))
    # Inserted out of time order: the migration numbers rows by created_at.
    for ns, fid, created, slot in [("alice", "a2", 30.0, 5), ("alice", "a0", 10.0, 9),
                                   ("bob", "b0", 5.0, 0), ("alice", "a1", 20.0, 2)]:
        key, value = np.full(D, created, f32), np.full(C, -created, f32)
        raw.execute("INSERT INTO facts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (fid, ns, f"text {fid}", f"key {fid}", slot, key.tobytes(), D,
                     value.tobytes(), C, np.ones(16, f32).tobytes(), 16,
                     json.dumps({"src": fid}), created, f"req-{fid}"))
        facts[ns].append((fid, created))
    raw.commit()
    raw.close()
    return {ns: sorted(v, key=lambda x: x[1]) for ns, v in facts.items()}


def test_format_1_store_migrates_in_place(store_path: Path) -> None:
    store_path.parent.mkdir(parents=True)
    written = _write_v1_store(store_path)
    with SQLiteStore(store_path) as store:
        assert store.namespaces() == ["alice", "bob"]
        assert store.namespace_meta("alice") == {
            "model": "tiny", "embedder": "hash", "latent_width": "6", "key_width": "8",
            "slots": "16"}
        assert store.namespace_meta("bob") is None
        assert store.version("alice") == 7 and store.version("bob") == 2
        for ns, expected in written.items():
            facts = store.list_facts(ns)
            assert [f.id for f in facts] == [fid for fid, _ in expected]
            for i, (f, (fid, created)) in enumerate(zip(facts, expected, strict=True)):
                assert f.rows.tolist() == [i] and f.values.shape == (1, C)
                np.testing.assert_array_equal(f.values[0], np.full(C, -created, np.float32))
                np.testing.assert_array_equal(f.key, np.full(D, created, np.float32))
                assert (f.text, f.key_text, f.metadata, f.request_id, f.created_at) == (
                    f"text {fid}", f"key {fid}", {"src": fid}, f"req-{fid}", created)
        with store.transaction("alice") as tx:
            assert tx.commit_version() == 8
    raw = sqlite3.connect(store_path)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    fmt = raw.execute("SELECT value FROM larimar_meta WHERE key = 'format_version'").fetchone()
    raw.close()
    assert tables == {"larimar_meta", "larimar_namespaces", "larimar_facts",
                      "larimar_changes", "larimar_history"} and fmt == (str(FORMAT_VERSION),)
    with SQLiteStore(store_path) as store:  # opens again without migrating twice
        assert store.count("alice") == 3


def test_format_2_store_gains_an_empty_change_log(store_path: Path) -> None:
    with SQLiteStore(store_path) as store:
        for i in range(3):
            with store.transaction("alice") as tx:
                tx.add_facts([make_record("alice", f"fact {i}")])
    with sqlite3.connect(store_path) as raw:  # back to format 2's layout
        raw.execute("DROP TABLE larimar_history")
        raw.execute("DROP TABLE larimar_changes")
        raw.execute("ALTER TABLE larimar_namespaces DROP COLUMN log_floor")
        raw.execute("UPDATE larimar_meta SET value = '2' WHERE key = 'format_version'")
    raw.close()
    with SQLiteStore(store_path) as store:
        log = store.changes("alice", 0)
        assert (log.version, log.floor, log.changes) == (3, 3, [])  # caches at <= 3 rebuild
        with store.transaction("alice") as tx:
            tx.add_facts([make_record("alice", "fact 3")])
        assert [c.op for c in store.changes("alice", 3).changes] == ["version", "write"]
        assert store.count("alice") == 4
    with sqlite3.connect(store_path) as raw:
        fmt = raw.execute("SELECT value FROM larimar_meta WHERE key = 'format_version'").fetchone()
    raw.close()
    assert fmt == (str(FORMAT_VERSION),)


def test_format_3_store_gains_a_history_of_the_facts_it_holds(store_path: Path) -> None:
    with SQLiteStore(store_path) as store:
        with store.transaction("alice") as tx:
            tx.add_facts([make_record("alice", "kept", id="a"), make_record("alice", "gone",
                                                                            id="b")])
        with store.transaction("alice") as tx:
            tx.delete_facts(["b"])
    with sqlite3.connect(store_path) as raw:  # back to format 3's layout
        raw.execute("DROP TABLE larimar_history")
        raw.execute("UPDATE larimar_meta SET value = '3' WHERE key = 'format_version'")
    raw.close()
    with SQLiteStore(store_path) as store:
        [entry] = store.history("alice", "a")
        assert (entry.version, entry.event) == (0, "written")  # written before format 4
        assert store.history("alice", "b") == []  # forgotten before: nothing to say
        with store.transaction("alice") as tx:
            tx.delete_facts(["a"])
        assert [(e.version, e.event) for e in store.history("alice", "a")] == [
            (0, "written"), (3, "forgotten")]
    with sqlite3.connect(store_path) as raw:
        fmt = raw.execute("SELECT value FROM larimar_meta WHERE key = 'format_version'").fetchone()
    raw.close()
    assert fmt == (str(FORMAT_VERSION),)


def test_history_keeps_events_never_text(store_path: Path) -> None:
    with SQLiteStore(store_path) as store:
        with store.transaction("alice") as tx:
            tx.add_facts([make_record("alice", "my secret is 4242", id="s")])
        with store.transaction("alice") as tx:
            tx.delete_facts(["s"])
        assert [e.event for e in store.history("alice", "s")] == ["written", "forgotten"]
        assert store.history("alice", "nope") == [] and store.history("bob", "s") == []
        assert store.history("alice", "a\x00b") == []
        store.purge()
        raw = sqlite3.connect(store_path)
        rows = raw.execute("SELECT * FROM larimar_history").fetchall()
        raw.close()
        assert rows and "4242" not in repr(rows)
        store.clear("alice")
        assert store.history("alice", "s") == []  # clearing deletes every trace


def test_format_3_store_reads_its_raw_values_and_packs_new_ones(store_path: Path) -> None:
    old = make_record("alice", "fact 0")
    with SQLiteStore(store_path) as store:
        with store.transaction("alice") as tx:
            tx.add_facts([old])
    with sqlite3.connect(store_path) as raw:  # back to format 3: raw float32 values
        raw.execute("DROP TABLE larimar_history")
        raw.execute("UPDATE larimar_facts SET vals = ?", (old.values.astype("<f4").tobytes(),))
        raw.execute("UPDATE larimar_meta SET value = '3' WHERE key = 'format_version'")
    raw.close()
    new = make_record("alice", "fact 1")
    with SQLiteStore(store_path) as store:
        np.testing.assert_array_equal(store.get_fact("alice", old.id).values, old.values)
        with store.transaction("alice") as tx:
            tx.add_facts([new])
        np.testing.assert_array_equal(store.get_fact("alice", new.id).values, new.values)
    with sqlite3.connect(store_path) as raw:
        fmt = raw.execute("SELECT value FROM larimar_meta WHERE key = 'format_version'").fetchone()
        sizes = dict(raw.execute("SELECT id, length(vals) FROM larimar_facts"))
    raw.close()
    assert fmt == (str(FORMAT_VERSION),) and sizes[old.id] % 2 == 0 and sizes[new.id] % 2 == 1


def test_packed_values_are_exact_and_trimmed() -> None:
    from larimar_memory.packed import pack, unpack

    values = np.zeros((2, 3072), np.float32)
    values[0, :700] = np.float16(np.linspace(-3, 3, 700))  # float16-exact: packed as float16
    values[1, :64] = 0.1  # not float16-exact: float32
    for rows in (values[:1], values):
        blob = pack(rows)
        np.testing.assert_array_equal(unpack(blob, *rows.shape), rows)
    assert len(pack(values[:1])) == 5 + 700 * 2 and len(pack(values)) == 5 + 2 * 700 * 4


def test_failed_migration_leaves_the_format_1_file(store_path: Path) -> None:
    store_path.parent.mkdir(parents=True)
    _write_v1_store(store_path)
    with sqlite3.connect(store_path) as raw:
        raw.execute("CREATE TABLE larimar_v1_1 (x)")  # makes the rename fail
    raw.close()
    with pytest.raises(StoreError):
        SQLiteStore(store_path)
    with sqlite3.connect(store_path) as raw:
        fmt = raw.execute("SELECT value FROM larimar_meta WHERE key = 'format_version'").fetchone()
        assert fmt == ("1",) and raw.execute("SELECT COUNT(*) FROM facts").fetchone() == (4,)
    raw.close()


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


def test_memory_path_is_refused() -> None:
    with pytest.raises(StoreError, match="file path"):
        SQLiteStore(":memory:")


def test_keyed_lookups_stay_on_a_selective_index(store: SQLiteStore) -> None:
    """A lookup by id or request id must not walk the namespace: with ``ORDER BY created_at``
    SQLite preferred the age index and read every row's blobs, so a server remember (which looks
    its request id up) slowed down linearly with the namespace."""
    with store.transaction("ns") as tx:
        tx.add_facts([make_record("ns", f"fact {i}", request_id=f"req-{i}") for i in range(40)])
    wanted = store.list_facts("ns")[7].id
    statements: list[str] = []
    with store.dialect.connection() as conn:
        conn.set_trace_callback(statements.append)
        try:
            assert store.get_fact("ns", wanted).text == "fact 7"
            with store.transaction("ns") as tx:
                assert [r.text for r in tx.find_by_request_id("req-9")] == ["fact 9"]
        finally:
            conn.set_trace_callback(None)
        lookups = [s for s in statements if s.startswith("SELECT") and "larimar_facts" in s]
        assert len(lookups) == 2
        for sql in lookups:
            plan = " ".join(str(row) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            assert "larimar_facts_by_age" not in plan and "SCAN" not in plan, (sql, plan)
