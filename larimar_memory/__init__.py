"""larimar-memory: Larimar's episodic memory for LLM agents.

One-shot writes and exact forgetting on a fixed-size latent memory, a scope detector that routes
queries, and a decoder conditioned on the memory readout (Das et al., ICML 2024).
"""

from __future__ import annotations

from .errors import (
    CapacityError,
    EmptyInputError,
    FactNotFoundError,
    LarimarError,
    MemoryInputError,
    ModelNotFoundError,
    NotWrittenError,
    StateFileError,
    StoreError,
    TextInputError,
)
from .memory import EpisodicMemory, MemoryConfig

__version__ = "0.1.0"

__all__ = [
    "CapacityError",
    "EmptyInputError",
    "EpisodicMemory",
    "FactNotFoundError",
    "LarimarError",
    "MemoryConfig",
    "MemoryInputError",
    "ModelNotFoundError",
    "NotWrittenError",
    "StateFileError",
    "StoreError",
    "TextInputError",
    "__version__",
]
