"""Which way `Larimar.ask` answers: from memory, plainly, or "I don't have that in memory".

The scope decision (`larimar_memory.relevance`) says whether a stored fact is what the question
is about. When none is, plain decoding is right for general knowledge ("Who wrote Pride and
Prejudice?") but wrong for a question about the user ("Where do I live?", "What's my email?"):
a language model with no memory invents a personal fact. Those questions take a third route,
``unknown``, and get a fixed answer instead: the paper's leakage prevention ("prompt +
unknown" in place of a forgotten fact) applied to conversations.

A question is about the user when it speaks of them in the first person ("my", "I", "me",
"we", "our") or addresses them as "you"/"your" ("What is your daughter's name?" asked of a
user's memory). Procedural questions ("How do I boil an egg?", "Can you explain …?") and the
shared world ("our solar system") are general knowledge. Pure text rules: no model, no
framework, so every path (service, server, clients, integrations) shares this one decision.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["UNKNOWN_ANSWER", "Route", "asks_about_user", "choose_route"]

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


def choose_route(question: str, in_scope: bool) -> Route:
    """In scope: memory. Out of scope: ``unknown`` for a question about the user (memory has
    nothing on it, and plain decoding would invent it), plain decoding otherwise."""
    if in_scope:
        return "memory"
    return "unknown" if asks_about_user(question) else "plain"
