"""Replicas on one store: a cache that is behind applies the change log, and equals a fresh
instance; faults in the log (truncated, out of order) rebuild with a warning."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from larimar_memory.service import cache as cache_module
from larimar_memory.testing import tiny_larimar

REPO_ROOT = Path(__file__).resolve().parents[2]
WORDS = ["Lisbon", "cello", "Thursday", "garden", "Porto", "violin", "Monday", "river", "tea"]


def _fact(i: int) -> str:
    return f"Fact {i}: {WORDS[i % len(WORDS)]} and {WORDS[(3 * i + 1) % len(WORDS)]} {i}."


def _view(mem, queries: list[str]) -> tuple:
    """What ranks and reads a query: the listed facts, and per query each fact's dense cosine,
    BM25 score and readout text. (Fused ranks break ties by index position, which slot reuse
    changes on any instance, a lone one too; the evidence itself must be equal.)"""
    listed = [(f.id, f.text, tuple(f.rows)) for f in mem.list()]
    ns = mem._namespaces.synced("default")
    evidence = []
    for q in queries:
        if ns is None or not ns.facts:
            evidence.append(None)
            continue
        ids = sorted(ns.facts)
        dense = ns.memory.similarity(mem.embedder.embed([q])[0], ids)
        lexical = dict(ns.lexical[0].search(q, k=len(ids)))
        hits = mem.recall(q, k=len(ids)).hits
        evidence.append((
            {fid: round(score, 6) for fid, score in zip(ids, dense, strict=True)},
            {fid: round(score, 9) for fid, score in lexical.items()},
            {h.fact.id: h.text for h in hits},
        ))
    return listed, evidence


def _memory_rows(mem) -> dict[str, torch.Tensor]:
    ns = mem._namespaces.synced("default")
    return {} if ns is None else {fid: ns.memory.readout(fid) for fid in ns.memory.fact_ids()}


def _count_rebuilds(monkeypatch) -> list[str]:
    rebuilt: list[str] = []
    original = cache_module.NamespaceCache._rebuild

    def counting(self, ns_name, records, version):
        rebuilt.append(ns_name)
        return original(self, ns_name, records, version)

    monkeypatch.setattr(cache_module.NamespaceCache, "_rebuild", counting)
    return rebuilt


@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 1), st.booleans(), st.integers(0, 100)),
                min_size=1, max_size=14))
def test_replica_that_applies_the_log_equals_a_fresh_instance(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("replicas") / "s.sqlite3"
    a, b = tiny_larimar(path, block_rows=4), tiny_larimar(path, block_rows=4)
    queries = [_fact(0), "cello on Thursday", "river tea"]
    try:
        for step, (who, write, pick) in enumerate(ops):
            mem = (a, b)[who]
            live = [f.id for f in mem.list()]
            if write or not live:
                mem.remember([_fact(step), _fact(step + 50)][: 1 + pick % 2])
            else:
                mem.forget(live[pick % len(live)])
            _view(b, queries[:1])  # b keeps a copy, so later steps catch it up
        fresh = tiny_larimar(path, block_rows=4)
        try:
            assert _view(b, queries) == _view(fresh, queries)
            mine, theirs = _memory_rows(b), _memory_rows(fresh)
            assert mine.keys() == theirs.keys()
            for fid, rows in mine.items():
                torch.testing.assert_close(rows, theirs[fid], rtol=0, atol=1e-12)
        finally:
            fresh.close()
    finally:
        a.close()
        b.close()


def test_foreign_writes_and_forgets_are_applied_without_a_rebuild(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as a, tiny_larimar(path) as b:
        ids = a.remember([_fact(i) for i in range(6)]).ids
        assert len(b.list()) == 6 and b.recall(_fact(2)).fact.id == ids[2]
        rebuilt = _count_rebuilds(monkeypatch)
        a.forget(ids[2])
        new = a.remember(_fact(40)).ids[0]
        assert ids[2] not in {h.fact.id for h in b.recall(_fact(2), k=6).hits}
        assert b.recall(_fact(40)).fact.id == new
        b.remember(_fact(41))  # a write on b catches up inside its transaction
        assert a.recall(_fact(41)).fact.text == _fact(41)
        assert rebuilt == []


def test_truncated_log_rebuilds_with_a_warning(tmp_path, caplog, monkeypatch):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as a, tiny_larimar(path) as b:
        ids = a.remember([_fact(i) for i in range(4)]).ids
        b.recall(_fact(0))
        a.forget(ids[1])
        a.remember(_fact(9))
        with sqlite3.connect(path) as raw:  # lose the forget's entries
            version = raw.execute("SELECT MAX(version) FROM larimar_changes WHERE op = "
                                  "'forget'").fetchone()[0]
            raw.execute("DELETE FROM larimar_changes WHERE version = ?", (version,))
        raw.close()
        rebuilt = _count_rebuilds(monkeypatch)
        with caplog.at_level(logging.WARNING, logger="larimar_memory.service.cache"):
            hits = b.recall(_fact(1), k=5).hits
        assert "truncated" in caplog.text and rebuilt == ["default"]
        assert ids[1] not in {h.fact.id for h in hits}  # never a wrong memory
        assert [f.id for f in b.list()] == [f.id for f in a.list()]


def test_out_of_order_log_rebuilds_with_a_warning(tmp_path, caplog):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as a, tiny_larimar(path) as b:
        a.remember(_fact(0))
        b.recall(_fact(0))
        a.remember(_fact(1))
        a.remember(_fact(2))
        with sqlite3.connect(path) as raw:  # version 2's entries after version 3's
            raw.execute("UPDATE larimar_changes SET seq = seq + 1000 WHERE version = 2")
        raw.close()
        with caplog.at_level(logging.WARNING, logger="larimar_memory.service.cache"):
            assert b.recall(_fact(2)).fact.text == _fact(2)
        assert "out of order" in caplog.text


def test_replica_further_behind_than_the_kept_log_rebuilds(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as a, tiny_larimar(path) as b:
        a.remember(_fact(0))
        b.recall(_fact(0))
        for i in range(1, 4):
            a.remember(_fact(i))
        with a.store.transaction("default") as tx:
            tx.trim_changes(keep=1)
        rebuilt = _count_rebuilds(monkeypatch)
        assert len(b.recall(_fact(3), k=4).hits) == 4 and rebuilt == ["default"]


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from larimar_memory import store_sql
    from larimar_memory.testing import tiny_larimar

    path, mode, target = sys.argv[1:4]
    mem = tiny_larimar(path)
    if mode == "forget":
        mem.forget(target)
        print("forgotten", flush=True)
    else:  # die right after the store committed, before the cache took the new version
        def die(self, deleted):
            os.kill(os.getpid(), signal.SIGKILL)
        store_sql.SQLStore._after_write = die
        mem.remember(target)
    """
)


def _child(tmp_path: Path, path: Path, mode: str, target: str) -> subprocess.CompletedProcess:
    script = tmp_path / "replica_child.py"
    script.write_text(_CHILD)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, str(script), str(path), mode, target],
                          capture_output=True, text=True, env=env, timeout=300)


def test_a_forget_in_another_process_is_never_returned(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as mem:
        ids = mem.remember([_fact(i) for i in range(5)]).ids
        assert mem.recall(_fact(3)).fact.id == ids[3]
        done = _child(tmp_path, path, "forget", ids[3])
        assert done.returncode == 0 and "forgotten" in done.stdout, done.stderr
        assert ids[3] not in {h.fact.id for h in mem.recall(_fact(3), k=10).hits}
        assert ids[3] not in {f.id for f in mem.list()} and len(mem.list()) == 4


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_between_commit_and_cache_update_leaves_every_reader_right(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as mem:
        mem.remember([_fact(i) for i in range(3)])
        mem.recall(_fact(0))
        done = _child(tmp_path, path, "remember", _fact(7))
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert mem.recall(_fact(7)).fact.text == _fact(7)  # committed: the replica sees it
        with tiny_larimar(path) as fresh:  # and so does a restart
            assert fresh.recall(_fact(7)).fact.text == _fact(7) and len(fresh.list()) == 4
