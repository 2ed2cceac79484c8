"""Training Larimar: data chunking, the loss of eq. 1 in a LightningModule, config recipes.

Needs the ``train`` extra (``lightning``, ``peft``). Entry point: :func:`train`, behind
``larimar train RECIPE [overrides]``; recipes live in ``configs/``. Heavy modules (torch,
lightning) load on first use, so mounting the CLI command stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import TrainConfig, TrainingConfigError, available_recipes, load_config

if TYPE_CHECKING:
    from .data import TrainingDataError, is_evaluation_file
    from .recipe import train

__all__ = [
    "TrainConfig",
    "TrainingConfigError",
    "TrainingDataError",
    "available_recipes",
    "is_evaluation_file",
    "load_config",
    "train",
]

_LAZY = {"TrainingDataError": ".data", "is_evaluation_file": ".data", "train": ".recipe"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
