"""Query cues read without an LLM: who a query names, whether it asks *when*, which months.

`relevance.Ranker` turns each cue into one more ranked list for its fusion (a list of the
candidates that carry the cue, in their fused order), so a cue promotes facts the dense and
lexical rankings already found and never brings in one they did not. Why each cue, measured on
the LoCoMo dev conversations (docs/results.md, "Query understanding"):

* **Speaker.** Questions name people ("What did Melanie paint?"); a turn's speaker is in its
  metadata, while its text says "I". Facts whose ``speaker`` the query names come first.
* **Time reference.** A *when* question ("When did Melanie go to the museum?") is answered by
  the turn that places the event in time ("Yesterday I took the kids to the museum"), which the
  session date then resolves. Facts whose text holds a time expression beyond their own
  timestamp come first.
* **Dated facts.** A question that names a month ("camping in June") prefers facts dated that
  month or the next one (where "last month" points back to it); one that names a day ("on
  13 October, 2023") prefers facts dated that day.
* **Phrases.** Two adjacent content words of the query ("art show", "grand opening") found
  adjacent in a fact's text: BM25 scores the words apart. Facts sharing more of the query's
  phrases come first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from .lexical import term_sequence

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
_MONTH = re.compile(r"\b(" + "|".join(MONTHS) + r")\b", re.IGNORECASE)
_WHEN = re.compile(
    r"^\W*(when|what (year|month|date|day|time)|which (year|month|day)|how long|"
    r"how many (years|months|weeks|days))\b|\b(before|after|since|ago|until)\b",
    re.IGNORECASE)
_UNIT = r"(days?|weeks?|weekends?|months?|years?|nights?)"
_DAY = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|wed|thu|fri|sat|sun)"
_SEASON = r"(summer|winter|spring|fall|autumn)"
_TIME_EXPRESSION = re.compile(
    r"\b(yesterday|today|tonight|tomorrow|recently|lately|"
    rf"(last|this|next|past|coming) ({_UNIT}|{_DAY}|{_SEASON}|morning|evening)|"
    rf"(a|an|one|two|three|four|five|six|few|couple( of)?|several|\d+) {_UNIT} (ago|back)|"
    rf"{_DAY}s?|" + "|".join(MONTHS) + r"|(19|20)\d{2})\b",
    re.IGNORECASE)
_DAY_OF_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({'|'.join(MONTHS)})\b|"
    rf"\b({'|'.join(MONTHS)})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b", re.IGNORECASE)
TIMESTAMP_FIELDS = ("date", "time")
"""Metadata fields that may hold a fact's own timestamp (LoCoMo's session date; the ISO time
`conversation` writes)."""


_QUANTITY_QUESTION = re.compile(
    r"\bhow (many|much|long|far|old|tall|big|high|deep|heavy|large|fast|often)\b|"
    r"\bwhat(?: is|'s| are) the (population|number|percentage|length|height|size|distance|"
    r"speed|temperature|age|area|price|cost|weight|depth)\b", re.IGNORECASE)
_QUANTITY = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    r"eighty|ninety|hundred|thousand|million|billion|dozens?|half|couple|few|several|many|"
    r"once|twice)\b", re.IGNORECASE)


def asks_quantity(query: str) -> bool:
    """Whether the query asks for a quantity ("how many", "how long", "what is the population
    of …"): its answer is a number or an amount."""
    return _QUANTITY_QUESTION.search(query) is not None


def holds_quantity(text: str) -> bool:
    """Whether a text holds a number or an amount ("40 minutes", "six years old", "a few")."""
    return _QUANTITY.search(text) is not None


def asks_when(query: str) -> bool:
    """Whether the query asks about time ("when", "how long", "before X", ...)."""
    return _WHEN.search(query) is not None


def named_speakers(query: str, speakers: set[str]) -> set[str]:
    """The speakers (among ``speakers``) the query names, as whole words, any case."""
    return {s for s in speakers if s and _word(s).search(query)}


def months_named(query: str) -> set[int]:
    """Months (1-12) the query names."""
    return {MONTHS.index(m.lower()) + 1 for m in _MONTH.findall(query)}


def days_named(query: str) -> set[tuple[int, int]]:
    """(month, day) pairs the query names ("13 October", "October 13th")."""
    return {_day(m) for m in _DAY_OF_MONTH.finditer(query)}


def fact_day(metadata: Mapping[str, Any]) -> tuple[int, int] | None:
    """(month, day) of the fact's own timestamp, if its metadata has one."""
    stamp = _timestamp(metadata)
    return _day_of(stamp) if stamp else None


@lru_cache(maxsize=65536)
def phrases(text: str) -> frozenset[tuple[str, str]]:
    """Pairs of adjacent words of ``text`` that are both terms (`lexical.terms`: stemmed, no
    stopwords): "the new shoes" has ("new", "shoe")."""
    words = term_sequence(text)
    return frozenset((a, b) for a, b in zip(words, words[1:], strict=False) if a and b)


def fact_month(metadata: Mapping[str, Any]) -> int | None:
    """The month of the fact's own timestamp, if its metadata has one."""
    stamp = _timestamp(metadata)
    return _month_of(stamp) if stamp else None


def _timestamp(metadata: Mapping[str, Any]) -> str | None:
    """The fact's own timestamp: the first of `TIMESTAMP_FIELDS` its metadata holds."""
    for field in TIMESTAMP_FIELDS:
        value = metadata.get(field)
        if isinstance(value, str) and value:
            return value
    return None


def has_time_expression(text: str, metadata: Mapping[str, Any]) -> bool:
    """Whether ``text`` places something in time, not counting the fact's own timestamp
    (a dated unit's text starts with its session date)."""
    for field in TIMESTAMP_FIELDS:
        value = metadata.get(field)
        if isinstance(value, str) and value:
            text = text.replace(value, " ")
    return _TIME_EXPRESSION.search(text) is not None


@lru_cache(maxsize=4096)
def _word(name: str) -> re.Pattern[str]:
    return re.compile(r"\b" + re.escape(name) + r"\b", re.IGNORECASE)


def _day(match: re.Match[str]) -> tuple[int, int]:
    if match.group(1):
        return MONTHS.index(match.group(2).lower()) + 1, int(match.group(1))
    return MONTHS.index(match.group(3).lower()) + 1, int(match.group(4))


@lru_cache(maxsize=65536)
def _day_of(value: str) -> tuple[int, int] | None:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        named = _DAY_OF_MONTH.search(value)
        return _day(named) if named else None
    return when.month, when.day


@lru_cache(maxsize=65536)
def _month_of(value: str) -> int | None:
    try:
        return datetime.fromisoformat(value).month
    except ValueError:
        named = _MONTH.search(value)
        return MONTHS.index(named.group(1).lower()) + 1 if named else None
