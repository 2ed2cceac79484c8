"""PostgresStore: the store contract on PostgreSQL, plus what is PostgreSQL's own (NUL text,
advisory-lock timeouts, the purge after a forget checked on the data directory's raw bytes,
encryption, migration of a format-1 schema). Skipped unless
LARIMAR_TEST_PG_DSN is set (scripts/postgres.sh start)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from store_contract import C, D, StoreContract, make_record

from larimar_memory.errors import (
    FactNotFoundError,
    PurgePendingError,
    StoreError,
    TextInputError,
)
from larimar_memory.store_postgres import PostgresStore


@pytest.fixture
def store(pg_store: PostgresStore) -> PostgresStore:
    return pg_store


@pytest.fixture
def store_spec(pg_dsn: str, pg_schema: str) -> tuple[str, str, str]:
    return ("postgres", pg_dsn, pg_schema)


class TestPostgresContract(StoreContract):
    pass


def test_password_is_not_shown(pg_store: PostgresStore) -> None:
    assert "***" not in repr(pg_store) or "@" in repr(pg_store)


def test_nul_text_is_refused_and_lookups_are_empty(pg_store: PostgresStore) -> None:
    for text, bad in (("a\x00b", {}), ("x", {"metadata": {"k": "v\x00"}}),
                      ("x", {"metadata": {"k\x00": 1}}), ("x", {"request_id": "r\x00"}),
                      ("x", {"id": "id\x00"})):
        with pytest.raises(TextInputError, match="NUL"):
            with pg_store.transaction("ns") as tx:
                tx.add_facts([make_record("ns", text, **bad)])
    assert pg_store.count("ns") == 0 and pg_store.namespaces() == []
    assert pg_store.list_facts("ns", where={"k": "v\x00"}) == []
    assert pg_store.list_facts("n\x00s") == [] and pg_store.version("n\x00s") == 0
    with pytest.raises(FactNotFoundError):
        pg_store.get_fact("ns", "id\x00")
    with pytest.raises(TextInputError, match="NUL"):
        with pg_store.transaction("n\x00s"):
            pass


def test_lock_timeout_raises_store_error(pg_dsn: str, pg_schema: str) -> None:
    with PostgresStore(pg_dsn, schema=pg_schema) as holder, \
            PostgresStore(pg_dsn, schema=pg_schema, lock_timeout=0.2) as waiter:
        with holder.transaction("ns"):
            with pytest.raises(StoreError, match="lock"):
                with waiter.transaction("ns"):
                    pass
            with waiter.transaction("other"):  # other namespaces do not wait
                pass


def data_directory(dsn: str) -> Path:
    """The server's data directory, skipping the test when this process cannot read it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        folder = Path(conn.execute("SHOW data_directory").fetchone()[0])
    if not os.access(folder / "base", os.R_OK | os.X_OK):
        pytest.skip(f"the data directory {folder} is not readable here (a remote server?)")
    return folder


def copies(folder: Path, needles: tuple[str, ...]) -> dict[str, int]:
    """How often any needle occurs, per file under the data directory (pg_wal included)."""
    found: dict[str, int] = {}
    for path in folder.rglob("*"):
        try:
            data = path.read_bytes() if path.is_file() else b""
        except OSError:  # a file removed while we walk (a checkpoint)
            continue
        n = sum(data.count(needle.encode()) for needle in needles)
        if n:
            found[str(path.relative_to(folder))] = n
    return found


def wal_limits(store: PostgresStore) -> list[str]:
    """What keeps old WAL on this server (empty: a purge leaves pg_wal clean)."""
    with store.dialect.connection() as conn:
        limits = store.dialect.erasure_limits(conn)
    return [line for line in limits if "WAL" in line or "wal_" in line]


def test_forget_leaves_no_copy_in_the_data_directory(pg_store: PostgresStore,
                                                     pg_dsn: str) -> None:
    folder = data_directory(pg_dsn)
    # a short fact (in the heap), a long incompressible one (TOAST), text in every text field
    short = make_record("ns", "Quokka-Lantern-6604 owes Mallory", key_text="Quokka-Lantern-6604",
                        metadata={"note": "Quokka-Lantern-6604"}, request_id="Quokka-Lantern-6604",
                        extra_key_texts=["Quokka-Lantern-6604 too"], extra_keys=np.ones((1, D)))
    long = make_record("ns", " ".join(["Kestrel-Ledger-1199"] + [os.urandom(8).hex()
                                                                  for _ in range(400)]))
    with pg_store.transaction("ns") as tx:
        tx.add_facts([make_record("ns", f"filler {i} " * 10) for i in range(100)] + [short, long])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # what an autovacuum would do
        conn.execute(f'ANALYZE "{pg_store.schema}".larimar_facts')
        conn.execute("CHECKPOINT")
        # pg_statistic may compress what it keeps, so ask it rather than grep it
        assert conn.execute(
            "SELECT count(*) FROM pg_stats WHERE schemaname = %s AND concat(most_common_vals, "
            "histogram_bounds) LIKE %s", (pg_store.schema, "%Quokka-Lantern%")).fetchone() == (0,)
    needles = ("Quokka-Lantern-6604", "Kestrel-Ledger-1199")
    assert copies(folder, needles)  # the probe sees the text while it is stored
    with pg_store.transaction("ns") as tx:
        tx.delete_facts([short.id, long.id])
    assert pg_store.pending_purges == 0
    left = copies(folder, needles)
    assert not {f: n for f, n in left.items() if not f.startswith("pg_wal")}, left
    kept = wal_limits(pg_store)
    if kept:
        pytest.skip("the table files are clean; pg_wal is not checked because this server "
                    "keeps old WAL: " + "; ".join(kept))
    assert copies(folder, needles) == {}
    assert len(pg_store.list_facts("ns")) == 100


def test_cleared_namespace_leaves_no_trace_of_its_name(pg_store: PostgresStore,
                                                       pg_dsn: str) -> None:
    folder = data_directory(pg_dsn)
    with pg_store.transaction("Gone-Namespace-Heron") as tx:
        tx.add_facts([make_record("Gone-Namespace-Heron", f"Heron-Tuba-{i} secret")
                      for i in range(20)])
        tx.set_namespace_meta({"model": "m"})
    assert pg_store.clear("Gone-Namespace-Heron") == 20
    left = copies(folder, ("Heron-Tuba", "Gone-Namespace-Heron"))
    if wal_limits(pg_store):
        left = {f: n for f, n in left.items() if not f.startswith("pg_wal")}
    assert left == {}


def test_a_reader_holding_the_table_makes_the_purge_pending(pg_store: PostgresStore,
                                                            pg_dsn: str) -> None:
    doomed = make_record("ns", "Pelican-Anvil-3012")
    with pg_store.transaction("ns") as tx:
        tx.add_facts([make_record("ns", "harmless"), doomed])
    reader = psycopg.connect(pg_dsn)  # a transaction open on the table, as pg_dump holds one
    reader.execute(f'SELECT count(*) FROM "{pg_store.schema}".larimar_facts')
    try:
        with pytest.raises(PurgePendingError, match="VACUUM FULL.*retried"):
            with pg_store.transaction("ns") as tx:
                tx.delete_facts([doomed.id])
        assert pg_store.pending_purges == 1
        assert [r.text for r in pg_store.list_facts("ns")] == ["harmless"]  # committed
        with pg_store.transaction("ns") as tx:  # a later write retries, briefly
            tx.add_facts([make_record("ns", "another")])
        assert pg_store.pending_purges == 1
    finally:
        reader.rollback()
        reader.close()
    with pg_store.transaction("ns") as tx:
        tx.add_facts([make_record("ns", "and one more")])
    assert pg_store.pending_purges == 0


def test_encrypted_store_keeps_no_plaintext_and_clear_destroys_the_key(
        pg_dsn: str, pg_schema: str, tmp_path: Path) -> None:
    folder = data_directory(pg_dsn)
    key_file = tmp_path / "keys.json"
    secrets = ("Marmot-Cipher-2290", "Marmot-Key-2291", "Marmot-Meta-2292", "Marmot-Req-2293")
    with PostgresStore(pg_dsn, schema=pg_schema, key_file=key_file) as store:
        fact = make_record("alice", f"{secrets[0]} lives in Oslo", key_text=secrets[1],
                           metadata={"note": secrets[2]}, request_id=secrets[3])
        with store.transaction("alice") as tx:
            tx.add_facts([fact])
        assert store.get_fact("alice", fact.id).metadata == {"note": secrets[2]}
        assert store.list_facts("alice", where={"note": secrets[2]})[0].id == fact.id
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            sealed = conn.execute(f'SELECT vals FROM "{pg_schema}".larimar_facts').fetchall()
        assert copies(folder, secrets) == {}  # heap, TOAST, indexes, pg_wal, pg_statistic
        cipher = store._keys.cipher("alice")
        assert cipher is not None and cipher.open(fact.id, bytes(sealed[0][0]))
        store.clear("alice")
        assert store._keys.cipher("alice") is None and "alice" not in key_file.read_text()


def test_store_warns_at_start_when_the_server_keeps_forgotten_text(
        pg_dsn: str, pg_schema: str, caplog: pytest.LogCaptureFixture) -> None:
    dsn = make_conninfo(pg_dsn, options="-c wal_recycle=on -c log_statement=mod")
    with caplog.at_level("WARNING", logger="larimar_memory.store_postgres"):
        PostgresStore(dsn, schema=pg_schema).close()
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "cannot remove every copy" in warning
    assert "wal_recycle = on" in warning and "server log" in warning


def test_purge_reports_what_the_server_keeps(pg_store: PostgresStore, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        recycle = conn.execute("SHOW wal_recycle").fetchone()[0]
    report = pg_store.purge()
    assert report.purged and report.pending == 0 and not report.encrypted
    assert any("wal_recycle = on" in line for line in report.out_of_reach) == (recycle == "on")
    assert any("backups" in line for line in report.out_of_reach)


def test_bad_arguments(pg_dsn: str) -> None:
    with pytest.raises(StoreError, match="schema"):
        PostgresStore(pg_dsn, schema="Bad-Name")
    with pytest.raises(StoreError, match="Cannot reach"):
        PostgresStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)


# Format version 1 as PostgresStore wrote it.
V1_SCHEMA = """
CREATE TABLE larimar_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE larimar_namespaces (
    name TEXT PRIMARY KEY, version BIGINT NOT NULL DEFAULT 0, created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE larimar_states (
    namespace TEXT PRIMARY KEY REFERENCES larimar_namespaces(name) ON DELETE CASCADE,
    version BIGINT NOT NULL, tensors BYTEA NOT NULL, meta TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE larimar_facts (
    seq BIGSERIAL, id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL REFERENCES larimar_namespaces(name) ON DELETE CASCADE,
    text TEXT NOT NULL, key_text TEXT NOT NULL, slot INTEGER NOT NULL,
    key BYTEA NOT NULL, key_dim INTEGER NOT NULL, value BYTEA NOT NULL, value_dim INTEGER NOT NULL,
    weights BYTEA NOT NULL, weights_dim INTEGER NOT NULL, metadata TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, request_id TEXT);
CREATE INDEX larimar_facts_ns_created ON larimar_facts(namespace, created_at, seq);
CREATE INDEX larimar_facts_ns_text ON larimar_facts(namespace, text);
CREATE INDEX larimar_facts_ns_request ON larimar_facts(namespace, request_id)
"""


def test_format_1_schema_migrates_in_place(pg_dsn: str, pg_schema: str) -> None:
    f32 = np.dtype("<f4")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{pg_schema}"')
        conn.execute(f'SET search_path = "{pg_schema}"')
        for statement in V1_SCHEMA.split(";"):
            conn.execute(statement)
        conn.execute("INSERT INTO larimar_meta VALUES ('format_version', '1')")
        conn.execute("INSERT INTO larimar_namespaces VALUES ('alice', 4, 1.0)")
        conn.execute("INSERT INTO larimar_states VALUES ('alice', 4, '\\x00', %s, 1.0)",
                     (json.dumps({"model": "tiny", "slots": "16"}),))
        for fid, created in (("a1", 20.0), ("a0", 10.0)):
            conn.execute(
                "INSERT INTO larimar_facts(id, namespace, text, key_text, slot, key, key_dim, "
                "value, value_dim, weights, weights_dim, metadata, created_at, request_id) "
                "VALUES (%s, 'alice', %s, %s, 0, %s, %s, %s, %s, %s, 1, '{}', %s, NULL)",
                (fid, f"text {fid}", f"text {fid}", np.full(D, created, f32).tobytes(), D,
                 np.full(C, created, f32).tobytes(), C, np.ones(1, f32).tobytes(), created))
    with PostgresStore(pg_dsn, schema=pg_schema) as store:
        facts = store.list_facts("alice")
        assert [f.id for f in facts] == ["a0", "a1"]
        assert [f.rows.tolist() for f in facts] == [[0], [1]]
        np.testing.assert_array_equal(facts[1].values, np.full((1, C), 20.0, np.float32))
        assert store.namespace_meta("alice") == {"model": "tiny", "slots": "16"}
        assert store.version("alice") == 4
        with store.transaction("alice") as tx:
            tx.add_facts([make_record("alice", "new")])
        assert store.count("alice") == 3


def test_replicas_catch_up_by_the_log_and_a_restart_loads_the_same(
        pg_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `Larimar` replicas on one PostgreSQL schema: the one behind applies the change log
    (no rebuild, the forgotten fact gone), and a fresh instance's bulk load equals it."""
    import torch

    from larimar_memory.service import cache as cache_module
    from larimar_memory.testing import tiny_larimar

    stores = [PostgresStore(pg_dsn, schema=pg_schema) for _ in range(3)]
    a, b = tiny_larimar(stores[0]), tiny_larimar(stores[1])
    fresh = None
    try:
        ids = a.remember(["Ana lives in Lisbon.", "Rui plays the cello."],
                         extra_keys=[["Where is Ana?"], []]).ids
        b.recall("Ana")  # b holds a copy from here on
        rebuilt: list[str] = []
        original = cache_module.NamespaceCache._rebuild
        monkeypatch.setattr(cache_module.NamespaceCache, "_rebuild",
                            lambda self, *args: rebuilt.append(args[0]) or original(self, *args))
        a.forget(ids[0])
        a.remember(["Ana moved to Porto."])
        hits = b.recall("Where does Ana live?", k=3).hits
        assert rebuilt == [] and ids[0] not in {h.fact.id for h in hits}
        fresh = tiny_larimar(stores[2])
        assert {h.fact.id: h.text for h in fresh.recall("Where does Ana live?", k=3).hits} == {
            h.fact.id: h.text for h in hits}  # every fact (ties rank by index slot)
        mine, theirs = (m._namespaces.synced("default") for m in (b, fresh))
        assert set(mine.facts) == set(theirs.facts) == {f.id for f in a.list()}
        for fid in mine.facts:
            assert torch.equal(mine.memory.readout(fid), theirs.memory.readout(fid))
    finally:
        for mem in (a, b, fresh):
            if mem is not None:
                mem.close()
        for store in stores:
            store.close()
