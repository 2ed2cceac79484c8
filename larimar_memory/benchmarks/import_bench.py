"""`larimar bench imports`: how long remote-mode imports take in a fresh interpreter, and that
they load no model stack (the target: the client imports without torch in <= 300 ms).

Each statement runs ``repeats`` times in a new ``python -c``; the figure is the statement's own
time (``perf_counter`` around it, interpreter start-up excluded), median and minimum; on a shared
machine the minimum is the least disturbed run."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..testing import MODEL_STACK
from .common import RESULTS_DIR, machine, save_json

STATEMENTS = {
    "client": "import larimar_memory.server.client",
    "langchain": "import langchain_larimar",
    "llama-index": "import llama_index.memory.larimar",
    "mcp (remote)": "import larimar_memory.mcp_server",
    "core package": "import larimar_memory",
}
TARGET_MS = {"client": 300}


def _probe(statement: str) -> tuple[float, list[str]]:
    code = ("import time, json, sys\nt = time.perf_counter()\n" + statement +
            "\nms = (time.perf_counter() - t) * 1000\n"
            f"heavy = sorted(set(m.split('.')[0] for m in sys.modules) & {set(MODEL_STACK)!r})\n"
            "print(json.dumps([ms, heavy]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)
    ms, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    return float(ms), list(heavy)


def run(out: Path | None = None, repeats: int = 7) -> dict[str, Any]:
    rows = []
    for name, statement in STATEMENTS.items():
        try:
            probes = [_probe(statement) for _ in range(repeats)]
        except subprocess.CalledProcessError as exc:  # an optional package is not installed
            rows.append({"name": name, "statement": statement, "error": exc.stderr[-300:]})
            continue
        times = [ms for ms, _ in probes]
        rows.append({
            "name": name, "statement": statement, "median_ms": statistics.median(times),
            "min_ms": min(times), "model_stack_imported": probes[0][1],
            "target_ms": TARGET_MS.get(name),
        })
    results = {"benchmark": "imports", "repeats": repeats, "machine": machine(),
               "imports": rows}
    save_json(results, out or RESULTS_DIR / "import_bench.json")
    return results
