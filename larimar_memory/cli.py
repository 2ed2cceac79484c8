"""The `larimar` command (typer + rich). Rich output lives here only; the library logs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Larimar episodic memory for LLM agents.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: print figures and save JSON/PNG under docs/results/.")
app.add_typer(bench_app, name="bench")
console = Console()


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


def main() -> None:  # pragma: no cover - console entry
    app()
