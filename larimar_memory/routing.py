"""Which way `Larimar.ask` answers: from memory, plainly, or "I don't have that in memory".

The scope decision (`larimar_memory.relevance`, `ScopeInfo.relevant`) says whether a stored
fact is what the question is about. When none is, plain decoding is right for general
knowledge ("Who wrote Pride and Prejudice?") but wrong for a question about the user ("Where
do I live?", "What's my email?"): a language model with no memory invents a personal fact.
Those questions take a third route, ``unknown``, and get a fixed answer instead: the paper's
leakage prevention ("prompt + unknown" in place of a forgotten fact) applied to
conversations.

A question is about the user when it speaks of them in the first person ("my", "I", "me",
"we", "our") or addresses them as "you"/"your" ("What is your daughter's name?" asked of a
user's memory). Procedural questions ("How do I boil an egg?", "Can you explain …?") and the
shared world ("our solar system") are general knowledge. A question that names no one can
still be about the user's life: "When is the wedding?", "Who is hosting this month?", "When is
rent due?" ask for a particular event, group or bill of theirs that only memory knows (a
definite or bare everyday noun, or a stretch of their calendar, in a question that names
nothing in the world: no proper noun, no number). Pure text rules: no model, no framework, so
every path (service, server, clients, integrations) shares this one decision.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["UNKNOWN_ANSWER", "Route", "asks_about_user", "choose_route", "needs_memory"]

Route = Literal["memory", "plain", "unknown"]

#: what the ``unknown`` route answers
UNKNOWN_ANSWER = "I don't have that in memory."

# "I'm", "I've", "I'd", "I'll" (straight or curly apostrophes) tokenise as "i" + "m"/"ve"/…
_WORD = re.compile(r"[a-z]+")
_PERSON = frozenset({"i", "me", "my", "mine", "myself", "we", "us", "our", "ours",
                     "ourselves", "your", "yours", "yourself"})
_POSSESSIVE = frozenset({"my", "mine", "our", "ours", "your", "yours"})
# The world everyone shares: "our planet", "our solar system" ask no personal fact.
_SHARED = frozenset({"planet", "solar", "galaxy", "universe", "world", "species", "sun",
                     "moon", "earth", "society", "history"})
# A polite wrapper says nothing of whom the question is about: "Can you remind me where I
# live?" is judged on "where I live?".
_REQUEST = re.compile(
    r"^\s*(please\s+)?((can|could|would|will)\s+you\s+(please\s+)?)?"
    r"(tell|remind|show|give)\s+me\b|^\s*do\s+you\s+(know|remember)\b",
    re.IGNORECASE,
)
# Asking for general help, not about the user's life: "How do I boil an egg?", "Why do we
# dream?", "What should I use for …?"; "explain it to me", "good for me" name no fact of theirs.
_HOW_TO = re.compile(
    r"^\s*((how|why)\s+(do|does|can|could|should|would|might)\s+(i|we|you|one)\b"
    r"|what\s+(do|should|can|could)\s+(i|we|you)\s+(call|use|need)\b"
    r"|is\s+it\s+(safe|ok|okay|possible|normal)\s+(for\s+me\s+)?to\b)",
    re.IGNORECASE,
)


def asks_about_user(question: str) -> bool:
    """Whether ``question`` asks about the user's own life (so only memory can answer it).
    A how-to question about something of theirs ("How do I like my coffee?", "How do I renew
    my passport?") counts: saying memory has nothing loses less than an invented answer."""
    rest = _REQUEST.sub("", question, count=1)
    words = _WORD.findall(rest.lower())
    personal = [i for i, w in enumerate(words) if w in _PERSON and _personal(words, i)]
    if _HOW_TO.match(rest):
        return any(words[i] in _POSSESSIVE for i in personal)
    return bool(personal)


def _personal(words: list[str], i: int) -> bool:
    before, after = words[i - 1] if i else "", words[i + 1] if i + 1 < len(words) else ""
    if words[i] == "our" and after in _SHARED:
        return False
    return not (words[i] == "me" and before in {"to", "for"})


# Everyday things of one's own life that a question can name without saying whose: events,
# bills, groups, people by role. "the wedding", "rent"; not "a wedding", "the rugby team".
_LIFE = frozenset((
    "wedding party birthday anniversary reunion barbecue dinner lunch brunch meeting meetup "
    "appointment interview exam test deadline shift rota gig rehearsal recital concert match "
    "game lesson lessons class classes course training practice trip holiday vacation flight "
    "train booking reservation delivery parcel package viewing inspection checkup move "
    "rent mortgage lease loan bill bills invoice invoices payment subscription insurance "
    "renewal budget savings deposit contract salary raise club team group band choir "
    "volunteers committee landlord boss manager coach tutor teacher doctor dentist vet "
    "babysitter nanny kids baby neighbours flatmate roommate guests host hosting plan plans "
    "project thesis presentation talk report").split())
# Words a bare or definite noun follows when it stands alone: "When is rent due?", "Who is
# hosting …", "the club".
_DETERMINER = frozenset({"the", "this", "that", "these", "those", "is", "are", "was", "were",
                         "s", "does", "do", "did", "when", "where", "who", "which", "what",
                         "whose", "how"})
# A stretch of the asker's calendar: only they can fill it in. ("yesterday", "tonight" are
# left out: news asks with them too, "Where did the meteor land yesterday?")
_CALENDAR = re.compile(r"\b(this|next)\s+(week|weekend|month)\b", re.IGNORECASE)
_NAMES_THE_WORLD = re.compile(r"\d|(?<!^)(?<![.?!]\s)\b[A-Z][a-z]")


def names_their_life(question: str) -> bool:
    """Whether a question that names no one asks for a particular thing of the asker's life
    ("When is the wedding?", "Who is hosting this month?"), not about the world: it names
    nothing in the world (no proper noun, no number) and holds a definite or bare everyday
    noun (`_LIFE`) or a stretch of their calendar ("this month")."""
    rest = _REQUEST.sub("", question, count=1).strip()
    if _NAMES_THE_WORLD.search(rest) or _HOW_TO.match(rest):
        return False
    if _CALENDAR.search(rest):
        return True
    words = _WORD.findall(rest.lower())
    return any(w in _LIFE and i and words[i - 1] in _DETERMINER for i, w in enumerate(words))


def needs_memory(question: str) -> bool:
    """Whether only memory can answer ``question``: it is about the user
    (`asks_about_user`) or about a particular thing of their life (`names_their_life`)."""
    return asks_about_user(question) or names_their_life(question)


def choose_route(question: str, relevant: bool) -> Route:
    """Memory when the best hit is worth answering from (`ScopeInfo.relevant`). Otherwise
    ``unknown`` for a question only memory can answer (`needs_memory`: plain decoding would
    invent the fact), plain decoding for the rest."""
    if relevant:
        return "memory"
    return "unknown" if needs_memory(question) else "plain"
