"""`larimar bench capacity`: one namespace holding 100 … 20,000 real facts, through `Larimar`.

At each size: exact readback (``recall(text, k=1)`` returns the fact and its text read from the
memory equals the stored text), the time of one write and one forget at that size, recall(k=5)
latency, and in-process bytes (``stats()["state_bytes"]``). Then, on the LoCoMo dev
conversations (one namespace per conversation, every turn a fact), evidence recall@k of
`Larimar.recall` next to a plain cosine top-k over the same embeddings of the same texts.

Facts are real sentences: LoCoMo turns, CounterFact facts (new and true targets), then WikiText-2
lines. Data is read from ``$LARIMAR_DATA`` (default ../shared/data), never copied.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .common import RESULTS_DIR, machine, percentile, save_json
from .service_bench import data_root

DEFAULT_SIZES = (100, 1000, 10000, 20000)
LOCOMO_KS = (1, 5, 10)


def locomo_conversations(root: Path | None = None) -> list[dict[str, Any]]:
    path = (root or data_root()) / "locomo" / "locomo-dev.json"
    return json.loads(path.read_text()) if path.is_file() else []


def locomo_turns(conversation: dict[str, Any]) -> list[dict[str, str]]:
    """Every turn of a conversation, in order, with its session date."""
    conv = conversation["conversation"]
    sessions = sorted(
        (k for k in conv if k.startswith("session_") and isinstance(conv[k], list)),
        key=lambda k: int(k.split("_")[1]),
    )
    return [
        {"dia_id": t["dia_id"], "speaker": t["speaker"], "text": t["text"],
         "session": s, "date": conv.get(f"{s}_date_time", "")}
        for s in sessions for t in conv[s]
    ]


def real_facts(n: int, root: Path | None = None) -> list[str]:
    """``n`` distinct real sentences (see the module docstring for the sources)."""
    root = root or data_root()
    seen: dict[str, None] = {}

    def add(text: str) -> bool:
        text = " ".join(text.split())
        if 20 <= len(text) <= 1500:
            seen.setdefault(text, None)
        return len(seen) >= n

    for conv in locomo_conversations(root):
        for turn in locomo_turns(conv):
            if add(f"{turn['speaker']}: {turn['text']}"):
                return list(seen)
    for name in ("counterfact-train", "counterfact-edit", "counterfact-val"):
        path = root / "counterfact" / f"{name}.json"
        if not path.is_file():
            continue
        for record in json.loads(path.read_text()):
            for target in ("target_new", "ground_truth"):
                if add(f"{record['prompt']} {record[target]}."):
                    return list(seen)
    for path in sorted((root / "wikitext").glob("*/*train*")):
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip().startswith("=") and add(line):
                return list(seen)
    raise RuntimeError(f"only {len(seen)} distinct sentences found under {root}; need {n}")


def _ms(seconds: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(seconds, 50) * 1e3, "p95_ms": percentile(seconds, 95) * 1e3,
            "n": len(seconds)}


def bench_size(larimar: Any, facts: list[str], probe: list[str], size: int,
               sample: int, seed: int) -> dict[str, Any]:
    """Fill a namespace to ``size`` facts and measure it there."""
    ns = f"capacity-{size}"
    larimar.clear(namespace=ns)
    start = time.perf_counter()
    ids: list[str] = []
    for i in range(0, size, 500):
        ids += larimar.remember(facts[i: min(i + 500, size)], namespace=ns).ids
    fill_s = time.perf_counter() - start
    rng = random.Random(seed)
    picks = rng.sample(range(size), min(sample, size))
    exact = routed = 0
    for i in picks:
        hit = larimar.recall(facts[i], k=1, namespace=ns).hits[0]
        routed += hit.fact.id == ids[i]
        exact += hit.fact.id == ids[i] and hit.text == facts[i]
    write_s, forget_s = [], []
    for text in probe:  # one fact written and forgotten at this size
        t0 = time.perf_counter()
        new_id = larimar.remember(text, namespace=ns).ids[0]
        t1 = time.perf_counter()
        larimar.forget(new_id, namespace=ns)
        write_s.append(t1 - t0)
        forget_s.append(time.perf_counter() - t1)
    recall_s = []
    for i in picks[:50]:
        t0 = time.perf_counter()
        larimar.recall(facts[i], k=5, namespace=ns)
        recall_s.append(time.perf_counter() - t0)
    stats = larimar.stats(namespace=ns)
    larimar.clear(namespace=ns)
    return {
        "facts": size, "rows": stats["rows"], "blocks": stats["blocks"],
        "fill_seconds": fill_s, "fill_ms_per_fact": fill_s / size * 1e3,
        "exact_readback": exact / len(picks), "routed_top1": routed / len(picks),
        "readback_sample": len(picks),
        "remember_one": _ms(write_s), "forget_one": _ms(forget_s), "recall_k5": _ms(recall_s),
        "state_bytes": stats["state_bytes"], "bytes_per_fact": stats["state_bytes"] / size,
    }


def bench_locomo(larimar: Any, ks: tuple[int, ...] = LOCOMO_KS) -> dict[str, Any]:
    """Evidence recall@k of Larimar.recall vs cosine top-k over the same keys (same texts)."""
    hits = {"larimar": dict.fromkeys(ks, 0), "cosine": dict.fromkeys(ks, 0)}
    questions = 0
    for conv in locomo_conversations():
        ns = f"locomo-{conv.get('sample_id', questions)}"
        larimar.clear(namespace=ns)
        turns = locomo_turns(conv)
        texts = [f"{t['speaker']}: {t['text']}" for t in turns]
        metas = [{"dia_id": t["dia_id"], "speaker": t["speaker"], "session": t["session"],
                  "date": t["date"]} for t in turns]
        larimar.remember(texts, metadata=metas, namespace=ns)
        keys = larimar.embedder.embed(texts)
        dia = [t["dia_id"] for t in turns]
        for qa in conv["qa"]:
            if qa.get("category") not in (1, 2, 3, 4):
                continue
            questions += 1
            evidence = set(qa.get("evidence", []))
            recalled = [h.fact.metadata["dia_id"] for h in
                        larimar.recall(qa["question"], k=max(ks), namespace=ns,
                                       decode=False).hits]
            q = larimar.embedder.embed([qa["question"]])[0]
            order = torch.argsort(keys @ q, descending=True)[: max(ks)].tolist()
            cosine = [dia[j] for j in order]
            for k in ks:
                hits["larimar"][k] += bool(evidence & set(recalled[:k]))
                hits["cosine"][k] += bool(evidence & set(cosine[:k]))
        larimar.clear(namespace=ns)
    return {
        "questions": questions,
        "recall_at_k": {name: {str(k): v / max(questions, 1) for k, v in row.items()}
                        for name, row in hits.items()},
    }


def run(out: Path | None = None, sizes: tuple[int, ...] = DEFAULT_SIZES, sample: int = 1000,
        probes: int = 20, tiny: bool = False, seed: int = 0) -> dict[str, Any]:
    from ..service import Larimar, LarimarSettings
    from ..testing import tiny_larimar

    folder = Path(tempfile.mkdtemp(prefix="larimar-capacity-"))
    larimar = (tiny_larimar(folder / "store.sqlite3") if tiny
               else Larimar(store=folder / "store.sqlite3", settings=LarimarSettings()))
    facts = real_facts(max(sizes) + probes)
    probe, facts = facts[-probes:], facts[: max(sizes)]
    rows = []
    with larimar:
        for size in sizes:
            rows.append(bench_size(larimar, facts, probe, size, sample, seed))
            print(json.dumps(rows[-1]))
        locomo = bench_locomo(larimar) if locomo_conversations() and not tiny else None
    payload = {
        "benchmark": "capacity", "machine": machine(), "tiny_model": tiny,
        "settings": larimar.settings.model_dump(), "sizes": rows, "locomo_dev": locomo,
        "targets": {"exact_readback": ">= 0.99 at every size",
                    "write_forget_growth": "time at 10,000 <= 1.5 x time at 100",
                    "one_fact_bytes": "<= 100 KB", "locomo": "recall@k equal to cosine"},
    }
    out = out or RESULTS_DIR / "capacity_bench.json"
    save_json(payload, out)
    _plot(payload, out.with_suffix(".png"))
    return payload


def _plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["sizes"]
    n = [r["facts"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, label in (("remember_one", "remember (1 fact)"), ("forget_one", "forget"),
                        ("recall_k5", "recall k=5 (text from memory)")):
        left.plot(n, [r[name]["p50_ms"] for r in rows], marker="o", label=label)
    left.set(xscale="log", xlabel="facts in the namespace", ylabel="p50 ms",
             title="time per operation vs facts stored")
    left.legend()
    right.plot(n, [r["bytes_per_fact"] / 1e3 for r in rows], marker="o", label="KB per fact")
    right.plot(n, [100 * r["exact_readback"] for r in rows], marker="s",
               label="exact readback %")
    right.set(xscale="log", xlabel="facts in the namespace", title="bytes and readback")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
