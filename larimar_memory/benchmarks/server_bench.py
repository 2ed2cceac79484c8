"""`larimar bench server`: sustained remember / recall throughput and latency over loopback HTTP.

For each store backend (SQLite, PostgreSQL) a real `larimar serve` runs in a subprocess and
1, 4 and 16 concurrent clients (asyncio, `AsyncLarimarClient`, no retries so errors count) send
requests for a fixed time. Figures: requests per second and p50/p95/p99 latency per (backend,
operation, clients). Packaged models by default (the first start converts the GGUF decoder,
~30 s); ``tiny=True`` serves the tiny random model, which measures the server and store rather
than the model. The load generator shares the machine with the server: on a small box, read
the numbers as a floor; each row also gives the CPU milliseconds one request cost the server
process and the load generator, which do not depend on how they shared the cores.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from .common import machine, percentile, save_results

logger = logging.getLogger(__name__)

PG_ENVS = ("LARIMAR_BENCH_PG_DSN", "LARIMAR_TEST_PG_DSN")


def pg_dsn_from_env(given: str | None = None) -> str | None:
    """``given``, else the first of `PG_ENVS` that is set: the benchmarks' PostgreSQL."""
    return given or next((os.environ[e] for e in PG_ENVS if os.environ.get(e)), None)
TARGET_REMEMBER_RPS_4_CLIENTS = 200
OPERATIONS = ("remember", "recall")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """`larimar serve` in a subprocess, with a random API key for tenant "bench"."""

    def __init__(self, store: str, tiny: bool, torch_threads: int | None, max_concurrency: int,
                 log_path: Path, workers: int = 1, cache_mb: float | None = None) -> None:
        self.key = secrets.token_urlsafe(24)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "larimar_memory.server.cli", "--host", "127.0.0.1",
               "--port", str(self.port), "--store", store, "--max-concurrency",
               str(max_concurrency), "--log-level", "warning"]
        if tiny:
            cmd.append("--tiny")
        if torch_threads:
            cmd += ["--torch-threads", str(torch_threads)]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        if cache_mb is not None:
            cmd += ["--cache-mb", str(cache_mb)]
        env = {**os.environ, "LARIMAR_API_KEYS": f"{self.key}:bench",
               "TOKENIZERS_PARALLELISM": "false"}
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float) -> float:
        import httpx

        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see "
                                   f"{self.log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout:.0f} s; see {self.log.name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes), from /proc."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(p for c in children for p in _process_tree(int(c)))]


def rss_bytes(pid: int) -> int | None:
    """Resident bytes of the server: VmRSS of ``pid`` and its descendants (/proc/<pid>/status);
    None where /proc does not exist."""
    total = 0
    for p in _process_tree(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
            total += next(int(x.split()[1]) for x in lines if x.startswith("VmRSS:")) * 1024
        except (OSError, StopIteration, ValueError):
            if p == pid:
                return None
    return total


def _process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` and its descendants (all their threads),
    where /proc exists."""
    total = 0.0
    for p in _process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            if p == pid:
                return None
    return total


def _facts(n: int, tiny: bool) -> list[str]:
    """CounterFact sentences (synthetic ones without the data); the tiny model takes at most
    48 byte tokens, so it gets short distinct texts."""
    if tiny:
        return [f"item {uuid.uuid4().hex[:6]} of kind {i % 97}" for i in range(n)]
    from .service_bench import benchmark_facts

    return benchmark_facts(n)


async def _phase(
    url: str, key: str, op: str, clients: int, duration: float, namespaces: list[str],
    texts: list[str], queries: list[str], acked: list[str] | None = None,
) -> dict[str, Any]:
    """``clients`` concurrent callers of ``op`` for ``duration`` seconds, each request on a
    namespace drawn at random from ``namespaces``; the texts of acknowledged remembers are
    appended to ``acked`` when given."""
    import random

    import httpx

    from ..server.client import AsyncLarimarClient, RetryPolicy

    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = {"i": 0}
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pick = random.Random(len(namespaces) * clients).choice
    async with AsyncLarimarClient(url, key, timeout=300,
                                  retry=RetryPolicy(retries=0), transport=transport) as client:
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            while time.perf_counter() < deadline:
                i = counter["i"]
                counter["i"] += 1
                start = time.perf_counter()
                namespace = pick(namespaces)
                try:
                    if op == "remember":
                        text = f"{texts[i % len(texts)]} ({i})"
                        await client.remember(text, namespace=namespace)
                        if acked is not None:
                            acked.append(text)
                    else:
                        await client.recall(queries[i % len(queries)], namespace=namespace)
                except Exception as exc:  # noqa: BLE001 - counted, reported
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    row: dict[str, Any] = {"operation": op, "clients": clients, "requests": len(latencies),
                           "errors": errors, "seconds": round(elapsed, 3),
                           "rps": len(latencies) / elapsed if elapsed else 0.0}
    if latencies:
        row.update({f"p{q}_ms": percentile(latencies, q) * 1e3 for q in (50, 95, 99)})
    return row


def measured_phase(
    server: _Server, label: str, op: str, clients: int, duration: float, namespaces: list[str],
    texts: list[str], queries: list[str], acked: list[str] | None = None,
) -> dict[str, Any]:
    """`_phase`, with the CPU milliseconds one request cost the server (all its processes'
    threads) and the load generator: what it costs each side, whatever the other takes of
    the cores."""
    server_cpu, client_cpu = _process_cpu_seconds(server.proc.pid), time.process_time()
    row = asyncio.run(_phase(server.url, server.key, op, clients, duration, namespaces, texts,
                             queries, acked))
    row["backend"] = label
    served = max(row["requests"], 1)
    after = _process_cpu_seconds(server.proc.pid)
    if server_cpu is not None and after is not None:
        row["server_cpu_ms_per_request"] = (after - server_cpu) / served * 1e3
    row["client_cpu_ms_per_request"] = (time.process_time() - client_cpu) / served * 1e3
    logger.info("%s %s x%d: %.1f req/s, p50 %.1f ms, p95 %.1f ms, errors %s", label, op,
                clients, row["rps"], row.get("p50_ms", float("nan")),
                row.get("p95_ms", float("nan")), row["errors"])
    return row


def _bench_backend(
    backend: str, store: str, clients: tuple[int, ...], duration: float, tiny: bool,
    torch_threads: int | None, max_concurrency: int, workdir: Path,
) -> dict[str, Any]:
    server = _Server(store, tiny, torch_threads, max_concurrency, workdir / f"{backend}.log")
    run_id = uuid.uuid4().hex[:8]
    try:
        startup = server.wait_ready(timeout=900)
        logger.info("%s: server ready in %.1f s", backend, startup)
        facts = _facts(2000, tiny)
        queries = [f.rsplit(" ", 1)[0] + "?" for f in facts[:200]]  # the facts' prompts
        rows = []
        # warm-up: first calls pay for lazy initialisation
        asyncio.run(_phase(server.url, server.key, "remember", 1, 2.0, [f"warm-{run_id}"],
                           facts, queries))
        asyncio.run(_phase(server.url, server.key, "recall", 1, 2.0, [f"warm-{run_id}"],
                           facts, queries))
        for n in clients:
            for op in OPERATIONS:  # recall reads what remember just wrote
                rows.append(measured_phase(server, backend, op, n, duration,
                                           [f"bench-{run_id}-c{n}"], facts, queries))
        _clear(server, [f"warm-{run_id}"] + [f"bench-{run_id}-c{n}" for n in clients])
        return {"backend": backend, "startup_seconds": round(startup, 1), "rows": rows}
    finally:
        server.stop()


def _clear(server: _Server, namespaces: list[str]) -> None:
    from ..server.client import LarimarClient

    with LarimarClient(server.url, server.key) as client:
        for ns in namespaces:
            client.clear(namespace=ns)


def run(
    out: Path | None = None,
    backends: tuple[str, ...] = ("sqlite", "postgres"),
    clients: tuple[int, ...] = (1, 4, 16),
    duration: float = 10.0,
    tiny: bool = False,
    pg_dsn: str | None = None,
    torch_threads: int | None = 1,
    max_concurrency: int = 8,
    plot: bool = True,
) -> dict[str, Any]:
    """Benchmark the server on each backend; PostgreSQL needs ``pg_dsn`` (or
    ``$LARIMAR_BENCH_PG_DSN`` / ``$LARIMAR_TEST_PG_DSN``) and is skipped, with a note,
    without one. Writes JSON (and a PNG beside it) under docs/results/."""
    pg_dsn = pg_dsn_from_env(pg_dsn)
    results: dict[str, Any] = {
        "benchmark": "server",
        "machine": {**machine(), "load_average": os.getloadavg()},
        "model": "tiny random (server and store only)" if tiny else "packaged (larimar-smol)",
        "settings": {"duration_s": duration, "clients": list(clients),
                     "torch_threads": torch_threads, "max_concurrency": max_concurrency,
                     "transport": "HTTP/1.1 over loopback, load generator on the same machine"},
        "targets": {"remember_rps_4_clients": TARGET_REMEMBER_RPS_4_CLIENTS},
        "backends": {},
        "skipped": {},
    }
    with tempfile.TemporaryDirectory(prefix="larimar-server-bench-") as tmp:
        workdir = Path(tmp)
        for backend in backends:
            if backend == "sqlite":
                store = str(workdir / "bench.sqlite3")
            elif backend == "postgres":
                if not pg_dsn:
                    results["skipped"]["postgres"] = (
                        "no DSN: pass pg_dsn or set LARIMAR_BENCH_PG_DSN "
                        "(eval \"$(scripts/postgres.sh start)\" sets LARIMAR_TEST_PG_DSN)")
                    logger.warning("postgres skipped: %s", results["skipped"]["postgres"])
                    continue
                store = pg_dsn
            else:
                raise ValueError(f"unknown backend {backend!r}; choose sqlite or postgres")
            try:
                results["backends"][backend] = _bench_backend(
                    backend, store, clients, duration, tiny, torch_threads, max_concurrency,
                    workdir)
            except (RuntimeError, TimeoutError) as exc:
                log = workdir / f"{backend}.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{backend} benchmark failed: {exc}\n{tail}") from exc
    results["machine"]["load_average_after"] = os.getloadavg()
    results["summary"] = summary(results)
    save_results(results, out, "server_bench_tiny.json" if tiny else "server_bench.json",
                 _plot if plot and results["backends"] else None)
    return results


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per (backend, operation, clients), for printing."""
    rows = []
    for backend, data in results["backends"].items():
        for row in data["rows"]:
            rows.append({
                "backend": backend, "operation": row["operation"], "clients": row["clients"],
                "rps": round(row["rps"], 1), "p50_ms": round(row.get("p50_ms", float("nan")), 1),
                "p95_ms": round(row.get("p95_ms", float("nan")), 1),
                "server_cpu_ms": round(row.get("server_cpu_ms_per_request", float("nan")), 2),
                "client_cpu_ms": round(row.get("client_cpu_ms_per_request", float("nan")), 2),
                "errors": sum(row["errors"].values()),
            })
    return rows


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for r, op in enumerate(OPERATIONS):
        for backend, data in results["backends"].items():
            rows = sorted((x for x in data["rows"] if x["operation"] == op),
                          key=lambda x: x["clients"])
            xs = [x["clients"] for x in rows]
            axes[r][0].plot(xs, [x["rps"] for x in rows], marker="o", label=backend)
            axes[r][1].plot(xs, [x.get("p50_ms", float("nan")) for x in rows], marker="o",
                            label=f"{backend} p50")
            axes[r][1].plot(xs, [x.get("p95_ms", float("nan")) for x in rows], marker="x",
                            linestyle="--", label=f"{backend} p95")
        axes[r][0].set_title(f"{op}: requests/s")
        axes[r][1].set_title(f"{op}: latency (ms)")
        for ax in axes[r]:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent clients")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    if any(x["operation"] == "remember" for d in results["backends"].values()
           for x in d["rows"]):
        axes[0][0].axhline(TARGET_REMEMBER_RPS_4_CLIENTS, color="grey", linestyle=":",
                           label="target (4 clients)")
        axes[0][0].legend(fontsize=7)
    fig.suptitle(f"larimar serve over loopback — {results['model']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - manual entry
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--pg-dsn")
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    results = run(out=args.out, backends=tuple(args.backends.split(",")),
                  clients=tuple(int(c) for c in args.clients.split(",")),
                  duration=args.duration, tiny=args.tiny, pg_dsn=args.pg_dsn,
                  torch_threads=args.torch_threads)
    logger.info("%s", json.dumps(results["summary"], indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
