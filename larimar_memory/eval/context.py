"""What every experiment needs: the model, the key embedder, the options, and fresh memories."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..addressing import AddressingMode
from ..scope import ExternalScopeDetector, SentenceEmbedder
from .keyed import KeyedMemory
from .options import RESULTS_DIR, EvalOptions

if TYPE_CHECKING:
    from ..model import LarimarModel

logger = logging.getLogger(__name__)

__all__ = ["RESULTS_DIR", "TINY", "EvalContext", "EvalOptions", "load_context"]

TINY = "tiny"


@dataclass
class EvalContext:
    """A loaded model and embedder plus the options of one run."""

    model: LarimarModel
    embedder: SentenceEmbedder
    model_name: str
    model_description: str
    options: EvalOptions

    @property
    def label(self) -> str:
        """Short model label for plot titles, marking untrained models."""
        if self.model_description.startswith("UNTRAINED"):
            return f"{self.model_name}, UNTRAINED"
        return self.model_name

    @property
    def device(self) -> torch.device:
        return self.model.device

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Keys ``(N, D)``: the service's sentence embeddings."""
        return self.embedder.embed(texts).to(torch.float64)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Values ``(N, C)``: the Larimar encoder's latents."""
        return self.model.encode(texts).to(torch.float64).cpu()

    def new_memory(
        self, slots: int | None = None, addressing: AddressingMode = "gaussian"
    ) -> KeyedMemory:
        return KeyedMemory(
            slots or self.options.slots, self.model.latent_width, self.embedder.dim,
            addressing=addressing, seed=self.options.seed,
        )

    def scope_detector(self) -> ExternalScopeDetector:
        return ExternalScopeDetector(self.embedder)

    def as_model_input(self, readouts: torch.Tensor) -> torch.Tensor:
        return readouts.to(device=self.device, dtype=self.model.dtype)


def load_context(
    model: str | Path = "larimar-smol",
    options: EvalOptions | None = None,
    device: str | None = None,
) -> EvalContext:
    """Load ``"tiny"`` (random tiny model + hashing embedder, for smoke tests),
    ``"larimar-smol"`` or a checkpoint folder, with the matching key embedder."""
    options = options or EvalOptions()
    name = str(model)
    # An untrained model's heads are random: seed them so a run is reproducible.
    torch.manual_seed(options.seed)
    if name == TINY:
        from ..testing import HashingEmbedder, tiny_test_model

        larimar = tiny_test_model().eval()
        embedder = SentenceEmbedder(model=HashingEmbedder())
        description = "tiny random test model + hashing embedder (smoke test, meaningless numbers)"
    else:
        from ..model import LarimarModel

        larimar = LarimarModel.from_pretrained(name, device=device).eval()
        embedder = SentenceEmbedder()
        description = describe_checkpoint(name)
    logger.info("evaluating %s", description)
    return EvalContext(larimar, embedder, name, description, options)


def describe_checkpoint(name: str) -> str:
    """Whether ``name`` is a trained checkpoint, so results are labelled honestly."""
    from ..model import CHECKPOINTS_DIR, CONFIG_FILE, DEFAULT_CHECKPOINT

    if Path(name).expanduser().is_dir():
        return f"checkpoint folder {name}"
    if (CHECKPOINTS_DIR / name / CONFIG_FILE).is_file():
        return f"packaged checkpoint {name}"
    if name == DEFAULT_CHECKPOINT:
        return (f"UNTRAINED {name}: packaged all-MiniLM-L6-v2 + SmolLM2-135M-Instruct with fresh "
                "(random) pooling, prefix and LoRA heads; no trained checkpoint exists yet")
    return name
