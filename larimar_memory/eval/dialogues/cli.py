"""`larimar eval dialogues`: the command (kept light: the frameworks load when it starts)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..options import RESULTS_DIR

console = Console()
err_console = Console(stderr=True)


def _names(text: str | None) -> list[str] | None:
    return [x for x in text.replace(" ", "").split(",") if x] if text else None


def dialogues_command(
    modes: str = typer.Option(None, "--modes", help="Comma-separated modes (default: all): "
                              "middleware, middleware+tools, store, store+scope, llama-memory, "
                              "llama-query-engine."),
    transports: str = typer.Option("in-process,server", "--transports",
                                   help="in-process (a Larimar) and/or server (larimar serve "
                                        "subprocess through LarimarClient)."),
    dialogues: str = typer.Option(None, "--dialogues", help="Comma-separated dialogue ids "
                                  "(default: all packaged ones)."),
    data: list[Path] = typer.Option(None, "--data", help="YAML file of dialogues instead of the "
                                    "packaged ones (repeatable)."),
    tiny: bool = typer.Option(False, "--tiny", help="Tiny random model (smoke test)."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads."),
    out: Path = typer.Option(RESULTS_DIR, "--out", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON payload."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log turn failures to stderr."),
) -> None:
    """Agent memory end to end: annotated multi-session dialogues (facts stated, asked in other
    words, off-topic questions, corrections, forgets) through LangChain and LlamaIndex agents,
    in process and over HTTP; recall, scope, forgets, lost facts and latency per mode."""
    import torch

    from ...errors import LarimarError
    from .runner import DialogueOptions, check_modes, run_suite, save, table_rows

    logging.basicConfig(level=logging.WARNING if verbose else logging.ERROR)
    torch.set_num_threads(threads)
    try:
        options = DialogueOptions(transports=_names(transports) or [], dialogues=_names(dialogues),
                                  data=data or None, tiny=tiny, threads=threads,
                                  **({"modes": check_modes(_names(modes) or [])} if modes else {}))
    except ImportError as exc:
        raise typer.BadParameter(f"{exc}; install the integrations: pip install -e "
                                 "integrations/langchain[test] -e integrations/llama-index"
                                 ) from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    from .schema import load_dialogues

    try:
        total = len(load_dialogues(options.data, options.dialogues))
        total *= len(options.modes) * len(options.transports)
        from rich.progress import Progress

        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task("dialogues", total=total)
            payload = run_suite(options, progress=lambda: bar.advance(task))
    except LarimarError as exc:
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(2) from None
    path, png = save(payload, out)
    if as_json:
        typer.echo(json.dumps(payload, indent=1, default=str))
    else:
        header, *rows = table_rows(payload)
        table = Table(*header, title=f"larimar eval dialogues ({payload['seconds']} s)")
        for row in rows:
            table.add_row(*row)
        Console(width=max(console.width, 150)).print(table)
    console.print(f"wrote {path}" + (f" and {png}" if png else ""))
