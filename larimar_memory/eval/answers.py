"""`larimar eval answers`: are the answers right? `Larimar.ask`, `LarimarQueryEngine` and
`ChatLarimar`, on the dialogue suite and on LoCoMo dev single-hop questions.

* **Dialogues** (`larimar_memory.eval.dialogues`): each dialogue is replayed into its own
  namespace with the writes a tool-calling agent would make (each stated fact's clean sentence;
  a correction forgets the old fact and writes the new one; a forget removes the facts), so the
  memory holds exactly what it should and only the answer is measured. Every question about a
  fact ("asks") and every general-knowledge question ("off_topic") is put to each system when it
  comes up; the gold answer is the turn's ``answer``, else the fact's needle. Then every
  question is asked again of an empty namespace: with nothing stored, a question about the user
  must take the ``unknown`` route (any decoded answer to it is an invented personal fact) and a
  general one ``plain``.
* **LoCoMo** (dev, category 4, single-hop): each conversation's turns are written as
  `LarimarSystem` writes them (dated turn, context key), then each question is asked with the
  memory and of an empty namespace; the gold answer is LoCoMo's.

Scores per answer: containment (the gold answer in the answer: whole words for a needle,
LoCoMo's lowercase substring for LoCoMo) and LoCoMo's token F1; grouped by suite, system,
with/without memory, kind of question and route. The frameworks load only when a run starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..benchmarks.common import machine
from ..types import DecoderWeights
from .dialogues.schema import whole_words
from .locomo_data import CATEGORIES, contains_answer, locomo_f1, token_f1

logger = logging.getLogger(__name__)

RESULT_NAME = "eval-answers"
SYSTEMS = ("ask", "query-engine", "chat")
SINGLE_HOP = next(c for c, name in CATEGORIES.items() if name == "single-hop")
Kind = Literal["asks", "off_topic", "locomo"]
Answerer = Callable[[str, str], tuple[str, str]]  # (question, namespace) -> (answer, route)


class AnswerOptions(BaseModel):
    """What to run (the CLI's flags)."""

    model_config = ConfigDict(extra="forbid")

    systems: list[Literal["ask", "query-engine", "chat"]] = Field(
        default_factory=lambda: list(SYSTEMS))
    dialogues: list[str] | None = Field(None, description="dialogue ids; None: all packaged")
    dialogue_data: list[Path] | None = Field(None, description="YAML files instead")
    skip_dialogues: bool = False
    locomo: Path | None = Field(None, description="LoCoMo JSON; None: the dev copy")
    locomo_questions: int | None = Field(
        None, ge=1, description="single-hop questions per conversation; None: all")
    skip_locomo: bool = False
    without_memory: bool = Field(True, description="also ask every question of an empty "
                                                   "namespace")
    ask_k: int | None = Field(None, ge=1, le=64,
                              description="facts read per answer, every system; None: "
                                          "settings.ask_k (the query engine's answer_k "
                                          "defaults to it too)")
    max_new_tokens: int | None = Field(None, ge=1, le=1024)
    copy_bias: float | None = Field(None, ge=0, le=50,
                                    description="LarimarSettings.copy_bias; None: its default")
    spell_as_stored: bool | None = Field(
        None, description="LarimarSettings.spell_as_stored; None: its default")
    decoder_weights: DecoderWeights | None = Field(
        None, description="LarimarSettings.decoder_weights; None: its default")
    model: str | None = Field(None, description="a save_pretrained folder or packaged name; "
                                                "None: the packaged default")
    tiny: bool = Field(False, description="the tiny random model (smoke tests)")
    threads: int = Field(1, ge=1)


@dataclass
class Answer:
    """One question put to one system."""

    suite: Literal["dialogues", "locomo"]
    system: str
    memory: bool  # asked of the namespace holding the facts (False: an empty namespace)
    kind: Kind
    question: str
    gold: str | None
    answer: str
    route: str
    seconds: float
    contains: bool | None = None
    f1: float | None = None
    source: str = ""  # dialogue id or LoCoMo sample id


# -- the systems -----------------------------------------------------------------------------------


def answerers(memory: Any, options: AnswerOptions) -> dict[str, Answerer]:
    """The systems, each answering through its own public API as its docs show (``ask_k`` and
    ``max_new_tokens`` reach `ask` and `ChatLarimar` through the settings)."""
    out: dict[str, Answerer] = {}
    k = options.ask_k
    if "ask" in options.systems:
        def ask(question: str, namespace: str) -> tuple[str, str]:
            result = memory.ask(question, namespace=namespace)
            return result.answer, result.route

        out["ask"] = ask
    if "query-engine" in options.systems:
        from llama_index.memory.larimar import LarimarQueryEngine

        engines: dict[str, Any] = {}

        def query(question: str, namespace: str) -> tuple[str, str]:
            if namespace not in engines:
                extra = {} if k is None else {"answer_k": k}
                engines[namespace] = LarimarQueryEngine(larimar=memory, namespace=namespace,
                                                        **extra)
            response = engines[namespace].query(question)
            return str(response.response), str(response.metadata["route"])

        out["query-engine"] = query
    if "chat" in options.systems:
        from langchain_larimar import ChatLarimar

        chats: dict[str, Any] = {}

        def chat(question: str, namespace: str) -> tuple[str, str]:
            if namespace not in chats:
                chats[namespace] = ChatLarimar(larimar=memory, namespace=namespace)
            reply = chats[namespace].invoke(question)
            return str(reply.content), str(reply.response_metadata["route"])

        out["chat"] = chat
    return out


def _put(systems: dict[str, Answerer], question: str, namespace: str, **record: Any
         ) -> list[Answer]:
    """``question`` put to every system; each answer scored against ``record["gold"]``."""
    out = []
    for name, answer_of in systems.items():
        start = time.perf_counter()
        answer, route = answer_of(question, namespace)
        out.append(Answer(system=name, question=question, answer=answer, route=route,
                          seconds=time.perf_counter() - start, **record))
    return out


# -- the suites ------------------------------------------------------------------------------------


def run_dialogues(memory: Any, systems: dict[str, Answerer], options: AnswerOptions,
                  progress: Callable[[], None] | None = None) -> list[Answer]:
    """Every dialogue replayed with an agent's writes; its questions asked as they come, then
    of an empty namespace."""
    from .dialogues.schema import load_dialogues

    out: list[Answer] = []
    for dialogue in load_dialogues(options.dialogue_data, options.dialogues):
        namespace, ids, facts = f"answers-{dialogue.id}", {}, dialogue.facts
        asked: list[tuple[str, Kind, str | None]] = []
        for _, turn in dialogue.turns:
            for name in turn.states:
                ids[name] = memory.remember(facts[name].text, namespace=namespace).ids[0]
            for old, new in turn.corrects.items():
                memory.forget(ids.pop(old), namespace=namespace)
                ids[new] = memory.remember(facts[new].text, namespace=namespace).ids[0]
            for name in turn.forgets:
                memory.forget(ids.pop(name), namespace=namespace)
            if turn.asks or turn.off_topic:
                asked.append((turn.say, "asks" if turn.asks else "off_topic",
                              turn.answer or facts[turn.asks].needle if turn.asks else None))
                out += _dialogue_answers(systems, *asked[-1], namespace, dialogue.id, True)
        if options.without_memory:
            for question, kind, gold in asked:
                out += _dialogue_answers(systems, question, kind, gold,
                                         f"answers-empty-{dialogue.id}", dialogue.id, False)
        memory.clear(namespace=namespace)
        if progress is not None:
            progress()
    return out


def _dialogue_answers(systems: dict[str, Answerer], question: str, kind: Kind,
                      gold: str | None, namespace: str, source: str, memory: bool
                      ) -> list[Answer]:
    """A dialogue's question put to every system, scored against its gold words (whole
    words, case-blind)."""
    answers = _put(systems, question, namespace, suite="dialogues", memory=memory, kind=kind,
                   gold=gold, source=source)
    for a in answers if gold is not None else []:
        a.contains = bool(whole_words(gold).search(a.answer))
        a.f1 = token_f1(a.answer, gold)
    return answers


def run_locomo_questions(memory: Any, systems: dict[str, Answerer], options: AnswerOptions,
                         progress: Callable[[], None] | None = None) -> list[Answer]:
    """LoCoMo dev single-hop questions, with each conversation in memory and without."""
    from .locomo_data import load_locomo
    from .locomo_systems import LarimarSystem

    conversations, _ = load_locomo(options.locomo)
    out: list[Answer] = []
    for conv in conversations:
        namespace = f"answers-locomo-{conv.sample_id}"
        LarimarSystem(memory, namespace, decode=False).write(list(conv.units), "dated")
        questions = [q for q in conv.questions if q.category == SINGLE_HOP]
        for q in questions[: options.locomo_questions]:
            for with_memory in (True, False) if options.without_memory else (True,):
                where = namespace if with_memory else f"answers-empty-{conv.sample_id}"
                answers = _put(systems, q.question, where, suite="locomo", memory=with_memory,
                               kind="locomo", gold=q.answer, source=conv.sample_id)
                for a in answers:
                    a.contains = contains_answer(q.answer, [a.answer])
                    a.f1 = locomo_f1(a.answer, q.answer, q.category)
                out += answers
        memory.clear(namespace=namespace)
        if progress is not None:
            progress()
    return out


@contextlib.contextmanager
def open_memory(options: AnswerOptions) -> Iterator[Any]:
    """A `Larimar` on a temporary store (the packaged models, or the tiny random one)."""
    from ..service import Larimar, LarimarSettings

    update = {key: value for key, value in (("max_new_tokens", options.max_new_tokens),
                                            ("ask_k", options.ask_k),
                                            ("copy_bias", options.copy_bias),
                                            ("spell_as_stored", options.spell_as_stored),
                                            ("decoder_weights", options.decoder_weights))
              if value is not None}
    with tempfile.TemporaryDirectory(prefix="larimar-answers-") as tmp:
        store = Path(tmp) / "facts.sqlite3"
        if options.tiny:
            from ..testing import tiny_larimar

            memory = tiny_larimar(store, model_overrides={
                "latent": "token-codes", "num_latent_tokens": 48, "max_text_tokens": 47},
                **update)
        else:
            memory = Larimar(options.model, store=store, settings=LarimarSettings(**update))
        try:
            yield memory
        finally:
            memory.close()


def run_answers(options: AnswerOptions, progress: Callable[[], None] | None = None
                ) -> dict[str, Any]:
    """Both suites through every system; the JSON payload (summary and every answer)."""
    import torch

    torch.set_num_threads(options.threads)
    started = time.perf_counter()
    with open_memory(options) as memory:
        systems = answerers(memory, options)
        answers: list[Answer] = []
        if not options.skip_dialogues:
            answers += run_dialogues(memory, systems, options, progress)
        if not options.skip_locomo:
            answers += run_locomo_questions(memory, systems, options, progress)
        settings = {"ask_k": memory.settings.ask_k, "max_new_tokens":
                    memory.settings.max_new_tokens, "scope_threshold": memory.scope_threshold,
                    "decoder_weights": memory.settings.decoder_weights,
                    "copy_bias": memory.settings.copy_bias,
                    "spell_as_stored": memory.settings.spell_as_stored}
    return {
        "experiment": "answers",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": options.model_dump(mode="json"),
        "settings": {**settings, "model": "tiny random" if options.tiny
                     else options.model or "larimar-smol"},
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summarize(answers),
        "groups": groups(answers),
        "answers": [asdict(a) for a in answers],
    }


# -- scores ----------------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _mean_pct(values: list[float]) -> float | None:
    return round(100 * statistics.fmean(values), 1) if values else None


def groups(answers: list[Answer]) -> list[dict[str, Any]]:
    """Containment and F1 per suite × system × memory × kind × route."""
    cells: dict[tuple[str, str, bool, str, str], list[Answer]] = defaultdict(list)
    for a in answers:
        cells[(a.suite, a.system, a.memory, a.kind, a.route)].append(a)
    return [{"suite": s, "system": name, "memory": m, "kind": kind, "route": route,
             "n": len(cell),
             "contains_pct": _pct(sum(bool(a.contains) for a in cell), len(cell))
             if cell[0].gold is not None else None,
             "f1": _mean_pct([a.f1 for a in cell if a.f1 is not None])}
            for (s, name, m, kind, route), cell in sorted(cells.items())]


def summarize(answers: list[Answer]) -> dict[str, dict[str, Any]]:
    """The issue's figures per system: stored fact answered %, invented personal facts with
    nothing stored, general questions decoded plainly, LoCoMo F1, latency."""
    out: dict[str, dict[str, Any]] = {}
    for system in dict.fromkeys(a.system for a in answers):
        mine = [a for a in answers if a.system == system]

        def pick(suite: str, memory: bool, kind: str) -> list[Answer]:
            return [a for a in mine if (a.suite, a.memory, a.kind) == (suite, memory, kind)]  # noqa: B023

        asks, empty_asks = pick("dialogues", True, "asks"), pick("dialogues", False, "asks")
        off, empty_off = pick("dialogues", True, "off_topic"), pick("dialogues", False, "off_topic")
        loc, empty_loc = pick("locomo", True, "locomo"), pick("locomo", False, "locomo")
        decoded = [a.seconds for a in mine if a.route != "unknown"]
        out[system] = {
            "asks": len(asks),
            "asks_answered_with_fact_pct": _pct(sum(bool(a.contains) for a in asks), len(asks)),
            "asks_f1": _mean_pct([a.f1 for a in asks if a.f1 is not None]),
            "asks_memory_route_pct": _pct(sum(a.route == "memory" for a in asks), len(asks)),
            "asks_nothing_stored": len(empty_asks),
            "invented_personal_facts": sum(a.route != "unknown" for a in empty_asks),
            "off_topic_plain_pct": _pct(sum(a.route == "plain" for a in off), len(off)),
            "off_topic_nothing_stored_plain_pct": _pct(
                sum(a.route == "plain" for a in empty_off), len(empty_off)),
            "locomo_questions": len(loc),
            "locomo_f1": _mean_pct([a.f1 for a in loc if a.f1 is not None]),
            "locomo_contains_pct": _pct(sum(bool(a.contains) for a in loc), len(loc)),
            "locomo_memory_route_pct": _pct(sum(a.route == "memory" for a in loc), len(loc)),
            "locomo_f1_nothing_stored": _mean_pct([a.f1 for a in empty_loc
                                                   if a.f1 is not None]),
            "ms_p50_decoded": round(1000 * statistics.median(decoded), 1) if decoded else None,
        }
    return out


SUMMARY_COLUMNS = [
    ("asks_answered_with_fact_pct", "asked fact in answer %"),
    ("asks_f1", "asks F1"),
    ("asks_memory_route_pct", "asks → memory %"),
    ("invented_personal_facts", "invented (nothing stored)"),
    ("off_topic_plain_pct", "off-topic → plain %"),
    ("off_topic_nothing_stored_plain_pct", "off-topic, empty → plain %"),
    ("locomo_f1", "LoCoMo F1"),
    ("locomo_contains_pct", "LoCoMo contains %"),
    ("locomo_f1_nothing_stored", "LoCoMo F1, no memory"),
    ("ms_p50_decoded", "ms p50"),
]


def table_rows(payload: dict[str, Any]) -> list[list[str]]:
    header = ["system", *(name for _, name in SUMMARY_COLUMNS)]
    rows = [[system, *("-" if row[key] is None else str(row[key]) for key, _ in SUMMARY_COLUMNS)]
            for system, row in payload["summary"].items()]
    return [header, *rows]


def markdown_table(payload: dict[str, Any]) -> str:
    header, *rows = table_rows(payload)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def save(payload: dict[str, Any], out_dir: Path, name: str = RESULT_NAME
         ) -> tuple[Path, Path | None]:
    """``<name>.json`` and a bar chart ``<name>.png`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
    if not payload["summary"]:
        return path, None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("dialogues: asked facts", [("asks_answered_with_fact_pct", "fact in answer %"),
                                    ("asks_f1", "token F1"),
                                    ("asks_memory_route_pct", "route memory %")]),
        ("dialogues: routing", [("off_topic_plain_pct", "off-topic → plain %"),
                                ("off_topic_nothing_stored_plain_pct", "same, nothing stored")]),
        ("LoCoMo dev single-hop", [("locomo_f1", "F1 with memory"),
                                   ("locomo_contains_pct", "contains %"),
                                   ("locomo_f1_nothing_stored", "F1 nothing stored")]),
    ]
    systems = list(payload["summary"])
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(18, 3.8))
    for ax, (title, series) in zip(axes, panels, strict=False):
        width = 0.8 / len(series)
        for j, (key, label) in enumerate(series):
            values = [payload["summary"][s][key] or 0 for s in systems]
            bars = ax.bar([i + j * width for i in range(len(systems))], values, width,
                          label=label)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(systems))], systems)
        ax.set_ylim(0, 105)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    ax = axes[-1]
    invented = [payload["summary"][s]["invented_personal_facts"] for s in systems]
    asked = [payload["summary"][s]["asks_nothing_stored"] for s in systems]
    bars = ax.bar(systems, invented, color="tab:red")
    ax.bar_label(bars, labels=[f"{i} / {n}" for i, n in zip(invented, asked, strict=True)],
                 fontsize=7)
    ax.set_title("invented personal facts, nothing stored", fontsize=9)
    fig.suptitle(f"larimar eval answers ({payload['settings']['model']}, ask_k "
                 f"{payload['settings']['ask_k']})", fontsize=10)
    fig.tight_layout()
    png = out_dir / f"{name}.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return path, png
