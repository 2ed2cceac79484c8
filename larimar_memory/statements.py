"""What a user sentence says, read with rules and no LLM: its clauses, whether it states,
asks or asks to forget, and what a statement is about (its slot) or says has changed.

A message is split into sentences (`split_sentences`), and a sentence into **clauses** where a
new subject starts ("My landlord is Mr Abernathy and my rent is due on the 1st." is two facts;
"I have a cat and a dog" stays one). A clause before a colon that has no verb is a label
("Quick intro: I live in Porto.") and is dropped. Filler openings ("Ok, so", "Honestly,") are
stripped. `larimar_memory.conversation` turns the result into memory operations.

A statement's **slot** names what it is about ("I live in Porto." → ``residence``, "My e-mail
address is a@b.c" → ``my email``): a new statement with the same slot replaces the old one. A
statement that says something **changed** ("I remortgaged, the rate is now 3.9 percent.",
"I switched coaches, Greta coaches me now.") also names its slot's head noun (``rate``,
``coach``): it replaces the one stored fact whose slot has that head, if there is exactly one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .sentences import split_sentences

__all__ = [
    "ForgetRequest", "changed_subject", "clauses", "extract_facts", "fact_key", "fact_slot",
    "forget_request", "is_fact", "is_question", "parse_forget_request", "skip_reason",
    "slot_head", "strip_lead_in",
]

MIN_FACT_WORDS = 3

_COMMAND = r"(?:please\s+|can you\s+|could you\s+|kindly\s+|i want you to\s+)?" \
    r"(?:forget|delete|remove|erase|unlearn|drop)\b"
_FORGET = re.compile(
    r"^\s*(?:so\s+|and\s+|then\s+)?" + _COMMAND + r"\s*"
    r"(?P<all>(?:everything|all)\s+(?:you know\s+|i told you\s+|i said\s+)?about\s+)?"
    r"(?:(?:the\s+)?fact\s+)?(?:that\s+|about\s+|what\s+i\s+(?:said|told you)\s+about\s+)?"
    r"(?P<what>.+?)[\s.!?]*$",
    re.IGNORECASE,
)
_REFERS_BACK = re.compile(r"^(?:it|that|this|them|those|these|that one)$", re.I)
_QUESTION_START = re.compile(
    r"^\s*(?:what|who|whom|whose|when|where|why|how|which|is|are|am|was|were|do|does|did|can|"
    r"could|should|would|will|shall|may|might|have|has|had)\b",
    re.IGNORECASE,
)
_NOT_A_FACT = re.compile(
    r"^\s*(?:hi|hello|hey|thanks|thank you|ok|okay|yes|no|sure|bye|goodbye|please|tell me|show me|"
    r"give me|list|remind me|let's|lets)\b",
    re.IGNORECASE,
)
_LEAD_IN = re.compile(
    r"^\s*(?:actually|correction|update|no|nope|sorry|now|oh|fyi|btw|by the way|note that|"
    r"ok|okay|alright|all right|so|well|hi|hello|hey|um|uh|and|also|anyway|just so you know|"
    r"for the record|quick update|heads up|honestly|frankly|in fact|good news|bad news|"
    r"great news|turns out|it turns out|right|"
    r"please remember(?: that)?|remember(?: that)?|keep in mind(?: that)?)"
    r"(?:\s*[,:!.-]+\s*|\s+)",
    re.I,
)
_PRONOUN_START = re.compile(r"^\s*(?:i|i'm|i've|we|we're|my|our)\b", re.I)

# -- clauses ------------------------------------------------------------------------------------

_NEW_SUBJECT = (
    r"(?:(?:i|i'm|i've|i'd|i'll|we|we're|we've|we'll)\b|(?:my|our)\s+\w"
    r"|the\s+(?:[\w'-]+\s+){0,3}(?:is|are|was|were)\b|" + _COMMAND + ")"
)
_JOINT = re.compile(
    r"\s*(?:;|,\s*(?:and|but|so|then)?|\s(?:and|but|so)\b)\s+(?=" + _NEW_SUBJECT + ")", re.I
)
# "…, and it renews in March" after "My mortgage rate is 4.2 percent": "it" is that subject.
_IT_JOINT = re.compile(r"\s*,?\s+and\s+(?=it\s|it's\s)", re.I)
_LEAD_SUBJECT = re.compile(
    r"^(?P<subj>(?:my|our)\s+(?:[\w'-]+\s+){0,3}?[\w'-]+)\s+(?:is|are|was|were)\b", re.I
)
# "I have a cat called Pimienta and a greyhound called Bolt": "I have" goes with both.
_LIST_JOINT = re.compile(r"\s*,?\s+and\s+(?=(?:a|an)\s)", re.I)
_LEAD_VERB = re.compile(
    r"^(?P<verb>(?:i|we)\s+(?:have|own|keep|drive|ride|play|speak|use)(?:\s+got)?)\s+"
    r"(?:a|an)\s+\S+\s+(?:called|named)\s+\S", re.I,
)
_LABEL_COLON = re.compile(r"^(?P<label>[^:]{1,60}):\s+(?P<rest>\S.*)$")
_VERBISH = re.compile(
    r"(?:'s|'re|'m|'ve|'d|'ll)\b|\b(?:is|are|was|were|am|be|been|have|has|had|do|does|did|can|"
    r"could|will|would|should|may|might|must|got|get|gets|[a-z]{3,}ed)\b"
    r"|^\s*(?:i|we|you|they|he|she|it)\s+\w"
    r"|^\s*" + _COMMAND,
    re.I,
)


def clauses(sentence: str) -> list[str]:
    """A sentence's clauses without filler or labels: split where a new subject (I, my, our,
    "the X is") or a forget command starts after "and", "but", "so", a comma or a semicolon,
    when what comes before has a verb; so noun lists ("my wife and my son live …") stay whole.
    """
    text = strip_lead_in(sentence)
    label = _LABEL_COLON.match(text)
    if label and not _VERBISH.search(label.group("label")):
        text = strip_lead_in(label.group("rest"))
    elif label:
        return [c for part in (label.group("label"), label.group("rest")) for c in clauses(part)]
    parts: list[str] = []
    start = 0
    for joint in _JOINT.finditer(text):
        left = text[start:joint.start()]
        if joint.group().strip().startswith(";") or _VERBISH.search(left):
            parts.append(left)
            start = joint.end()
    parts.append(text[start:])
    parts = [piece for part in parts for piece in _elliptic(part)]
    return [_as_sentence(strip_lead_in(p).strip(" ,;")) for p in parts if p.strip(" ,;")]


def _elliptic(clause: str) -> list[str]:
    """Split "X is A and it …" and "I have a B called C and a D called E" into whole clauses,
    with the shared subject (or subject and verb) written out in the second one."""
    clause = clause.strip(" ,;")
    subject = _LEAD_SUBJECT.match(clause)
    joint = _IT_JOINT.search(clause) if subject else None
    if subject and joint:
        rest = clause[joint.end():]
        rest = re.sub(r"^it's\b", f"{subject.group('subj')} is", rest, flags=re.I)
        rest = re.sub(r"^it\b", subject.group("subj"), rest, flags=re.I)
        return [clause[:joint.start()], *_elliptic(rest)]
    verb = _LEAD_VERB.match(clause)
    joint = _LIST_JOINT.search(clause) if verb else None
    if verb and joint:
        return [clause[:joint.start()], *_elliptic(f"{verb.group('verb')} {clause[joint.end():]}")]
    return [clause]


def _as_sentence(clause: str) -> str:
    clause = _capitalise(clause)
    return clause if clause[-1:] in ".!?" else clause + "."


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# -- sentences ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForgetRequest:
    what: str
    everything: bool  # "forget everything about X"

    @property
    def refers_back(self) -> bool:
        """"delete it": what to forget is said in the rest of the sentence."""
        return bool(_REFERS_BACK.match(self.what))


def forget_request(sentence: str) -> ForgetRequest | None:
    match = _FORGET.match(strip_lead_in(sentence))
    if not match:
        return None
    return ForgetRequest(match.group("what").strip(), bool(match.group("all")))


def parse_forget_request(sentence: str) -> str | None:
    """The thing to forget in a sentence like "Please forget that I live in Paris", else None."""
    request = forget_request(sentence)
    return request.what if request else None


def is_question(sentence: str) -> bool:
    return sentence.rstrip().endswith("?") or bool(_QUESTION_START.match(sentence))


def skip_reason(sentence: str) -> str | None:
    """Why a sentence (lead-in already stripped) is not a fact to store, or None if it is one."""
    words = sentence.split()
    if not words:
        return "filler"
    if is_question(sentence):
        return "question"
    if _NOT_A_FACT.match(sentence):
        return "greeting or command"
    if _FORGET.match(sentence):
        return "forget request"
    if len(words) < MIN_FACT_WORDS and not (len(words) == 2 and _PRONOUN_START.match(sentence)):
        return "too short to state a fact"
    return None


def is_fact(sentence: str) -> bool:
    """A statement: not a question, greeting, command or fragment (after filler openings)."""
    return skip_reason(strip_lead_in(sentence)) is None


def fact_key(sentence: str) -> str:
    """The text that addresses a stated fact: the sentence without its filler opening."""
    return strip_lead_in(sentence)


def strip_lead_in(sentence: str) -> str:
    stripped = sentence.strip()
    while True:
        shorter = _LEAD_IN.sub("", stripped, count=1).strip()
        if shorter == stripped:
            break
        stripped = shorter
    if stripped != sentence.strip():
        stripped = _capitalise(stripped)
    return stripped


def extract_facts(message: str) -> list[str]:
    """The clauses of a message that state facts, without filler openings or labels."""
    out = []
    for sentence in split_sentences(message):
        if is_question(strip_lead_in(sentence)):
            continue
        parts = clauses(sentence)
        if not any(forget_request(p) for p in parts):
            out += [p for p in parts if skip_reason(p) is None]
    return out


# -- slots: what a statement is about, so that a correction replaces it ------------------------

_SUBJECT = r"(?P<subj>(?:my|our|the|[A-Z][\w'-]*'s)\s+[\w' -]+?)"
_SLOT_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(?:i|we)\s+(?:now\s+|currently\s+|still\s+)?(?:live|reside)\s+(?:in|at|near)\b",
                re.I), "residence"),
    (re.compile(r"^(?:i|we)(?:'ve|\s+have)?\s+(?:just\s+|recently\s+|finally\s+)?"
                r"(?:moved|relocated)\s+(?:to|into|back to)\b", re.I), "residence"),
    (re.compile(r"^(?:i'm|i\s+am|we're|we\s+are)\s+(?:now\s+)?(?:based|living)\s+in\b", re.I),
     "residence"),
    (re.compile(r"^(?:i|we)\s+(?:now\s+)?work\s+(?:at|for)\b", re.I), "employer"),
    (re.compile(r"^(?:i|we)(?:'ve|\s+have)?\s+(?:just\s+|recently\s+)?(?:started|joined)\s+"
                r"(?:working\s+|a\s+new\s+job\s+)?(?:at|for)\b", re.I), "employer"),
    (re.compile(r"^(?:i\s+work\s+as|i'm\s+working\s+as|i\s+am\s+working\s+as)\b", re.I),
     "occupation"),
    (re.compile(r"^(?:i'm|i\s+am)\s+(?:now\s+)?\d+(?:\s+years?\s+old)?[.!]?$", re.I), "age"),
    (re.compile(r"^(?:i|we)\s+(?:now\s+)?report\s+to\b", re.I), "my manager"),
    (re.compile(r"^(?:i|we)\s+(?:now\s+)?drive\s+(?:a|an)\b", re.I), "my car"),
    (re.compile(r"^(?i:i'm|i\s+am|we're|we\s+are)\s+(?i:currently\s+|now\s+)?(?i:reading)\s+"
                r"[A-Z\"']"), "my book"),
    (re.compile(r"^you\s+can\s+(?:reach|email|contact|write to)\s+me\s+at\s+\S+@", re.I),
     "my email"),
    (re.compile(r"^(?P<name>[A-Z][\w'-]+)\s+(?:now\s+)?(?:lives|resides)\s+in\b"),
     "{name} residence"),
    (re.compile(r"^(?P<name>[A-Z][\w'-]+)\s+(?:has\s+)?(?:just\s+)?moved\s+to\b"),
     "{name} residence"),
]
# "<subject> is (now) on/at/due on <time>", "<subject> (has been|was|got) moved/rescheduled to
# <time>"
_WHEN_RULES = [
    re.compile(_SUBJECT + r"\s+(?:is|was|are|were)\s+(?:now\s+)?"
               r"(?:due\s+(?:on|by|in)|on|at|scheduled for|set for)\s+\S", re.I),
    re.compile(_SUBJECT + r"\s+(?:has\s+been|had\s+been|was|got|has|is)?\s*"
               r"(?:moved|rescheduled|pushed|postponed|brought forward|changed)\s+(?:back\s+)?"
               r"(?:to|until)\s+\S", re.I),
]
# "<subject> is/are (now|called|named) <value>" with a value that names something (not "a ...").
_COPULA = re.compile(
    _SUBJECT + r"(?:'s\s+name)?\s+(?:is|are|was|were)(?:\s+(?:now|still|actually))?"
    r"(?:\s+(?:called|named))?\s+(?P<value>\S.*)$", re.I,
)
_NOT_A_VALUE = re.compile(
    r"^(?:a|an|not|very|really|so|too|also|quite|always|never|in|at|from|on|with|going|getting|"
    r"being|like|more|less|still|just|pretty|kind|sort|back|away|out|off|here|there|over|about|"
    r"due|for|by|to|of|under|up|down|done|finished|late|early|ready|almost|nearly)\b",
    re.I,
)
_PARTICIPLE = re.compile(r"^[a-z]+ed\b")  # "my car is serviced at …" says nothing of which car
_NAMES_A_THING = re.compile(r"^(?:with|a|an)\s+[A-Z0-9]")  # "with Community Fibre", "an RTX 3070"
_SYNONYMS = [
    (re.compile(r"\bfavorite\b"), "favourite"), (re.compile(r"\be-?mail(?: address)?\b"), "email"),
    (re.compile(r"\b(?:phone|mobile|cell)(?: phone)?(?: number)?\b"), "phone"),
    (re.compile(r"\bboss\b"), "manager"), (re.compile(r"\b(?:date of birth|bday)\b"), "birthday"),
    (re.compile(r"\b(?:current|new|old|actual)\s+"), ""), (re.compile(r"^(?:the|our)\s+"), "my "),
    (re.compile(r"\s+(?:provider|supplier|company)$"), ""), (re.compile(r"\s+"), " "),
]
_SLOT_START = re.compile(r"(?:^|[,;:]\s+|\b(?=(?:my|our)\s))", re.I)


def fact_slot(sentence: str) -> str | None:
    """What a statement is about, when it has a shape that says so: "I live in Porto." and
    "I moved to Lisbon." are both "residence"; "My e-mail address is a@b.c" is "my email"; "The
    flight moved to May 9." is "my flight when". None for other sentences (they never replace).
    The shape may follow a short opening ("From January my day rate is 720 euros.")."""
    text = strip_lead_in(sentence).strip()
    for start in sorted({m.end() for m in _SLOT_START.finditer(text)}):
        slot = _slot_at(strip_lead_in(text[start:]))
        if slot:
            return slot
    return None


def _slot_at(text: str) -> str | None:
    for pattern, slot in _SLOT_RULES:
        match = pattern.match(text)
        if match:
            return slot.format(**{k: v.lower() for k, v in match.groupdict().items()})
    for pattern in _WHEN_RULES:
        match = pattern.match(text)
        if match:
            return f"{_normalise(match.group('subj'))} when"
    match = _COPULA.match(text)
    if match:
        value = match.group("value")
        says_nothing = _NOT_A_VALUE.match(value) or _PARTICIPLE.match(value)
        if _NAMES_A_THING.match(value) or not says_nothing:
            return _normalise(match.group("subj"))
    return None


def _normalise(subject: str) -> str:
    subject = subject.lower().strip()
    for pattern, replacement in _SYNONYMS:
        subject = pattern.sub(replacement, subject)
    return subject.strip()


# -- changes: "… is now …", "I switched coaches" ------------------------------------------------

_CHANGE_CUE = re.compile(
    r"\b(?:now|anymore|any more|no longer|instead|these days|from now on|switched|changed|"
    r"moved|relocated|rescheduled|postponed|upgraded|extended|replaced)\b",
    re.I,
)
_SWITCHED = re.compile(
    r"\b(?:i|we)\s+(?:have\s+|'ve\s+)?(?:just\s+)?(?:switched|changed)\s+(?:my\s+|our\s+)?"
    r"(?P<thing>[a-z]+)\b",
    re.I,
)
_NOW_HAVE = re.compile(
    r"^(?:i|we)\s+(?:now\s+)?(?:have|own|use|got)\s+(?:a|an|the)\s+(?:\S+\s+)*?(?P<thing>[a-z]+)[.!]?$",
    re.I,
)
_PREPOSITIONS = frozenset("of to for at in on with from by about".split())


def slot_head(slot: str) -> str:
    """The head noun of one of the user's own slots ("my mortgage rate" → "rate", "my flight to
    oslo when" → "flight when"); other slots ("residence", "alice residence") are their own
    head, so a change never crosses from one named subject to another."""
    when = slot.endswith(" when")
    words = (slot[: -len(" when")] if when else slot).split()
    if len(words) < 2 or words[0] != "my":
        return slot
    words = words[1:]
    for i, word in enumerate(words):
        if word in _PREPOSITIONS and i > 0:
            words = words[:i]
            break
    return words[-1] + (" when" if when else "")


def changed_subject(statement: str, sentence: str | None = None, *, slot: str | None = None,
                    stated_as_change: bool = False) -> str | None:
    """The head noun of what a statement says has changed ("the rate is now 3.9 percent" →
    "rate", "I switched coaches" → "coach", "I now have a Radeon graphics card" → "card"), or
    None when it does not say so. The change may be said anywhere in the ``sentence`` the
    statement is a clause of ("The dentist moved me: the appointment is on Thursday.");
    ``stated_as_change`` is the caller saying so (an agent's tool call that corrects a fact);
    ``slot`` is the statement's `fact_slot` when the caller has it already."""
    if not (stated_as_change or _CHANGE_CUE.search(sentence or statement)):
        return None
    slot = slot or fact_slot(statement)
    if slot:
        return slot_head(slot)
    switched = _SWITCHED.search(statement) or _SWITCHED.search(sentence or statement)
    if switched and switched.group("thing").lower() not in {"to", "over", "jobs", "it"}:
        return _singular(switched.group("thing").lower())
    have = _NOW_HAVE.match(strip_lead_in(statement))
    return have.group("thing").lower() if have else None


def _singular(word: str) -> str:
    if re.search(r"(?:ch|sh|ss|x)es$", word):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word
