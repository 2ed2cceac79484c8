"""The ``larimar train`` command (typer). The main CLI mounts ``train_command``:

    app.command("train")(train_command)

``train_app`` runs it standalone: ``python -m larimar_memory.training tiny trainer.max_steps=5``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from ..errors import LarimarError
from .config import available_recipes, load_config

train_app = typer.Typer(add_completion=False, help="Train Larimar (encoder, memory, decoder).")


def train_command(
    recipe: Annotated[
        str, typer.Argument(help="packaged recipe name (see --list) or a path to a YAML recipe")
    ] = "",
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="config overrides such as trainer.max_steps=10 data.episode_size=4"),
    ] = None,
    list_recipes: Annotated[
        bool, typer.Option("--list", help="list the packaged recipes and exit")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="validate the recipe and overrides, then exit")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="save the run's last checkpoint (or checkpoint.resume=PATH) as a model folder "
            "at this path, without training; a run in progress keeps going",
        ),
    ] = None,
) -> None:
    """Train with a recipe; rerun the same command to resume from the last checkpoint."""
    if list_recipes or not recipe:
        typer.echo("\n".join(available_recipes()))
        return
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .recipe import train

    try:
        if check:
            cfg = load_config(recipe, overrides or [])
            typer.echo(f"{cfg.name}: valid ({cfg.trainer.max_steps} steps → "
                       f"{cfg.resolved_output_dir()})")
            return
        if export is not None:
            from .recipe import export_run

            typer.echo(f"model: {export_run(load_config(recipe, overrides or []), export)}")
            return
        out = train(recipe, overrides or [])
    except LarimarError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # the other processes of a multi-process run stay quiet
        return
    summary = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    first = summary["summary"].get("train_first", {}).get("total")
    last = summary["summary"].get("train_last", {}).get("total")
    val = {k: round(v, 4) for k, v in summary["summary"].get("val_last", {}).items()}
    typer.echo(f"trained {summary['recipe']} for {summary['steps']} steps in "
               f"{summary['seconds']:.0f}s: total loss {_num(first)} → {_num(last)}")
    if val:
        typer.echo(f"validation: {val}")
    typer.echo(f"run folder: {out}")
    typer.echo(f"model:      {out / 'model'}")
    typer.echo(f"metrics:    {out / 'metrics.json'}, {out / 'metrics.png'}")


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


train_app.command()(train_command)
