"""LexicalIndex: incremental BM25 equals BM25 computed from scratch over what is left."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larimar_memory.lexical import LexicalIndex, reciprocal_rank_fusion, terms, value_kind_terms

WORDS = ["caroline", "melanie", "paint", "lake", "dog", "rex", "may", "2023", "support", "group"]
doc = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join)


def brute_force(docs: dict[str, str], query: str, k1: float = 1.5, b: float = 0.75):
    counts = {d: Counter(terms(t)) for d, t in docs.items()}
    n = len(docs)
    avg = sum(sum(c.values()) for c in counts.values()) / n or 1.0
    scores: dict[str, float] = {}
    for term in set(terms(query)):
        having = [d for d, c in counts.items() if term in c]
        if not having:
            continue
        idf = math.log(1 + (n - len(having) + 0.5) / (len(having) + 0.5))
        for d in having:
            tf, length = counts[d][term], sum(counts[d].values())
            norm = tf + k1 * (1 - b + b * length / avg)
            scores[d] = scores.get(d, 0.0) + idf * tf * (k1 + 1) / norm
    return scores


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), doc, st.integers(0, 50)), min_size=1, max_size=30),
       doc)
def test_incremental_bm25_equals_bm25_from_scratch(ops, query):
    index, docs = LexicalIndex(), {}
    for i, (add, text, pick) in enumerate(ops):
        if add or not docs:
            index.add(f"d{i}", text)
            docs[f"d{i}"] = text
        else:
            victim = sorted(docs)[pick % len(docs)]
            index.remove(victim)
            del docs[victim]
    if not docs:
        assert index.search(query, k=5) == [] and len(index) == 0
        return
    expected = brute_force(docs, query)
    got = dict(index.search(query, k=len(docs) + 1))
    assert set(got) == {d for d, s in expected.items() if s > 0}
    for d, score in got.items():
        assert math.isclose(score, expected[d], rel_tol=1e-4)
    allowed = sorted(docs)[::2]
    assert set(dict(index.search(query, k=50, allowed=allowed))) <= set(allowed)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), doc, st.integers(0, 50)), min_size=1, max_size=30),
       st.lists(doc, max_size=12), doc)
def test_bulk_add_equals_adding_one_at_a_time(ops, batch, query):
    """`add_many` (a load) into an index with free slots leaves exactly what single adds
    leave; re-adding an indexed id scores as a single add does."""
    one, bulk = LexicalIndex(), LexicalIndex()
    ids: list[str] = []
    for i, (add, text, pick) in enumerate(ops):
        if add or not ids:
            one.add(f"d{i}", text)
            bulk.add(f"d{i}", text)
            ids.append(f"d{i}")
        else:
            victim = ids.pop(pick % len(ids))
            one.remove(victim)
            bulk.remove(victim)
    names = [f"n{i}" for i in range(len(batch))]
    for name, text in zip(names, batch, strict=True):
        one.add(name, text)
    bulk.add_many(names, batch)
    for index in (one, bulk):
        index.search(query, k=1)  # fills the per-term cache: the next add must drop it
    one.add("late", query)
    bulk.add_many(["late"], [query])
    assert one.search(query, k=100) == bulk.search(query, k=100)
    for index in (one, bulk):  # the arrays a query cached, extended by the adds since
        for term, (slots, tfs) in index._arrays.items():
            assert slots.tolist() == list(index._postings[term])
            assert tfs.tolist() == list(index._postings[term].values())
    assert (one._slot, one._ids, one._free, one._doc_terms, one._postings, one._total) == (
        bulk._slot, bulk._ids, bulk._free, bulk._doc_terms, bulk._postings, bulk._total)
    again = ids[:1] + ["late"]
    for name in again:
        one.add(name, query)
    bulk.add_many(again, [query] * len(again))
    assert dict(one.search(query, k=100)) == dict(bulk.search(query, k=100))
    assert (one._doc_terms, one._total) == (bulk._doc_terms, bulk._total)


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([(["a", "b", "c"], 1.0), (["b", "c", "a"], 1.0)], k=2)
    assert [d for d, _ in fused] == ["b", "a"]


def test_terms_are_stemmed_so_word_forms_match():
    index = LexicalIndex()
    index.add("a", "Researching adoption agencies has been a dream.")
    index.add("b", "I went hiking with the dogs.")
    assert index.search("What did Caroline research?", k=1)[0][0] == "a"
    assert terms("painting paintings painted") == ["paint"] * 3


@pytest.mark.parametrize(
    "text, kind",
    [
        ("My portfolio is at haruto-frames.jp.", "websit"),
        ("See https://example.org/talk for the slides", "websit"),
        ("Our shop is shop.example.co.uk.", "websit"),
        ("Reach me at marta.quintas@fastmail.pt, please.", "email"),
        ("Call me on +44 7700 900123.", "phone"),
        ("My number is 555-123-4567", "phone"),
        ("Call 020 7946 0958 after six", "phone"),
    ],
)
def test_a_text_holding_a_kind_of_value_gets_its_name_as_terms(text, kind):
    assert kind in value_kind_terms(text)


@pytest.mark.parametrize(
    "text",
    ["My FTP is 281 watts.", "My favourite lens is the 23mm f/1.4.", "It costs 3.50 euros.",
     "I live in St. Ives.", "I use node.js daily.", "Born in 1990, married in 2000 1992.",
     "My flight is at 9:30 on May 9.", "Version 2.0 is out."],
)
def test_plain_texts_get_no_kind_terms(text):
    assert value_kind_terms(text) == []


def test_a_question_naming_the_kind_finds_the_value():
    """"my website" finds the fact holding a web address that never says "website"; queries
    get no kind terms themselves."""
    index = LexicalIndex()
    index.add("web", "My portfolio is at haruto-frames.jp.")
    index.add("mail", "Write to marta@fastmail.pt.")
    index.add("lens", "My favourite lens is the 23mm f/1.4.")
    assert index.search("What's my website?", k=1)[0][0] == "web"
    assert index.search("my email address", k=1)[0][0] == "mail"
    assert "websit" in index.terms_of("web")
