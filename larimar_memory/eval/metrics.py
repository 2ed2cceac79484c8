"""Metrics of the paper's tables, as pure functions (no model), so tests can check them by hand.

* CounterFact (ROME's definitions, used by Larimar's released evaluation): a prompt's probability
  of a target is the geometric mean of its token probabilities, ``exp(mean log p)``. Success S is
  the share of prompts with P[new] > P[true] (P[true] > P[new] for neighbourhood prompts), averaged
  per record, then over records; magnitude M is the mean of P[new] − P[true] (reversed likewise).
* zsRE: token accuracy ("token-level EM"): the share of answer tokens that are the decoder's
  greedy choice given the gold prefix, plus SQuAD-normalised exact match and token F1 of free
  greedy decoding.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def mean(values: Iterable[float]) -> float | None:
    """Arithmetic mean; None for no values (JSON has no NaN)."""
    items = [float(v) for v in values]
    return sum(items) / len(items) if items else None


def percent(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answer: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(answer))


def token_f1(prediction: str, answer: str) -> float:
    """SQuAD token F1 between normalised prediction and answer (1.0 when both are empty)."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    if not pred or not gold:
        return float(pred == gold)
    common = Counter(pred) & Counter(gold)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains_answer(generation: str, answer: str) -> bool:
    """Whether the normalised answer occurs as whole words in the normalised generation."""
    gold = normalize_answer(answer)
    if not gold:
        return False
    return f" {gold} " in f" {normalize_answer(generation)} "


def geometric_probability(logprob_sum: float, tokens: int) -> float:
    """``exp(mean log p)`` of a multi-token target: ROME's per-target probability."""
    return math.exp(logprob_sum / tokens) if tokens > 0 else 0.0


def success_and_magnitude(
    p_new: Sequence[Sequence[float]],
    p_true: Sequence[Sequence[float]],
    neighborhood: bool = False,
) -> dict[str, float | int | None]:
    """CounterFact S and M (in %) from per-record lists of prompt probabilities.

    Edit and paraphrase prompts succeed when P[new] > P[true]; neighbourhood prompts when
    P[true] > P[new] (and M is then P[true] − P[new]). Records with no prompts are skipped.
    """
    successes, magnitudes = [], []
    for new_row, true_row in zip(p_new, p_true, strict=True):
        if not new_row:
            continue
        sign = -1.0 if neighborhood else 1.0
        diffs = [sign * (n - t) for n, t in zip(new_row, true_row, strict=True)]
        successes.append(mean(float(d > 0) for d in diffs))
        magnitudes.append(mean(diffs))
    return {
        "S": percent(mean(s for s in successes if s is not None)),
        "M": percent(mean(m for m in magnitudes if m is not None)),
        "records": len(successes),
    }


def harmonic_mean(values: Sequence[float | None]) -> float | None:
    """ROME's overall score: harmonic mean of edit, paraphrase and neighbourhood S."""
    numbers = [v for v in values if v is not None]
    if not values or len(numbers) != len(values):
        return None
    if any(v <= 0 for v in numbers):
        return 0.0
    return len(numbers) / sum(1.0 / v for v in numbers)


def token_accuracy(correct: int, tokens: int) -> float | None:
    """Share of answer tokens predicted greedily under teacher forcing."""
    return correct / tokens if tokens > 0 else None


def retention(scores: Sequence[float]) -> float | None:
    """Edit retention: the mean score (F1) of every edit, measured after the last edit."""
    return mean(scores)


def perplexity(nll_sum: float, tokens: int) -> float | None:
    """``exp`` of the token-weighted mean negative log-likelihood."""
    return math.exp(nll_sum / tokens) if tokens > 0 else None
