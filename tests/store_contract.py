"""The `MemoryStore` contract, run against every backend.

Subclass `StoreContract` and supply two fixtures: ``store`` (a fresh, open store) and
``store_spec`` (a picklable description that `open_spec` turns into another store on the same
data, for other threads and processes). tests/unit/test_store.py runs it on SQLite,
tests/server/test_store_postgres.py on PostgreSQL.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import threading
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from larimar_memory.errors import (
    ArgumentError,
    FactNotFoundError,
    MemoryInputError,
    StoreError,
    TextInputError,
)
from larimar_memory.packed import pack
from larimar_memory.store import FactRecord, MemoryStore

D, C = 8, 6
_clock = itertools.count(1_000_000)


def make_record(ns: str, text: str, n_rows: int = 1, seed: int = 0, first_row: int = 0,
                **kw: Any) -> FactRecord:
    """A fact with deterministic arrays; `created_at` strictly increases between calls."""
    rng = np.random.default_rng(seed)
    kw.setdefault("created_at", float(next(_clock)))
    return FactRecord(namespace=ns, text=text, key=rng.standard_normal(D),
                      values=rng.standard_normal((n_rows, C)),
                      rows=np.arange(first_row, first_row + n_rows), **kw)


def assert_same_record(a: FactRecord, b: FactRecord) -> None:
    assert (a.id, a.namespace, a.text, a.key_text) == (b.id, b.namespace, b.text, b.key_text)
    assert (a.metadata, a.created_at, a.request_id) == (b.metadata, b.created_at, b.request_id)
    assert list(a.metadata) == list(b.metadata)  # key order kept
    for name, dtype in (("key", np.float32), ("values", np.float32), ("rows", np.int64)):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def open_spec(spec: tuple[Any, ...]) -> MemoryStore:
    kind, *args = spec
    if kind == "sqlite":
        from larimar_memory.store import SQLiteStore

        return SQLiteStore(args[0])
    from larimar_memory.store_postgres import PostgresStore

    return PostgresStore(args[0], schema=args[1])


def increment(store: MemoryStore, ns: str, tag: str) -> None:
    """One read-modify-write cycle: read the counter in the namespace meta, add a fact, write
    counter + 1. Lost updates show as a counter below the number of facts."""
    with store.transaction(ns) as tx:
        meta = tx.namespace_meta() or {"counter": "0"}
        tx.add_facts([make_record(ns, tag)])
        tx.set_namespace_meta({"counter": str(int(meta["counter"]) + 1)})
        tx.commit_version()


def _process_worker(spec: tuple[Any, ...], n: int, tag: str) -> None:
    store = open_spec(spec)
    try:
        for i in range(n):
            increment(store, "shared", f"{tag}-{i}")
    finally:
        store.close()


def texts(records: list[FactRecord]) -> list[str]:
    return [r.text for r in records]


class StoreContract:
    """What every `MemoryStore` promises; backends supply ``store`` and ``store_spec``."""

    def test_is_a_memory_store(self, store: MemoryStore) -> None:
        assert isinstance(store, MemoryStore)
        assert store.pending_purges == 0

    def test_round_trip(self, store: MemoryStore) -> None:
        records = [
            make_record("alice", "Paris is the capital of France.", seed=1),
            make_record("alice", "The Eiffel Tower is in Paris.", n_rows=3, seed=2, first_row=9,
                        key_text="The Eiffel Tower is in", request_id="req-1",
                        metadata={"z": 1, "a": ["x", 1, None, {"deep": [1.5]}], "ü": "ö"}),
        ]
        with store.transaction("alice") as tx:
            assert tx.version() == 0 and tx.namespace_meta() is None and tx.all_facts() == []
            tx.add_facts(records)
            assert [r.id for r in tx.all_facts()] == [r.id for r in records]
        got = store.list_facts("alice")
        for a, b in zip(records, got, strict=True):
            assert_same_record(a, b)
        assert got[1].values.shape == (3, C) and got[1].rows.tolist() == [9, 10, 11]
        assert_same_record(store.get_fact("alice", records[1].id), records[1])
        assert store.count("alice") == 2 and store.namespaces() == ["alice"]
        with store.transaction("alice") as tx:
            assert [r.id for r in tx.get_facts([records[1].id, records[0].id])] == [
                records[1].id, records[0].id]
            assert [r.id for r in tx.find_by_request_id("req-1")] == [records[1].id]
            assert tx.find_by_request_id("nope") == []

    def test_versions_bump_once_per_changing_transaction(self, store: MemoryStore) -> None:
        assert store.version("ns") == 0
        with store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", "a")])
            tx.add_facts([make_record("ns", "b")])
            tx.set_namespace_meta({"k": "v"})
            assert tx.version() == 1
            assert tx.commit_version() == 1 == tx.commit_version()
        with store.transaction("ns") as tx:  # read-only: no bump
            tx.all_facts()
            tx.namespace_meta()
        assert store.version("ns") == 1
        with store.transaction("ns") as tx:
            assert tx.commit_version() == 2  # an explicit bump with no other change
        with store.transaction("ns") as tx:
            tx.delete_facts([store.list_facts("ns")[0].id])
        assert store.version("ns") == 3

    def test_versions_never_repeat_across_clear(self, store: MemoryStore) -> None:
        for _ in range(3):
            increment(store, "ns", "x")
        assert store.version("ns") == 3
        store.clear("ns")
        assert store.version("ns") == 0
        with store.transaction("ns") as tx:
            assert tx.version() == 0
            assert tx.commit_version() > 3  # a cache keyed by version 1..3 stays invalid

    def test_namespace_meta(self, store: MemoryStore) -> None:
        assert store.namespace_meta("ns") is None
        with store.transaction("ns") as tx:
            tx.set_namespace_meta({"model": "tiny", "slots": "16"})
            assert tx.namespace_meta() == {"model": "tiny", "slots": "16"}
        with store.transaction("ns") as tx:
            tx.set_namespace_meta({"model": "other"})  # replaced, not merged
        assert store.namespace_meta("ns") == {"model": "other"}
        assert store.namespaces() == ["ns"]  # a namespace with meta and no facts exists
        for bad in ({"n": 3}, {1: "x"}, ["x"]):
            with pytest.raises(TextInputError, match="str to str"):
                with store.transaction("ns") as tx:
                    tx.set_namespace_meta(bad)  # type: ignore[arg-type]
        assert store.namespace_meta("ns") == {"model": "other"}

    def test_pagination_and_isolation(self, store: MemoryStore) -> None:
        recs = [make_record("a", f"fact {i}") for i in range(10)]
        with store.transaction("a") as tx:
            tx.add_facts(recs[5:])  # inserted out of order: created_at decides
            tx.add_facts(recs[:5])
        with store.transaction("b") as tx:
            tx.add_facts([make_record("b", "fact 3")])
        assert texts(store.list_facts("a")) == [f"fact {i}" for i in range(10)]
        assert texts(store.list_facts("a", limit=3, offset=2)) == ["fact 2", "fact 3", "fact 4"]
        assert texts(store.list_facts("a", offset=8)) == ["fact 8", "fact 9"]
        assert store.list_facts("a", limit=0) == []
        assert store.namespaces() == ["a", "b"]
        assert store.count("missing") == 0 and store.list_facts("missing") == []
        assert store.namespace_meta("missing") is None and store.version("missing") == 0
        with pytest.raises(FactNotFoundError):
            store.get_fact("b", recs[0].id)  # ids do not leak across namespaces
        with pytest.raises(ValueError):
            store.list_facts("a", offset=-1)
        with pytest.raises(ValueError):
            store.list_facts("a", limit=-1)

    def test_where_filters_metadata_fields(self, store: MemoryStore) -> None:
        metas = [
            {"source": "chat", "n": 1, "ok": True, "note": None},
            {"source": "mail", "n": 1.0, "ok": False},
            {"source": "chat", "n": 2.5, "ok": 1, "a.b": "dot", 'q"uote': "q"},
            {"source": "chat", "nested": {"source": "mail"}},
        ]
        with store.transaction("ns") as tx:
            tx.add_facts([make_record("ns", f"f{i}", metadata=m) for i, m in enumerate(metas)])

        def where(**kw: Any) -> list[str]:
            return texts(store.list_facts("ns", where=kw))

        assert where(source="chat") == ["f0", "f2", "f3"]
        assert where(source="chat", n=1) == ["f0"]
        assert where(n=1) == ["f0", "f1"]  # 1 == 1.0, as in Python
        assert where(n=2.5) == ["f2"]
        assert where(ok=True) == ["f0"]  # true is not 1
        assert where(ok=1) == ["f2"]
        assert where(ok=False) == ["f1"]
        assert where(note=None) == ["f0"]  # null, not missing
        assert where(source="nobody") == [] and where(missing="x") == []
        assert texts(store.list_facts("ns", where={"a.b": "dot"})) == ["f2"]
        assert texts(store.list_facts("ns", where={'q"uote': "q"})) == ["f2"]
        assert texts(store.list_facts("ns", where={"source": "chat"}, limit=1, offset=1)) == [
            "f2"]
        assert texts(store.list_facts("ns", where={})) == ["f0", "f1", "f2", "f3"]
        # richer filters (larimar_memory.filters) run on the same rows, paged after filtering
        assert texts(store.list_facts("ns", where={"n": {"$gte": 1, "$lt": 2}})) == ["f0", "f1"]
        assert texts(store.list_facts("ns", where={"nested": {"source": "mail"}})) == ["f3"]
        assert texts(store.list_facts("ns", where={"$or": [{"ok": 1}, {"note": None}]},
                                      limit=1, offset=1)) == ["f2"]
        for bad in ({"x": {"$gt": [1]}}, {"$x": 1}, {1: "x"}, {"x": float("nan")}):
            with pytest.raises(ArgumentError):
                store.list_facts("ns", where=bad)  # type: ignore[arg-type]

    def test_unknown_ids_raise_and_change_nothing(self, store: MemoryStore) -> None:
        recs = [make_record("ns", f"f{i}") for i in range(3)]
        with store.transaction("ns") as tx:
            tx.add_facts(recs)
        version = store.version("ns")
        with pytest.raises(FactNotFoundError, match="not-an-id"):
            with store.transaction("ns") as tx:
                tx.delete_facts([recs[0].id, "not-an-id"])
        assert store.count("ns") == 3 and store.version("ns") == version
        with store.transaction("ns") as tx:  # caught inside: still nothing deleted
            with pytest.raises(FactNotFoundError):
                tx.delete_facts([recs[1].id, "missing"])
            with pytest.raises(FactNotFoundError):
                tx.get_facts(["missing"])
            assert len(tx.all_facts()) == 3
        assert store.count("ns") == 3 and store.version("ns") == version
        with pytest.raises(FactNotFoundError):
            store.get_fact("ns", "missing")
        with store.transaction("ns") as tx:
            deleted = tx.delete_facts([recs[2].id, recs[2].id])  # duplicates collapse
            assert tx.delete_facts([]) == []
        assert [r.text for r in deleted] == ["f2"] and store.count("ns") == 2

    def test_ids_are_unique_per_namespace(self, store: MemoryStore) -> None:
        with store.transaction("a") as tx:
            tx.add_facts([make_record("a", "in a", id="fact-1")])
        with store.transaction("b") as tx:
            tx.add_facts([make_record("b", "in b", id="fact-1")])  # same id, other namespace
        assert store.get_fact("a", "fact-1").text == "in a"
        assert store.get_fact("b", "fact-1").text == "in b"
        version = store.version("a")
        with pytest.raises(StoreError, match="already exist.*fact-1"):
            with store.transaction("a") as tx:
                tx.add_facts([make_record("a", "new"), make_record("a", "dup", id="fact-1")])
        with pytest.raises(StoreError, match="already exist.*twice"):
            with store.transaction("a") as tx:
                tx.add_facts([make_record("a", "x", id="twice"), make_record("a", "y", id="twice")])
        assert store.count("a") == 1 and store.version("a") == version
        with store.transaction("b") as tx:
            tx.delete_facts(["fact-1"])
        assert store.get_fact("a", "fact-1").text == "in a"

    def test_wrong_records_are_refused(self, store: MemoryStore) -> None:
        with pytest.raises(StoreError, match="belongs to namespace"):
            with store.transaction("ns") as tx:
                tx.add_facts([make_record("other", "x")])
        with pytest.raises(MemoryInputError, match="FactRecord"):
            with store.transaction("ns") as tx:
                tx.add_facts(["not a record"])  # type: ignore[list-item]
        with pytest.raises(TextInputError):
            with store.transaction(""):
                pass
        assert store.count("ns") == 0 and store.namespaces() == []

    def test_clear(self, store: MemoryStore) -> None:
        with store.transaction("gone") as tx:
            tx.add_facts([make_record("gone", f"x{i}") for i in range(5)])
            tx.set_namespace_meta({"model": "m"})
        with store.transaction("kept") as tx:
            tx.add_facts([make_record("kept", "keep")])
        assert store.clear("gone") == 5
        assert store.count("gone") == 0 and store.namespace_meta("gone") is None
        assert store.namespaces() == ["kept"] and store.count("kept") == 1
        assert store.clear("never-written") == 0
        assert store.namespaces() == ["kept"]

    def test_rollback_on_exception_leaves_nothing(self, store: MemoryStore) -> None:
        with store.transaction("ns") as tx:
            tx.set_namespace_meta({"state": "old"})
        with pytest.raises(RuntimeError, match="boom"):
            with store.transaction("ns") as tx:
                tx.add_facts([make_record("ns", f"f{i}") for i in range(20)])
                tx.set_namespace_meta({"state": "new"})
                tx.commit_version()
                raise RuntimeError("boom")
        assert store.count("ns") == 0 and store.version("ns") == 1
        assert store.namespace_meta("ns") == {"state": "old"}
        with pytest.raises(StoreError, match="ended"):
            tx.add_facts([make_record("ns", "late")])
        with pytest.raises(StoreError, match="ended"):
            tx.all_facts()
        with store.transaction("ns") as tx:  # the store is usable again
            tx.add_facts([make_record("ns", "after")])
        assert store.count("ns") == 1

    def test_change_log_records_each_committed_change(self, store: MemoryStore) -> None:
        a, b = make_record("ns", "a"), make_record("ns", "b")
        with store.transaction("ns") as tx:
            tx.add_facts([a, b])
            tx.set_namespace_meta({"k": "v"})
        with store.transaction("ns") as tx:
            tx.delete_facts([a.id])
        with pytest.raises(RuntimeError):  # rolled back: no entry
            with store.transaction("ns") as tx:
                tx.add_facts([make_record("ns", "never")])
                raise RuntimeError("boom")
        with store.transaction("ns") as tx:
            tx.commit_version()  # a bare bump is an entry too: no version is silent
        log = store.changes("ns", 0)
        assert (log.since, log.version, log.floor) == (0, 3, 0)
        assert [(c.version, c.op, c.fact_id) for c in log.changes] == [
            (1, "version", ""), (1, "write", a.id), (1, "write", b.id), (1, "meta", ""),
            (2, "version", ""), (2, "forget", a.id), (3, "version", "")]
        assert log.facts.ids == [b.id]  # a was forgotten since
        later = store.changes("ns", 1)
        assert [c.version for c in later.changes] == [2, 2, 3] and not len(later.facts)
        with store.transaction("ns") as tx:
            assert [c.op for c in tx.changes(2).changes] == ["version"]
        assert store.changes("unknown", 0).version == 0

    def test_load_reads_every_fact_as_columns(self, store: MemoryStore) -> None:
        """The bulk read a cache loads from holds what `list_facts` holds, each memory row's
        value as one packed row, at the namespace's version, in one snapshot."""
        rng = np.random.default_rng(5)
        a = make_record("ns", "a", n_rows=3, seed=1, metadata={"k": [1, "x"], "speaker": "Ana"},
                        extra_key_texts=["p", "q"], extra_keys=rng.standard_normal((2, D)))
        b = make_record("ns", "b", seed=2, first_row=3, request_id="r")
        c = make_record("ns", "c", seed=3, first_row=4)
        with store.transaction("ns") as tx:
            tx.add_facts([a, b, c])
            tx.set_namespace_meta({"model": "m"})
        with store.transaction("ns") as tx:
            tx.delete_facts([b.id])
        loaded, records = store.load("ns"), store.list_facts("ns")
        assert (loaded.version, loaded.meta) == (store.version("ns"), {"model": "m"})
        facts = loaded.facts
        assert facts.ids == [r.id for r in records] == [a.id, c.id]
        assert facts.texts == [r.text for r in records]
        assert facts.key_texts == [r.key_text for r in records]
        assert facts.metadata == [r.metadata for r in records]
        assert facts.created_at == [r.created_at for r in records]
        assert facts.request_ids == [r.request_id for r in records]
        assert facts.extra_key_texts == [tuple(r.extra_key_texts) for r in records]
        assert facts.value_dim == C and facts.keys.dtype == np.float32
        for i, r in enumerate(records):
            np.testing.assert_array_equal(facts.keys[i], r.key)
            extra = slice(facts.extra_offsets[i], facts.extra_offsets[i + 1])
            np.testing.assert_array_equal(facts.extra_keys[extra], r.extra_keys)
            rows = slice(facts.row_offsets[i], facts.row_offsets[i + 1])
            np.testing.assert_array_equal(facts.rows[rows], r.rows)
            assert facts.moments[rows] == [pack(v[None]) for v in r.values]
        with store.transaction("ns") as tx:
            assert tx.load().facts.ids == facts.ids and tx.load().version == loaded.version
        empty = store.load("unknown")
        assert (empty.version, empty.meta, len(empty.facts)) == (0, None, 0)

    def test_trimmed_and_cleared_logs_raise_the_floor(self, store: MemoryStore) -> None:
        for i in range(5):
            increment(store, "ns", f"x{i}")
        with store.transaction("ns") as tx:
            assert tx.trim_changes(keep=2) > 0
        log = store.changes("ns", 0)
        assert log.floor == 3 and {c.version for c in log.changes} == {4, 5}
        store.clear("ns")
        increment(store, "ns", "again")
        log = store.changes("ns", 0)
        assert log.version == 6 and log.floor == 5  # a copy of the old namespace must rebuild
        assert [c.version for c in log.changes if c.op == "version"] == [6]

    def test_nested_transaction_is_refused(self, store: MemoryStore) -> None:
        with store.transaction("a"):
            with pytest.raises(StoreError, match="already open"):
                with store.transaction("b"):
                    pass

    def test_threads_lose_no_update(self, store: MemoryStore) -> None:
        def work(t: int) -> None:
            for i in range(10):
                increment(store, "ns", f"t{t}-{i}")

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.count("ns") == 40
        assert store.namespace_meta("ns") == {"counter": "40"} and store.version("ns") == 40

    def test_processes_lose_no_update(self, store: MemoryStore,
                                      store_spec: tuple[Any, ...]) -> None:
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_process_worker, args=(store_spec, 25, f"p{j}"))
                 for j in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
            assert p.exitcode == 0
        assert store.count("shared") == 50
        assert store.namespace_meta("shared") == {"counter": "50"}
        assert store.version("shared") == 50

    def test_closed_store_refuses_calls(self, store_spec: tuple[Any, ...]) -> None:
        other = open_spec(store_spec)
        other.close()
        other.close()  # idempotent
        with pytest.raises(StoreError, match="closed"):
            other.count("ns")
        with pytest.raises(StoreError, match="closed"):
            with other.transaction("ns"):
                pass

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.differing_executors])
    @given(ops=st.lists(st.tuples(
        st.sampled_from(["add", "add", "delete", "clear"]),
        st.sampled_from(["a", "b"]),
        st.lists(st.sampled_from(["i0", "i1", "i2", "i3", "i4"]), min_size=1, max_size=3),
        st.sampled_from(["red", "blue"]),
    ), max_size=12))
    def test_random_adds_and_deletes_match_a_dict(self, store: MemoryStore,
                                                  ops: list[tuple[str, str, list[str], str]]
                                                  ) -> None:
        prefix = uuid.uuid4().hex[:8]  # one store serves every example
        model: dict[str, dict[str, tuple[str, str]]] = {"a": {}, "b": {}}
        for op, short, ids, colour in ops:
            ns, facts = f"{prefix}-{short}", model[short]
            if op == "add":
                fresh = len(set(ids)) == len(ids) and not set(ids) & set(facts)
                recs = [make_record(ns, f"{i} {colour}", id=i, metadata={"colour": colour})
                        for i in ids]
                if fresh:
                    with store.transaction(ns) as tx:
                        tx.add_facts(recs)
                    facts.update({i: (f"{i} {colour}", colour) for i in ids})
                else:
                    with pytest.raises(StoreError, match="already exist"):
                        with store.transaction(ns) as tx:
                            tx.add_facts(recs)
            elif op == "delete":
                if set(ids) <= set(facts):
                    with store.transaction(ns) as tx:
                        gone = tx.delete_facts(ids)
                    assert [r.id for r in gone] == list(dict.fromkeys(ids))
                    for i in ids:
                        facts.pop(i, None)
                else:
                    with pytest.raises(FactNotFoundError):
                        with store.transaction(ns) as tx:
                            tx.delete_facts(ids)
            else:
                assert store.clear(ns) == len(facts)
                facts.clear()
        for short, facts in model.items():
            ns = f"{prefix}-{short}"
            listed = store.list_facts(ns)
            assert [(r.id, r.text) for r in listed] == [(i, t) for i, (t, _) in facts.items()]
            assert store.count(ns) == len(facts)
            assert [r.id for r in store.list_facts(ns, where={"colour": "red"})] == [
                i for i, (_, c) in facts.items() if c == "red"]
            assert (ns in store.namespaces()) == (store.version(ns) > 0)
