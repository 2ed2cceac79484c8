"""The public API is pinned, and the core never imports LangChain."""

from __future__ import annotations

import subprocess
import sys

import langchain_larimar

EXPECTED_ALL = [
    "ChatLarimar",
    "ContextSource",
    "LarimarBinding",
    "LarimarMemory",
    "LarimarMiddleware",
    "LarimarRetriever",
    "LarimarStore",
    "LarimarToolkit",
    "MemoryBackend",
    "RecallBinding",
    "__version__",
    "create_forget_tool",
    "create_recall_tool",
    "create_remember_tool",
]


def test_all_is_pinned() -> None:
    assert sorted(langchain_larimar.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert hasattr(langchain_larimar, name), name


def test_core_does_not_import_langchain() -> None:
    code = (
        "import sys, larimar_memory.service, larimar_memory.conversation, larimar_memory.testing;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain', 'langchain_core', 'langgraph', 'langchain_larimar'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
