"""`larimar eval context-point`: where memory starts being worth showing a language model.

The scope point (`relevance.CONVERSATION.threshold`) decides what the decoder answers from; a
wrong memory there becomes a wrong answer. An agent's model given memory in its prompt can
ignore a fact that does not answer, while given nothing it cannot answer: for it a missed fact
costs more than an unrelated one shown. This measures that trade on the dialogue suite, for
questions about the user (the only ones the context point applies to):

- **asked**: each question about a stated fact, against the memory that should answer it (the
  dialogue replayed up to it through ``Larimar.remember(messages=...)``, as the middleware
  writes). Shown = the scope decision calls the memory relevant *and* the fact is among the
  ``k`` hits.
- **unanswered**: two other dialogues' questions about the user, against the same memory.
  Nothing stored answers them (a few do by chance: "What is my daughter's name?" asked of
  another parent), so their rate is pessimistic.

For each point the cost is ``miss_cost`` × missed share + shown share of unanswered questions;
the chosen point is the cheapest (ties: the higher point). The scores come from
`Larimar.recall` itself, so the figures measure the code users run.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...relevance import CONVERSATION, Calibration, Evidence

NAME = "eval-context-point"
GRID = tuple(round(t, 2) for t in np.arange(0.01, 1.0, 0.01))


@dataclass(frozen=True)
class Scored:
    """One question's best hit against a memory, and whether its fact was among the hits."""

    kind: str  # "asked" | "unanswered"
    question: str
    dialogue: str
    evidence: Evidence | None  # the best hit's (None: no hit)
    score: float
    found: bool  # asked: its fact is among the hits (unanswered: False)
    best: str  # the best hit's text


def shown(s: Scored, calibration: Calibration, context_point: float) -> bool:
    """Whether the memory is shown to a model at this context point (`Calibration.shows`)."""
    return s.evidence is not None and calibration.shows(s.evidence,
                                                        context_threshold=context_point)


def cost_curve(asked: list[Scored], unanswered: list[Scored], calibration: Calibration,
               miss_cost: float) -> list[dict[str, float]]:
    """Per context point: the share of asked facts shown, of unanswered questions given
    memory, and the cost ``miss_cost`` × missed + shown unanswered."""
    rows = []
    for t in GRID:
        shown_asked = [shown(s, calibration, t) and s.found for s in asked]
        wrong = [shown(s, calibration, t) for s in unanswered]
        missed = 1.0 - float(np.mean(shown_asked)) if shown_asked else 0.0
        given = float(np.mean(wrong)) if wrong else 0.0
        rows.append({"point": t, "asked_shown": 1.0 - missed, "unanswered_shown": given,
                     "cost": miss_cost * missed + given})
    return rows


def cheapest(curve: list[dict[str, float]]) -> dict[str, float]:
    """The point of least cost; of equal costs, the highest (fewest unrelated facts shown)."""
    least = min(r["cost"] for r in curve)
    return max((r for r in curve if r["cost"] <= least + 1e-12), key=lambda r: r["point"])


def score_dialogues(larimar: Any, dialogues: list[Any], k: int, seed: int
                    ) -> list[Scored]:
    """Replay every dialogue into its own namespace; at each asked turn, score the question
    and two other dialogues' questions about the user."""
    questions = [(d.id, t.say) for d in dialogues for _, t in d.turns if t.kind == "asks"]
    rng = random.Random(seed)
    out: list[Scored] = []

    def score(question: str, dialogue: str, kind: str, pattern: Any) -> None:
        hits = larimar.recall(question, k=k, namespace=dialogue, decode=False).hits
        found = pattern is not None and any(pattern.search(h.fact.text) for h in hits)
        best = hits[0] if hits else None
        out.append(Scored(kind, question, dialogue,
                          Evidence(**best.evidence) if best else None,
                          best.score if best else 0.0, found, best.fact.text if best else ""))

    for d in dialogues:
        others = [q for q in questions if q[0] != d.id]
        for _, turn in d.turns:
            if turn.kind == "asks":
                score(turn.say, d.id, "asked", d.facts[turn.asks].pattern)
                for _, other in rng.sample(others, min(2, len(others))):
                    score(other, d.id, "unanswered", None)
            elif turn.kind != "off_topic":
                larimar.remember(messages=[{"role": "user", "content": turn.say}],
                                 namespace=d.id)
    return out


def run_context_point(tiny: bool = False, k: int = 3, miss_cost: float = 2.0, seed: int = 0,
                      data: list[Path] | None = None) -> dict[str, Any]:
    from ...service import Larimar
    from ..locomo import TINY, load_model
    from ..scope_calibration import roc_auc
    from .schema import load_dialogues

    start = time.perf_counter()
    dialogues = load_dialogues(data)
    ctx = load_model(TINY if tiny else "larimar-smol")
    with tempfile.TemporaryDirectory(prefix="larimar-context-") as folder, \
            Larimar(ctx.model, store=Path(folder) / "context.sqlite3",
                    embedder=ctx.embedder) as larimar:
        scored = score_dialogues(larimar, dialogues, k, seed)
    asked = [s for s in scored if s.kind == "asked"]
    unanswered = [s for s in scored if s.kind == "unanswered"]
    scope_point = CONVERSATION.threshold
    curve = cost_curve(asked, unanswered, CONVERSATION, miss_cost)
    chosen = cheapest(curve)
    in_use = CONVERSATION.context_threshold or scope_point
    at = {r["point"]: r for r in curve}
    y = np.r_[np.ones(len(asked)), np.zeros(len(unanswered))]
    scores = np.array([s.score for s in asked + unanswered])
    return {
        "experiment": NAME,
        "description": "context point of the conversational calibration: questions about the "
                       "user against the memory that answers them vs other dialogues' "
                       "questions against the same memory",
        "model": ctx.model_name,
        "seconds": round(time.perf_counter() - start, 1),
        "options": {"k": k, "miss_cost": miss_cost, "seed": seed, "dialogues": len(dialogues)},
        "counts": {"asked": len(asked), "unanswered": len(unanswered),
                   "asked_fact_in_hits": sum(s.found for s in asked)},
        "auc_best_hit_score": roc_auc(scores, y) if len(asked) and len(unanswered) else None,
        "scope_point": {"point": scope_point, **_pick(at, scope_point)},
        "chosen": chosen,
        "in_use": {"point": in_use, **_pick(at, in_use)},
        "curve": curve,
        "asked_not_shown": [_row(s) for s in asked
                            if not (shown(s, CONVERSATION, in_use) and s.found)],
        "unanswered_shown": [_row(s) for s in unanswered if shown(s, CONVERSATION, in_use)],
    }


def _row(s: Scored) -> dict[str, Any]:
    return {**s.__dict__, "evidence": s.evidence.__dict__ if s.evidence else None}


def _pick(at: dict[float, dict[str, float]], point: float) -> dict[str, float]:
    row = at.get(round(point, 2), {})
    return {k: v for k, v in row.items() if k != "point"}


def save_context_point(payload: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{NAME}.json"
    json_path.write_text(json.dumps(payload, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = payload["curve"]
    fig, ax = plt.subplots(figsize=(6, 4))
    points = [r["point"] for r in curve]
    ax.plot(points, [r["asked_shown"] for r in curve], label="asked facts shown")
    ax.plot(points, [r["unanswered_shown"] for r in curve],
            label="unanswered questions given memory")
    ax.plot(points, [r["cost"] for r in curve], ls="--",
            label=f"cost ({payload['options']['miss_cost']:g} × missed + shown)")
    ax.axvline(payload["in_use"]["point"], color="grey", lw=0.8, label="context point in use")
    ax.axvline(payload["scope_point"]["point"], color="black", lw=0.8, ls=":",
               label="scope (decoding) point")
    ax.set_xlabel("context point (calibrated relevance of the best hit)")
    ax.set_ylabel("share")
    ax.set_title("Questions about the user: memory shown to the model")
    ax.legend(fontsize=7)
    png = out_dir / f"{NAME}.png"
    fig.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return json_path, png
