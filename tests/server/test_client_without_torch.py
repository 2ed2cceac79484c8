"""Remote mode never loads the model stack: the HTTP client, talking to a real server, runs in
an interpreter that never imports torch or transformers (checked in ``sys.modules``)."""

from __future__ import annotations

from server_testing import KEY_A

from larimar_memory.testing import modules_imported_by


def test_the_client_round_trip_imports_no_model_stack(served) -> None:
    code = f"""
from larimar_memory.server.client import LarimarClient
from larimar_memory.errors import FactNotFoundError
with LarimarClient({served.url!r}, {KEY_A!r}, namespace="user:alice") as memory:
    [fact_id] = memory.remember("Alice lives in Lisbon.").ids
    assert memory.recall("Where does Alice live?", k=1).hits[0].fact.id == fact_id
    assert [f.id for f in memory.list()] == [fact_id]
    memory.forget(fact_id)
    try:
        memory.get(fact_id)
    except FactNotFoundError:
        pass
    assert memory.namespaces() == ["user:alice"]
"""
    assert modules_imported_by(code) == []


def test_the_probe_can_fail() -> None:
    assert "torch" in modules_imported_by("import larimar_memory.memory")


def test_without_the_model_stack_larimar_says_what_to_install() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
            "import larimar_memory.server.client\n"
            "try:\n    from larimar_memory import Larimar\n"
            "except ModuleNotFoundError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "pip install 'larimar-memory[models]'" in out and "LarimarClient" in out
