"""The dialogue suite's data, checks and scoring (no framework, no model): the packaged dialogues
load and cover every kind of turn; bad annotations are refused; the scores follow what a run
recorded (a perfect run scores full marks, each kind of failure lowers its own figure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from larimar_memory.eval.data import EvalDataError
from larimar_memory.eval.dialogues.schema import Dialogue, load_dialogues
from larimar_memory.eval.dialogues.scoring import DialogueRun, TurnRecord, score_run
from larimar_memory.eval.dialogues.transports import plain_name, server_name

GOOD = """
- id: tiny-one
  user: ana
  facts:
    home: {text: "I live in Porto.", needle: "Porto"}
    email: {text: "My email is ana@example.org.", needle: "ana@example.org"}
    home_new: {text: "I live in Lisbon.", needle: "Lisbon"}
  sessions:
    - - say: "Hi! I live in Porto."
        states: [home]
      - say: "Ok, my email is ana@example.org."
        states: [email]
    - - say: "Where do I live?"
        asks: home
      - say: "What is the boiling point of water?"
        off_topic: true
      - say: "Actually, I moved to Lisbon."
        corrects: {home: home_new}
        about: "where I live"
      - say: "Please forget my email address."
        forgets: [email]
        about: "my email address"
  final:
    stored: [home_new]
    gone: [home, email]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "d.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def dialogue(tmp_path: Path) -> Dialogue:
    return load_dialogues([write(tmp_path, GOOD)])[0]


def test_packaged_dialogues_cover_every_kind_of_turn() -> None:
    dialogues = load_dialogues()
    assert len(dialogues) >= 30
    assert all(len(d.sessions) >= 2 for d in dialogues)
    kinds = {turn.kind for d in dialogues for _, turn in d.turns}
    assert kinds >= {"states", "asks", "off_topic", "corrects", "forgets"}
    assert any(turn.all for d in dialogues for _, turn in d.turns)
    assert load_dialogues(ids=["porto-designer"])[0].user == "marta"


@pytest.mark.parametrize(("old", "new", "message"), [
    ('"Where do I live?"\n        asks: home\n', '"Where do I live?"\n        asks: home_new\n',
     "not stored then"),
    ("    stored: [home_new]", "    stored: [home_new, email]", "the turns give"),
    ('"Actually, I moved to Lisbon."', '"Actually, I moved to Lisbon from Porto."',
     "must be gone after it"),
    ("        states: [email]\n", "", "exactly one of"),
    ("        asks: home\n", "        asks: home\n        answer: Lisbon\n", "is not in the text"),
    ("        off_topic: true\n", "        off_topic: true\n        answer: Porto\n",
     "only goes with 'asks'"),
    ('"Hi! I live in Porto."', '"Hi! I live in Porto, email ana@example.org."',
     "holds the needles"),
])
def test_bad_annotations_are_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(EvalDataError, match=message):
        load_dialogues([write(tmp_path, GOOD.replace(old, new))])


def test_unknown_dialogue_id_is_a_clear_error() -> None:
    with pytest.raises(EvalDataError, match="no dialogue with id"):
        load_dialogues(ids=["no-such-dialogue"])


def oracle(dialogue: Dialogue) -> DialogueRun:
    """The run of a memory that does exactly what the user said."""
    run = DialogueRun(dialogue=dialogue.id, mode="oracle", transport="none")
    live: list[str] = []
    for session, turn in dialogue.turns:
        record = TurnRecord(session=session, kind=turn.kind, say=turn.say)
        if turn.asks:
            record.context = [dialogue.facts[turn.asks].text]
        live = [n for n in live if n not in turn.removes]
        live += [*turn.states, *turn.corrects.values()]
        record.stored_after = [dialogue.facts[n].text for n in live]
        run.turns.append(record)
    run.final_stored = [dialogue.facts[n].text for n in live]
    return run


def test_a_memory_that_does_what_was_said_scores_full_marks(dialogue: Dialogue) -> None:
    figures = score_run(dialogue, oracle(dialogue)).summary()
    assert figures["asked_in_context_pct"] == 100.0
    assert figures["off_topic_clean_pct"] == 100.0
    assert figures["removals_in_effect_pct"] == 100.0
    assert (figures["wrong_forgets"], figures["lost_facts"], figures["leaked_facts"]) == (0, 0, 0)
    assert figures["stated_stored_pct"] == 100.0
    assert (figures["asks"], figures["off_topic"], figures["removals"], figures["stated"]) == (
        1, 1, 2, 3)


def test_each_failure_lowers_its_own_figure(dialogue: Dialogue) -> None:
    run = oracle(dialogue)
    email, asks, off_topic, correct, forget = run.turns[1:6]
    email.stored_after = ["I live in Porto."]  # dropped: "Ok, my email is ..."
    asks.context = ["My email is ana@example.org."]  # the wrong fact
    asks.stored_after = off_topic.stored_after = [
        "I live in Porto.", "My email is ana@example.org."]  # (stored after all, later)
    off_topic.context = ["I live in Porto."]  # memory for a general-knowledge question
    correct.stored_after = ["I live in Porto.", "I live in Lisbon.", "My email is ana@example.org."]
    forget.stored_after = []  # the email went, and so did the fact that had to stay
    run.final_stored = []
    score = score_run(dialogue, run)
    figures = score.summary()
    assert figures["asked_in_context_pct"] == 0.0
    assert figures["off_topic_clean_pct"] == 0.0
    assert figures["removals_in_effect_pct"] == 50.0
    assert figures["stated_stored_pct"] == round(100 * 2 / 3, 1)
    assert figures["wrong_forgets"] == 1 and figures["lost_facts"] == 1
    assert {f.turn for f in score.failures} == {1, 2, 3, 4, 5, 6}


def test_turns_never_reached_count_as_failed(dialogue: Dialogue) -> None:
    run = oracle(dialogue)
    run.turns = run.turns[:3]
    run.error = "RuntimeError: server went away"
    figures = score_run(dialogue, run).summary()
    assert figures["off_topic_clean_pct"] == 100.0  # no context recorded: no memory given
    assert figures["removals_in_effect_pct"] == 0.0 and figures["lost_facts"] == 1
    assert figures["errors"] == 1


def test_whole_word_needles() -> None:
    spec = load_dialogues(ids=["new-parent"])[0].facts["partner"]
    assert spec.needle == "Sam"
    assert spec.found_in(["my partner is called sam."]) and not spec.found_in(["the same"])


@given(st.text(min_size=1, max_size=40))
def test_server_names_round_trip_in_the_server_alphabet(name: str) -> None:
    mapped = server_name(name)
    assert plain_name(mapped) == name
    assert set(mapped) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")




def _scored(kind: str, dense: float, found: bool = True, about: bool = True):
    from larimar_memory.eval.dialogues.context_point import Scored
    from larimar_memory.relevance import Evidence

    evidence = Evidence(dense, 0.0, 0.0, float(about))
    return Scored(kind, "q", "d", evidence, 0.0, found and kind == "asked", "best")


def test_the_context_point_trades_missed_facts_against_unrelated_ones_shown() -> None:
    from larimar_memory.eval.dialogues.context_point import cheapest, cost_curve
    from larimar_memory.relevance import Calibration

    calibration = Calibration("c", dense=10.0, lexical=0.0, agreement=0.0, bias=-5.0,
                              threshold=0.6)
    asked = [_scored("asked", d) for d in (0.9, 0.57, 0.45, 0.4)]
    asked.append(_scored("asked", 0.9, found=False))
    unanswered = [_scored("unanswered", d) for d in (0.5, 0.2, 0.1, 0.1)]
    curve = {r["point"]: r for r in cost_curve(asked, unanswered, calibration, miss_cost=2.0)}
    assert curve[0.6]["asked_shown"] == pytest.approx(0.4)  # the fact not among the hits misses
    assert curve[0.35]["asked_shown"] == pytest.approx(0.6)
    assert curve[0.25]["asked_shown"] == pytest.approx(0.8)
    assert curve[0.25]["unanswered_shown"] == pytest.approx(0.25)
    assert curve[0.25]["cost"] == pytest.approx(2 * 0.2 + 0.25)
    assert cheapest(list(curve.values()))["point"] == 0.26  # the highest point of least cost
    # a question about nobody in memory needs the decoding point, whatever the context point
    nobody = [_scored("asked", 0.45, about=False)]
    assert cost_curve(nobody, [], calibration, 2.0)[0]["asked_shown"] == 0.0


def test_context_point_runs_on_a_tiny_model(tmp_path: Path) -> None:
    from larimar_memory.eval.dialogues.context_point import run_context_point, save_context_point

    other = GOOD.replace("tiny-one", "tiny-two").replace("Where do I live?", "Where am I based?")
    payload = run_context_point(tiny=True, data=[write(tmp_path, GOOD + other[1:])])
    assert payload["counts"]["asked"] == 2 and payload["counts"]["unanswered"] == 2
    assert 0.0 < payload["chosen"]["point"] < 1.0
    json_path, png = save_context_point(payload, tmp_path / "out")
    assert json_path.is_file() and png.is_file()
