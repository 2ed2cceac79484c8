"""`larimar eval answers`: the command (kept light: models and frameworks load when it starts)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .options import RESULTS_DIR

console = Console()
err_console = Console(stderr=True)


def _names(text: str | None) -> list[str] | None:
    return [x for x in text.replace(" ", "").split(",") if x] if text else None


def answers_command(
    systems: str = typer.Option("ask,query-engine,chat", "--systems",
                                help="Comma-separated: ask, query-engine, chat."),
    dialogues: str = typer.Option(None, "--dialogues",
                                  help="Comma-separated dialogue ids (default: all packaged)."),
    dialogue_data: list[Path] = typer.Option(None, "--dialogue-data",
                                             help="YAML file of dialogues (repeatable)."),
    skip_dialogues: bool = typer.Option(False, "--skip-dialogues"),
    locomo: Path = typer.Option(None, "--locomo", help="LoCoMo JSON (default: the dev copy)."),
    locomo_questions: int = typer.Option(None, "--locomo-questions", min=1,
                                         help="Single-hop questions per conversation "
                                              "(default: all)."),
    skip_locomo: bool = typer.Option(False, "--skip-locomo"),
    without_memory: bool = typer.Option(True, "--without-memory/--with-memory-only",
                                        help="Also ask every question of an empty namespace."),
    ask_k: int = typer.Option(None, "--ask-k", min=1, max=64,
                              help="Facts read per answer for every system (default: each "
                                   "system's own)."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", min=1, max=1024),
    copy_bias: float = typer.Option(None, "--copy-bias", min=0, max=50,
                                    help="LarimarSettings.copy_bias (default: its own)."),
    spell_as_stored: bool = typer.Option(None, "--spell-as-stored/--free-spelling",
                                         help="LarimarSettings.spell_as_stored (default: its "
                                              "own, on)."),
    decoder_weights: str = typer.Option(None, "--decoder-weights",
                                        help="int8, float16, float32 or onnx-int8 (default: "
                                             "LarimarSettings' own, int8)."),
    model: str = typer.Option(None, "--model", help="Model folder (save_pretrained) or packaged "
                                                    "name (default: the packaged one)."),
    tiny: bool = typer.Option(False, "--tiny", help="Tiny random model (smoke test)."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads."),
    out: Path = typer.Option(RESULTS_DIR, "--out", help="Output folder."),
    name: str = typer.Option("eval-answers", "--name", help="File stem of the JSON and PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the summary as a Markdown "
                                                             "table (for docs/results.md)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log to stderr."),
) -> None:
    """Answers from memory: `ask`, `LarimarQueryEngine` and `ChatLarimar` on the dialogue suite
    and LoCoMo dev single-hop questions; answer containment and token F1 by route, with the
    facts stored and with nothing stored."""
    from pydantic import ValidationError

    from ..errors import LarimarError
    from .answers import AnswerOptions, markdown_table, run_answers, save, table_rows

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    try:
        options = AnswerOptions(
            systems=_names(systems) or [], dialogues=_names(dialogues),
            dialogue_data=dialogue_data or None, skip_dialogues=skip_dialogues, locomo=locomo,
            locomo_questions=locomo_questions, skip_locomo=skip_locomo,
            without_memory=without_memory, ask_k=ask_k, max_new_tokens=max_new_tokens,
            copy_bias=copy_bias, spell_as_stored=spell_as_stored,
            decoder_weights=decoder_weights, model=model, tiny=tiny,
            threads=threads)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from None
    from rich.progress import Progress

    try:
        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task("dialogues and conversations", total=None)
            payload = run_answers(options, progress=lambda: bar.advance(task))
    except ImportError as exc:
        raise typer.BadParameter(f"{exc}; install the integrations: pip install -e "
                                 "integrations/langchain -e integrations/llama-index") from None
    except LarimarError as exc:
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(2) from None
    path, png = save(payload, out, name)
    if as_json:
        typer.echo(json.dumps(payload["summary"], indent=1))
    elif markdown:
        typer.echo(markdown_table(payload))
    else:
        header, *rows = table_rows(payload)
        table = Table(*header, title=f"larimar eval answers ({payload['seconds']} s)")
        for row in rows:
            table.add_row(*row)
        Console(width=max(console.width, 160)).print(table)
    console.print(f"wrote {path}" + (f" and {png}" if png else ""))
