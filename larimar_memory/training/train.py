"""``train(recipe, overrides)``: the one call behind ``larimar train RECIPE [key=value ...]``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .config import load_config
from .recipe import TrainingRecipe

logger = logging.getLogger(__name__)


def train(config_path_or_name: str | os.PathLike[str], overrides: list[str] | None = None) -> Path:
    """Run a recipe (packaged name such as ``tiny`` or ``larimar-1.3b``, or a YAML path) with
    ``key.path=value`` overrides; returns the run folder (``model/``, ``metrics.json``,
    ``metrics.png``, ``checkpoints/``).

    Rerunning the same command resumes from ``checkpoints/last.ckpt``; a run that already
    reached ``trainer.max_steps`` goes straight to export.
    """
    cfg = load_config(config_path_or_name, overrides or [])
    recipe = TrainingRecipe(cfg)
    recipe.setup()
    try:
        recipe.train()
        return recipe.export()
    finally:
        recipe.cleanup()
