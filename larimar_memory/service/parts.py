"""What the service's jobs share: the settings, the models, the store, the namespace cache, the
writer, the ranker and the one lock (built from `Larimar`'s arguments), plus the checks every
verb starts with (the namespace name, the text length, the filter and scope of a call)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import contract
from ..names import check_namespace
from ..quantization import serving_model
from ..relevance import Calibration, Ranker
from ..scope import SentenceEmbedder
from ..scoping import check_scope, scoped_filter
from ..store import MemoryStore
from ..store_url import open_store
from . import validation as check
from .cache import FactEntry, NamespaceCache, NamespaceState
from .settings import LarimarSettings
from .writes import Writer

if TYPE_CHECKING:
    import torch

    from ..model import LarimarModel

ScopeIds = tuple[str | None, str | None, str | None]
"""A call's ``(user_id, agent_id, run_id)``, as given (checked by `Parts.where`)."""


@dataclass
class Parts:
    """The components of one `Larimar`; ``settings`` is the facade's current settings (the
    verbs read it per call)."""

    settings: LarimarSettings
    model: LarimarModel
    store: MemoryStore
    namespaces: NamespaceCache
    writer: Writer
    ranker: Ranker
    lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def build(cls, model: LarimarModel | str | Path | None, store: MemoryStore | str | Path | None,
              namespace: str | None, embedder: SentenceEmbedder | None,
              settings: LarimarSettings | None, device: str | torch.device | None,
              calibration: Calibration) -> Parts:
        """The parts of `Larimar(...)` from its arguments: the model loaded by name (the
        packaged ``larimar-smol`` by default) and put in eval mode, the store opened."""
        from ..model import LarimarModel

        settings = settings or LarimarSettings()
        if namespace is not None:
            settings = settings.model_copy(update={"namespace": namespace})
        model_name = str(model) if isinstance(model, (str, Path)) else None
        if model is None or isinstance(model, (str, Path)):
            model_name = str(model or "larimar-smol")
            model = LarimarModel.from_pretrained(model or "larimar-smol", device=device)
        # Serving never trains: no autograd bookkeeping.
        model = model.eval().requires_grad_(False)
        embedder = embedder or SentenceEmbedder()
        opened = open_store(store)
        return cls(settings=settings, model=model, store=opened,
                   namespaces=NamespaceCache(opened, settings, model, embedder, model_name),
                   writer=Writer(settings, model, embedder),
                   ranker=Ranker(calibration, settings.lexical_weight))

    @property
    def decoding(self) -> LarimarModel:
        """The model `ask` decodes with: a copy of ``model`` whose decoder weights are what
        ``settings.decoder_weights`` says (`larimar_memory.quantization`; ``model`` itself
        for float32), packed at the first decode and kept while ``model`` lives. Packing reads
        every decoder weight (~1.3 s, and the weights' pages resident): a server that only
        remembers and recalls never pays it."""
        return serving_model(self.model, self.settings.decoder_weights)

    @property
    def embedder(self) -> SentenceEmbedder:
        return self.writer.embedder

    @embedder.setter
    def embedder(self, embedder: SentenceEmbedder) -> None:
        self.writer.embedder = self.namespaces.embedder = embedder

    @property
    def scope_threshold(self) -> float:
        given = self.settings.scope_threshold
        return self.ranker.calibration.threshold if given is None else given

    def namespace_name(self, namespace: str | None) -> str:
        return check_namespace(self.settings.namespace if namespace is None else namespace)

    def check_length(self, text: str, what: str) -> str:
        contract.check_lengths([text], what, self.settings.max_text_chars)
        return text

    @staticmethod
    def where(checked_filter: dict[str, Any], scope: ScopeIds) -> dict[str, Any]:
        """A checked filter narrowed to the call's scope (`larimar_memory.scoping`)."""
        return scoped_filter(checked_filter, check_scope(*scope))


def kept(ns: NamespaceState | None, where: dict[str, Any],
         test: Callable[[FactEntry], bool] = lambda e: True) -> list[FactEntry]:
    """The facts of ``ns`` that ``test`` accepts and whose metadata ``where`` keeps: the one
    filter check of the cached facts."""
    if ns is None:
        return []
    return [e for e in ns.facts.values() if test(e) and check.matches(e.metadata, where)]
