"""`larimar eval scope`: calibrating the relevance score's conversational operating point.

Positives: LoCoMo dev questions, each asked against the memory of its own conversation (dated
turns, written as `larimar eval locomo` writes them). Negatives: off-topic questions from the
knowledge data sets' training splits (zsRE questions and their Natural Questions locality
questions), asked against the same memories. Reported, not fitted: questions about the people
of a memory whose answer it may not hold (each conversation's questions with its speakers'
names swapped for another conversation's, asked against that other memory). Their topics
overlap (everyday life), so they are a pessimistic check of "naming someone is not enough".
For every question the best hit's `Evidence` comes
from `Larimar.recall` itself (``RecallHit.evidence``), so the figures measure the code users run.

A logistic regression on the evidence gives the `Calibration` weights; its threshold is the
point of best balanced accuracy. ROC AUC is reported for the fitted score (fitted on all, and
leave-one-conversation-out), for each piece of evidence alone, and for the score in use.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .locomo_data import load_locomo

FEATURES = ("dense", "lexical", "agreement", "speaker")
NAME = "eval-scope"


def off_topic_questions(data_root: Path, n: int, seed: int) -> list[str]:
    """zsRE training questions and their NQ locality questions (no LoCoMo content)."""
    rows = json.loads((data_root / "zsre" / "zsre_mend_train-1k.json").read_text())
    pool = [r["src"] for r in rows]
    pool += [r["loc"].removeprefix("nq question:").strip().capitalize() + "?" for r in rows]
    random.Random(seed).shuffle(pool)
    return pool[:n]


def speakers(conv: Any) -> list[str]:
    """A conversation's speakers, in order of first turn."""
    return list(dict.fromkeys(u.speaker for u in conv.units if u.speaker))


def renamed(question: str, names: list[str], others: list[str]) -> str:
    """The question with each of ``names`` replaced by the ``others`` at the same position."""
    for name, other in zip(names, others, strict=False):
        question = re.sub(rf"\b{re.escape(name)}\b", other, question)
    return question


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2,
                 iterations: int = 50) -> np.ndarray:
    """Weights (…, bias) of an L2-regularised logistic regression by Newton's method, with the
    two classes weighted equally."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    weight = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1)) * len(y)
    w = np.zeros(xb.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-xb @ w))
        grad = xb.T @ (weight * (p - y)) + l2 * np.r_[w[:-1], 0]
        hess = (xb * (weight * p * (1 - p))[:, None]).T @ xb + l2 * np.diag(np.r_[np.ones(
            len(w) - 1), 0])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def roc_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Probability that a positive outscores a negative (ties count half)."""
    pos, neg = scores[y == 1], scores[y == 0]
    order = np.argsort(np.r_[pos, neg], kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    values = np.r_[pos, neg]
    for v in np.unique(values):  # average ranks of ties
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def best_threshold(scores: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """(threshold, balanced accuracy, true positive rate, true negative rate) at the best
    balanced accuracy over a 0.01 grid."""
    best = (0.5, 0.0, 0.0, 0.0)
    for t in np.arange(0.01, 1.0, 0.01):
        tpr = float((scores[y == 1] >= t).mean())
        tnr = float((scores[y == 0] < t).mean())
        if (tpr + tnr) / 2 > best[1]:
            best = (round(float(t), 2), (tpr + tnr) / 2, tpr, tnr)
    return best


def run_scope_calibration(model: str = "larimar-smol", data: Path | None = None,
                          negatives_per_conversation: int = 200, seed: int = 0) -> dict[str, Any]:
    from ..relevance import CONVERSATION, Calibration
    from ..service import Larimar
    from .locomo import load_model
    from .locomo_systems import LarimarSystem

    start = time.perf_counter()
    conversations, path = load_locomo(data)
    data_root = Path(path).parent.parent
    ctx = load_model(model)
    rows: list[tuple[str, str, list[float]]] = []  # conversation, kind, evidence
    folder = tempfile.TemporaryDirectory(prefix="larimar-scope-")
    with Larimar(ctx.model, store=Path(folder.name) / "scope.sqlite3",
                 embedder=ctx.embedder) as larimar:
        negatives = off_topic_questions(data_root, negatives_per_conversation * len(conversations),
                                        seed)
        for conv in conversations:
            LarimarSystem(larimar, f"scope-{conv.sample_id}", decode=False).write(
                list(conv.units), "dated")
        for c, conv in enumerate(conversations):
            namespace = f"scope-{conv.sample_id}"
            asked = [(q.question, "dev") for q in conv.questions] + [
                (q, "off_topic") for q in negatives[c::len(conversations)]]
            if len(conversations) > 1:  # the next conversation's questions, renamed to ours
                other = conversations[(c + 1) % len(conversations)]
                asked += [(renamed(q.question, speakers(other), speakers(conv)), "renamed")
                          for q in other.questions]
            for question, kind in asked:
                hits = larimar.recall(question, k=1, namespace=namespace, decode=False).hits
                evidence = hits[0].evidence if hits else dict.fromkeys(FEATURES, 0.0)
                rows.append((conv.sample_id, kind, [evidence[f] for f in FEATURES],
                             hits[0].score if hits else 0.0))
    folder.cleanup()
    renamed_x = np.array([r[2] for r in rows if r[1] == "renamed"]).reshape(-1, len(FEATURES))
    renamed_in_use = np.array([r[3] for r in rows if r[1] == "renamed"])
    rows = [r for r in rows if r[1] != "renamed"]
    x = np.array([r[2] for r in rows])
    in_use = np.array([r[3] for r in rows])  # the score Larimar.recall gave, rules included
    y = np.array([r[1] == "dev" for r in rows], dtype=float)
    groups = np.array([r[0] for r in rows])
    w = fit_logistic(x, y)
    fitted = 1 / (1 + np.exp(-(x @ w[:-1] + w[-1])))
    held_out = np.zeros(len(y))
    for g in np.unique(groups):
        wg = fit_logistic(x[groups != g], y[groups != g])
        held_out[groups == g] = 1 / (1 + np.exp(-(x[groups == g] @ wg[:-1] + wg[-1])))
    threshold, balanced, tpr, tnr = best_threshold(fitted, y)
    calibration = Calibration(
        "conversation", bias=round(float(w[-1]), 3), threshold=threshold,
        **{f: round(float(v), 3) for f, v in zip(FEATURES, w[:-1], strict=True)})
    renamed_fitted = 1 / (1 + np.exp(-(renamed_x @ w[:-1] + w[-1])))
    use_t, use_bal, use_tpr, use_tnr = (CONVERSATION.threshold, *_rates(in_use, y,
                                                                        CONVERSATION.threshold))
    return {
        "experiment": NAME,
        "description": "calibration of the relevance score's conversational scope point: LoCoMo "
                       "dev questions (in scope) vs zsRE/NQ training questions and other "
                       "conversations' questions renamed to this one's speakers (off topic)",
        "model": ctx.model_name,
        "data": str(path),
        "seconds": round(time.perf_counter() - start, 1),
        "counts": {"in_scope": int(y.sum()), "off_topic": int((1 - y).sum()),
                   "renamed": len(renamed_x),
                   "conversations": [c.sample_id for c in conversations]},
        "features": list(FEATURES),
        "auc": {
            "fitted": roc_auc(fitted, y),
            "fitted_leave_one_conversation_out": roc_auc(held_out, y),
            **{f"{name}_alone": roc_auc(x[:, i], y) for i, name in enumerate(FEATURES)},
            "in_use": roc_auc(in_use, y),
        },
        "fitted": {"calibration": calibration.__dict__, "balanced_accuracy": balanced,
                   "in_scope_accepted": tpr, "off_topic_rejected": tnr,
                   "renamed_rejected": _share_below(renamed_fitted, threshold)},
        "in_use": {"calibration": CONVERSATION.__dict__, "threshold": use_t,
                   "balanced_accuracy": use_bal, "in_scope_accepted": use_tpr,
                   "off_topic_rejected": use_tnr,
                   "renamed_rejected": _share_below(renamed_in_use, use_t)},
        "roc": {"fitted": _roc_points(fitted, y), "dense_alone": _roc_points(x[:, 0], y)},
    }


def _share_below(scores: np.ndarray, t: float) -> float | None:
    return float((scores < t).mean()) if len(scores) else None


def _rates(scores: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float, float]:
    tpr = float((scores[y == 1] >= t).mean())
    tnr = float((scores[y == 0] < t).mean())
    return (tpr + tnr) / 2, tpr, tnr


def _roc_points(scores: np.ndarray, y: np.ndarray) -> list[list[float]]:
    points = []
    for t in np.quantile(scores, np.linspace(0, 1, 41)):
        points.append([float((scores[y == 0] >= t).mean()), float((scores[y == 1] >= t).mean())])
    return points


def save_scope(payload: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{NAME}.json"
    json_path.write_text(json.dumps(payload, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, points in payload["roc"].items():
        fpr, tpr = zip(*points, strict=True)
        ax.plot(fpr, tpr, marker=".", label=f"{name} (AUC {payload['auc'][name]:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel("off-topic questions given memory")
    ax.set_ylabel("LoCoMo dev questions given memory")
    ax.set_title("Scope: calibrated relevance vs key cosine alone")
    ax.legend(loc="lower right")
    png = out_dir / f"{NAME}.png"
    fig.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return json_path, png
