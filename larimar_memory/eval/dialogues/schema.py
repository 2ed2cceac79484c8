"""The annotated dialogues: typed records, the packaged YAML files, and the checks that keep the
annotations honest.

A dialogue is a user talking to an agent over several sessions. Each fact has the clean sentence
a tool-calling model would store (``text``) and a ``needle``: the words that must reach the
model's context when the fact is asked, and that must be gone from memory once the fact is
forgotten or replaced. Each turn is one user message with one kind:

* ``states``: facts the message states (often behind a greeting or filler);
* ``asks``: the fact a question asks about, in other words;
* ``off_topic``: a general-knowledge question; the model must get no memory;
* ``corrects``: ``{old: new}``, the new fact replaces the old; ``about`` is the slot ("where I
  live") a model searches for;
* ``forgets``: facts to forget; ``about`` is what a model passes to its forget tool, ``all`` marks
  "forget everything about X";
* ``chat``: small talk.

Loading replays the dialogue and checks it: every fact asked, replaced or forgotten is live at
that point, the declared end state (``final``) is what the turns imply, and no needle is
ambiguous: the needle of a fact that must go is in no other fact's text, nor in a message
that states another fact or asks to forget or replace it (a memory may store those).
"""

from __future__ import annotations

import re
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..data import EvalDataError

DATA_PACKAGE = "larimar_memory.eval.dialogues"
TurnKind = Literal["states", "asks", "off_topic", "corrects", "forgets", "chat"]
_KINDS: tuple[TurnKind, ...] = ("states", "asks", "off_topic", "corrects", "forgets", "chat")


class FactSpec(BaseModel):
    """One fact of a dialogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=3, description="the sentence a tool-calling model would store")
    needle: str = Field(min_length=2, description="words that identify the fact (case-blind)")

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return whole_words(self.needle)

    def found_in(self, texts: list[str]) -> bool:
        return any(self.pattern.search(text) for text in texts)


def whole_words(phrase: str) -> re.Pattern[str]:
    """``phrase`` as a whole-word, case-insensitive pattern ('Sam' is not in 'same')."""
    return re.compile(rf"(?<!\w){re.escape(phrase)}(?!\w)", re.IGNORECASE)


class Turn(BaseModel):
    """One user message and what it must do to the memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    say: str = Field(min_length=1)
    states: list[str] = Field(default_factory=list)
    asks: str | None = None
    off_topic: bool = False
    corrects: dict[str, str] = Field(default_factory=dict)
    forgets: list[str] = Field(default_factory=list)
    chat: bool = False
    about: str | None = Field(None, description="what a model searches for / asks to forget")
    all: bool = Field(False, description="'forget everything about X': every fact in forgets")
    answer: str | None = Field(
        None, min_length=1, description="asks only: the words a right answer holds when the "
        "question asks for another part of the fact than its needle ('How old is my son?' of "
        "'My son Felix is six years old.': 'six'); default the needle")

    @model_validator(mode="after")
    def _one_kind(self) -> Turn:
        kinds = [kind for kind in _KINDS if getattr(self, kind)]
        if len(kinds) != 1:
            raise ValueError(f"a turn has exactly one of {', '.join(_KINDS)}; {self.say!r} has "
                             f"{kinds or 'none'}")
        if kinds[0] in ("corrects", "forgets") and not self.about:
            raise ValueError(f"{kinds[0]} turn {self.say!r} needs 'about' (what a model passes "
                             "to its tools)")
        if self.all and not self.forgets:
            raise ValueError(f"'all' only goes with 'forgets' ({self.say!r})")
        if self.answer is not None and not self.asks:
            raise ValueError(f"'answer' only goes with 'asks' ({self.say!r})")
        return self

    @property
    def kind(self) -> TurnKind:
        return next(kind for kind in _KINDS if getattr(self, kind))

    @property
    def removes(self) -> list[str]:
        """Facts that must be gone after this turn."""
        return [*self.corrects, *self.forgets]


class Final(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stored: list[str]
    gone: list[str]


class Dialogue(BaseModel):
    """A user's sessions with an agent, annotated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")
    user: str = Field(min_length=1)
    facts: dict[str, FactSpec]
    sessions: list[list[Turn]] = Field(min_length=1)
    final: Final

    @property
    def turns(self) -> list[tuple[int, Turn]]:
        """(session index, turn) in order."""
        return [(s, turn) for s, session in enumerate(self.sessions) for turn in session]

    @model_validator(mode="after")
    def _replay(self) -> Dialogue:
        """The turns replayed against the annotations (see the module docstring)."""
        live: set[str] = set()
        seen: set[str] = set()
        # A needle of a fact that must go may not hide in another fact, or gone would not show.
        removed = {name for _, turn in self.turns for name in turn.removes}

        def known(name: str, turn: Turn) -> None:
            if name not in self.facts:
                raise ValueError(f"{self.id}: {turn.say!r} names unknown fact {name!r}")

        for _, turn in self.turns:
            for name in [*turn.states, *turn.corrects, *turn.corrects.values(), *turn.forgets,
                         *([turn.asks] if turn.asks else [])]:
                known(name, turn)
            if turn.asks and turn.answer and not whole_words(turn.answer).search(
                    self.facts[turn.asks].text):
                raise ValueError(f"{self.id}: the answer {turn.answer!r} to {turn.say!r} is not "
                                 f"in the text of {turn.asks!r}")
            for name in [*turn.removes, *([turn.asks] if turn.asks else [])]:
                if name not in live:
                    raise ValueError(f"{self.id}: {turn.say!r} uses {name!r}, not stored then")
            for name in [*turn.states, *turn.corrects.values()]:
                if name in seen:
                    raise ValueError(f"{self.id}: fact {name!r} is stated twice")
                seen.add(name)
            strays = [name for name, fact in self.facts.items()
                      if name in removed and name not in turn.states
                      and fact.found_in([turn.say])]
            if turn.states and strays:
                raise ValueError(f"{self.id}: {turn.say!r} states {turn.states} but holds the "
                                 f"needles of {strays}, which a memory may store with it")
            for name in turn.removes:
                if self.facts[name].found_in([turn.say]):
                    raise ValueError(f"{self.id}: {turn.say!r} contains the needle of {name!r}, "
                                     "which must be gone after it")
            live -= set(turn.removes)
            live |= set(turn.states) | set(turn.corrects.values())
        if set(self.final.stored) != live or set(self.final.gone) != seen - live:
            raise ValueError(f"{self.id}: final says stored={sorted(self.final.stored)} "
                             f"gone={sorted(self.final.gone)}; the turns give stored="
                             f"{sorted(live)} gone={sorted(seen - live)}")
        unused = set(self.facts) - seen
        if unused:
            raise ValueError(f"{self.id}: facts never stated: {sorted(unused)}")
        for name in removed:
            fact = self.facts[name]
            clash = [other for other, spec in self.facts.items()
                     if other != name and fact.found_in([spec.text])]
            if clash:
                raise ValueError(f"{self.id}: needle {fact.needle!r} of {name!r} is also in "
                                 f"{clash}")
        return self


def _parse(text: str, source: str) -> list[Dialogue]:
    try:
        records = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EvalDataError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(records, list):
        raise EvalDataError(f"{source} must hold a list of dialogues, got {type(records).__name__}")
    try:
        return [Dialogue.model_validate(record) for record in records]
    except ValidationError as exc:
        raise EvalDataError(f"{source}: {exc}") from None


def load_dialogues(paths: list[Path] | None = None, ids: list[str] | None = None
                   ) -> list[Dialogue]:
    """The dialogues in ``paths`` (YAML files; default: the packaged ones), in file order, only
    those whose id is in ``ids`` when given."""
    dialogues: list[Dialogue] = []
    if paths is None:
        folder = resources.files(DATA_PACKAGE).joinpath("data")
        files = sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")),
                       key=lambda f: f.name)
        for file in files:
            dialogues += _parse(file.read_text(encoding="utf-8"), file.name)
    else:
        for path in paths:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise EvalDataError(f"cannot read dialogues from {path}: {exc}") from None
            dialogues += _parse(text, str(path))
    names = [d.id for d in dialogues]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise EvalDataError(f"dialogue ids used twice: {twice}")
    if ids:
        missing = sorted(set(ids) - set(names))
        if missing:
            raise EvalDataError(f"no dialogue with id {missing}; known: {', '.join(names)}")
        dialogues = [d for d in dialogues if d.id in ids]
    return dialogues
