"""What every experiment needs: the model, the key embedder, the options, and fresh memories.

Two memories, and every experiment says which it measures:

* ``service: BlockMemory`` (`new_memory`): a namespace's memory exactly as `Larimar` keeps it
  (`larimar_memory.blocks`), with the service's default ridge and dtype. Facts are written with
  their key (`embed`) and value rows (`encode_facts`, as ``Larimar.remember``); a query reads
  what ``Larimar.ask`` reads (`contexts`: top-k `BlockMemory.read`, then
  ``model.memory_context``). The store and the scope detector's settings are left out: the
  experiments need raw readouts, and thousands of SQLite transactions would measure the store.
* ``paper: one EpisodicMemory of K rows`` (`paper_memory`): the paper's dense addressing
  (Gaussian or pseudo-inverse weights against a K-row reference), one row per fact, for the
  comparisons that need it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..addressing import AddressingMode
from ..blocks import BlockMemory, BlockWrite
from ..memory import EpisodicMemory, MemoryConfig
from ..scope import ExternalScopeDetector, SentenceEmbedder
from .options import RESULTS_DIR, EvalOptions

if TYPE_CHECKING:
    from ..model import LarimarModel

logger = logging.getLogger(__name__)

__all__ = [
    "PAPER_MEMORY", "RESULTS_DIR", "SERVICE_MEMORY", "TINY", "EvalContext", "EvalOptions",
    "load_context",
]

TINY = "tiny"
SERVICE_MEMORY = "service: BlockMemory"
PAPER_MEMORY = "paper: one EpisodicMemory of K rows"


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
        """Values ``(N, C)``: one latent per text, cut to ``max_text_tokens`` (the paper's
        memory takes one row per fact)."""
        return self.model.encode(texts).to(torch.float64).cpu()

    def encode_facts(self, texts: list[str]) -> list[torch.Tensor]:
        """Values as the service writes them: each text's rows ``(n_i, C)``, one per
        ``max_text_tokens`` tokens (``model.encode_facts``)."""
        return [rows.cpu() for rows in self.model.encode_facts(list(texts))]

    def new_memory(self, block_rows: int | None = None) -> BlockMemory:
        """An empty namespace memory as the service builds it (``Larimar._new_memory``), with
        ``block_rows`` (default ``--block-rows``) rows per block."""
        from ..service import LarimarSettings

        defaults = LarimarSettings()
        dtype = torch.float64 if defaults.memory_dtype == "float64" else torch.float32
        return BlockMemory(
            self.model.latent_width, self.embedder.dim,
            block_rows=block_rows or self.options.block_rows, ridge=defaults.ridge, dtype=dtype,
        )

    def paper_memory(
        self, slots: int | None = None, addressing: AddressingMode = "gaussian",
        reference: torch.Tensor | None = None,
    ) -> EpisodicMemory:
        """The paper's memory: one `EpisodicMemory` of ``slots`` (default ``--paper-slots``)
        rows addressed by sentence-embedding keys against ``reference`` (default: the seeded
        random reference), float64."""
        config = MemoryConfig(
            slots=slots or self.options.paper_slots, width=self.model.latent_width,
            key_width=self.embedder.dim, addressing=addressing, seed=self.options.seed,
            dtype="float64",
        )
        return EpisodicMemory(config, reference=reference)

    def service_memory_info(self, block_rows: int | None = None, k: int = 1) -> dict[str, Any]:
        """The JSON description of a service memory (`new_memory`) and how it is read."""
        memory = self.new_memory(block_rows)
        return {"memory": SERVICE_MEMORY, "block_rows": memory.block_rows,
                "ridge": memory.ridge, "dtype": str(memory.dtype).removeprefix("torch."),
                "read": f"top-{k} key search, readout, model.memory_context (Larimar.ask)"}

    def paper_memory_info(self, addressing: AddressingMode, slots: int | None = None,
                          reference: str = "seeded random") -> dict[str, Any]:
        """The JSON description of a paper memory (`paper_memory`)."""
        return {"memory": PAPER_MEMORY, "slots": slots or self.options.paper_slots,
                "addressing": addressing, "reference": reference, "dtype": "float64"}

    @staticmethod
    def write(memory: BlockMemory, ids: Sequence[str], keys: torch.Tensor,
              values: Sequence[torch.Tensor]) -> None:
        """Write facts to a service memory in one call (``Larimar.remember``): ``keys (N, D)``,
        ``values`` one ``(n_i, C)`` (or ``(C,)``) per fact."""
        memory.write([
            BlockWrite(fid, key, value.reshape(-1, memory.width))
            for fid, key, value in zip(ids, keys, values, strict=True)
        ])

    def contexts(
        self, memory: BlockMemory, query_keys: torch.Tensor, k: int = 1
    ) -> list[torch.Tensor | None]:
        """Per query key, what conditions the decoder in ``Larimar.ask``: the top-``k``
        facts' readouts (`BlockMemory.read`) through ``model.memory_context``; ``None`` when
        the memory holds no fact (ask decodes plainly)."""
        out: list[torch.Tensor | None] = []
        for query in query_keys:
            hits = memory.read(query, k)
            out.append(self.model.memory_context([r for _, _, r in hits]).cpu() if hits else None)
        return out

    def hits(self, memory: BlockMemory, query_keys: torch.Tensor) -> list[str | None]:
        """The top-1 fact id per query key (``None`` for an empty memory)."""
        out: list[str | None] = []
        for query in query_keys:
            top = memory.search(query, 1)
            out.append(top[0][0] if top else None)
        return out

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
        return (f"UNTRAINED {name}: the packaged checkpoint files are missing from this "
                "installation, so the heads are fresh (random); reinstall larimar-memory")
    return name
