"""`larimar bench replicas`: two `Larimar` replicas on one store, as a load balancer drives them.

On a namespace of ``facts`` facts (10,000 by default): write p50 on a lone replica against two
replicas alternating writes (each write's replica is behind by the other's last write, so it
catches up by the change log first); recall p50 on a lone replica against a recall right after
the other replica's write (interleaved: each round times all four once, so a change of load
moves both sides of a ratio); the first recall of a fresh instance (a restart: a bulk load of the
namespace, whose cost grows with its size: the slope is measured at two sizes); and bytes per
fact: in process beyond the keys, and in the store beyond text and keys.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from ..packed import pack
from ..store import MemoryStore
from ..store_url import open_store
from .common import RESULTS_DIR, machine, percentile, save_json
from .service_bench import benchmark_facts

TARGETS = {"alternating_write_over_lone": 1.5, "recall_after_foreign_write_over_lone": 1.5,
           "cold_first_recall_ms": 300, "in_process_bytes_per_fact": 4096,
           "store_bytes_per_fact": 4096}
"""Issue 26's targets (p50 ratios; bytes beyond keys, and beyond text and keys)."""


def _p50_ms(seconds: list[float]) -> float:
    return percentile(seconds, 50) * 1e3


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fill(mem: Any, texts: list[str]) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), 1000):
        mem.remember(texts[i: i + 1000])
    return time.perf_counter() - start


class _SQLiteFile:
    """Where the replicas keep their namespace: one SQLite file (and its WAL)."""

    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self) -> MemoryStore:
        return open_store(str(self.path))

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))

    def drop(self) -> None:
        """Nothing: the file goes with the bench's temporary folder."""


class _PostgresSchema:
    """Where the replicas keep their namespace: a fresh schema of a PostgreSQL database
    (dropped afterwards); its size is its tables' with their indexes and TOAST."""

    backend = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn, self.schema = dsn, f"bench_replicas_{uuid.uuid4().hex[:12]}"

    def open(self) -> MemoryStore:
        from ..store_postgres import PostgresStore

        return PostgresStore(self.dsn, schema=self.schema)

    def size(self) -> int:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'", (self.schema,)).fetchone()
        return int(row[0]) if row else 0

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def _cold_first_recall(make: Any, place: Any, query: str) -> float:
    fresh = make(place)
    try:
        return _timed(lambda: fresh.recall(query, k=5))
    finally:
        _close(fresh)


def _close(mem: Any) -> None:
    """A replica and the store connection it was handed."""
    mem.close()
    mem.store.close()


def _bytes(mem: Any, place: Any) -> dict[str, float]:
    ns = mem._namespaces.synced(mem.namespace)
    facts = len(ns.facts)
    keys = sum(index.nbytes() for index in ns.memory.key_indices)
    records = mem.store.list_facts(mem.namespace)
    text_and_keys = sum(len(r.text.encode()) + len(r.key_text.encode()) * (r.key_text != r.text)
                        + r.key.nbytes + r.extra_keys.nbytes for r in records)
    store_files = place.size()
    return {
        "facts": facts,
        "in_process_state_bytes": ns.memory.nbytes(),
        "in_process_bytes_per_fact_beyond_keys": (ns.memory.nbytes() - keys) / facts,
        "store_file_bytes": store_files,
        "store_bytes_per_fact_beyond_text_and_keys": (store_files - text_and_keys) / facts,
        "value_bytes_per_fact_in_store": sum(len(pack(r.values)) for r in records) / facts,
        "value_bytes_per_fact_unpacked": sum(r.values.nbytes for r in records) / facts,
    }


def run(out: Path | None = None, facts: int = 10_000, ops: int = 20, tiny: bool = False,
        plot: bool = True, pg_dsn: str | None = None) -> dict[str, Any]:
    """On a SQLite file, or with ``pg_dsn`` on fresh schemas of that PostgreSQL database."""
    from ..scope import SentenceEmbedder
    from ..service import Larimar

    if tiny:
        from ..testing import HashingEmbedder, tiny_test_model

        model = tiny_test_model("gpt2", memory_slots=512, max_text_tokens=256)
        embedder = SentenceEmbedder(model=HashingEmbedder())
    else:
        from ..model import LarimarModel

        model = LarimarModel.from_pretrained("larimar-smol").eval().requires_grad_(False)
        embedder = SentenceEmbedder()

    def make(place: Any) -> Any:
        return Larimar(model, store=place.open(), embedder=embedder, namespace="bench")

    texts = benchmark_facts(facts + 4 * ops + 10)
    base, extra = texts[:facts], iter(texts[facts:])
    with tempfile.TemporaryDirectory() as tmp:
        def place_for(name: str) -> Any:
            return (_PostgresSchema(pg_dsn) if pg_dsn
                    else _SQLiteFile(Path(tmp) / f"{name}.sqlite3"))

        shared, half_path = place_for("replicas"), place_for("half")
        a, b = make(shared), make(shared)
        try:
            fill_seconds = _fill(a, base)
            probes = base[:: max(1, facts // ops)][:ops]
            a.recall(probes[0], k=5)
            b.recall(probes[0], k=5)
            lone_write, lone_recall, alternating, after_foreign = [], [], [], []
            for q in probes:  # one round gives each figure a sample, under the same load
                lone_write.append(_timed(lambda: a.remember(next(extra))))  # a is current
                lone_recall.append(_timed(lambda q=q: a.recall(q, k=5)))
                # b is behind by a's write: it catches up by the change log, then writes
                alternating.append(_timed(lambda: b.remember(next(extra))))
                # a is behind by b's write, and current again after this recall
                after_foreign.append(_timed(lambda q=q: a.recall(q, k=5)))
            sizes = _bytes(a, shared)
            cold = [_cold_first_recall(make, shared, probes[i]) for i in range(3)]
            half = make(half_path)
            try:
                _fill(half, base[: facts // 2])
            finally:
                _close(half)
            cold_half = [_cold_first_recall(make, half_path, probes[i]) for i in range(3)]
        finally:
            _close(a)
            _close(b)
            for place in (shared, half_path):
                place.drop()
    rows = {
        "lone_write_p50_ms": _p50_ms(lone_write),
        "alternating_write_p50_ms": _p50_ms(alternating),
        "lone_recall_p50_ms": _p50_ms(lone_recall),
        "recall_after_foreign_write_p50_ms": _p50_ms(after_foreign),
        "cold_first_recall_ms": min(cold) * 1e3,
        "cold_first_recall_half_namespace_ms": min(cold_half) * 1e3,
    }
    rows["alternating_write_over_lone"] = rows["alternating_write_p50_ms"] / rows[
        "lone_write_p50_ms"]
    rows["recall_after_foreign_write_over_lone"] = (rows["recall_after_foreign_write_p50_ms"]
                                                    / rows["lone_recall_p50_ms"])
    slope = ((rows["cold_first_recall_ms"] - rows["cold_first_recall_half_namespace_ms"])
             / (facts - facts // 2))
    results = {
        "benchmark": "replicas",
        "machine": {**machine(), "load_average": os.getloadavg()},
        "store": shared.backend, "facts": facts, "ops": ops, "tiny": tiny,
        "latent_width": model.latent_width,
        "fill_seconds": fill_seconds,
        "latency": rows,
        "grows_with_namespace": {
            "cold_first_recall_ms_per_fact": slope,
            "note": "a restart loads every fact of the namespace in bulk (one columnar read: "
                    "keys, packed memory rows as stored, BM25 and name indexes); writes and "
                    "recalls after a foreign write apply only the changes",
        },
        "bytes": sizes,
        "targets": TARGETS,
        "targets_met": {
            "alternating_write_over_lone": rows["alternating_write_over_lone"]
            <= TARGETS["alternating_write_over_lone"],
            "recall_after_foreign_write_over_lone": rows["recall_after_foreign_write_over_lone"]
            <= TARGETS["recall_after_foreign_write_over_lone"],
            "cold_first_recall_ms": rows["cold_first_recall_ms"]
            <= TARGETS["cold_first_recall_ms"],
            "in_process_bytes_per_fact": sizes["in_process_bytes_per_fact_beyond_keys"]
            <= TARGETS["in_process_bytes_per_fact"],
            "store_bytes_per_fact": sizes["store_bytes_per_fact_beyond_text_and_keys"]
            <= TARGETS["store_bytes_per_fact"],
        },
    }
    name = "replica_bench" + ("_postgres" if pg_dsn else "") + ("_tiny" if tiny else "")
    out = out or RESULTS_DIR / f"{name}.json"
    save_json(results, out)
    if plot:
        _plot(results, out.with_suffix(".png"))
    return results


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["latency"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(["lone", "alternating"], [rows["lone_write_p50_ms"],
                                       rows["alternating_write_p50_ms"]], color=["C0", "C1"])
    left.set_title(f"remember p50 (ms), {results['facts']} facts")
    right.bar(["lone", "after foreign write", "cold first"],
              [rows["lone_recall_p50_ms"], rows["recall_after_foreign_write_p50_ms"],
               rows["cold_first_recall_ms"]], color=["C0", "C1", "C2"])
    right.set_title("recall(k=5) (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
