"""`larimar eval locomo`: conversational memory on LoCoMo, Larimar next to retrieval baselines.

Every turn of a conversation is written, one call per turn, to the conversation's own namespace
(per unit variant: the bare turn, or ``"<date> <speaker>: <text>"``). Each question of
categories 1–4 is recalled with ``k = max(--k)``; a question is a hit at k when one of the top-k
facts' ``dia_id`` is in its evidence. Reported per system and variant: evidence recall@k, answer
containment@k (the gold answer, lowercased, inside the concatenated top-k texts), write ms per
turn, recall latency p50, bytes per namespace, and every write that was not a plain write.

Optionally (not ``--skip-ask``) every question is answered end to end and scored with LoCoMo's
token F1: Larimar's memory-conditioned ``ask(question, k=...)``, the same SmolLM2 decoder given
the vector store's top-k texts in a plain prompt, and the decoder with no memory at all.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..benchmarks.common import percentile
from .locomo_data import (
    CATEGORIES,
    VARIANTS,
    Conversation,
    Unit,
    Variant,
    load_locomo,
    locomo_f1,
)
from .locomo_systems import (
    BM25System,
    FusionSystem,
    LarimarSystem,
    Mem0Backend,
    Mem0System,
    MemorySystem,
    VectorSystem,
    langchain_embeddings,
    offline_mem0_env,
    unit_keys,
)
from .options import RESULTS_DIR

logger = logging.getLogger(__name__)

NAME = "conversation-recall"  # not "locomo": result files must not look like copied data
ASK_PROMPT = "Context:\n{context}\nQuestion: {question}\nAnswer briefly:"
SCALE_FACTS = 5_000  # one namespace of this many facts for the recall latency (issue 27)
_LISTED_EVENTS = 25  # write events listed in the JSON (all are counted)
_EVENT_CHARS = 160


class LocomoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "larimar-smol"
    data: Path | None = None
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10])
    conversations: int | None = Field(None, ge=1)
    variants: list[Variant] = Field(default_factory=lambda: list(VARIANTS))
    skip_mem0: bool = False
    skip_larimar: bool = Field(False, description="baselines only")
    skip_ask: bool = False
    limit_questions: int | None = Field(None, ge=1, description="questions asked per conversation")
    ask_k: int = Field(3, ge=1)
    scope_threshold: float | None = Field(
        None, ge=0, le=1,
        description="operating point on the calibrated relevance score; None: the "
        "conversation calibration's own (larimar_memory.relevance.CONVERSATION)",
    )
    ask_variant: Literal["best", "bare", "dated"] = "best"
    max_new_tokens: int = Field(16, ge=1, le=256)
    decode: bool = Field(True, description="Larimar recall decodes hit texts from memory")
    embedder: str | None = Field(None, description="key embedder for every system (a "
                                 "SentenceEmbedder name); None: the packaged all-MiniLM-L6-v2")
    scale_facts: int = Field(SCALE_FACTS, ge=0, description="facts in the one namespace whose "
                             "recall latency is measured (0: not measured)")
    out_dir: Path = RESULTS_DIR
    seed: int = 0
    device: str | None = None


class _Tally:
    """Hits, containment and latencies of one system on one variant, over all namespaces."""

    def __init__(self, ks: list[int]) -> None:
        self.ks = ks
        self.hit: dict[int, list[bool]] = defaultdict(list)
        self.contained: dict[int, list[bool]] = defaultdict(list)
        self.by_category: dict[int, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
        self.latency: list[float] = []
        self.write_seconds: list[float] = []
        self.batch_seconds: float = 0.0
        self.turns = 0
        self.bytes: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.hit_counts: list[int] = []

    def add_question(self, hits: list[Any], evidence: frozenset[str], answer: str,
                     category: int, seconds: float) -> None:
        from .locomo_data import contains_answer

        self.latency.append(seconds)
        self.hit_counts.append(len(hits))
        for k in self.ks:
            top = hits[:k]
            found = any(d in evidence for h in top for d in h.dia_ids)
            self.hit[k].append(found)
            self.by_category[category][k].append(found)
            self.contained[k].append(contains_answer(answer, [h.text for h in top]))

    def row(self) -> dict[str, Any]:
        def pct(values: list[bool]) -> float | None:
            return round(100.0 * sum(values) / len(values), 2) if values else None

        write_total = sum(self.write_seconds) + self.batch_seconds
        primary = [_primary_bytes(b) for b in self.bytes]
        primary = [b for b in primary if b is not None]
        return {
            "questions": len(self.latency),
            "recall_at_k": {str(k): pct(self.hit[k]) for k in self.ks},
            "containment_at_k": {str(k): pct(self.contained[k]) for k in self.ks},
            "recall_at_k_by_category": {
                CATEGORIES[c]: {str(k): pct(v[k]) for k in self.ks}
                for c, v in sorted(self.by_category.items())
            },
            "mean_hits_returned": (round(statistics.fmean(self.hit_counts), 2)
                                   if self.hit_counts else None),
            "turns": self.turns,
            "write_ms_per_turn": round(1000 * write_total / self.turns, 3) if self.turns else None,
            "write_ms_p50": (round(1000 * statistics.median(self.write_seconds), 3)
                             if self.write_seconds else None),
            "write_mode": "one call per turn" if self.write_seconds else "one index build",
            "recall_ms_p50": (round(1000 * statistics.median(self.latency), 3)
                              if self.latency else None),
            "recall_ms_p95": (round(1000 * percentile(self.latency, 95), 3)
                              if self.latency else None),
            "recall_ms_mean": (round(1000 * statistics.fmean(self.latency), 3)
                               if self.latency else None),
            "bytes_per_namespace": round(statistics.fmean(primary)) if primary else None,
            "bytes_detail": self.bytes,
            "replacements": sum(e["status"] == "replaced" for e in self.events),
            "duplicates": sum(e["status"] == "duplicate" for e in self.events),
            "refused": sum(e["status"] == "refused" for e in self.events),
            "other_write_events": sum(e["status"] not in ("replaced", "duplicate", "refused")
                                      for e in self.events),
            "write_events": [_clip(e) for e in self.events[:_LISTED_EVENTS]],
        }


def _primary_bytes(detail: dict[str, Any]) -> float | None:
    for key in ("state_bytes", "memory_bytes", "embedding_bytes", "index_bytes"):
        if isinstance(detail.get(key), (int, float)):
            total = detail[key]
            if key == "embedding_bytes" and isinstance(detail.get("index_bytes"), (int, float)):
                total += detail["index_bytes"]
            return float(total)
    numeric = [v for k, v in detail.items() if k.endswith("bytes") and isinstance(v, (int, float))
               and k != "rss_delta_bytes"]
    if numeric:
        return float(sum(numeric))
    rss = detail.get("rss_delta_bytes")
    return float(rss) if isinstance(rss, (int, float)) else None


def _clip(event: dict[str, Any]) -> dict[str, Any]:
    return {k: (v[:_EVENT_CHARS] if isinstance(v, str) else v) for k, v in event.items()}


def _rss() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.Process().memory_info().rss)


def _available(module: str) -> str | None:
    """None when ``module`` imports, else why not."""
    import importlib

    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install
        return f"{module} not importable: {type(exc).__name__}: {exc}"
    return None


def run_locomo(options: LocomoOptions) -> dict[str, Any]:
    """Run the comparison and return the JSON payload (see `save_locomo`)."""
    from ..benchmarks.common import machine
    from ..service import Larimar, LarimarSettings

    ks = sorted(set(options.ks))
    if not ks or ks[0] < 1:
        raise ValueError("--k needs positive integers")
    max_k = ks[-1]
    torch.manual_seed(options.seed)
    start = time.perf_counter()
    conversations, path = load_locomo(options.data, options.conversations)
    ctx = load_model(options.model, device=options.device, seed=options.seed,
                     embedder=options.embedder)
    notes: dict[str, str] = {}
    for name, module in (("vector", "langchain_core"), ("bm25", "bm25s")):
        if (why := _available(module)) is not None:
            notes[name] = why
    folder = tempfile.TemporaryDirectory(prefix="larimar-locomo-")
    larimar = Larimar(ctx.model, store=Path(folder.name) / "larimar.sqlite3",
                      embedder=ctx.embedder,
                      settings=LarimarSettings(max_new_tokens=options.max_new_tokens,
                                               scope_threshold=options.scope_threshold))
    embeddings = langchain_embeddings(ctx.embedder) if "vector" not in notes else None
    packaged = options.model != TINY and options.embedder is None  # mem0 loads the same folder
    mem0 = None if options.skip_mem0 else _start_mem0(packaged, ctx, embeddings, notes)
    if options.skip_mem0:
        notes["mem0"] = "skipped (--skip-mem0)"
    tallies: dict[str, dict[str, _Tally]] = {v: {} for v in options.variants}
    live: dict[tuple[str, str], dict[str, MemorySystem]] = {}
    try:
        for variant in options.variants:
            for conv in conversations:
                systems = _build_systems(None if options.skip_larimar else larimar,
                                         f"locomo/{conv.sample_id}/{variant}", embeddings,
                                         ctx.embedder.dim, notes, mem0, options.decode)
                live[(variant, conv.sample_id)] = systems
                _measure(conv, variant, systems, tallies[variant], ks, max_k)
                logger.info("%s/%s: %s", variant, conv.sample_id, {
                    n: t.row()["recall_at_k"] for n, t in tallies[variant].items()})
        metrics = {v: {n: t.row() for n, t in tallies[v].items()} for v in options.variants}
        scale = None
        if options.scale_facts and not options.skip_larimar:
            scale = scale_latency(larimar, conversations, options.scale_facts, max_k,
                                  options.decode)
        ask: dict[str, Any] | None = None
        if not options.skip_ask:
            ask = _ask(options, conversations, live, metrics, larimar, ctx.model)
    finally:
        larimar.close()
        if mem0 is not None:
            mem0.close()
        folder.cleanup()
    counts = {
        "conversations": [c.sample_id for c in conversations],
        "turns": sum(len(c.units) for c in conversations),
        "questions": sum(len(c.questions) for c in conversations),
        "questions_by_category": {
            CATEGORIES[cat]: sum(q.category == cat for c in conversations for q in c.questions)
            for cat in CATEGORIES
        },
    }
    return {
        "experiment": NAME,
        "description": "LoCoMo conversational memory: evidence recall@k, answer containment, "
                       "write/recall cost, replacements; Larimar vs vector store, BM25, "
                       "BM25⊕vector RRF (each on the unit text and on Larimar's keys), mem0; "
                       "per category; recall latency at scale_facts; end-to-end ask F1",
        "model": ctx.model_name,
        "model_description": ctx.model_description,
        "key_embedder": {"name": ctx.embedder.name, "backend": ctx.embedder.backend},
        "options": options.model_dump(mode="json"),
        "seconds": round(time.perf_counter() - start, 2),
        "machine": machine(),
        "data": str(path),
        "counts": counts,
        "ks": ks,
        "baselines": notes,
        "definitions": {
            "recall_at_k": "% of questions whose evidence dia_ids include one of the top-k hits'",
            "containment_at_k": "% of questions whose gold answer (lowercased) occurs in the "
                                "concatenated top-k texts (Larimar: texts read from memory)",
            "write_ms_per_turn": "total write time / turns (BM25: one index build / turns)",
            "bytes_per_namespace": "Larimar: stats() state_bytes (else RSS delta); vector store, "
                                   "mem0: float32 embedding bytes; BM25: sparse index bytes",
            "replacements": "writes whose outcome was 'replaced' (a distinct turn lost)",
            "duplicates": "writes whose outcome was 'duplicate' (identical text already stored; "
                          "its dia_id is credited to the stored fact)",
            "ask_f1": "LoCoMo token F1 (normalised, Porter-stemmed; multi-hop split on commas)",
        },
        "metrics": metrics,
        "scale": scale,
        "ask": ask,
        "summary": _summary(metrics, ask, ks),
    }


TINY = "tiny"


@dataclass
class LoadedModel:
    model: Any
    embedder: Any
    model_name: str
    model_description: str


def load_model(name: str, device: str | None = None, seed: int = 0,
               embedder: str | None = None) -> LoadedModel:
    """``"tiny"`` (random tiny model + hashing embedder, smoke tests), ``"larimar-smol"`` or a
    checkpoint folder, with the packaged all-MiniLM-L6-v2 as key embedder, or ``embedder``
    (a `SentenceEmbedder` name, e.g. `embedders.E5_SMALL`)."""
    from ..scope import SentenceEmbedder

    torch.manual_seed(seed)  # an untrained model's heads are random: seed them
    if name == TINY:
        from ..testing import HashingEmbedder, tiny_test_model

        return LoadedModel(tiny_test_model().eval(), SentenceEmbedder(model=HashingEmbedder()),
                           name, "tiny random test model + hashing embedder (smoke test, "
                                 "meaningless numbers)")
    from ..model import CHECKPOINTS_DIR, CONFIG_FILE, LarimarModel

    model = LarimarModel.from_pretrained(name, device=device).eval()
    if Path(name).expanduser().is_dir():
        description = f"checkpoint folder {name}"
    elif (CHECKPOINTS_DIR / name / CONFIG_FILE).is_file():
        description = f"packaged checkpoint {name}"
    else:
        description = name
    return LoadedModel(model, SentenceEmbedder(embedder), name, description)


def _start_mem0(packaged: bool, ctx: Any, embeddings: Any, notes: dict[str, str]
                ) -> Mem0Backend | None:
    """An offline mem0, or None with the reason in ``notes["mem0"]``: its huggingface embedder
    on the packaged MiniLM folder when ``packaged``, else the eval's embedder via LangChain."""
    offline_mem0_env()
    if (why := _available("mem0")) is not None:
        notes["mem0"] = why
        return None
    try:
        embedder_path = None
        if packaged:
            from ..loading import packaged_encoder_path

            embedder_path = str(packaged_encoder_path())
        backend = Mem0Backend(embedder_path, ctx.embedder.dim, embeddings)
    except Exception as exc:  # report why, keep the other systems running
        notes["mem0"] = f"could not start offline: {type(exc).__name__}: {exc}"
        logger.warning("mem0 baseline off: %s", notes["mem0"])
        return None
    missing = [m for m in ("fastembed", "spacy") if _available(m) is not None]
    notes["mem0"] = (
        "mem0 Memory.add(infer=False): raw turns, the LLM replaced by a stub that raises; local "
        "Qdrant (in memory); embedder " + (f"huggingface {embedder_path}" if embedder_path
                                           else "langchain (the eval's key embedder)")
        + (f"; not installed: {', '.join(missing)} (its BM25 keyword score and entity boosts "
           "are off, so search ranks by embedding cosine)" if missing else ""))
    return backend


def _build_systems(larimar: Any, namespace: str, embeddings: Any, dim: int,
                   notes: dict[str, str], mem0: Mem0Backend | None, decode: bool
                   ) -> dict[str, MemorySystem]:
    systems: dict[str, MemorySystem] = {}
    if larimar is not None:
        systems["larimar"] = LarimarSystem(larimar, namespace, decode)
    for same_keys in (False, True):  # own unit text; every key Larimar writes (fair baseline)
        vector = bm25 = None
        if "vector" not in notes:
            vector = VectorSystem(embeddings, dim, same_keys)
            systems[vector.name] = vector
        if "bm25" not in notes:
            bm25 = BM25System(same_keys)
            systems[bm25.name] = bm25
        if vector is not None and bm25 is not None:
            fusion = FusionSystem(vector, bm25)
            systems[fusion.name] = fusion
    if mem0 is not None:
        systems["mem0"] = Mem0System(mem0, namespace)
    return systems


def _measure(conv: Conversation, variant: Variant, systems: dict[str, MemorySystem],
             tallies: dict[str, _Tally], ks: list[int], max_k: int) -> None:
    units = list(conv.units)
    for name, system in systems.items():
        tally = tallies.setdefault(name, _Tally(ks))
        before = _rss()
        log = system.write(units, variant)
        after = _rss()
        tally.write_seconds.extend(log.seconds)  # fusion: the cost of the two it fuses
        tally.batch_seconds += log.batch_seconds or 0.0
        tally.turns += len(log.seconds) if log.seconds else len(units)  # written turns
        detail = {"namespace": conv.sample_id, **system.nbytes()}
        if name == "larimar" and before is not None and after is not None:
            detail["rss_delta_bytes"] = after - before
        tally.bytes.append(detail)
        tally.events.extend({"conversation": conv.sample_id, **e} for e in log.events)
    for q in conv.questions:
        for name, system in systems.items():
            t0 = time.perf_counter()
            hits = system.search(q.question, max_k)
            tallies[name].add_question(hits, q.evidence, q.answer, q.category,
                                       time.perf_counter() - t0)


def scale_units(conversations: list[Conversation], n: int) -> list[Unit]:
    """``n`` dated turns for one namespace: the conversations' turns, repeated with every year of
    the session dates moved on by one per pass, so each pass's texts are new facts."""
    base = [u for conv in conversations for u in conv.units]
    out: list[Unit] = []
    for i in range(n):
        unit, shift = base[i % len(base)], i // len(base)
        date = re.sub(r"\b(\d{4})\b", lambda m, s=shift: str(int(m.group(1)) + s), unit.date)
        out.append(dataclasses.replace(unit, date=date, dia_id=f"{unit.dia_id}#{shift}"))
    return out


def scale_latency(larimar: Any, conversations: list[Conversation], n: int, k: int,
                  decode: bool, batch: int = 250) -> dict[str, Any]:
    """Recall latency through `Larimar.recall` in one namespace of ``n`` facts (dated turns with
    their context keys, `scale_units`): every dev question asked once with ``k``."""
    namespace = f"locomo/scale-{n}"
    units = scale_units(conversations, n)
    keys = unit_keys(units, "dated")
    t0 = time.perf_counter()
    for at in range(0, n, batch):
        chunk = slice(at, at + batch)
        larimar.remember([kk[0] for kk in keys[chunk]], namespace=namespace,
                         metadata=[u.metadata() for u in units[chunk]],
                         extra_keys=[kk[1:] for kk in keys[chunk]])
    write_seconds = time.perf_counter() - t0
    stored = larimar.stats(namespace=namespace).get("facts")
    seconds = []
    for conv in conversations:
        for q in conv.questions:
            t0 = time.perf_counter()
            larimar.recall(q.question, k=k, namespace=namespace, decode=decode)
            seconds.append(time.perf_counter() - t0)
    return {
        "facts": stored, "k": k, "decode": decode, "queries": len(seconds),
        "write_ms_per_fact_batched": round(1000 * write_seconds / n, 3),
        "recall_ms_p50": round(1000 * percentile(seconds, 50), 2),
        "recall_ms_p95": round(1000 * percentile(seconds, 95), 2),
        "recall_ms_max": round(1000 * max(seconds), 2),
    }


def _ask(options: LocomoOptions, conversations: list[Conversation],
         live: dict[tuple[str, str], dict[str, MemorySystem]], metrics: dict[str, Any],
         larimar: Any, model: Any) -> dict[str, Any]:
    variant: str = options.ask_variant
    if variant == "best":  # Larimar's better unit text (else the vector store's)
        top, name = str(max(options.ks)), "vector" if options.skip_larimar else "larimar"
        variant = max(options.variants,
                      key=lambda v: (metrics[v].get(name) or {}).get("recall_at_k", {}).get(top)
                      or 0.0)
    elif variant not in options.variants:
        raise ValueError(f"--ask-variant {variant} was not measured (--variants)")
    scores: dict[str, list[tuple[int, float]]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    routes: list[str] = []
    for conv in conversations:
        systems = live[(variant, conv.sample_id)]
        larimar_system = systems.get("larimar")
        questions = list(conv.questions)[: options.limit_questions]
        for q in questions:
            routes.append("-")
            if isinstance(larimar_system, LarimarSystem):
                routes[-1] = _ask_larimar(larimar, larimar_system.namespace, q, options,
                                          scores, seconds)
            if "vector" in systems:
                t0 = time.perf_counter()
                hits = systems["vector"].search(q.question, options.ask_k)
                prompt = ASK_PROMPT.format(context="\n".join(h.text for h in hits),
                                           question=q.question)
                answer = model.decode(None, prompts=[prompt],
                                      max_new_tokens=options.max_new_tokens)[0]
                seconds["vector+decoder"].append(time.perf_counter() - t0)
                scores["vector+decoder"].append(
                    (q.category, locomo_f1(answer.strip(), q.answer, q.category)))
            t0 = time.perf_counter()
            answer = model.decode(None, prompts=[q.question],
                                  max_new_tokens=options.max_new_tokens)[0]
            seconds["decoder, no memory"].append(time.perf_counter() - t0)
            scores["decoder, no memory"].append(
                (q.category, locomo_f1(answer.strip(), q.answer, q.category)))
    out: dict[str, Any] = {
        "variant": variant,
        "k": options.ask_k,
        "prompt": ASK_PROMPT,
        "questions": len(routes),
        "larimar_memory_route_pct": (
            round(100 * routes.count("memory") / len(routes), 2)
            if routes and "-" not in routes else None),
        "systems": {},
    }
    for name, values in scores.items():
        out["systems"][name] = {
            "f1": round(100 * statistics.fmean(f for _, f in values), 2),
            "f1_by_category": {
                CATEGORIES[c]: round(100 * statistics.fmean(f for cat, f in values if cat == c), 2)
                for c in sorted({cat for cat, _ in values})
            },
            "ms_p50": round(1000 * statistics.median(seconds[name]), 1),
        }
    return out


def _ask_larimar(larimar: Any, namespace: str, q: Any, options: LocomoOptions,
                 scores: dict[str, list[tuple[int, float]]], seconds: dict[str, list[float]]
                 ) -> str:
    t0 = time.perf_counter()
    result = larimar.ask(q.question, namespace=namespace, k=options.ask_k,
                         max_new_tokens=options.max_new_tokens)
    seconds["larimar"].append(time.perf_counter() - t0)
    scores["larimar"].append((q.category, locomo_f1(result.answer, q.answer, q.category)))
    return str(result.route)


def _summary(metrics: dict[str, Any], ask: dict[str, Any] | None, ks: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for variant, systems in metrics.items():
        for name, row in systems.items():
            for k in ks:
                summary[f"{variant}/{name}/recall@{k}"] = row["recall_at_k"][str(k)]
    if ask:
        for name, row in ask["systems"].items():
            summary[f"ask[{ask['variant']}]/{name}/f1"] = row["f1"]
    return summary


# -- output ----------------------------------------------------------------------------------------


def save_locomo(payload: dict[str, Any], out_dir: Path) -> tuple[Path, Path | None]:
    """``eval-conversation-recall.json``, its recall@k chart (``.png``) and the per-category
    chart (``-by-category.png``) in ``out_dir``."""
    from .report import save_json

    path = save_json(payload, out_dir, NAME)
    try:
        png = plot_locomo(payload, out_dir)
        plot_categories(payload, out_dir)
    except ImportError as exc:  # matplotlib is a dependency; a broken install still keeps JSON
        logger.warning("no chart: %s", exc)
        png = None
    return path, png


def plot_locomo(payload: dict[str, Any], out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = payload["metrics"]
    ks = payload["ks"]
    variants = list(metrics)
    fig, axes = plt.subplots(1, len(variants), figsize=(5.5 * len(variants), 4.2), sharey=True,
                             squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        systems = list(metrics[variant])
        width = 0.8 / len(ks)
        for j, k in enumerate(ks):
            values = [metrics[variant][s]["recall_at_k"][str(k)] or 0.0 for s in systems]
            xs = [i + (j - (len(ks) - 1) / 2) * width for i in range(len(systems))]
            bars = ax.bar(xs, values, width, label=f"recall@{k}")
            ax.bar_label(bars, fmt="%.0f", fontsize=6)
        ax.set_xticks(range(len(systems)))
        ax.set_xticklabels(systems, rotation=20, fontsize=8)
        ax.set_title(f"units: {variant}", fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("evidence recall@k (%)")
    axes[0][-1].legend(fontsize=8, loc="upper right")
    n = payload["counts"]
    who = (payload["model"] if payload["options"].get("skip_larimar") is False
           else "baselines only (Larimar not run)")
    fig.suptitle(f"LoCoMo dev ({len(n['conversations'])} conversations, {n['questions']} "
                 f"questions, cat. 1–4) — {who}", fontsize=10)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"eval-{NAME}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown_table(payload: dict[str, Any]) -> str:
    """The results table for docs/results.md."""
    ks = payload["ks"]
    head = (["units", "system"] + [f"R@{k}" for k in ks] + [f"contain@{k}" for k in ks]
            + ["write ms/turn", "recall p50 ms", "recall p95 ms", "bytes/ns", "replaced", "dup"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant, systems in payload["metrics"].items():
        for name, row in systems.items():
            cells = [variant, name]
            cells += [_fmt(row["recall_at_k"][str(k)]) for k in ks]
            cells += [_fmt(row["containment_at_k"][str(k)]) for k in ks]
            cells += [_fmt(row["write_ms_per_turn"]), _fmt(row["recall_ms_p50"]),
                      _fmt(row.get("recall_ms_p95")),
                      _fmt(row["bytes_per_namespace"]), str(row["replacements"]),
                      str(row["duplicates"])]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", category_table(payload)]
    scale = payload.get("scale")
    if scale:
        lines += ["", f"Recall at {scale['facts']:,} facts in one namespace (k = {scale['k']}, "
                      f"{scale['queries']} questions, decode {scale['decode']}): p50 "
                      f"{scale['recall_ms_p50']} ms, p95 {scale['recall_ms_p95']} ms."]
    ask = payload.get("ask")
    if ask:
        cats = sorted({c for r in ask["systems"].values() for c in r["f1_by_category"]})
        lines += ["", f"End-to-end answers ({ask['questions']} questions, units: "
                      f"{ask['variant']}, k = {ask['k']}), LoCoMo token F1:", ""]
        head = ["system", "F1"] + cats + ["ms p50"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, row in ask["systems"].items():
            cells = [name, _fmt(row["f1"])] + [_fmt(row["f1_by_category"].get(c)) for c in cats]
            lines.append("| " + " | ".join(cells + [_fmt(row["ms_p50"])]) + " |")
    return "\n".join(lines)


def category_table(payload: dict[str, Any]) -> str:
    """Evidence recall@k per question category, one row per unit variant and system."""
    ks = payload["ks"]
    counts = payload["counts"]["questions_by_category"]
    cats = [c for c in CATEGORIES.values() if counts.get(c)]
    head = ["units", "system"] + [f"{c} ({counts[c]}) R@{k}" for c in cats for k in ks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant, systems in payload["metrics"].items():
        for name, row in systems.items():
            by = row["recall_at_k_by_category"]
            cells = [variant, name] + [_fmt((by.get(c) or {}).get(str(k))) for c in cats
                                       for k in ks]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_categories(payload: dict[str, Any], out_dir: Path) -> Path:
    """Recall@k per category and system (one row of panels per unit variant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics, ks = payload["metrics"], payload["ks"]
    counts = payload["counts"]["questions_by_category"]
    cats = [c for c in CATEGORIES.values() if counts.get(c)]
    variants = list(metrics)
    fig, axes = plt.subplots(len(variants), len(cats), figsize=(4.2 * len(cats),
                             3.6 * len(variants)), sharey=True, squeeze=False)
    for r, variant in enumerate(variants):
        systems = list(metrics[variant])
        width = 0.8 / len(ks)
        for c, cat in enumerate(cats):
            ax = axes[r][c]
            for j, k in enumerate(ks):
                values = [(metrics[variant][s]["recall_at_k_by_category"].get(cat) or {})
                          .get(str(k)) or 0.0 for s in systems]
                xs = [i + (j - (len(ks) - 1) / 2) * width for i in range(len(systems))]
                ax.bar(xs, values, width, label=f"R@{k}")
            ax.set_xticks(range(len(systems)))
            ax.set_xticklabels(systems, rotation=35, ha="right", fontsize=6)
            ax.set_title(f"{cat} ({counts[cat]} q), units: {variant}", fontsize=8)
            ax.set_ylim(0, 100)
            ax.grid(axis="y", alpha=0.3)
        axes[r][0].set_ylabel("evidence recall@k (%)")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"eval-{NAME}-by-category.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
