"""Run one experiment: time it, attach settings and the paper's numbers, write the JSON."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..benchmarks.common import machine
from ..errors import LarimarError
from .context import EvalContext
from .experiments import EXPERIMENTS
from .paper import reference
from .report import save_json

logger = logging.getLogger(__name__)


class UnknownExperimentError(LarimarError, KeyError):
    """An experiment name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown experiment"


@dataclass(frozen=True)
class EvalResult:
    """What a run wrote: the JSON payload and its path."""

    payload: dict[str, Any]
    path: Path


def run_experiment(name: str, ctx: EvalContext) -> EvalResult:
    """Run ``name`` on ``ctx`` and save ``eval-<name>.json`` in ``ctx.options.out_dir``."""
    if name not in EXPERIMENTS:
        raise UnknownExperimentError(
            f"no experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}"
        )
    experiment = EXPERIMENTS[name]
    logger.info("running %s on %s", name, ctx.model_description)
    torch.manual_seed(ctx.options.seed)  # sampled decoding (the leakage attack) repeats
    start = time.perf_counter()
    result = experiment.run(ctx)
    seconds = time.perf_counter() - start
    payload = {
        "experiment": name,
        "description": experiment.description,
        "model": ctx.model_name,
        "model_description": ctx.model_description,
        "options": ctx.options.model_dump(mode="json"),
        "seconds": round(seconds, 2),
        "machine": machine(),
        **result,
        "paper": reference(name),
    }
    path = save_json(payload, ctx.options.out_dir, name)
    logger.info("%s finished in %.1f s; wrote %s", name, seconds, path)
    return EvalResult(payload, path)
