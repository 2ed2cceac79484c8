"""`LexicalIndex`: BM25 over the key texts of a namespace, updated one fact at a time.

Why here and not `bm25s`: a memory adds and forgets single facts all the time, and `bm25s` builds
a static index (a rebuild per write would cost O(facts)). This is Okapi BM25 (k1 = 1.5,
b = 0.75, Lucene's idf) on an inverted index kept as dicts: adding or removing a fact touches
its own terms only, and a query touches only the postings of its terms.

Why lexical keys at all: dense sentence embeddings blur names, dates and numbers ("Caroline" and
"Melanie", "May 7" and "May 8"); exact-term evidence gets those right. On the LoCoMo dev
conversations BM25 fused with MiniLM cosine by reciprocal rank finds an evidence turn in the top
5 for 54 % of questions, against 44 % for cosine alone (see docs/results.md).

Terms are Snowball-stemmed ("researching" finds "research"): on the LoCoMo dev conversations
that raised Larimar's recall@10 by 2.6 points (docs/results.md, "Query understanding"). The
index lives in memory only and is rebuilt from the key texts, so no stored state depends on it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
import snowballstemmer

_WORD = re.compile(r"[\w']+", re.UNICODE)
# A short English stopword list (articles, pronouns, auxiliaries, prepositions): terms that
# carry no evidence about which fact a question is about.
STOPWORDS = frozenset("""
a an the and or but if then so of to in on at by for with from as into about over after before
is are was were be been being am do does did doing have has had having will would shall should
can could may might must i me my mine we us our ours you your yours he him his she her hers it
its they them their theirs this that these those what which who whom whose when where why how
there here not no nor too very just also than s t don't i'm it's that's you're i've
""".split())


_STEMMER = snowballstemmer.stemmer("english")
_TERMS: dict[str, str] = {}  # word as found -> its term, "" for none (a vocabulary is small)
_MAX_TERMS = 200_000


def terms(text: str) -> list[str]:
    """Stemmed lower-cased word tokens without stopwords; a trailing possessive 's is dropped."""
    return [term for term in term_sequence(text) if term]


def term_sequence(text: str) -> list[str]:
    """Each word of ``text`` in order as its term ("" for a stopword): `terms` keeps the
    non-empty ones; adjacent non-empty ones are a phrase (`cues.phrases`)."""
    out = []
    for word in _WORD.findall(text.lower()):
        term = _TERMS.get(word)
        out.append(_term(word) if term is None else term)
    return out


def _term(word: str) -> str:
    """What a word found in a text counts as ("" for none); cached, since a load looks up every
    word of thousands of texts."""
    bare = word.removesuffix("'s").strip("'")
    term = _STEMMER.stemWord(bare) if bare and bare not in STOPWORDS else ""
    if len(_TERMS) < _MAX_TERMS:
        _TERMS[word] = term
    return term


# What kind of value a text holds, when its form says so: a web address or an email address
# is named by what it is ("my website", "my email address"), rarely by the words around it
# ("My portfolio is at haruto-frames.jp."). A document gets the names of its kinds as extra
# terms, so a question or forget request that names the kind finds it. Queries get none.
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b")
_WEB = re.compile(r"\bhttps?://\S+|\bwww\.[\w-]+\.\S+|(?<![\w@.])[a-z0-9-]+(\.[a-z0-9-]+)*"
                  r"\.(com|org|net|io|dev|app|me|co|ai|info|site|blog|page"
                  r"|(?!(?:js|py|md|rs|ts|sh|rb|cs|pl|db|pm|am)\b)[a-z]{2})\b"
                  r"(?![@\w]|\.\w)", re.IGNORECASE)
_PHONE = re.compile(r"(?<![\w.])(\+\d[\d ()-]{7,}\d|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}"
                    r"|0\d{2,4}[ -]?\d{3,4}[ -]?\d{3,4})(?![\w]|\.\d)")
_KIND_NAMES = {
    "email": "email mail address",
    "web": "website site web url link homepage address",
    "phone": "phone telephone mobile cell number",
}


def value_kind_terms(text: str) -> list[str]:
    """The names (as terms) of the kinds of value ``text`` holds: an email address, a web
    address, a phone number."""
    kinds = []
    if _EMAIL.search(text):
        kinds.append("email")
    if _WEB.search(_EMAIL.sub(" ", text)):
        kinds.append("web")
    if _PHONE.search(text):
        kinds.append("phone")
    return list(dict.fromkeys(t for kind in kinds for t in terms(_KIND_NAMES[kind])))


class LexicalIndex:
    """BM25 scores of queries against documents added and removed by id.

    Postings are dicts (cheap single-document updates); a query scores them as numpy arrays,
    cached per term (extended when a document with the term comes, rebuilt after one goes), so
    a term found in every turn of a long conversation (a speaker's name) costs one vector
    operation, not a loop.

    >>> index = LexicalIndex()
    >>> index.add("a", "Caroline went to the LGBTQ support group")
    >>> index.add("b", "Melanie painted a sunrise")
    >>> index.search("When did Caroline go to the support group?", k=1)[0][0]
    'a'
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._postings: dict[str, dict[int, int]] = {}  # term -> {doc slot: term frequency}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # term -> (slots, tfs)
        self._slot: dict[str, int] = {}  # doc id -> slot
        self._ids: list[str | None] = []  # slot -> doc id
        self._free: list[int] = []
        self._lengths = np.zeros(0, dtype=np.float32)  # slot -> number of terms
        # doc id -> its distinct terms (a tuple: the cyclic GC stops tracking it, and a load
        # makes one per document)
        self._doc_terms: dict[str, tuple[str, ...]] = {}
        self._total = 0.0

    def __len__(self) -> int:
        return len(self._slot)

    def add(self, doc_id: str, text: str) -> None:
        self.add_many([doc_id], [text])

    def add_many(self, doc_ids: list[str], texts: list[str]) -> None:
        """`add` of each document in order (a load adds thousands): the slots and lengths are
        sized once, and a term's cached arrays extended once (a recall right after a write
        would otherwise rebuild those of the new document's common terms from every posting:
        O(facts) per recall)."""
        if len(set(doc_ids)) < len(doc_ids):  # a later text of an id replaces an earlier one
            for doc_id, text in zip(doc_ids, texts, strict=True):
                self.add_many([doc_id], [text])
            return
        for doc_id in doc_ids:
            if doc_id in self._slot:
                self.remove(doc_id)
        reused = self._free[::-1][:len(doc_ids)]
        del self._free[len(self._free) - len(reused):]
        slots = reused + self._grow(len(doc_ids) - len(reused))
        postings, arrays, doc_terms = self._postings, self._arrays, self._doc_terms
        lengths = []
        added: dict[str, list[tuple[int, int]]] = {}  # cached term -> its new (slot, tf)
        for doc_id, text, slot in zip(doc_ids, texts, slots, strict=True):
            found = terms(text) + value_kind_terms(text)
            distinct = dict.fromkeys(found, 1)
            counts = distinct if len(distinct) == len(found) else Counter(found)
            for term, tf in counts.items():
                docs = postings.get(term)
                if docs is None:
                    postings[term] = {slot: tf}
                else:
                    docs[slot] = tf
                    if term in arrays:
                        added.setdefault(term, []).append((slot, tf))
            doc_terms[doc_id] = tuple(counts)
            lengths.append(len(found))
        self._slot.update(zip(doc_ids, slots, strict=True))
        for doc_id, slot in zip(doc_ids, slots, strict=True):
            self._ids[slot] = doc_id
        self._lengths[slots] = lengths
        self._total += float(sum(lengths))
        for term, new in added.items():
            old_slots, old_tfs = arrays[term]
            arrays[term] = (np.concatenate([old_slots, np.array([s for s, _ in new], np.int64)]),
                            np.concatenate([old_tfs, np.array([t for _, t in new], np.float32)]))

    def remove(self, doc_id: str) -> None:
        slot = self._slot.pop(doc_id, None)
        if slot is None:
            return
        self._total -= float(self._lengths[slot])
        for term in self._doc_terms.pop(doc_id):
            docs = self._postings[term]
            del docs[slot]
            self._arrays.pop(term, None)
            if not docs:
                del self._postings[term]
        self._ids[slot], self._lengths[slot] = None, 0.0
        self._free.append(slot)

    def search(
        self, query: str, k: int, allowed: Iterable[str] | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` documents with the highest BM25 score for ``query`` (only those sharing a
        term with it), best first; ``allowed`` restricts the candidates."""
        n = len(self._slot)
        if n == 0 or k < 1:
            return []
        avg = self._total / n or 1.0
        scores = np.zeros(len(self._ids), dtype=np.float32)
        for term in set(terms(query)):
            if term not in self._postings:
                continue
            slots, tfs = self._term_arrays(term)
            idf = math.log(1.0 + (n - len(slots) + 0.5) / (len(slots) + 0.5))
            norm = tfs + self.k1 * (1 - self.b + self.b * self._lengths[slots] / avg)
            scores[slots] += idf * tfs * (self.k1 + 1) / norm
        if allowed is not None:
            keep = np.zeros(len(self._ids), dtype=bool)
            keep[[self._slot[d] for d in allowed if d in self._slot]] = True
            scores[~keep] = 0.0
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        hits = hits[np.argsort(-scores[hits], kind="stable")]
        return [(self._ids[i], float(scores[i])) for i in hits]  # type: ignore[misc]

    def idf(self, term: str) -> float:
        """Lucene's BM25 idf of a term over the indexed documents (largest for an unseen term)."""
        n, df = len(self._slot), len(self._postings.get(term, ()))
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def terms_of(self, doc_id: str) -> tuple[str, ...]:
        """The distinct terms of a document (none if it is not indexed)."""
        return self._doc_terms.get(doc_id, ())

    def _term_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        cached = self._arrays.get(term)
        if cached is None:
            docs = self._postings[term]
            cached = (np.fromiter(docs.keys(), dtype=np.int64, count=len(docs)),
                      np.fromiter(docs.values(), dtype=np.float32, count=len(docs)))
            self._arrays[term] = cached
        return cached

    def _grow(self, n: int) -> list[int]:
        """``n`` new slots at the end (the lengths array at least doubles when it grows)."""
        start = len(self._ids)
        self._ids += [None] * n
        if start + n > len(self._lengths):
            grown = np.zeros(max(64, 2 * start, start + n), dtype=np.float32)
            grown[:start] = self._lengths[:start]
            self._lengths = grown
        return list(range(start, start + n))


def reciprocal_rank_fusion(
    rankings: Iterable[tuple[list[str], float]], k: int, constant: float = 60.0
) -> list[tuple[str, float]]:
    """Fuse ranked id lists, each with a weight: ``Σ weight / (constant + rank)``, best first.
    The standard constant 60 (Cormack et al., 2009) lets agreement between lists dominate."""
    fused: dict[str, float] = {}
    for ranking, weight in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (constant + rank)
    return sorted(fused.items(), key=lambda item: -item[1])[:k]
