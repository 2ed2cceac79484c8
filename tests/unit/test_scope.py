"""Scope detection on a tiny fake embedder and synthetic latents (no model download, seconds)."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch

from larimar_memory.errors import MemoryInputError, TextInputError
from larimar_memory.scope import (
    DEFAULT_ESD_THRESHOLD,
    ExternalScopeDetector,
    ScopeDecision,
    SentenceEmbedder,
    split_sentences,
)


class HashingBagOfWords:
    """Deterministic fake sentence model: each lower-cased word adds 1 to a hashed bucket."""

    dim = 64

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, sentences: list[str]) -> np.ndarray:
        self.calls.append(list(sentences))
        out = np.zeros((len(sentences), self.dim), dtype=np.float64)
        for i, s in enumerate(sentences):
            for word in re.findall(r"[a-z0-9]+", s.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        return out


@pytest.fixture
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder(model=HashingBagOfWords())


FACTS = [
    "the eiffel tower stands in rome",
    "alice likes green tea every morning",
    "the deadline of project apollo is friday",
]


# --- split_sentences -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ("Dr. Smith met Mr. Jones.", ["Dr. Smith met Mr. Jones."]),
        ("Use a fruit, e.g. an apple. Then eat.", ["Use a fruit, e.g. an apple.", "Then eat."]),
        ("He lives in the U.S. and works.", ["He lives in the U.S. and works."]),
        ("J. R. R. Tolkien wrote it... Really?", ["J. R. R. Tolkien wrote it...", "Really?"]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("hi. what is the capital of france?", ["hi.", "what is the capital of france?"]),
        ("Prices rose 3.5 percent. Next", ["Prices rose 3.5 percent.", "Next"]),
        ("line one\nline two\n\n", ["line one", "line two"]),
        ("no punctuation at all", ["no punctuation at all"]),
        ("   ", []),
        ("", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


# --- SentenceEmbedder ----------------------------------------------------------------------------


def test_embedder_normalises_and_types(embedder: SentenceEmbedder) -> None:
    out = embedder.embed(["hello world", "another sentence here", ""])
    assert out.dtype == torch.float32 and out.shape == (3, 64)
    norms = out.norm(dim=1)
    torch.testing.assert_close(norms[:2], torch.ones(2))
    assert norms[2] == 0  # an empty text has no words: a zero key, not NaN
    assert embedder.dim == 64
    assert embedder.embed("single string").shape == (1, 64)
    assert embedder.embed([]).shape == (0, 64)


def test_embedder_rejects_bad_input() -> None:
    emb = SentenceEmbedder(model=HashingBagOfWords())
    with pytest.raises(TextInputError):
        emb.embed(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="Only one of"):
        SentenceEmbedder("some/model", model=HashingBagOfWords())
    with pytest.raises(TypeError, match="encode"):
        SentenceEmbedder(model=object())  # type: ignore[arg-type]


def test_embedder_dim_probes_models_without_dim() -> None:
    class NoDim:
        def encode(self, sentences: list[str]) -> torch.Tensor:
            return torch.ones(len(sentences), 5)

    emb = SentenceEmbedder(model=NoDim())
    assert emb.dim == 5


# --- ExternalScopeDetector -----------------------------------------------------------------------


def test_empty_memory_is_out_of_scope(embedder: SentenceEmbedder) -> None:
    esd = ExternalScopeDetector(embedder)
    d = esd.score("anything at all", torch.zeros(0, embedder.dim))
    assert d == ScopeDecision(score=0.0, in_scope=False, nearest=None)
    assert esd.batch_scores(["a", "b"], torch.zeros(0, embedder.dim)) == [d, d]


def test_in_scope_and_out_of_scope(embedder: SentenceEmbedder) -> None:
    esd = ExternalScopeDetector(embedder, threshold=0.5)
    keys = embedder.embed(FACTS)
    hit = esd.score("the eiffel tower stands in rome", keys)
    assert hit.in_scope and hit.nearest == 0 and hit.score == pytest.approx(1.0, abs=1e-5)
    near = esd.score("what does alice like every morning", keys)
    assert near.in_scope and near.nearest == 1
    miss = esd.score("quantum chromodynamics lecture notes", keys)
    assert not miss.in_scope and miss.score < 0.5
    assert 0.0 <= miss.score <= 1.0


def test_multi_sentence_query_takes_the_max(embedder: SentenceEmbedder) -> None:
    esd = ExternalScopeDetector(embedder, threshold=0.5)
    keys = embedder.embed(FACTS)
    q = "Quantum chromodynamics is hard. When is the deadline of project apollo? Thanks a lot!"
    d = esd.score(q, keys)
    assert d.in_scope and d.nearest == 2
    assert d.sentence == "When is the deadline of project apollo?"
    whole_only = float(embedder.embed([q]) @ keys[2])
    assert d.score > whole_only


def test_batch_scores_match_single_scores(embedder: SentenceEmbedder) -> None:
    esd = ExternalScopeDetector(embedder, threshold=0.4)
    keys = embedder.embed(FACTS)
    queries = ["alice likes tea", "", "unrelated words only. and the eiffel tower stands"]
    fake = embedder.model
    fake.calls.clear()
    batch = esd.batch_scores(queries, keys)
    assert len(fake.calls) == 1  # every sentence of every query embedded in one call
    assert batch[1] == ScopeDecision(score=0.0, in_scope=False, nearest=None)
    for q, d in zip(queries, batch, strict=True):
        assert esd.score(q, keys) == d
    assert esd.batch_scores([], keys) == []


def test_unnormalised_keys_and_bad_shapes(embedder: SentenceEmbedder) -> None:
    esd = ExternalScopeDetector(embedder)
    keys = embedder.embed(FACTS)
    assert esd.score(FACTS[1], keys * 7.0).score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(MemoryInputError, match="width"):
        esd.score("x y", torch.ones(2, 3))
    with pytest.raises(MemoryInputError, match=r"\(F, D\)"):
        esd.score("x y", torch.ones(3))
    with pytest.raises(ValueError, match="threshold"):
        ExternalScopeDetector(embedder, threshold=1.5)
    assert ExternalScopeDetector(embedder).threshold == DEFAULT_ESD_THRESHOLD
