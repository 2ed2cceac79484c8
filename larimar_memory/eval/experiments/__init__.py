"""The paper's experiments, one small module each, registered by command name.

The registry is light on purpose: the CLI lists the commands without importing torch or
transformers; an experiment's module is imported when it runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import data

if TYPE_CHECKING:
    from ..context import EvalContext


@dataclass(frozen=True)
class Experiment:
    """A command name, a one-line description, its default data file and its module."""

    name: str
    description: str
    default_data: str
    module: str

    def run(self, ctx: EvalContext) -> dict[str, Any]:
        """Import the experiment's module and run it."""
        module = importlib.import_module(f"{__name__}.{self.module}")
        result: dict[str, Any] = module.run(ctx)
        return result


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment("edit-time", "seconds per edit (write) and per forget, averaged over 10 and "
                   "1000 edits", data.COUNTERFACT, "edit_time"),
        Experiment("counterfact", "single-fact editing on CounterFact: S/M for edit, paraphrase, "
                   "neighbourhood", data.COUNTERFACT, "counterfact"),
        Experiment("zsre", "zsRE editing: token accuracy and greedy EM/F1 on edit, paraphrase, "
                   "neighbourhood", data.ZSRE, "zsre"),
        Experiment("sequential", "N sequential zsRE edits: retention, held-out F1 curve, service "
                   "blocks vs the paper's pseudo-inverse memory", data.ZSRE, "sequential"),
        Experiment("batch", "batch editing: rewrite accuracy for 1 … 2048 edits written at once, "
                   "service blocks vs one K = 512 memory", data.COUNTERFACT, "batch"),
        Experiment("forgetting", "forget one of N = 1, K, 2K facts; leakage after forget "
                   "(+ 'unknown'), 20-try attack", data.COUNTERFACT, "forgetting"),
        Experiment("rephrase", "rephrase-augmented memory: recall on held-out paraphrases "
                   "with/without extra keys", data.COUNTERFACT_FULL, "rephrase"),
        Experiment("robustness", "readout robustness: edit success and recall against weight "
                   "noise σ_w", data.COUNTERFACT, "robustness"),
        Experiment("long-context", "long inputs (n_fact = 64 … 256): memory search vs whole-text "
                   "prompt", data.COUNTERFACT, "long_context"),
        Experiment("reconstruct", "reconstruction of held-out facts (1 and 512 in memory), QA "
                   "from memory, perplexity", data.COUNTERFACT_HELDOUT, "reconstruct"),
    )
}

__all__ = ["EXPERIMENTS", "Experiment"]
