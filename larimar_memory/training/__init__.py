"""Training Larimar: data chunking, the loss of eq. 1 in a LightningModule, config recipes.

Needs the ``train`` extra (``lightning``, ``peft``). Entry point: :func:`train`, behind
``larimar train RECIPE [overrides]``; recipes live in ``configs/``.
"""

from __future__ import annotations

from .config import (
    TrainConfig,
    TrainingConfigError,
    available_recipes,
    load_config,
)
from .data import TrainingDataError, is_evaluation_file
from .train import train

__all__ = [
    "TrainConfig",
    "TrainingConfigError",
    "TrainingDataError",
    "available_recipes",
    "is_evaluation_file",
    "load_config",
    "train",
]
