"""``python -m larimar_memory.training RECIPE [overrides]``."""

from .cli import train_app

train_app()
