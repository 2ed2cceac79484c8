"""The LangGraph store example runs end to end with --tiny (as CI runs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "langgraph_store.py"


def test_langgraph_store_example_tiny() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--tiny"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if "agent:" in line]
    saved, found, deleted, after = lines
    assert "Saved memory" in saved and "favourite colour is green" in saved
    assert "favourite colour is green" in found  # another thread, same user: remembered
    assert "Deleted memory" in deleted
    assert after.endswith("Nothing in memory.")  # forgotten
    assert "namespaces: []" in done.stdout
