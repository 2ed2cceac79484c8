"""The paper's experiments as commands writing JSON and plots (``larimar eval EXPERIMENT``).

Layout: `data` (loaders for every benchmark schema), `metrics` (pure metric functions),
`scoring` (decoder log-probs, answers, perplexity), `context` (model + embedder + options, and
the memories: the service's `BlockMemory` or the paper's single `EpisodicMemory`),
`experiments/` (one module each), `runner` (JSON with settings and the paper's numbers from
`paper`), `cli` (the typer sub-app).

Names are imported lazily, so ``larimar --help`` does not pay for torch/transformers here.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EXPERIMENTS": "experiments",
    "EditRecord": "data",
    "EvalContext": "context",
    "EvalDataError": "data",
    "EvalOptions": "options",
    "EvalResult": "runner",
    "load_context": "context",
    "load_edits": "data",
    "run_experiment": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
