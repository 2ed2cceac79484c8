"""`larimar bench server --workers 1,2,4`: whether more `larimar serve` worker processes on one
store serve more requests, and that none is lost or doubled on the way.

For each worker count a fresh store and a fresh server; 4-16 concurrent clients send
remembers, then recalls, each on one of a few shared namespaces drawn at random (so the
workers' caches follow each other's writes through the change log). Afterwards every fact in
the store is counted against the remembers the server acknowledged.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from .common import machine, save_results
from .server_bench import OPERATIONS, _facts, _Server, measured_phase, pg_dsn_from_env

logger = logging.getLogger(__name__)

TENANT = "bench"


def count_check(store_url: str, names: list[str], acked: list[str]) -> dict[str, int]:
    """Every stored fact of ``names`` against the acknowledged texts: ``lost`` acknowledged
    but absent, ``doubled`` stored more than once, ``unacknowledged`` stored without an
    acknowledgement (a request that failed after its commit)."""
    from ..store import open_store

    with open_store(store_url) as store:
        stored = Counter(r.text for n in names for r in store.list_facts(n))
    wanted = Counter(acked)
    return {"acknowledged": len(acked), "stored": sum(stored.values()),
            "lost": sum((wanted - stored).values()),
            "doubled": sum(c - 1 for c in stored.values() if c > 1),
            "unacknowledged": sum((stored - wanted).values())}


def _bench_workers(
    workers: int, store: str, clients: tuple[int, ...], duration: float, namespaces: int,
    tiny: bool, torch_threads: int | None, workdir: Path,
) -> dict[str, Any]:
    from ..server.auth import core_namespace

    server = _Server(store, tiny, torch_threads, max(clients), workdir / f"w{workers}.log",
                     workers=workers)
    run_id = uuid.uuid4().hex[:8]
    names = [f"shared-{run_id}-{i}" for i in range(namespaces)]
    label = f"{workers} workers"
    try:
        startup = server.wait_ready(timeout=900)
        texts = _facts(2000, tiny)
        queries = [t.rsplit(" ", 1)[0] + "?" for t in texts[:200]]
        # warm-up: every worker's first calls pay for lazy initialisation
        measured_phase(server, label, "recall", max(clients), 3.0, [f"warm-{run_id}"], texts,
                       queries)
        acked: list[str] = []
        rows = []
        for n in clients:
            unique = [f"{t} c{n}" for t in texts]  # a phase's texts are its own: none repeats
            for op in OPERATIONS:
                row = measured_phase(server, label, op, n, duration, names, unique, queries,
                                     acked if op == "remember" else None)
                rows.append({**row, "workers": workers})
        check = count_check(store, [core_namespace(TENANT, n) for n in names], acked)
        logger.info("%s: %s", label, check)
        return {"workers": workers, "startup_seconds": round(startup, 1), "rows": rows,
                "count_check": check}
    finally:
        server.stop()


def run(
    out: Path | None = None,
    backend: str = "sqlite",
    workers: tuple[int, ...] = (1, 2, 4),
    clients: tuple[int, ...] = (4, 8, 16),
    duration: float = 10.0,
    namespaces: int = 8,
    tiny: bool = False,
    pg_dsn: str | None = None,
    torch_threads: int | None = 1,
    plot: bool = True,
) -> dict[str, Any]:
    """The throughput curve per (workers, clients) on one backend (a fresh SQLite file per
    worker count, or the PostgreSQL database at ``pg_dsn``); writes JSON under docs/results/."""
    pg_dsn = pg_dsn_from_env(pg_dsn)
    if backend not in ("sqlite", "postgres") or (backend == "postgres" and not pg_dsn):
        raise ValueError(f"backend {backend!r}: choose sqlite, or postgres with a DSN "
                         "($LARIMAR_BENCH_PG_DSN)")
    results: dict[str, Any] = {
        "benchmark": "server-workers",
        "machine": {**machine(), "load_average": os.getloadavg()},
        "model": "tiny random (server and store only)" if tiny else "packaged (larimar-smol)",
        "settings": {"backend": backend, "workers": list(workers), "clients": list(clients),
                     "duration_s": duration, "namespaces": namespaces,
                     "torch_threads": torch_threads,
                     "traffic": "each request on one of the shared namespaces, at random"},
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="larimar-worker-bench-") as tmp:
        workdir = Path(tmp)
        for w in workers:
            store = pg_dsn if backend == "postgres" and pg_dsn else str(workdir / f"w{w}.sqlite3")
            results["runs"].append(_bench_workers(w, store, clients, duration, namespaces,
                                                  tiny, torch_threads, workdir))
    results["machine"]["load_average_after"] = os.getloadavg()
    save_results(results, out, "worker_bench_tiny.json" if tiny else "worker_bench.json",
                 _plot if plot and results["runs"] else None)
    return results


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per (workers, operation, clients), for printing."""
    return [{"workers": run["workers"], "operation": row["operation"], "clients": row["clients"],
             "rps": round(row["rps"], 1), "p50_ms": round(row.get("p50_ms", float("nan")), 1),
             "p95_ms": round(row.get("p95_ms", float("nan")), 1),
             "errors": sum(row["errors"].values()), **run["count_check"]}
            for run in results["runs"] for row in run["rows"]]


def _plot(results: dict[str, Any], path: Path) -> None:
    """Requests/s and p50/p95 against clients, one line per worker count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for r, op in enumerate(OPERATIONS):
        for run in results["runs"]:
            rows = sorted((x for x in run["rows"] if x["operation"] == op),
                          key=lambda x: x["clients"])
            xs = [x["clients"] for x in rows]
            label = f"{run['workers']} workers"
            axes[r][0].plot(xs, [x["rps"] for x in rows], marker="o", label=label)
            line, = axes[r][1].plot(xs, [x.get("p50_ms", float("nan")) for x in rows],
                                    marker="o", label=f"{label} p50")
            axes[r][1].plot(xs, [x.get("p95_ms", float("nan")) for x in rows], marker="x",
                            linestyle="--", color=line.get_color(), label=f"{label} p95")
        axes[r][0].set_title(f"{op}: requests/s")
        axes[r][1].set_title(f"{op}: latency (ms)")
        for ax in axes[r]:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent clients")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"larimar serve --workers N on one {results['settings']['backend']} store — "
                 f"{results['model']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
