"""larimar-memory: Larimar's episodic memory for LLM agents.

One-shot writes and exact forgetting on a fixed-size latent memory, a scope detector that routes
queries, and a decoder conditioned on the memory readout (Das et al., ICML 2024).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ArgumentError,
    EmptyInputError,
    FactNotFoundError,
    LarimarError,
    MemoryInputError,
    ModelNotFoundError,
    NamespaceError,
    NotWrittenError,
    PurgePendingError,
    RequestConflictError,
    StateFileError,
    StoreError,
    StoreMismatchError,
    StoreURLError,
    TextInputError,
)
from .scoping import ScopedMemory

if TYPE_CHECKING:
    from .memory import EpisodicMemory, MemoryConfig
    from .model import LarimarConfig, LarimarModel
    from .service import Larimar, LarimarSettings, RecallCall, RememberCall

__version__ = "0.1.0"

# the model stack (torch, transformers, peft) loads on first use, so `import larimar_memory`
# stays cheap and the HTTP client and the integrations never import torch in remote mode
_LAZY = {
    "EpisodicMemory": "memory",
    "MemoryConfig": "memory",
    "Larimar": "service",
    "LarimarSettings": "service",
    "RecallCall": "service",
    "RememberCall": "service",
    "LarimarModel": "model",
    "LarimarConfig": "model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        try:
            module = importlib.import_module(f".{_LAZY[name]}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in ("torch", "transformers", "scipy",
                                                       "sentence_transformers", "safetensors"):
                raise ModuleNotFoundError(
                    f"{name} runs the model stack, which is not installed ({exc.name} is "
                    "missing): pip install 'larimar-memory[models]'; or talk to a server with "
                    "larimar_memory.server.LarimarClient (pip install 'larimar-memory[client]')",
                    name=exc.name,
                ) from exc
            raise
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArgumentError",
    "EmptyInputError",
    "EpisodicMemory",
    "FactNotFoundError",
    "Larimar",
    "LarimarConfig",
    "LarimarError",
    "LarimarModel",
    "LarimarSettings",
    "MemoryConfig",
    "MemoryInputError",
    "ModelNotFoundError",
    "NamespaceError",
    "NotWrittenError",
    "PurgePendingError",
    "RecallCall",
    "RememberCall",
    "RequestConflictError",
    "ScopedMemory",
    "StateFileError",
    "StoreError",
    "StoreMismatchError",
    "StoreURLError",
    "TextInputError",
    "__version__",
]
