"""`larimar eval answers` on the tiny random model: both suites through the three systems, and
the scores it reports."""

from __future__ import annotations

import json

import pytest

from larimar_memory.eval.answers import Answer, AnswerOptions, run_answers, save, summarize

TOY_LOCOMO = [{
    "sample_id": "toy-1",
    "conversation": {
        "speaker_a": "Ann", "speaker_b": "Bo", "session_1_date_time": "1 May 2023",
        "session_1": [{"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a cat, Miso."},
                      {"speaker": "Bo", "dia_id": "D1:2", "text": "I ran in Oslo."}],
    },
    "qa": [{"question": "What is the name of Ann's cat?", "answer": "Miso",
            "evidence": ["D1:1"], "category": 4},
           {"question": "Where did Bo run?", "answer": "Oslo", "evidence": ["D1:2"],
            "category": 2}],
}]


def _answer(**fields) -> Answer:
    base = {"suite": "dialogues", "system": "ask", "memory": True, "kind": "asks",
            "question": "Where do I live?", "gold": "Porto", "answer": "Porto", "route": "memory",
            "seconds": 0.1, "contains": True, "f1": 1.0}
    return Answer(**{**base, **fields})


def test_summary_counts_invented_facts_and_answered_facts() -> None:
    answers = [
        _answer(),
        _answer(answer="Lisbon", contains=False, f1=0.0),
        _answer(memory=False, route="unknown", answer="I don't have that in memory.",
                contains=False, f1=0.0),
        _answer(memory=False, route="plain", answer="You live in Paris.", contains=False,
                f1=0.0),
        _answer(kind="off_topic", gold=None, route="plain", contains=None, f1=None),
    ]
    row = summarize(answers)["ask"]
    assert row["asks"] == 2 and row["asks_answered_with_fact_pct"] == 50.0
    assert row["asks_f1"] == 50.0 and row["asks_memory_route_pct"] == 100.0
    assert row["asks_nothing_stored"] == 2 and row["invented_personal_facts"] == 1
    assert row["off_topic_plain_pct"] == 100.0 and row["locomo_questions"] == 0


def test_run_answers_tiny_end_to_end(tmp_path) -> None:
    pytest.importorskip("langchain_larimar")
    pytest.importorskip("llama_index.memory.larimar")
    locomo = tmp_path / "toy-locomo.json"
    locomo.write_text(json.dumps(TOY_LOCOMO), encoding="utf-8")
    options = AnswerOptions(dialogues=["porto-designer"], locomo=locomo, max_new_tokens=2,
                            tiny=True)
    payload = run_answers(options)
    summary = payload["summary"]
    assert list(summary) == ["ask", "query-engine", "chat"]
    for row in summary.values():
        assert row["asks"] == 4 and row["asks_nothing_stored"] == 4
        assert row["invented_personal_facts"] == 0  # every ask is about the user
        assert row["off_topic_nothing_stored_plain_pct"] == 100.0
        assert row["locomo_questions"] == 1  # the single-hop question only
    routes = {(a["system"], a["memory"], a["question"]): a["route"] for a in payload["answers"]}
    for system in summary:  # the same decision through every system
        assert routes[(system, True, "Which company am I working for?")] == routes[
            ("ask", True, "Which company am I working for?")]
    json_path, png = save(payload, tmp_path / "out")
    assert json.loads(json_path.read_text())["experiment"] == "answers"
    assert png is not None and png.stat().st_size > 0


def test_dialogue_answers_are_scored_against_the_turns_gold_words() -> None:
    """An ask's gold is its turn's ``answer`` when it has one ('six' for "How old is my son?",
    whose fact's needle is the son's name), matched as whole words."""
    from larimar_memory.eval.answers import _dialogue_answers
    from larimar_memory.eval.dialogues.schema import load_dialogues

    replies = {"a": "He is six.", "b": "sixty", "c": "Felix"}
    systems = {name: (lambda q, ns, r=reply: (r, "memory")) for name, reply in replies.items()}
    got = {a.system: a for a in _dialogue_answers(systems, "How old is my son?", "asks", "six",
                                                  "ns", "family", True)}
    assert [got[n].contains for n in "abc"] == [True, False, False]
    assert got["a"].gold == "six" and got["a"].f1 > 0 and got["c"].f1 == 0
    son = next(turn for d in load_dialogues(ids=["family-names"]) for _, turn in d.turns
               if turn.say == "How old is my son?")
    assert son.answer == "six"
