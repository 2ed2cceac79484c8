"""PostgresStore: the store contract on PostgreSQL, plus what is PostgreSQL's own (NUL text,
advisory-lock timeouts, VACUUM, migration of a format-1 schema). Skipped unless
LARIMAR_TEST_PG_DSN is set (scripts/postgres.sh start)."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest
from store_contract import C, D, StoreContract, make_record

from larimar_memory.errors import FactNotFoundError, StoreError, TextInputError
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


def test_forgotten_text_is_in_no_row(pg_store: PostgresStore, pg_dsn: str,
                                     pg_schema: str) -> None:
    secret = "The launch code is 0000-SECRET-4242."
    keep = make_record("ns", "harmless")
    doomed = make_record("ns", secret, key_text=secret, metadata={"note": secret})
    with pg_store.transaction("ns") as tx:
        tx.add_facts([keep, doomed])
    with pg_store.transaction("ns") as tx:
        tx.delete_facts([doomed.id])
    assert pg_store.pending_purges == 0  # PostgreSQL reports no purge (see docs/deploy.md)
    pg_store.vacuum()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for table in ("larimar_facts", "larimar_namespaces", "larimar_meta"):
            rows = conn.execute(
                f'SELECT count(*) FROM "{pg_schema}".{table} t WHERE t::text LIKE %s',
                ("%0000-SECRET-4242%",),
            ).fetchone()
            assert rows == (0,), table
    assert [r.text for r in pg_store.list_facts("ns")] == ["harmless"]


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
