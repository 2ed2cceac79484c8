"""The public surface: pinned names, the namespace-package layout, and a core that never
imports LlamaIndex."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import llama_index.memory.larimar as package

import larimar_memory

ROOT = Path(package.__file__).resolve().parents[3]  # integrations/llama-index


def test_public_names_are_pinned():
    assert package.__all__ == [
        "ContextSource", "LarimarBinding", "LarimarMemoryBlock", "LarimarQueryEngine",
        "LarimarToolSpec", "MemoryBackend",
    ]


def test_namespace_package_layout():
    # An __init__.py above the leaf would shadow llama-index-core's llama_index namespace.
    assert not (ROOT / "llama_index" / "__init__.py").exists()
    assert not (ROOT / "llama_index" / "memory" / "__init__.py").exists()
    assert (ROOT / "llama_index" / "memory" / "larimar" / "py.typed").exists()


def test_the_tiny_larimar_has_the_interface(larimar):
    assert isinstance(larimar, package.MemoryBackend)


def test_core_never_imports_llama_index():
    # benchmarks/ may compare against a LlamaIndex baseline (a lazy, optional import), and the
    # dialogue suite's agent set-ups drive the integrations end to end (eval/dialogues/modes.py,
    # imported only when `larimar eval dialogues` runs; checked below).
    core = Path(larimar_memory.__file__).parent
    harnesses = {core / "eval" / "dialogues" / "modes.py", core / "eval" / "answers.py"}
    offenders = [
        str(p.relative_to(core)) for p in core.rglob("*.py")
        if "benchmarks" not in p.parts and p not in harnesses and "llama_index" in p.read_text()
    ]
    assert offenders == []
    code = ("import sys, larimar_memory.eval.dialogues, larimar_memory.eval.dialogues.runner,"
            " larimar_memory.eval.answers;"
            "sys.exit(1 if any(m.startswith('llama_index') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
