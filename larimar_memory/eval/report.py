"""Writing results: one JSON per experiment (metrics, settings, the paper's numbers) and PNG
curves where a picture reads better than a table."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


# Result files are named by what they measure, not by dataset, so a results folder never looks
# like a copy of the benchmark data it was computed from.
_STEMS = {"counterfact": "single-fact-editing", "zsre": "question-editing"}


def file_stem(experiment: str) -> str:
    return f"eval-{_STEMS.get(experiment, experiment)}"


def save_json(payload: dict[str, Any], out_dir: Path, experiment: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{file_stem(experiment)}.json"
    path.write_text(json.dumps(payload, indent=1, default=_jsonable) + "\n", encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def plot_curves(
    out_dir: Path,
    experiment: str,
    series: dict[str, tuple[Sequence[float], Sequence[float | None]]],
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    secondary: dict[str, tuple[Sequence[float], Sequence[float | None]]] | None = None,
    secondary_label: str = "",
) -> Path:
    """Lines ``name -> (x, y)`` (None values skipped), optionally a second axis, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    _draw(ax, series, "o-", _PRIMARY)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log", base=2)
    if "%" in ylabel:
        ax.set_ylim(-3, 103)
    lines, labels = ax.get_legend_handles_labels()
    if secondary:
        twin = ax.twinx()
        _draw(twin, secondary, "s--", _SECONDARY)
        twin.set_ylabel(secondary_label)
        more = twin.get_legend_handles_labels()
        lines, labels = lines + more[0], labels + more[1]
    if lines:
        ax.legend(lines, labels, fontsize=8, loc="best")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{file_stem(experiment)}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


_PRIMARY = ("tab:blue", "tab:orange", "tab:green", "tab:red")
_SECONDARY = ("tab:gray", "tab:purple", "tab:brown", "tab:olive")


def _draw(ax: Any, series: dict[str, tuple[Sequence[float], Sequence[float | None]]],
          style: str, colors: Sequence[str]) -> None:
    for i, (name, (xs, ys)) in enumerate(series.items()):
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=name, markersize=4,
                    color=colors[i % len(colors)])
