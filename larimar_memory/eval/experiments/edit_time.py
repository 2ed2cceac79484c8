"""`edit-time`: wall-clock seconds per edit (write) and per forget, over 10 and over 1000 edits.

Memory: ``service: BlockMemory`` (``--block-rows`` rows per block). An edit is what a user waits
for: embed the key, encode the fact's rows (``model.encode_facts``), and the least-squares update
of its block; the parts are timed separately too. Each count runs on a fresh memory: ``n`` edits
one at a time, then ``n`` forgets (``BlockMemory.forget``, the exact −1 update of one block). The
same is timed end to end through `Larimar` (the service, ``LarimarSettings(block_rows=…)``, with
its SQLite fact log), which adds the store's transaction per call.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..context import EvalContext
from ..data import COUNTERFACT, EditRecord
from .common import load_records

NAME = "edit-time"
DEFAULT_DATA = COUNTERFACT
DEFAULT_COUNTS = (10, 1000)


def run(ctx: EvalContext) -> dict[str, Any]:
    counts = sorted({int(c) for c in (ctx.options.sweep or DEFAULT_COUNTS)})
    if ctx.options.limit is not None:
        counts = sorted({min(c, ctx.options.limit) for c in counts})
    records, path = load_records(ctx, DEFAULT_DATA, max(counts))
    counts = sorted({min(c, len(records)) for c in counts})
    ctx.embed([records[0].prompt])  # warm up: first calls pay one-off allocation costs
    ctx.encode_facts([records[0].fact])
    memory_rows = {str(n): _time_memory(ctx, records[:n]) for n in counts}
    service_rows = {str(n): _time_service(ctx, records[:n]) for n in counts}
    summary = {}
    for n in counts:
        summary[f"edit_s@{n}"] = memory_rows[str(n)]["edit_mean_s"]
        summary[f"forget_s@{n}"] = memory_rows[str(n)]["forget_mean_s"]
        summary[f"service_remember_s@{n}"] = service_rows[str(n)]["remember_mean_s"]
    return {
        "data": str(path),
        "counts": counts,
        "memory": ctx.service_memory_info(),
        "definitions": {
            "edit": "embed key + encode fact rows + block write, one fact at a time",
            "forget": "the exact -1 update of the fact's block with its stored rows",
            "service": "Larimar.remember / Larimar.forget(id) with a fresh SQLite store",
        },
        "metrics": {"memory": memory_rows, "service": service_rows},
        "summary": summary,
    }


def _time_memory(ctx: EvalContext, records: list[EditRecord]) -> dict[str, Any]:
    memory = ctx.new_memory()
    parts: dict[str, list[float]] = {"embed": [], "encode": [], "write": [], "edit": []}
    forgets: list[float] = []
    for i, r in enumerate(tqdm(records, desc=f"{len(records)} edits", leave=False)):
        t0 = time.perf_counter()
        key = ctx.embed([r.prompt])
        t1 = time.perf_counter()
        value = ctx.encode_facts([r.fact])
        t2 = time.perf_counter()
        ctx.write(memory, [str(i)], key, value)
        t3 = time.perf_counter()
        parts["embed"].append(t1 - t0)
        parts["encode"].append(t2 - t1)
        parts["write"].append(t3 - t2)
        parts["edit"].append(t3 - t0)
    for i in tqdm(range(len(records)), desc=f"{len(records)} forgets", leave=False):
        t0 = time.perf_counter()
        memory.forget(str(i))
        forgets.append(time.perf_counter() - t0)
    row: dict[str, Any] = {"edits": len(records)}
    for name, values in parts.items():
        row[f"{name}_mean_s"] = statistics.fmean(values)
    row["edit_median_s"] = statistics.median(parts["edit"])
    row["forget_mean_s"] = statistics.fmean(forgets)
    row["forget_median_s"] = statistics.median(forgets)
    row["total_edit_s"] = sum(parts["edit"])
    return row


def _time_service(ctx: EvalContext, records: list[EditRecord]) -> dict[str, Any]:
    from ...errors import TextInputError
    from ...service import Larimar, LarimarSettings

    remember, forget = [], []
    refused = 0
    with tempfile.TemporaryDirectory() as tmp:
        settings = LarimarSettings(block_rows=ctx.options.block_rows)
        with Larimar(ctx.model, store=Path(tmp) / "facts.sqlite3", embedder=ctx.embedder,
                     settings=settings) as service:
            ids = []
            for r in tqdm(records, desc="service remember", leave=False):
                t0 = time.perf_counter()
                try:
                    result = service.remember(r.fact, key=r.prompt)
                except TextInputError:  # longer than the model's max_text_tokens
                    refused += 1
                    continue
                remember.append(time.perf_counter() - t0)
                ids.extend(result.ids)
            live = {f.id for f in service.list()}  # corrections may have replaced some
            for fact_id in tqdm([i for i in ids if i in live], desc="service forget", leave=False):
                t0 = time.perf_counter()
                service.forget(fact_id)
                forget.append(time.perf_counter() - t0)
    return {
        "edits": len(records),
        "forgets": len(forget),
        "refused": refused,
        "remember_mean_s": statistics.fmean(remember) if remember else None,
        "remember_median_s": statistics.median(remember) if remember else None,
        "forget_mean_s": statistics.fmean(forget) if forget else None,
        "forget_median_s": statistics.median(forget) if forget else None,
    }
