"""`larimar eval EXPERIMENT`: the typer sub-app (mounted by the main CLI as ``eval``).

Every experiment is a subcommand with the same options; results go to
``docs/results/eval-<experiment>.json`` (and ``.png`` for curves) unless ``--out`` says otherwise.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from .answers_cli import answers_command
from .dialogues.cli import dialogues_command
from .experiments import EXPERIMENTS, Experiment
from .locomo_cli import locomo_command
from .options import RESULTS_DIR, EvalOptions

eval_app = typer.Typer(
    help="The paper's experiments on a Larimar model; JSON (and PNG curves) under docs/results/.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

DataOption = typer.Option(
    None, "--data", help="Data file (default: the experiment's file under $LARIMAR_DATA or "
                         "../shared/data; see `larimar eval list`).",
)
OutOption = typer.Option(RESULTS_DIR, "--out", help="Output folder.")


def _parse_sweep(text: str | None) -> list[float] | None:
    if text is None or not text.strip():
        return None
    try:
        return [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(f"--sweep takes comma-separated numbers, got {text!r}") from None


def _print_summary(payload: dict[str, Any]) -> None:
    table = Table(title=f"{payload['experiment']} — {payload['model']} "
                        f"({payload['seconds']:.1f} s)")
    table.add_column("metric")
    table.add_column("ours", justify="right")
    for key, value in payload.get("summary", {}).items():
        shown = "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
        table.add_row(key, shown)
    console.print(table)
    console.print(f"[dim]{payload['model_description']}[/dim]")


def _make_command(experiment: Experiment) -> None:
    def command(
        model: str = typer.Option(
            "larimar-smol", "--model", "-m",
            help="'larimar-smol', a checkpoint folder, or 'tiny' (random tiny model, smoke test).",
        ),
        data: Path = DataOption,
        limit: int = typer.Option(None, "--limit", min=1, help="Records / edits / queries to use."),
        out: Path = OutOption,
        block_rows: int = typer.Option(
            512, "--block-rows", min=1,
            help="K per block of the service's memory (BlockMemory, LarimarSettings.block_rows)."),
        paper_slots: int = typer.Option(
            512, "--paper-slots", min=1,
            help="K of the paper's single memory (sequential, batch; paper: 512)."),
        sample: int = typer.Option(None, "--sample", min=1,
                                   help="Cap on facts decoded per point of a sweep."),
        sweep: str = typer.Option(None, "--sweep",
                                  help="Comma-separated sweep values (batch sizes, n_fact, σ_w, "
                                       "N, edit counts, curve points) replacing the defaults."),
        seed: int = typer.Option(0, "--seed"),
        batch_size: int = typer.Option(16, "--batch-size", min=1, help="Rows per forward."),
        max_new_tokens: int = typer.Option(12, "--max-new-tokens", min=1),
        device: str = typer.Option(None, "--device", help="torch device (default: CPU)."),
        as_json: bool = typer.Option(False, "--json", help="Print the JSON payload."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress to stderr."),
    ) -> None:
        from ..errors import LarimarError
        from .context import load_context
        from .runner import run_experiment

        if verbose:
            logging.basicConfig(level=logging.INFO)
        options = EvalOptions(
            data=data, limit=limit, out_dir=out, block_rows=block_rows, paper_slots=paper_slots,
            sample=sample, sweep=_parse_sweep(sweep), seed=seed, batch_size=batch_size,
            max_new_tokens=max_new_tokens,
        )
        try:
            ctx = load_context(model, options, device=device)
            result = run_experiment(experiment.name, ctx)
        except LarimarError as exc:
            err_console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(result.payload, indent=1, default=str))
        else:
            _print_summary(result.payload)
        console.print(f"wrote {result.path}")

    command.__name__ = f"eval_{experiment.name.replace('-', '_')}"
    text = experiment.description
    eval_app.command(experiment.name, help=text[:1].upper() + text[1:] + ".")(command)


for _experiment in EXPERIMENTS.values():
    _make_command(_experiment)

eval_app.command("locomo")(locomo_command)
eval_app.command("dialogues")(dialogues_command)
eval_app.command("answers")(answers_command)


@eval_app.command("scope")
def scope_command(
    model: str = typer.Option("larimar-smol", "--model", "-m",
                              help="'larimar-smol', a checkpoint folder, or 'tiny'."),
    data: Path = typer.Option(None, "--data", help="LoCoMo JSON (default: the dev copy)."),
    negatives: int = typer.Option(200, "--negatives", min=10,
                                  help="Off-topic questions per conversation."),
    out: Path = typer.Option(RESULTS_DIR, "--out", help="Folder for JSON + PNG."),
) -> None:
    """Calibrate the relevance score's scope point: LoCoMo dev vs off-topic questions."""
    from .scope_calibration import run_scope_calibration, save_scope

    payload = run_scope_calibration(model, data, negatives)
    paths = save_scope(payload, out)
    console.print_json(json.dumps({k: payload[k] for k in ("counts", "auc", "fitted", "in_use")}))
    console.print(f"saved {paths[0]} and {paths[1]}")


@eval_app.command("context-point")
def context_point_command(
    tiny: bool = typer.Option(False, "--tiny", help="Tiny random model (smoke test)."),
    k: int = typer.Option(3, "--k", min=1, help="Hits recalled per question."),
    miss_cost: float = typer.Option(2.0, "--miss-cost", min=0.0,
                                    help="Cost of a missed fact, in unrelated facts shown."),
    data: list[Path] = typer.Option(None, "--data", help="YAML file of dialogues instead of the "
                                    "packaged ones (repeatable)."),
    out: Path = typer.Option(RESULTS_DIR, "--out", help="Folder for JSON + PNG."),
) -> None:
    """The context point on the dialogue suite: questions about the user given the memory that
    answers them vs questions it cannot answer, shown to a model at each point."""
    from .dialogues.context_point import run_context_point, save_context_point

    payload = run_context_point(tiny=tiny, k=k, miss_cost=miss_cost, data=data or None)
    paths = save_context_point(payload, out)
    console.print_json(json.dumps({k: payload[k] for k in
                                   ("counts", "auc_best_hit_score", "scope_point", "chosen",
                                    "in_use")}))
    console.print(f"saved {paths[0]} and {paths[1]}")


@eval_app.command("list")
def list_experiments() -> None:
    """List the experiments and their default data files."""
    table = Table(title="larimar eval EXPERIMENT")
    for column in ("experiment", "what", "default data"):
        table.add_column(column)
    for e in EXPERIMENTS.values():
        table.add_row(e.name, e.description, e.default_data)
    console.print(table)
