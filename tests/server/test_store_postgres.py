"""PostgresStore: the SQLite store's contract on PostgreSQL (round trip, versions, rollback,
unknown ids, no lost update across processes, forgotten text gone from every row).
Skipped unless LARIMAR_TEST_PG_DSN is set (scripts/postgres.sh start)."""

from __future__ import annotations

import multiprocessing as mp
import threading

import numpy as np
import psycopg
import pytest
import torch

from larimar_memory.errors import FactNotFoundError, StoreError, TextInputError
from larimar_memory.store import FactRecord, MemoryStore
from larimar_memory.store_postgres import PostgresStore

D, C, K = 8, 6, 16


def make_record(ns: str, text: str, slot: int = 0, seed: int = 0, **kw) -> FactRecord:
    rng = np.random.default_rng(seed)
    weights = np.zeros(K, dtype=np.float32)
    weights[slot % K] = 1.0
    return FactRecord(namespace=ns, text=text, key=rng.standard_normal(D),
                      value=rng.standard_normal(C), weights=weights, slot=slot, **kw)


def assert_same_record(a: FactRecord, b: FactRecord) -> None:
    assert (a.id, a.namespace, a.text, a.key_text, a.slot) == (
        b.id, b.namespace, b.text, b.key_text, b.slot)
    assert (a.metadata, a.created_at, a.request_id) == (b.metadata, b.created_at, b.request_id)
    for name in ("key", "value", "weights"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.float32
        np.testing.assert_array_equal(x, y)


def test_is_a_memory_store(pg_store: PostgresStore) -> None:
    assert isinstance(pg_store, MemoryStore)
    assert "***" not in repr(pg_store) or "@" in repr(pg_store)


def test_round_trip_records_and_state(pg_store: PostgresStore) -> None:
    records = [
        make_record("alice", "Paris is the capital of France.", slot=0, seed=1),
        make_record("alice", "The Eiffel Tower is in Paris.", slot=3, seed=2,
                    key_text="The Eiffel Tower is in",
                    metadata={"z": 1, "a": ["x", 1, None], "ü": "ö"}, request_id="req-1"),
    ]
    tensors = {"memory": torch.randn(K, C), "cov": torch.eye(K)}
    with pg_store.transaction("alice") as tx:
        assert tx.load_state() is None
        tx.add_facts(records)
        assert tx.save_state(tensors, {"slots": str(K)}) == 1
        assert tx.count() == 2
    got = pg_store.list_facts("alice")
    for a, b in zip(records, got, strict=True):
        assert_same_record(a, b)
    assert list(got[1].metadata) == ["z", "a", "ü"]  # key order kept (TEXT, not JSONB)
    assert_same_record(pg_store.get_fact("alice", records[1].id), records[1])
    state, version = pg_store.load_state("alice")  # type: ignore[misc]
    assert version == 1 == pg_store.version("alice")
    assert all(torch.equal(state[k], v) for k, v in tensors.items())
    assert pg_store.state_meta("alice") == {"slots": str(K)}
    assert pg_store.namespaces() == ["alice"]
    with pg_store.transaction("alice") as tx:
        assert [r.id for r in tx.get_facts([records[1].id, records[0].id])] == [
            records[1].id, records[0].id]
        assert tx.used_slots() == {0, 3}
        assert [r.id for r in tx.find_by_request_id("req-1")] == [records[1].id]
        assert tx.find_by_request_id("nope") == []
        assert [r.id for r in tx.find_facts_by_text(records[0].text)] == [records[0].id]
        assert [r.id for r in tx.all_facts()] == [r.id for r in records]
    assert pg_store.version("alice") == 1  # a read-only transaction does not bump


def test_versions_pagination_and_isolation(pg_store: PostgresStore) -> None:
    recs = [make_record("a", f"fact {i}", slot=i, created_at=1000.0 + i) for i in range(10)]
    with pg_store.transaction("a") as tx:
        tx.add_facts(recs[:5])
        tx.add_facts(recs[5:])
        assert tx.save_state({"m": torch.zeros(1)}) == 1
        assert tx.save_state({"m": torch.ones(1)}) == 1
    with pg_store.transaction("b") as tx:
        tx.add_facts([make_record("b", "fact 3")])
    assert [r.text for r in pg_store.list_facts("a", limit=3, offset=2)] == [
        "fact 2", "fact 3", "fact 4"]
    assert [r.text for r in pg_store.list_facts("a", offset=8)] == ["fact 8", "fact 9"]
    assert pg_store.list_facts("a", limit=0) == []
    assert [r.id for r in pg_store.find_facts_by_text("a", "fact 3")] == [recs[3].id]
    assert pg_store.namespaces() == ["a", "b"]
    assert pg_store.count("missing") == 0 and pg_store.load_state("missing") is None
    with pytest.raises(FactNotFoundError):
        pg_store.get_fact("b", recs[0].id)  # ids do not leak across namespaces
    with pg_store.transaction("a") as tx:
        tx.delete_facts([recs[0].id])
    assert pg_store.version("a") == 2 and pg_store.load_state("a")[1] == 2  # type: ignore[index]
    v = pg_store.version("a")
    assert pg_store.clear("a") == 9
    assert pg_store.version("a") == v + 1 and pg_store.count("a") == 0
    assert pg_store.namespaces() == ["b"] and pg_store.clear("never-written") == 0


def test_rollback_on_exception_leaves_nothing(pg_store: PostgresStore) -> None:
    with pg_store.transaction("ns") as tx:
        tx.save_state({"m": torch.zeros(2)})
    with pytest.raises(RuntimeError, match="boom"):
        with pg_store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", f"f{i}") for i in range(20)])
            tx.save_state({"m": torch.ones(2)})
            raise RuntimeError("boom")
    assert pg_store.count("ns") == 0
    state, version = pg_store.load_state("ns")  # type: ignore[misc]
    assert version == 1 and torch.equal(state["m"], torch.zeros(2))
    with pytest.raises(StoreError, match="ended"):
        tx.add_facts([make_record("ns", "late")])
    with pg_store.transaction("ns") as tx:  # the pool hands out a usable connection again
        tx.add_facts([make_record("ns", "after")])
    assert pg_store.count("ns") == 1


def test_unknown_id_duplicate_id_and_wrong_namespace(pg_store: PostgresStore) -> None:
    recs = [make_record("ns", f"f{i}") for i in range(3)]
    with pg_store.transaction("ns") as tx:
        tx.add_facts(recs)
    version = pg_store.version("ns")
    with pytest.raises(FactNotFoundError, match="not-an-id"):
        with pg_store.transaction("ns") as tx:
            tx.delete_facts([recs[0].id, "not-an-id"])
    assert pg_store.count("ns") == 3 and pg_store.version("ns") == version
    with pytest.raises(StoreError, match="already exists"):
        with pg_store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", "dup", id=recs[0].id)])
    with pytest.raises(StoreError, match="belongs to namespace"):
        with pg_store.transaction("ns") as tx:
            tx.add_facts([make_record("other", "x")])
    assert pg_store.count("ns") == 3


def test_nul_text_is_refused_and_lookups_are_empty(pg_store: PostgresStore) -> None:
    with pytest.raises(TextInputError, match="NUL"):
        with pg_store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", "a\x00b")])
    assert pg_store.count("ns") == 0
    assert pg_store.find_facts_by_text("ns", "a\x00b") == []
    with pytest.raises(FactNotFoundError):
        pg_store.get_fact("ns", "id\x00")


def test_nested_transaction_is_refused(pg_store: PostgresStore) -> None:
    with pg_store.transaction("a"):
        with pytest.raises(StoreError, match="already open"):
            with pg_store.transaction("b"):
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


def test_threads_sharing_one_store_lose_no_update(pg_store: PostgresStore) -> None:
    with pg_store.transaction("ns") as tx:
        tx.save_state({"counter": torch.zeros((), dtype=torch.int64)})

    def work() -> None:
        for _ in range(10):
            with pg_store.transaction("ns") as tx:
                state, _ = tx.load_state()  # type: ignore[misc]
                tx.add_facts([make_record("ns", "t")])
                tx.save_state({"counter": state["counter"] + 1})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state, _ = pg_store.load_state("ns")  # type: ignore[misc]
    assert pg_store.count("ns") == 40 and int(state["counter"]) == 40


def _process_worker(dsn: str, schema: str, n: int, tag: str) -> None:
    """Runs in a spawned process: n read-modify-write transactions on one namespace."""
    with PostgresStore(dsn, schema=schema) as store:
        for i in range(n):
            with store.transaction("shared") as tx:
                loaded = tx.load_state()
                counter = loaded[0]["counter"] if loaded else torch.zeros((), dtype=torch.int64)
                tx.add_facts([make_record("shared", f"{tag}-{i}", slot=i)])
                tx.save_state({"counter": counter + 1})


def test_two_processes_lose_no_update(pg_dsn: str, pg_schema: str) -> None:
    PostgresStore(pg_dsn, schema=pg_schema).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_process_worker, args=(pg_dsn, pg_schema, 40, f"p{j}"))
             for j in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with PostgresStore(pg_dsn, schema=pg_schema) as store:
        state, version = store.load_state("shared")  # type: ignore[misc]
        assert store.count("shared") == 80 and int(state["counter"]) == 80 and version == 80


def test_forgotten_text_is_in_no_row(pg_store: PostgresStore, pg_dsn: str,
                                     pg_schema: str) -> None:
    secret = "The launch code is 0000-SECRET-4242."
    keep = make_record("ns", "harmless")
    doomed = make_record("ns", secret, key_text=secret, metadata={"note": secret})
    with pg_store.transaction("ns") as tx:
        tx.add_facts([keep, doomed])
        tx.save_state({"m": torch.ones(1)}, {"k": "v"})
    with pg_store.transaction("ns") as tx:
        tx.delete_facts([doomed.id])
    pg_store.vacuum()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for table in ("larimar_facts", "larimar_states", "larimar_namespaces", "larimar_meta"):
            rows = conn.execute(
                f'SELECT count(*) FROM "{pg_schema}".{table} t WHERE t::text LIKE %s',
                ("%0000-SECRET-4242%",),
            ).fetchone()
            assert rows == (0,), table
    assert [r.text for r in pg_store.list_facts("ns")] == ["harmless"]


def test_closed_store_and_bad_arguments(pg_dsn: str, pg_schema: str) -> None:
    store = PostgresStore(pg_dsn, schema=pg_schema)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.count("ns")
    with pytest.raises(StoreError, match="schema"):
        PostgresStore(pg_dsn, schema="Bad-Name")
    with pytest.raises(StoreError, match="Cannot reach"):
        PostgresStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)
