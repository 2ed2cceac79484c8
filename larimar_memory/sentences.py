"""`split_sentences`: a small regex sentence splitter, free of the model stack.

Scope detection (``scope``), query embedding (``service``) and turning chat turns into facts
(``conversation``, used by the integrations even when they talk to a server) all split text the
same way; this module imports nothing heavy so the last of these stays torch-free.
"""

from __future__ import annotations

import re

__all__ = ["split_sentences"]

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft vs etc al fig no vol ed eds approx dept est inc ltd co corp "
    "gen col lt sgt capt gov sen rep rev hon jan feb mar apr jun jul aug sep sept oct nov dec "
    "cf ca op pp ch sec".split()
)
# Sentence-ending punctuation (with closing quotes/brackets) followed by white space.
_BOUNDARY = re.compile(r"""([.!?]+)(["'\u2019\u201d)\]]*)(\s+)""")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences with a small regex, good enough for multi-sentence queries.

    Splits after ``!``/``?`` and at line breaks; splits after ``.`` unless the word before it is
    a known abbreviation ("Dr.", "etc."), a single letter ("J. Smith") or dotted ("e.g.",
    "U.S."). Lower-case starts are allowed, since chat users often type them.
    """
    pieces: list[str] = []
    for line in re.split(r"\n\s*\n|\r?\n", text):
        start = 0
        for m in _BOUNDARY.finditer(line):
            if m.group(1) == "." and _is_abbreviation(line[start : m.start(1)]):
                continue
            pieces.append(line[start : m.end(2)])
            start = m.end(3)
        pieces.append(line[start:])
    return [p.strip() for p in pieces if p.strip()]


def _is_abbreviation(before: str) -> bool:
    words = before.split()
    if not words:
        return True
    word = words[-1].lstrip("\"'(\u201c[")
    dotted = "." in word and all(len(p) <= 3 and p.isalpha() for p in word.split(".") if p)
    return len(word) == 1 and word.isalpha() or dotted or word.lower() in _ABBREVIATIONS
