"""`larimar bench server --namespaces N --facts F`: one `larimar serve` holding many more
namespaces than its cache budget (``--cache-mb``): the shape of a multi-user server.

The store is seeded first: ``pool`` facts are remembered through the server into one namespace
(the model encodes them once), then copied at the store level into N namespaces of F facts
each, with fresh ids and rows renumbered from 0: what F remembers would have stored, without
encoding N x F texts again. Then concurrent clients send remembers, then recalls, each on a
namespace drawn at random, for a fixed time. Figures: write and recall p50/p95, the server's
RSS (sampled), the cache's hit rate and evictions (its /metrics counters), the store's bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .common import machine, save_results
from .server_bench import OPERATIONS, _facts, _Server, measured_phase, pg_dsn_from_env, rss_bytes

logger = logging.getLogger(__name__)

TENANT = "bench"
TARGET_RECALL_P95_MS = 150
CACHE_EVENTS = ("hits", "catch_ups", "loads", "evictions")


class _RssSampler(threading.Thread):
    """Samples the server's RSS every ``every`` seconds until stopped: ``series`` holds
    (seconds since start, MB) pairs."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.series: list[tuple[float, float]] = []
        self._taken = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self._stop_event.is_set():
            rss = rss_bytes(self.pid)
            if rss is not None:
                self.series.append((round(time.monotonic() - start, 1), rss / 2**20))
            self._stop_event.wait(self.every)

    def take(self) -> dict[str, float]:
        """Peak and last RSS (MB) since the previous take."""
        samples = [mb for _, mb in self.series[self._taken:]]
        self._taken = len(self.series)
        return {"rss_peak_mb": max(samples), "rss_last_mb": samples[-1]} if samples else {}

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def cache_counters(metrics_text: str) -> dict[str, float]:
    """The ``larimar_cache_*`` series of a /metrics page, by name without prefix and suffix."""
    out = {}
    for line in metrics_text.splitlines():
        if line.startswith("larimar_cache_"):
            name, value = line.rsplit(" ", 1)
            out[name.removeprefix("larimar_cache_").removesuffix("_total")] = float(value)
    return out


def hit_rate(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Cache events between two scrapes, and the share of calls a current copy served."""
    delta = {e: int(after.get(e, 0) - before.get(e, 0)) for e in CACHE_EVENTS}
    calls = delta["hits"] + delta["catch_ups"] + delta["loads"]
    return {**delta, "hit_rate": delta["hits"] / calls if calls else None}


def seed(store_url: str, pool_ns: str, names: list[str], facts: int, seed_value: int = 0
         ) -> float:
    """Copy ``facts`` records of ``pool_ns`` into each of ``names`` (store level, one
    transaction each, the pool's namespace meta); returns the seconds it took."""
    from ..store import open_store

    rng = random.Random(seed_value)
    start = time.perf_counter()
    with open_store(store_url) as store:
        pool = store.list_facts(pool_ns)
        meta = store.namespace_meta(pool_ns)
        if meta is None or len(pool) < facts:
            raise RuntimeError(f"the pool namespace holds {len(pool)} facts, fewer than {facts}")
        for name in names:
            records, row = [], 0
            for r in rng.sample(pool, facts):
                n = len(r.rows)
                records.append(dataclasses.replace(
                    r, namespace=name, id=uuid.uuid4().hex, rows=np.arange(row, row + n)))
                row += n
            with store.transaction(name) as tx:
                tx.set_namespace_meta(meta)
                tx.add_facts(records)
                tx.commit_version()
    return time.perf_counter() - start


def store_bytes(store_url: str, workdir: Path) -> int:
    """Bytes the store takes: its SQLite files, or the PostgreSQL database's size."""
    if store_url.startswith("postgres"):
        import psycopg

        with psycopg.connect(store_url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0
    return sum(p.stat().st_size for p in workdir.glob(Path(store_url).name + "*"))


def _bench_backend(
    backend: str, store: str, namespaces: int, facts: int, clients: int, duration: float,
    cache_mb: float, pool: int, tiny: bool, torch_threads: int | None, workdir: Path,
) -> dict[str, Any]:
    import httpx

    from ..server.auth import core_namespace
    from ..server.client import LarimarClient

    server = _Server(store, tiny, torch_threads, max(clients, 1), workdir / f"{backend}.log",
                     cache_mb=cache_mb)
    run_id = uuid.uuid4().hex[:8]
    names = [f"ns-{run_id}-{i:05d}" for i in range(namespaces)]
    sampler = _RssSampler(server.proc.pid)
    try:
        startup = server.wait_ready(timeout=900)
        sampler.start()
        texts = _facts(max(pool, facts), tiny)
        queries = [t.rsplit(" ", 1)[0] + "?" for t in texts[:200]]
        bytes_before = store_bytes(store, workdir)
        pool_ns = f"pool-{run_id}"
        with LarimarClient(server.url, server.key, timeout=600) as client:
            for start in range(0, len(texts), 100):
                client.remember(texts[start:start + 100], namespace=pool_ns)
        seconds = seed(store, core_namespace(TENANT, pool_ns),
                       [core_namespace(TENANT, n) for n in names], facts)
        seeded_bytes = store_bytes(store, workdir) - bytes_before
        logger.info("%s: seeded %d namespaces x %d facts in %.0f s (%.0f MB)", backend,
                    namespaces, facts, seconds, seeded_bytes / 2**20)
        # warm-up on a few namespaces, every operation at the measured concurrency: the first
        # calls pay for lazy initialisation, and each request thread for its own connection,
        # allocator arena and buffers, which are the server's, not the cache's
        ready = {"rss_mb_idle": (rss_bytes(server.proc.pid) or 0) / 2**20}
        for op in OPERATIONS:
            measured_phase(server, backend, op, clients, 3.0, names[:clients], texts, queries)
        sampler.take()
        ready["rss_mb"] = (rss_bytes(server.proc.pid) or 0) / 2**20

        def scrape() -> dict[str, float]:
            return cache_counters(httpx.get(f"{server.url}/metrics", timeout=30).text)

        rows = []
        for op in OPERATIONS:
            before = scrape()
            row = measured_phase(server, backend, op, clients, duration, names, texts, queries)
            after = scrape()
            row.update(cache=hit_rate(before, after), **sampler.take())
            row["cached_namespaces"] = int(after.get("namespaces", 0))
            row["cached_mb"] = after.get("bytes", 0) / 2**20
            rows.append(row)
        total_facts = namespaces * facts + sum(r["requests"] for r in rows
                                               if r["operation"] == "remember")
        end_bytes = store_bytes(store, workdir) - bytes_before
        return {"backend": backend, "startup_seconds": round(startup, 1),
                "seed_seconds": round(seconds, 1), "after_warm_up": ready, "rows": rows,
                "store": {"seeded_mb": seeded_bytes / 2**20, "end_mb": end_bytes / 2**20,
                          "facts": total_facts,
                          "bytes_per_fact": end_bytes / total_facts if total_facts else None},
                "rss_budget": _budget_check(ready["rss_mb"], rows, cache_mb),
                "rss_series": list(sampler.series)}
    finally:
        sampler.stop()
        server.stop()


def _budget_check(baseline_mb: float, rows: list[dict[str, Any]], cache_mb: float
                  ) -> dict[str, Any]:
    """Whether the server's RSS stayed within the warmed-up server plus the cache budget."""
    peak = max((r.get("rss_peak_mb", 0.0) for r in rows), default=0.0)
    return {"warm_rss_mb": baseline_mb, "cache_budget_mb": cache_mb, "peak_rss_mb": peak,
            "growth_mb": peak - baseline_mb, "held": peak - baseline_mb <= cache_mb}


def run(
    out: Path | None = None,
    backends: tuple[str, ...] = ("sqlite", "postgres"),
    namespaces: int = 10000,
    facts: int = 100,
    clients: int = 8,
    duration: float = 30.0,
    cache_mb: float = 64.0,
    pool: int = 1000,
    tiny: bool = False,
    pg_dsn: str | None = None,
    torch_threads: int | None = 1,
    plot: bool = True,
) -> dict[str, Any]:
    """Many namespaces on each backend; PostgreSQL needs ``pg_dsn`` (or ``$LARIMAR_BENCH_PG_DSN``
    / ``$LARIMAR_TEST_PG_DSN``) and is skipped, with a note, without one. The namespaces are
    left in the PostgreSQL database (clearing 10,000 one by one took minutes per few dozen):
    give it a throwaway one. Writes JSON under docs/results/."""
    pg_dsn = pg_dsn_from_env(pg_dsn)
    results: dict[str, Any] = {
        "benchmark": "server-namespaces",
        "machine": {**machine(), "load_average": os.getloadavg()},
        "model": "tiny random (server, cache and store only)" if tiny
        else "packaged (larimar-smol)",
        "settings": {"namespaces": namespaces, "facts_per_namespace": facts, "clients": clients,
                     "duration_s": duration, "cache_mb": cache_mb, "pool": pool,
                     "torch_threads": torch_threads,
                     "seeding": "pool remembered through the server, copied per namespace at "
                                "the store level",
                     "traffic": "each request on a namespace drawn uniformly at random"},
        "targets": {"recall_p95_ms": TARGET_RECALL_P95_MS, "rss": "within the cache budget"},
        "backends": {},
        "skipped": {},
    }
    with tempfile.TemporaryDirectory(prefix="larimar-namespace-bench-") as tmp:
        workdir = Path(tmp)
        for backend in backends:
            if backend == "postgres" and not pg_dsn:
                results["skipped"]["postgres"] = "no DSN: set LARIMAR_BENCH_PG_DSN"
                continue
            store = pg_dsn if backend == "postgres" else str(workdir / "bench.sqlite3")
            if store is None or backend not in ("sqlite", "postgres"):
                raise ValueError(f"unknown backend {backend!r}; choose sqlite or postgres")
            results["backends"][backend] = _bench_backend(
                backend, store, namespaces, facts, clients, duration, cache_mb, pool, tiny,
                torch_threads, workdir)
    results["machine"]["load_average_after"] = os.getloadavg()
    save_results(results, out, "namespace_bench_tiny.json" if tiny else "namespace_bench.json",
                 _plot if plot and results["backends"] else None)
    return results


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per (backend, operation), for printing."""
    return [{"backend": backend, "operation": row["operation"], "rps": round(row["rps"], 1),
             "p50_ms": round(row.get("p50_ms", float("nan")), 1),
             "p95_ms": round(row.get("p95_ms", float("nan")), 1),
             "hit_rate": row["cache"]["hit_rate"], "rss_peak_mb": round(row["rss_peak_mb"]),
             "store_bytes_per_fact": round(data["store"]["bytes_per_fact"] or 0),
             "rss_held": data["rss_budget"]["held"], "errors": sum(row["errors"].values())}
            for backend, data in results["backends"].items() for row in data["rows"]]


def _plot(results: dict[str, Any], path: Path) -> None:
    """RSS over the run against the warmed-up server plus the cache budget, per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for backend, data in results["backends"].items():
        series = data["rss_series"]
        line, = ax.plot([t for t, _ in series], [mb for _, mb in series], label=f"{backend} RSS")
        budget = data["rss_budget"]
        ax.axhline(budget["warm_rss_mb"] + budget["cache_budget_mb"], color=line.get_color(),
                   linestyle=":", label=f"{backend}: warm server + cache budget")
    settings = results["settings"]
    ax.set_title(f"{settings['namespaces']:,} namespaces x {settings['facts_per_namespace']} "
                 f"facts, --cache-mb {settings['cache_mb']:g} — {results['model']}", fontsize=9)
    ax.set_xlabel("seconds since the server was ready (seeding, remembers, recalls)")
    ax.set_ylabel("server RSS (MB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
