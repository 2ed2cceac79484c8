"""LoCoMo conversations as memory units and questions, and LoCoMo's answer metrics.

A unit is one turn of a conversation (``dia_id``, ``speaker``, ``text``, its session and the
session's date). It is written either as the bare turn or as ``"<date> <speaker>: <text>"``
(`Unit.render`). Questions of categories 1–4 are scored: 1 multi-hop, 2 temporal, 3 open-domain,
4 single-hop (category 5, adversarial, has no gold answer and is skipped).

The metric follows the LoCoMo paper's evaluation code (Maharana et al., ACL 2024): normalise
(drop commas, articles and punctuation, lowercase), Porter-stem the tokens, token-overlap F1;
multi-hop answers are split on commas and each gold part takes its best predicted part; for
open-domain answers the first ';'-separated alternative is the gold answer.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from .data import EvalDataError, read_json_records, resolve_data

LOCOMO = "locomo/locomo-dev.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
Variant = Literal["bare", "dated"]
VARIANTS: tuple[Variant, ...] = ("bare", "dated")

_SESSION = re.compile(r"^session_(\d+)$")
_EVIDENCE_SPLIT = re.compile(r"[;,\s]+")


@dataclass(frozen=True)
class Unit:
    """One turn of a conversation."""

    dia_id: str
    speaker: str
    session: int
    date: str
    text: str

    def render(self, variant: Variant) -> str:
        """The text written to memory: the bare turn, or ``"<date> <speaker>: <text>"``."""
        if variant == "bare":
            return self.text
        if variant == "dated":
            return f"{self.date} {self.speaker}: {self.text}".strip()
        raise ValueError(f"unknown unit variant {variant!r}; choose one of {VARIANTS}")

    def metadata(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "session": self.session, "date": self.date,
                "dia_id": self.dia_id}


@dataclass(frozen=True)
class Question:
    """A scored question: its index in the conversation's ``qa`` list, gold answer and evidence."""

    index: int
    question: str
    answer: str
    evidence: frozenset[str]
    category: int


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    units: tuple[Unit, ...]
    questions: tuple[Question, ...]


def load_locomo(path: str | Path | None = None, conversations: int | None = None
                ) -> tuple[list[Conversation], Path]:
    """The first ``conversations`` conversations of a LoCoMo file (default: the dev copy)."""
    resolved = resolve_data(path, LOCOMO)
    rows = read_json_records(resolved)
    if conversations is not None:
        rows = rows[:conversations]
    out = [parse_conversation(row, i) for i, row in enumerate(rows)]
    if not out:
        raise EvalDataError(f"{resolved} holds no conversations")
    return out, resolved


def parse_conversation(row: dict[str, Any], position: int = 0) -> Conversation:
    conv = row.get("conversation")
    if not isinstance(conv, dict) or not isinstance(row.get("qa"), list):
        raise EvalDataError(f"record {position} is not a LoCoMo conversation "
                            "(needs 'conversation' and 'qa')")
    sessions = sorted(
        (int(m.group(1)), key) for key in conv if (m := _SESSION.match(key))
        and isinstance(conv[key], list)
    )
    units: list[Unit] = []
    for number, key in sessions:
        date = str(conv.get(f"{key}_date_time") or "")
        for turn in conv[key]:
            text = str(turn.get("text") or "").strip()
            if not text:
                continue
            units.append(Unit(str(turn["dia_id"]), str(turn.get("speaker", "")), number, date,
                              text))
    questions = [
        Question(i, str(qa["question"]), str(qa["answer"]), parse_evidence(qa.get("evidence")),
                 int(qa["category"]))
        for i, qa in enumerate(row["qa"])
        if int(qa.get("category", 0)) in CATEGORIES and qa.get("answer") is not None
    ]
    return Conversation(str(row.get("sample_id", f"conv-{position}")), tuple(units),
                        tuple(questions))


def parse_evidence(value: Any) -> frozenset[str]:
    """Evidence dia_ids; a few records pack two in one string ("D8:6; D9:17")."""
    items = value if isinstance(value, list) else [value] if value else []
    return frozenset(e for item in items for e in _EVIDENCE_SPLIT.split(str(item)) if e)


# -- metrics --------------------------------------------------------------------------------------


def contains_answer(answer: str, texts: list[str]) -> bool:
    """The gold answer, lowercased, occurs in the concatenated texts."""
    needle = str(answer).strip().lower()
    return bool(needle) and needle in " ".join(texts).lower()


def normalize_answer(text: str) -> str:
    text = str(text).replace(",", "")
    text = re.sub(r"\b(a|an|the|and)\b", " ", text, flags=re.IGNORECASE)
    text = "".join(ch for ch in text if ch not in string.punctuation)
    return " ".join(text.lower().split())


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem import PorterStemmer

    return PorterStemmer()


def _tokens(text: str) -> list[str]:
    stem = _stemmer().stem
    return [stem(w) for w in normalize_answer(text).split()]


def token_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 after LoCoMo's normalisation and Porter stemming."""
    pred, ref = _tokens(prediction), _tokens(gold)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def locomo_f1(prediction: str, gold: str, category: int) -> float:
    """LoCoMo's per-category QA score."""
    if category == 1:
        preds = [p for p in str(prediction).split(",") if p.strip()] or [""]
        golds = [g for g in str(gold).split(",") if g.strip()] or [""]
        return sum(max(token_f1(p, g) for p in preds) for g in golds) / len(golds)
    if category == 3:
        gold = str(gold).split(";")[0].strip()
    return token_f1(prediction, gold)
