"""Metric history kept through checkpoints, written at the end as JSON and a PNG."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

logger = logging.getLogger(__name__)


def _floats(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if not key.startswith(prefix):
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[key[len(prefix) :]] = float(value)
    return out


class MetricsHistory(pl.Callback):
    """Records logged training terms every ``every`` steps and every validation result.

    Its state goes into Lightning checkpoints, so a resumed run plots its whole history.
    """

    def __init__(self, every: int = 10) -> None:
        self.every = every
        self.train: list[dict[str, float]] = []
        self.val: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        step = trainer.global_step
        if step % self.every and step not in (1, trainer.max_steps):
            return
        if self.train and self.train[-1]["step"] == step:  # accumulation: one row per step
            return
        row = _floats(trainer.callback_metrics, "train/")
        if row:
            self.train.append({"step": step, **row})

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row = _floats(trainer.callback_metrics, "val/")
        if row:
            self.val = [r for r in self.val if r["step"] != trainer.global_step]
            self.val.append({"step": trainer.global_step, **row})

    def state_dict(self) -> dict[str, Any]:
        return {"train": self.train, "val": self.val, "every": self.every}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train = list(state_dict.get("train", []))
        self.val = list(state_dict.get("val", []))

    def summary(self) -> dict[str, Any]:
        """First and last values of every training term and the last validation row."""
        out: dict[str, Any] = {}
        if self.train:
            first, last = self.train[0], self.train[-1]
            out["train_first"] = first
            out["train_last"] = last
        if self.val:
            out["val_last"] = self.val[-1]
        return out


def write_metrics(history: MetricsHistory, out_dir: Path, extra: dict[str, Any]) -> Path:
    """``metrics.json``: the summary, the full history and run facts (``extra``)."""
    path = out_dir / "metrics.json"
    payload = {**extra, "summary": history.summary(), "train": history.train, "val": history.val}
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return path


_RATES = ("recon_exact", "recon_exact_direct")


def _lines(
    ax: Any, rows: list[dict[str, float]], exclude: set[str] | None, log: bool, marker: str,
    only: set[str] | None = None,
) -> None:
    keys = sorted({k for r in rows for k in r} - {"step"} - (exclude or set()))
    if only is not None:
        keys = [k for k in keys if k in only]
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if key in r and (r[key] > 0 or not log)]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker=marker, label=key)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    if keys:
        ax.legend(fontsize=8)


def plot_metrics(history: MetricsHistory, out_dir: Path, title: str) -> Path | None:
    """``metrics.png``: training terms (log scale) and validation metrics against the step."""
    if not history.train and not history.val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    _lines(axes[0], history.train, exclude={"beta"}, log=True, marker="")
    axes[0].set_title("training terms of eq. 1 (weighted)")
    betas = [(r["step"], r["beta"]) for r in history.train if "beta" in r]
    if betas:
        twin = axes[0].twinx()
        twin.plot(*zip(*betas, strict=True), color="grey", alpha=0.4, linestyle=":")
        twin.set_ylabel("β (dotted)")
    _lines(axes[1], history.val, exclude=set(_RATES), log=True, marker="o")
    axes[1].set_title("validation losses and no-memory perplexity")
    _lines(axes[2], history.val, exclude=None, log=False, marker="o", only=set(_RATES))
    axes[2].set_ylim(-0.02, 1.02)
    axes[2].set_title("exact reconstruction of held-out chunks")
    fig.suptitle(title)
    fig.tight_layout()
    path = out_dir / "metrics.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
