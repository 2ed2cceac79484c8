"""Shared helpers for benchmark commands: timing, machine description, JSON and plots."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path("docs/results")
#: packages whose version moves the figures: decoding numerics, the GGUF reader, the embedder
_VERSIONED = ("transformers", "peft", "gguf", "sentence-transformers", "numpy")


def time_calls(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Wall-clock seconds of each of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu": _cpu(),
        "packages": {name: _version(name) for name in _VERSIONED},
    }


def _cpu() -> dict[str, Any]:
    """What the kernels can use, which moves decoding times several-fold: the model, torch's
    vector instruction set, and VNNI (int8 products in 8 bits, `quantization.Int8Linear`)."""
    from ..quantization import Int8Linear

    name = None
    with contextlib.suppress(OSError):
        name = next((line.split(":", 1)[1].strip()
                     for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), None)
    return {"model": name or platform.processor() or None,
            "capability": torch.backends.cpu.get_cpu_capability(),
            "vnni": not Int8Linear.reduce_range}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def save_json(payload: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def save_results(results: dict[str, Any], out: Path | None, default_name: str,
                 plot: Callable[[dict[str, Any], Path], None] | None) -> Path:
    """A benchmark's JSON at ``out`` (default: ``default_name`` under docs/results/), and the
    chart ``plot`` draws of it beside it (None: no chart)."""
    out = out or RESULTS_DIR / default_name
    save_json(results, out)
    if plot is not None:
        plot(results, out.with_suffix(".png"))
    return out
