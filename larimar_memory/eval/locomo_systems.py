"""The memories compared on LoCoMo, one object per namespace (conversation × unit variant).

Every system writes the same units one turn at a time and answers ``search(query, k)`` with up to
``k`` hits best first, each naming the ``dia_id`` it holds. Larimar is the service under test;
the baselines are a LangChain ``InMemoryVectorStore`` over the same sentence embeddings, BM25
(``bm25s``), reciprocal-rank fusion of BM25 and the embeddings, and mem0 (``infer=False``: raw
turns, no LLM) on a local Qdrant; and the first three again on the same keys Larimar writes
(`unit_keys`), so the lead that remains is Larimar's ranking. The baseline libraries are
optional: a missing one is reported, never installed from here.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import snowballstemmer

from ..errors import TextInputError
from .locomo_data import Unit, Variant

if TYPE_CHECKING:
    from ..scope import SentenceEmbedder
    from ..service import Larimar

logger = logging.getLogger(__name__)

RRF_K = 60


@dataclass
class Hit:
    dia_ids: tuple[str, ...]  # the turn the hit holds (+ identical turns folded into it)
    text: str
    score: float


@dataclass
class WriteLog:
    """Per-turn write seconds and every outcome that was not a plain write."""

    seconds: list[float] = field(default_factory=list)
    batch_seconds: float | None = None  # an index built once after the writes (BM25)
    events: list[dict[str, Any]] = field(default_factory=list)


class MemorySystem:
    """One namespace of one system."""

    name = "system"

    def __init__(self) -> None:
        self.log = WriteLog()

    def write(self, units: list[Unit], variant: Variant) -> WriteLog:
        raise NotImplementedError

    def search(self, query: str, k: int) -> list[Hit]:
        raise NotImplementedError

    def nbytes(self) -> dict[str, Any]:
        return {}


# -- Larimar --------------------------------------------------------------------------------------


def context_key(previous: Unit | None, unit: Unit) -> str:
    """The turn with the turn that prompted it: the extra key Larimar writes for each turn (the
    paper's rephrase-augmented keys; a question is often phrased like the turn before the
    answer). Chosen on the dev conversations, see docs/results.md."""
    turn = f"{unit.speaker}: {unit.text}"
    return turn if previous is None else f"{previous.speaker}: {previous.text} {turn}"


def unit_keys(units: list[Unit], variant: Variant) -> list[list[str]]:
    """Per unit, every key text Larimar addresses it by: the unit text, then `context_key`.
    The same-key baselines index exactly these."""
    return [[unit.render(variant), context_key(units[i - 1] if i else None, unit)]
            for i, unit in enumerate(units)]


class LarimarSystem(MemorySystem):
    """`Larimar.remember` one turn per call into its own namespace; `recall(query, k=k)`.

    Each turn gets one extra key, `context_key`: the turn with the turn before it."""

    name = "larimar"

    def __init__(self, larimar: Larimar, namespace: str, decode: bool = True) -> None:
        super().__init__()
        self.larimar = larimar
        self.namespace = namespace
        self.decode = decode
        self.aliases: dict[str, list[str]] = {}  # fact id -> dia_ids it stands for
        self.texts: dict[str, str] = {}  # fact id -> the text written

    def write(self, units: list[Unit], variant: Variant) -> WriteLog:
        for unit, (text, *extra) in zip(units, unit_keys(units, variant), strict=True):
            t0 = time.perf_counter()
            try:
                result = self.larimar.remember(text, namespace=self.namespace,
                                               metadata=unit.metadata(), extra_keys=extra)
            except TextInputError as exc:  # over the fact limit: counted, never silently lost
                self.log.events.append({"status": "refused", "dia_id": unit.dia_id,
                                        "text": text, "error": str(exc)})
                continue
            self.log.seconds.append(time.perf_counter() - t0)
            self._account(result, unit, text)
        return self.log

    def _account(self, result: Any, unit: Unit, text: str) -> None:
        outcome = result.outcomes[0]
        fact_id, status, old = outcome.id, outcome.status, outcome.replaced
        if status == "duplicate":
            self.log.events.append({
                "status": "duplicate", "dia_id": unit.dia_id,
                "kept_dia_id": (self.aliases.get(fact_id) or ["?"])[0],
                "text": text, "kept_text": self.texts.get(fact_id, ""),
            })
            self.aliases.setdefault(fact_id, []).append(unit.dia_id)
            return
        if status == "replaced" or old is not None:
            old_meta = getattr(old, "metadata", {}) or {}
            self.log.events.append({
                "status": "replaced", "dia_id": unit.dia_id,
                "replaced_dia_id": old_meta.get("dia_id"), "text": text,
                "replaced_text": getattr(old, "text", ""),
            })
            if old is not None:
                self.aliases.pop(old.id, None)
        self.aliases[fact_id] = [unit.dia_id]
        self.texts[fact_id] = text

    def search(self, query: str, k: int) -> list[Hit]:
        result = self.larimar.recall(query, k=k, namespace=self.namespace, decode=self.decode)
        hits = [(h.fact, h.score, h.text) for h in result.hits]
        return [
            Hit(tuple(self.aliases.get(fact.id) or [fact.metadata.get("dia_id", "")]),
                text if self.decode else fact.text, float(score))
            for fact, score, text in hits
        ]

    def nbytes(self) -> dict[str, Any]:
        stats = getattr(self.larimar, "stats", None)
        if not callable(stats):
            return {}
        try:
            values = stats(namespace=self.namespace)
        except Exception as exc:  # a stats() that moved or changed shape must not end the run
            logger.warning("Larimar.stats failed: %s", exc)
            return {}
        return {k: v for k, v in values.items() if isinstance(v, (int, float, str))}


# -- sentence embeddings through LangChain ---------------------------------------------------------


def langchain_embeddings(embedder: SentenceEmbedder) -> Any:
    """The service's `SentenceEmbedder` as a LangChain ``Embeddings`` (same vectors)."""
    from langchain_core.embeddings import Embeddings

    class _Wrapped(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(list(texts)).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed([text])[0].tolist()

    return _Wrapped()


def _pooled(ranked: list[tuple[int, float]], owners: list[int], k: int) -> list[tuple[int, float]]:
    """Key hits (key index, score; best first) as unit hits: each unit at its best key."""
    seen: dict[int, float] = {}
    for key, score in ranked:
        seen.setdefault(owners[key], score)
    return list(seen.items())[:k]


class VectorSystem(MemorySystem):
    """LangChain ``InMemoryVectorStore``, cosine over the same sentence embeddings. With
    ``same_keys`` every key Larimar writes (`unit_keys`) is a document and a unit ranks at its
    best key (the usual multi-vector store)."""

    def __init__(self, embeddings: Any, dim: int, same_keys: bool = False) -> None:
        super().__init__()
        from langchain_core.vectorstores import InMemoryVectorStore

        self.name = "vector (larimar keys)" if same_keys else "vector"
        self.store = InMemoryVectorStore(embedding=embeddings)
        self.dim = dim
        self.same_keys = same_keys
        self.units: list[Unit] = []
        self.count = 0  # documents (keys)

    def write(self, units: list[Unit], variant: Variant) -> WriteLog:
        keys = unit_keys(units, variant)
        for unit, texts in zip(units, keys, strict=True):
            texts = texts if self.same_keys else texts[:1]
            t0 = time.perf_counter()
            self.store.add_texts(texts, metadatas=[{**unit.metadata(), "unit": len(self.units),
                                                    "text": texts[0]}] * len(texts))
            self.log.seconds.append(time.perf_counter() - t0)
            self.units.append(unit)
            self.count += len(texts)
        return self.log

    def search(self, query: str, k: int) -> list[Hit]:
        depth = min(self.count, k * (2 if self.same_keys else 1))
        found = self.store.similarity_search_with_score(query, k=depth)
        owners = [int(d.metadata["unit"]) for d, _ in found]
        texts = {int(d.metadata["unit"]): d.metadata["text"] for d, _ in found}
        pooled = _pooled([(i, float(s)) for i, (_, s) in enumerate(found)], owners, k)
        return [Hit((self.units[u].dia_id,), texts[u], s) for u, s in pooled]

    def nbytes(self) -> dict[str, Any]:
        return {"embedding_bytes": self.count * self.dim * 4}


class BM25System(MemorySystem):
    """BM25 (``bm25s``, English stopwords). bm25s has no incremental add, so the index is built
    once after the turns are collected; that build is the write time. With ``same_keys`` every
    key Larimar writes is a document, a unit ranks at its best key, and terms are stemmed by the
    Snowball stemmer Larimar's own lexical keys use (plain: no stemmer, bm25s's default)."""

    def __init__(self, same_keys: bool = False) -> None:
        super().__init__()
        self.name = "bm25 (larimar keys)" if same_keys else "bm25"
        self.same_keys = same_keys
        self.stemmer = snowballstemmer.stemmer("english") if same_keys else None
        self.units: list[Unit] = []
        self.texts: list[str] = []  # documents (keys)
        self.owners: list[int] = []  # document -> unit
        self.retriever: Any = None
        self.variant: Variant = "dated"

    def write(self, units: list[Unit], variant: Variant) -> WriteLog:
        import bm25s

        self.units, self.variant = list(units), variant
        for i, texts in enumerate(unit_keys(units, variant)):
            texts = texts if self.same_keys else texts[:1]
            self.texts += texts
            self.owners += [i] * len(texts)
        t0 = time.perf_counter()
        tokens = bm25s.tokenize(self.texts, stopwords="en", stemmer=self.stemmer,
                                show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(tokens, show_progress=False)
        self.log.batch_seconds = time.perf_counter() - t0
        return self.log

    def search(self, query: str, k: int) -> list[Hit]:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", stemmer=self.stemmer, return_ids=False,
                                show_progress=False)
        if not self.texts or not tokens[0]:
            return []
        depth = min(len(self.texts), k * (2 if self.same_keys else 1))
        docs, scores = self.retriever.retrieve(tokens, k=depth, show_progress=False)
        ranked = [(int(i), float(s)) for i, s in zip(docs[0], scores[0], strict=True) if s > 0]
        return [Hit((self.units[u].dia_id,), self.units[u].render(self.variant), s)
                for u, s in _pooled(ranked, self.owners, k)]

    def nbytes(self) -> dict[str, Any]:
        if self.retriever is None:
            return {}
        arrays = self.retriever.scores
        return {"index_bytes": int(sum(getattr(v, "nbytes", 0) for v in arrays.values()))}


class FusionSystem(MemorySystem):
    """Reciprocal-rank fusion of BM25 and the embedding ranking over all turns: the usual
    constant 60, or on the same keys Larimar's own constant (`relevance.RRF_CONSTANT`; on LoCoMo
    dev it beats 60 there too: R@10 76.9 against 72.2)."""

    def __init__(self, vector: VectorSystem, bm25: BM25System) -> None:
        super().__init__()
        from ..relevance import RRF_CONSTANT

        self.name = "bm25+vector-rrf" + (" (larimar keys)" if vector.same_keys else "")
        self.vector, self.bm25 = vector, bm25
        self.rrf_k = RRF_CONSTANT if vector.same_keys else RRF_K

    def write(self, units: list[Unit], variant: Variant) -> WriteLog:
        # Reuses the two indexes; its write cost is theirs together.
        self.log.seconds = list(self.vector.log.seconds)
        self.log.batch_seconds = self.bm25.log.batch_seconds
        return self.log

    def search(self, query: str, k: int) -> list[Hit]:
        depth = max(len(self.vector.units), 1)
        scores: dict[str, float] = {}
        hits: dict[str, Hit] = {}
        for ranking in (self.vector.search(query, depth), self.bm25.search(query, depth)):
            for rank, hit in enumerate(ranking, start=1):
                scores[hit.dia_ids[0]] = scores.get(hit.dia_ids[0], 0.0) + 1.0 / (self.rrf_k + rank)
                hits.setdefault(hit.dia_ids[0], hit)
        best = sorted(scores, key=lambda d: -scores[d])[:k]
        return [Hit(hits[d].dia_ids, hits[d].text, scores[d]) for d in best]

    def nbytes(self) -> dict[str, Any]:
        return {**self.vector.nbytes(), **self.bm25.nbytes()}


# -- mem0 ----------------------------------------------------------------------------------------


class _NoLLM:
    """Stands in for mem0's LLM: with ``infer=False`` it must never be called."""

    def generate_response(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("mem0 tried to call an LLM; the LoCoMo baseline runs with infer=False")


_MEM0_HOME: tempfile.TemporaryDirectory[str] | None = None


def offline_mem0_env() -> None:
    """mem0 reads these when first imported: telemetry (PostHog) and remote notices off, its
    home folder in a temp dir instead of ~/.mem0. Call before anything imports mem0."""
    global _MEM0_HOME
    os.environ["MEM0_TELEMETRY"] = "False"
    if _MEM0_HOME is None and "MEM0_DIR" not in os.environ:
        _MEM0_HOME = tempfile.TemporaryDirectory(prefix="larimar-locomo-mem0home-")
        os.environ["MEM0_DIR"] = _MEM0_HOME.name


class Mem0Backend:
    """One offline mem0 ``Memory`` (telemetry off, local Qdrant in a temp folder, no LLM) shared by
    every namespace; a namespace is a mem0 ``user_id``."""

    def __init__(self, embedder_path: str | None, dim: int, embeddings: Any = None) -> None:
        offline_mem0_env()
        self.folder = tempfile.TemporaryDirectory(prefix="larimar-locomo-mem0-")
        from mem0 import Memory

        if embedder_path is not None:
            embedder = {"provider": "huggingface",
                        "config": {"model": embedder_path, "embedding_dims": dim,
                                   "model_kwargs": {"device": "cpu"}}}
        else:  # test models: the same embedder through LangChain
            embedder = {"provider": "langchain",
                        "config": {"model": embeddings, "embedding_dims": dim}}
        config = {
            "embedder": embedder,
            "vector_store": {"provider": "qdrant", "config": {
                "collection_name": "locomo", "embedding_model_dims": dim,
                "path": os.path.join(self.folder.name, "qdrant"), "on_disk": False}},
            # mem0 builds an LLM client at start-up; a key that is never sent, then swapped out.
            "llm": {"provider": "openai", "config": {"api_key": "unused-offline", "model": "none"}},
            "history_db_path": os.path.join(self.folder.name, "history.db"),
        }
        self.memory = Memory.from_config(config)
        self.memory.llm = _NoLLM()
        self.dim = dim

    def close(self) -> None:
        try:
            self.memory.vector_store.client.close()
        except Exception:  # closing is best effort
            pass
        self.folder.cleanup()


class Mem0System(MemorySystem):
    name = "mem0"

    def __init__(self, backend: Mem0Backend, namespace: str) -> None:
        super().__init__()
        self.backend = backend
        self.user_id = namespace.replace("/", "-")
        self.count = 0

    def write(self, units: list[Unit], variant: Variant) -> WriteLog:
        memory = self.backend.memory
        for unit in units:
            text = unit.render(variant)
            t0 = time.perf_counter()
            result = memory.add(text, user_id=self.user_id, metadata=unit.metadata(),
                                infer=False)
            self.log.seconds.append(time.perf_counter() - t0)
            self.count += 1
            for item in result.get("results", []):
                if item.get("event") != "ADD":
                    self.log.events.append({"status": item.get("event"), "dia_id": unit.dia_id,
                                            "text": text})
        return self.log

    def search(self, query: str, k: int) -> list[Hit]:
        found = self.backend.memory.search(query, filters={"user_id": self.user_id}, top_k=k,
                                           threshold=0.0)
        return [Hit(((r.get("metadata") or {}).get("dia_id", ""),), r.get("memory", ""),
                    float(r.get("score") or 0.0)) for r in found.get("results", [])]

    def nbytes(self) -> dict[str, Any]:
        return {"embedding_bytes": self.count * self.backend.dim * 4}
