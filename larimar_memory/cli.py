"""The `larimar` command (typer + rich). Rich output lives here only; the library logs."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from .service import Larimar

app = typer.Typer(help="Larimar episodic memory for LLM agents.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: print figures and save JSON/PNG under docs/results/.")
app.add_typer(bench_app, name="bench")
console = Console()
err_console = Console(stderr=True)

StoreOption = typer.Option(
    None, "--store", help="SQLite file, sqlite:///file.db or postgresql://... URL (default: "
    "$LARIMAR_STORE or the user data dir).",
)
NamespaceOption = typer.Option("default", "--namespace", "-n", help="Namespace (user/session).")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _open(store: str | None, namespace: str) -> Larimar:
    from .service import Larimar

    return Larimar(store=store, namespace=namespace)


def _emit(payload: Any, as_json: bool, render: Any = None) -> None:
    if as_json or render is None:
        data = payload.model_dump() if hasattr(payload, "model_dump") else payload
        typer.echo(json.dumps(data, indent=1, default=str))
    else:
        render(payload)


def _run(fn: Any) -> Any:
    """Run a command body, turning the library's errors into a clean message and exit code 2."""
    from .errors import LarimarError

    try:
        return fn()
    except LarimarError as exc:
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(2) from None


@app.callback()
def _main(verbose: bool = typer.Option(
    False, "--verbose", "-v",
    help="Log to stderr, with the model libraries' progress bars and warnings.",
)) -> None:
    if verbose:
        from .quiet import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"  # server workers and subprocesses inherit it
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)


ThreadsOption = typer.Option(
    1, "--threads", min=1,
    help="torch CPU threads (1: on a small shared machine more threads contend and slow down).",
)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


FilterOption = typer.Option(
    None, "--filter", help="Metadata equality, FIELD=VALUE (repeatable), e.g. speaker=Ann."
)


def _parse_filter(items: list[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--filter takes FIELD=VALUE, got {item!r}")
        try:  # session=3 matches the number 3, active=true the boolean; anything else a string
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out[name] = parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value
    return out


@app.command()
def remember(
    text: list[str] = typer.Argument(..., help="One or more facts."),
    key: str = typer.Option(None, help="Text that addresses the fact (default: the fact)."),
    metadata: str = typer.Option(None, help="JSON object stored with each fact."),
    store: str = StoreOption,
    namespace: str = NamespaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Write facts to memory in one shot; prints what each input did."""
    def body() -> None:
        meta = json.loads(metadata) if metadata else None
        with _open(store, namespace) as memory:
            result = memory.remember(text, key=None if key is None else [key] * len(text),
                                     metadata=meta)

        def render(r: Any) -> None:
            for given, outcome in zip(text, r.outcomes, strict=True):
                line = f"{outcome.status}: {outcome.id}  {given[:70]}"
                if outcome.replaced is not None:
                    line += f"\n  replaced {outcome.replaced.id}: {outcome.replaced.text[:70]}"
                console.print(line)
        _emit(result, as_json, render)
    _run(body)


@app.command()
def recall(
    query: str, store: str = StoreOption, namespace: str = NamespaceOption,
    k: int = typer.Option(1, "--k", min=1, help="How many facts to return, best first."),
    filter: list[str] = FilterOption,
    as_json: bool = JsonOption,
) -> None:
    """The k facts a query addresses, each with its text read back from the memory."""
    def body() -> None:
        with _open(store, namespace) as memory:
            result = memory.recall(query, k=k, filter=_parse_filter(filter))

        def render(r: Any) -> None:
            console.print(f"scope {r.scope.score:.2f} "
                          f"({'in' if r.scope.in_scope else 'out of'} scope)")
            for i, hit in enumerate(r.hits, 1):
                console.print(f"{i}. [bold]{hit.text}[/bold]  (score {hit.score:.2f}, "
                              f"id {hit.fact.id})")
        _emit(result, as_json, render)
    _run(body)


@app.command()
def ask(
    question: str, store: str = StoreOption, namespace: str = NamespaceOption,
    as_json: bool = JsonOption,
    k: int = typer.Option(None, "--k", min=1, help="Facts read into the decoder."),
    max_new_tokens: int = typer.Option(32, help="Answer length in tokens."),
) -> None:
    """Answer a question; in-scope questions are decoded from memory."""
    def body() -> None:
        with _open(store, namespace) as memory:
            result = memory.ask(question, k=k, max_new_tokens=max_new_tokens)
        _emit(result, as_json, lambda r: console.print(
            f"[bold]{r.answer}[/bold]\nroute: {r.route} (scope {r.scope.score:.2f})"))
    _run(body)


@app.command()
def reencode(store: str = StoreOption, namespace: str = NamespaceOption) -> None:
    """Re-write a namespace with the current model, embedder and settings (after a change of
    any of them): texts, ids and metadata are kept, keys and latents are recomputed."""
    def body() -> None:
        from .service import Larimar

        with Larimar(store=store, namespace=namespace) as memory:
            console.print(f"re-encoded {memory.reencode()} fact(s) of {namespace!r}")
    _run(body)


@app.command()
def forget(
    fact: str = typer.Argument(..., help="Fact id, or the fact's exact text."),
    store: str = StoreOption, namespace: str = NamespaceOption, as_json: bool = JsonOption,
) -> None:
    """Forget a fact: the memory update is undone and its text deleted from the store."""
    def body() -> None:
        with _open(store, namespace) as memory:
            removed = memory.forget(fact)
        _emit([f.model_dump() for f in removed], as_json, lambda r: console.print(
            "forgot: " + "; ".join(f["text"] for f in r)))
    _run(body)


@app.command("list")
def list_facts(
    store: str = StoreOption, namespace: str = NamespaceOption, as_json: bool = JsonOption,
    filter: list[str] = FilterOption,
) -> None:
    """List the facts of a namespace (oldest first), optionally only those whose metadata
    matches every --filter FIELD=VALUE."""
    def body() -> None:
        from .store import open_store

        # Listing needs no model: read the fact log directly.
        with open_store(store) as db:
            facts = db.list_facts(namespace, where=_parse_filter(filter))
        rows = [{"id": f.id, "rows": f.rows.tolist(), "text": f.text, "key": f.key_text,
                 "metadata": f.metadata} for f in facts]

        def render(items: list[dict[str, Any]]) -> None:
            table = Table(title=f"namespace {namespace!r}: {len(items)} fact(s)")
            for column in ("id", "rows", "text"):
                table.add_column(column)
            for item in items:
                table.add_row(item["id"], " ".join(map(str, item["rows"])), item["text"])
            console.print(table)
        _emit(rows, as_json, render)
    _run(body)


@app.command()
def purge(
    store: str = typer.Option(None, "--store", help="SQLite file or postgresql:// DSN "
                              "(default: the SQLite file in the user data dir)."),
    key_file: Path = typer.Option(None, "--key-file", help="Key file of an encrypted store "
                                  "(default: $LARIMAR_KEY_FILE)."),
    as_json: bool = JsonOption,
) -> None:
    """Purge the bytes of forgotten facts from the store's files now (SQLite: checkpoint and
    truncate the WAL; PostgreSQL: rewrite the text tables, switch the WAL, checkpoint), and list
    what no purge reaches. Exit code 1 while a purge stays pending."""
    def body() -> None:
        from .store import open_store

        with open_store(store, key_file=key_file) as db:
            report = db.purge()

        def render(r: Any) -> None:
            state = "[green]purged[/green]" if r.purged else (
                f"[red]{r.pending or 'some'} purge(s) pending[/red] (a reader holds the old "
                "bytes; run again when it is done)")
            console.print(f"{state}; encryption {'on' if r.encrypted else 'off'}")
            console.print("Out of reach of any purge:")
            for line in r.out_of_reach:
                console.print(f"  - {line}")
        _emit(dataclasses.asdict(report), as_json, lambda _: render(report))
        if not report.purged:
            raise typer.Exit(1)
    _run(body)


@app.command()
def demo(
    store: Path = typer.Option(None, "--store", help="SQLite file (default: a temporary one)."),
    namespace: str = NamespaceOption,
    as_json: bool = JsonOption,
) -> None:
    """A scripted conversation: write facts, recall, correct one, forget one, and route an
    out-of-scope question to plain decoding, with timings."""
    from .demo import run_demo

    _run(lambda: run_demo(store=store, namespace=namespace, as_json=as_json, console=console))


MCP_TRANSPORTS = ("stdio", "streamable-http")


@app.command("mcp")
def mcp_command(
    url: str = typer.Option(
        None, "--url", help="A `larimar serve` URL: the memory lives there (this process needs "
        "no model stack). Default: a memory in this process on --store.",
    ),
    api_key: str = typer.Option(None, "--api-key", envvar="LARIMAR_API_KEY",
                                help="API key for --url (or $LARIMAR_API_KEY)."),
    store: str = StoreOption,
    namespace: str = NamespaceOption,
    transport: str = typer.Option("stdio", "--transport",
                                  help="stdio (hosts start the command) or streamable-http."),
    host: str = typer.Option("127.0.0.1", help="Interface for streamable-http."),
    port: int = typer.Option(8765, help="TCP port for streamable-http (path /mcp)."),
    tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Tiny random model (tests)."),
) -> None:
    """Serve the memory over the Model Context Protocol: tools remember / recall / forget /
    list, facts as resources (see docs/mcp.md for host configs)."""
    if transport not in MCP_TRANSPORTS:
        raise typer.BadParameter(f"choose one of {', '.join(MCP_TRANSPORTS)}",
                                 param_hint="--transport")
    if url and (store or tiny):
        raise typer.BadParameter("the memory is either on a server (--url) or in this process "
                                 "(--store); give one", param_hint="--url")

    def body() -> None:
        from .mcp_server import create_mcp_server

        if url:
            from .server.client import LarimarClient

            memory: Any = LarimarClient(url, api_key, namespace=namespace)
        elif tiny:
            from .testing import tiny_larimar

            memory = tiny_larimar(store, namespace=namespace)
        else:
            memory = _open(store, namespace)
        try:
            server = create_mcp_server(memory)
            if transport == "stdio":
                server.run("stdio")
            else:
                server.run("streamable-http", host=host, port=port)
        finally:
            memory.close()
    _run(body)


@bench_app.command("memory")
def bench_memory(
    out: Path = typer.Option(None, help="JSON file to write (PNG beside it)."),
    quick: bool = typer.Option(False, help="Only K=512, C=768, batches 1 and 100."),
) -> None:
    """Seconds per fact for write, forget and read of the raw memory math."""
    from .benchmarks import memory_bench

    results = memory_bench.run(out=out, quick=quick)
    table = Table(title="EpisodicMemory: ms per fact (p50)")
    for column in ("K", "C", "dtype", "batch", "write", "forget", "read", "state MB"):
        table.add_column(column, justify="right")
    for case in results["cases"]:
        per = case["seconds_per_fact"]
        table.add_row(
            str(case["slots"]), str(case["width"]), case["dtype"], str(case["batch"]),
            f"{per['write'] * 1e3:.4f}", f"{per['forget'] * 1e3:.4f}", f"{per['read'] * 1e3:.4f}",
            f"{case['state_bytes'] / 2**20:.1f}",
        )
    console.print(table)
    console.print(json.dumps(results["state_size_vs_facts"]))


@bench_app.command("service")
def bench_service(
    out: Path = typer.Option(None, help="JSON file to write (PNG beside it)."),
    facts: int = typer.Option(200, help="Facts written one by one for the latency figures."),
    tiny: bool = typer.Option(False, help="Tiny random model (for a smoke run)."),
    threads: int = ThreadsOption,
    recall_facts: int = typer.Option(10000, help="Facts in the namespace recall(k=5) searches."),
    store: str = typer.Option(None, "--store", help="postgresql:// DSN or SQLite file "
                              "(default: a temporary SQLite file)."),
    encrypt: bool = typer.Option(False, "--encrypt", help="Create the store with a key file "
                                 "(encryption at rest, crypto-shredding)."),
) -> None:
    """Latency of remember/forget/recall/ask on the packaged models, against LangChain's
    InMemoryVectorStore and LlamaIndex's VectorStoreIndex on the same embeddings."""
    _set_threads(threads)
    from .benchmarks import service_bench

    results = service_bench.run(out=out, facts=facts, tiny=tiny, recall_facts=recall_facts,
                                store=store, encrypt=encrypt)
    table = Table(title="Larimar service (ms)")
    for column in ("operation", "p50", "p95", "target"):
        table.add_column(column, justify="right")
    for name, row in results["larimar"].items():
        if isinstance(row, dict) and "p50_ms" in row:
            table.add_row(name, f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}",
                          str(row.get("target_ms", "")))
    console.print(table)
    console.print(json.dumps({k: v for k, v in results.items() if k not in ("larimar",)},
                             indent=1, default=str))


@bench_app.command("replicas")
def bench_replicas(
    out: Path = typer.Option(None, help="JSON file to write (PNG beside it)."),
    facts: int = typer.Option(10000, help="Facts in the shared namespace."),
    ops: int = typer.Option(20, help="Writes and recalls timed per mode."),
    tiny: bool = typer.Option(False, help="Tiny random model (for a smoke run)."),
    backend: str = typer.Option("sqlite", help="sqlite, or postgres ($LARIMAR_BENCH_PG_DSN)."),
    threads: int = ThreadsOption,
) -> None:
    """Two replicas on one store: lone vs alternating writes, recall after a foreign write,
    cold first recall, bytes per fact."""
    _set_threads(threads)
    from .benchmarks import replica_bench

    pg_dsn = None
    if backend == "postgres":
        from .benchmarks.server_bench import pg_dsn_from_env

        pg_dsn = pg_dsn_from_env()
        if not pg_dsn:
            raise typer.BadParameter("--backend postgres needs $LARIMAR_BENCH_PG_DSN (a "
                                     "throwaway database: each run makes and drops a schema)")
    elif backend != "sqlite":
        raise typer.BadParameter(f"unknown backend {backend!r}; choose sqlite or postgres")
    results = replica_bench.run(out=out, facts=facts, ops=ops, tiny=tiny, pg_dsn=pg_dsn)
    console.print(json.dumps({k: results[k] for k in ("latency", "grows_with_namespace",
                                                      "bytes", "targets_met")}, indent=1))


@bench_app.command("ask")
def bench_ask(
    out: Path = typer.Option(None, help="JSON file to write (PNG beside it)."),
    weights: str = typer.Option("float32,float16,int8,onnx-int8",
                                help="decoder_weights to compare."),
    rounds: int = typer.Option(6, help="Rounds of the ten questions per variant."),
    startup_repeats: int = typer.Option(0, "--startup", help="Also time start-up: fresh "
                                        "processes per variant (this many each)."),
    models: str = typer.Option("larimar-smol", help="Checkpoints to compare (packaged names "
                               "or folders, comma-separated)."),
    serve: bool = typer.Option(False, "--serve", help="Also through a `larimar serve` "
                               "subprocess per weight format (the packaged model)."),
    threads: int = ThreadsOption,
) -> None:
    """`ask` p50/p95 per decoder weight format and route, in one process, interleaved."""
    _set_threads(threads)
    from .benchmarks import ask_bench

    results = ask_bench.run(tuple(weights.split(",")), rounds, startup_repeats, threads, out,
                            models=tuple(models.split(",")), serve=serve)
    console.print(json.dumps({k: results[k] for k in ("latency", "startup") if k in results},
                             indent=1))


@bench_app.command("block")
def bench_block(
    out: Path = typer.Option(None, help="JSON file to write (PNG beside it)."),
    facts: list[int] = typer.Option([1000, 10000], help="Namespace sizes (repeat the option)."),
    turns: int = typer.Option(30, help="Questions timed per size."),
    tiny: bool = typer.Option(False, help="Tiny random model (for a smoke run)."),
    threads: int = ThreadsOption,
) -> None:
    """LlamaIndex's LarimarMemoryBlock.aget per turn as the namespace grows, beside recall."""
    _set_threads(threads)
    from .benchmarks import block_bench

    results = block_bench.run(out=out, sizes=tuple(facts), turns=turns, tiny=tiny)
    console.print(json.dumps({k: results[k] for k in ("sizes", "target")}, indent=1))


@bench_app.command("capacity")
def bench_capacity(
    out: Path = typer.Option(None, help="JSON file to write (PNG beside it)."),
    sizes: str = typer.Option("100,1000,10000,20000", help="Namespace sizes, comma-separated."),
    sample: int = typer.Option(1000, help="Facts checked for exact readback at each size."),
    tiny: bool = typer.Option(False, help="Tiny random model (for a smoke run)."),
    threads: int = ThreadsOption,
) -> None:
    """One namespace at 100 … 20,000 real facts: exact readback, write/forget/recall time,
    bytes per fact; LoCoMo dev evidence recall@k against cosine top-k."""
    _set_threads(threads)
    from .benchmarks import capacity_bench

    results = capacity_bench.run(
        out=out, sizes=tuple(int(s) for s in sizes.split(",")), sample=sample, tiny=tiny
    )
    table = Table(title="Larimar capacity (p50 ms)")
    for column in ("facts", "exact", "remember", "forget", "recall k=5", "KB/fact"):
        table.add_column(column, justify="right")
    for row in results["sizes"]:
        table.add_row(
            str(row["facts"]), f"{row['exact_readback']:.3f}",
            f"{row['remember_one']['p50_ms']:.1f}", f"{row['forget_one']['p50_ms']:.1f}",
            f"{row['recall_k5']['p50_ms']:.1f}", f"{row['bytes_per_fact'] / 1e3:.1f}",
        )
    console.print(table)
    console.print(json.dumps(results["locomo_dev"], indent=1))


@bench_app.command("server")
def bench_server(
    out: Path = typer.Option(None, help="JSON file to write (PNG beside it)."),
    backends: str = typer.Option("sqlite,postgres", help="Store backends, comma-separated "
                                 "(postgres needs $LARIMAR_BENCH_PG_DSN)."),
    clients: str = typer.Option("1,4,16", help="Concurrent clients, comma-separated."),
    duration: float = typer.Option(10.0, help="Seconds per (operation, clients) phase."),
    tiny: bool = typer.Option(False, help="Tiny random model (server and store only)."),
    torch_threads: int = typer.Option(1, help="--torch-threads of the served process."),
    namespaces: int = typer.Option(0, min=0, help="Many-namespace mode: this many namespaces "
                                   "of --facts facts, requests on random ones (first client "
                                   "count only)."),
    facts: int = typer.Option(100, min=1, help="Facts per namespace (many-namespace mode)."),
    cache_mb: float = typer.Option(256.0, min=0, help="--cache-mb of the served process "
                                   "(many-namespace mode)."),
    workers: str = typer.Option("", help="Worker mode: worker counts, e.g. 1,2,4, each on a "
                                "fresh store (first backend only), with a count of every "
                                "fact afterwards."),
) -> None:
    """`larimar serve` in a subprocess under concurrent loopback clients: remember/recall
    requests per second and p50/p95/p99 latency per backend and client count. With
    --namespaces: many namespaces over a small cache (RSS, hit rate, store size); with
    --workers: the throughput curve per worker count."""
    from .benchmarks import server_bench

    logging.getLogger("httpx").setLevel(logging.WARNING)
    backend_list = tuple(backends.split(","))
    client_list = tuple(int(c) for c in clients.split(","))
    if namespaces:
        from .benchmarks import namespace_bench

        results = namespace_bench.run(
            out=out, backends=backend_list, namespaces=namespaces, facts=facts,
            clients=client_list[0], duration=duration, cache_mb=cache_mb, tiny=tiny,
            torch_threads=torch_threads)
        console.print(json.dumps(namespace_bench.summary(results), indent=1))
        return
    if workers:
        from .benchmarks import worker_bench

        results = worker_bench.run(
            out=out, backend=backend_list[0], workers=tuple(int(w) for w in workers.split(",")),
            clients=client_list, duration=duration, tiny=tiny, torch_threads=torch_threads)
        console.print(json.dumps(worker_bench.summary(results), indent=1))
        return
    results = server_bench.run(
        out=out, backends=backend_list, clients=client_list, duration=duration, tiny=tiny,
        torch_threads=torch_threads,
    )
    table = Table(title="larimar serve over loopback")
    for column in ("backend", "operation", "clients", "req/s", "p50 ms", "p95 ms",
                   "server CPU ms/req", "client CPU ms/req", "errors"):
        table.add_column(column, justify="right")
    for row in results["summary"]:
        table.add_row(row["backend"], row["operation"], str(row["clients"]), f"{row['rps']:.1f}",
                      f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}", f"{row['server_cpu_ms']:.2f}",
                      f"{row['client_cpu_ms']:.2f}", str(row["errors"]))
    console.print(table)
    if results["skipped"]:
        console.print(json.dumps(results["skipped"], indent=1))


@bench_app.command("imports")
def bench_imports(
    out: Path = typer.Option(None, help="JSON file to write."),
    repeats: int = typer.Option(7, min=1, help="Fresh interpreters per statement."),
) -> None:
    """Import time of the client, the integrations and the MCP server in fresh interpreters,
    and whether each loaded the model stack (remote mode must not)."""
    from .benchmarks import import_bench

    results = import_bench.run(out=out, repeats=repeats)
    table = Table(title="imports in a fresh interpreter (ms)")
    for column in ("import", "median", "min", "target", "model stack"):
        table.add_column(column, justify="right")
    for row in results["imports"]:
        if "error" in row:
            table.add_row(row["statement"], "-", "-", "", "not installed")
            continue
        table.add_row(row["statement"], f"{row['median_ms']:.0f}", f"{row['min_ms']:.0f}",
                      str(row["target_ms"] or ""), ", ".join(row["model_stack_imported"]) or "none")
    console.print(table)


def _mount_subcommands() -> None:
    """Sub-commands whose modules own their options; imported lazily where heavy."""
    from .eval.cli import eval_app
    from .server.cli import serve
    from .training.cli import train_command

    app.command("train", help="Train a recipe (larimar train --list); resumes when rerun.")(
        train_command
    )
    app.command("serve", help="Run the memory server (FastAPI + uvicorn).")(serve)
    app.add_typer(eval_app, name="eval")


_mount_subcommands()


def main() -> None:  # pragma: no cover - console entry
    if os.environ.get("LARIMAR_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    app()
