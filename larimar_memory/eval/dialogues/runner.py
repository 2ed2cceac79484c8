"""Drives every dialogue through every mode and transport, scores the runs, saves JSON and PNG.

One memory per transport serves all modes and dialogues; each (mode, dialogue) has its own user
and so its own namespaces, so runs do not see each other. A turn that raises is recorded with
its error and the dialogue goes on; a turn never reached counts as failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .schema import Dialogue, load_dialogues
from .scoring import DialogueRun, Score, TurnRecord, score_run

logger = logging.getLogger(__name__)
Transport = Literal["in-process", "server"]
TRANSPORTS: tuple[Transport, ...] = ("in-process", "server")
RESULT_NAME = "eval-dialogues"
FIGURES = [("asked_in_context_pct", "asked facts in context %"),
           ("off_topic_clean_pct", "off-topic given no memory %"),
           ("removals_in_effect_pct", "forgets/corrections in effect %"),
           ("stated_stored_pct", "stated facts stored %")]


class DialogueOptions(BaseModel):
    """What to run (the CLI's flags)."""

    model_config = ConfigDict(extra="forbid")

    modes: list[str] = Field(default_factory=lambda: list(_modes()))
    transports: list[Transport] = Field(default_factory=lambda: list(TRANSPORTS))
    dialogues: list[str] | None = Field(None, description="dialogue ids; None: all")
    data: list[Path] | None = Field(None, description="YAML files; None: the packaged ones")
    tiny: bool = Field(False, description="the tiny random model (smoke tests), not Larimar()")
    threads: int = Field(1, ge=1)


def _modes() -> tuple[str, ...]:
    from .modes import MODES

    return MODES


def check_modes(modes: list[str]) -> list[str]:
    known = _modes()
    unknown = [m for m in modes if m not in known]
    if unknown or not modes:
        raise ValueError(f"unknown modes {unknown or modes}; choose from {', '.join(known)}")
    return modes


@contextlib.contextmanager
def open_memory(transport: Transport, tiny: bool, threads: int) -> Iterator[Any]:
    """The `MemoryBackend` of a transport: a fresh `Larimar` on a temporary store, or a client
    of a fresh ``larimar serve`` subprocess."""
    import tempfile

    if transport == "server":
        from .transports import serve

        with serve(tiny=tiny, threads=threads) as client:
            yield client
        return
    with tempfile.TemporaryDirectory(prefix="larimar-dialogues-") as tmp:
        store = Path(tmp) / "facts.sqlite3"
        if tiny:
            from ...testing import tiny_larimar

            memory = tiny_larimar(store, model_overrides={
                "latent": "token-codes", "num_latent_tokens": 48, "max_text_tokens": 47})
        else:
            from ...service import Larimar

            memory = Larimar(store=store)
        try:
            yield memory
        finally:
            memory.close()


def run_dialogue(setup: Any, dialogue: Dialogue, mode: str, transport: str) -> DialogueRun:
    """Every turn of ``dialogue`` through ``setup`` (a built mode), with the memory's contents
    read after each turn (outside the timed part)."""
    run = DialogueRun(dialogue=dialogue.id, mode=mode, transport=transport)
    session = -1
    for index, turn in dialogue.turns:
        if index != session:
            session = index
            setup.start_session(index)
        record = TurnRecord(session=index, kind=turn.kind, say=turn.say)
        try:
            start = time.perf_counter()
            try:
                record.context = setup.turn(turn)
            finally:
                record.latency_s = time.perf_counter() - start
            record.stored_after = setup.stored()
        except Exception as exc:  # noqa: BLE001 - a failing turn is a result, recorded
            logger.warning("%s/%s/%s: %r failed: %s", transport, mode, dialogue.id, turn.say, exc)
            record.error = f"{type(exc).__name__}: {exc}"
        run.turns.append(record)
    try:
        run.final_stored = setup.stored()
    except Exception as exc:  # noqa: BLE001
        run.error = f"{type(exc).__name__}: {exc}"
    return run


def run_suite(options: DialogueOptions, progress: Any = None) -> dict[str, Any]:
    """The runs and their scores per mode × transport, as the JSON payload."""
    from . import modes as mode_builders

    check_modes(options.modes)
    dialogues = load_dialogues(options.data, options.dialogues)
    by_cell: dict[tuple[str, str], Score] = {}
    started = time.perf_counter()
    for transport in options.transports:
        with open_memory(transport, options.tiny, options.threads) as memory:
            for mode in options.modes:
                for dialogue in dialogues:
                    try:
                        setup = mode_builders.build(mode, memory, dialogue)
                        run = run_dialogue(setup, dialogue, mode, transport)
                    except Exception as exc:  # noqa: BLE001 - a set-up that fails is a result
                        run = DialogueRun(dialogue=dialogue.id, mode=mode, transport=transport,
                                          error=f"{type(exc).__name__}: {exc}")
                    cell = (mode, transport)
                    by_cell[cell] = by_cell.get(cell, Score()).add(score_run(dialogue, run))
                    if progress is not None:
                        progress()
    return {
        "experiment": "dialogues",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {**options.model_dump(mode="json"),
                     "model": "tiny random" if options.tiny else "Larimar() packaged models",
                     "dialogues_run": [d.id for d in dialogues],
                     "server_namespace_mapping": "user:x -> user_cx (server alphabet)"},
        "seconds": round(time.perf_counter() - started, 1),
        "results": [{"mode": mode, "transport": transport, **score.summary()}
                    for (mode, transport), score in by_cell.items()],
        "failures": {f"{mode} / {transport}": [f.model_dump() for f in score.failures]
                     for (mode, transport), score in by_cell.items()},
    }


def table_rows(payload: dict[str, Any]) -> list[list[str]]:
    """Header and rows of the summary table."""
    header = ["mode", "transport", "asked in ctx %", "off-topic clean %", "forget/correct %",
              "stated stored %", "wrong forgets", "lost", "leaked", "stale", "errors",
              "median ms", "p95 ms"]
    keys = ["asked_in_context_pct", "off_topic_clean_pct", "removals_in_effect_pct",
            "stated_stored_pct", "wrong_forgets", "lost_facts", "leaked_facts",
            "stale_in_context", "errors",
            "latency_ms_median", "latency_ms_p95"]
    rows = [[r["mode"], r["transport"], *("-" if r[k] is None else str(r[k]) for k in keys)]
            for r in payload["results"]]
    return [header, *rows]


def markdown_table(payload: dict[str, Any]) -> str:
    header, *rows = table_rows(payload)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def save(payload: dict[str, Any], out_dir: Path) -> tuple[Path, Path | None]:
    """``eval-dialogues.json`` and a bar chart ``eval-dialogues.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{RESULT_NAME}.json"
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    results = payload["results"]
    if not results:
        return path, None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['mode']}\n{r['transport']}" for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.5 * len(results) + 2), sharey=True)
    left = [(FIGURES, 100.0), ([("wrong_forgets", "wrong forgets"), ("lost_facts", "lost facts")],
                               None), ([("latency_ms_median", "median turn ms")], None)]
    for ax, (series, xmax) in zip(axes, left, strict=True):
        height = 0.8 / len(series)
        for j, (key, name) in enumerate(series):
            values = [r[key] or 0 for r in results]
            ax.barh([i + j * height for i in range(len(results))], values, height=height,
                    label=name)
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(results))], labels, fontsize=8)
        if xmax:
            ax.set_xlim(0, xmax)
        ax.invert_yaxis()
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"larimar eval dialogues ({len(payload['settings']['dialogues_run'])} "
                 f"dialogues, {payload['settings']['model']})")
    fig.tight_layout()
    png = out_dir / f"{RESULT_NAME}.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return path, png
