"""The conversational calibration (`relevance.CONVERSATION`) on the packaged models, as an agent
meets it: a user's own facts, questions about them in other words, a personal question whose
answer is not stored, and forgets whose candidates all belong to the user."""

from __future__ import annotations

from pathlib import Path

import pytest

from larimar_memory import loading
from larimar_memory.errors import ModelNotFoundError

pytestmark = pytest.mark.integration

FACTS = ["I have a cat called Pimienta.", "I have a greyhound called Bolt.",
         "My vet is Dr Kowalczyk.", "My dog eats salmon kibble.",
         "My cat's vaccination is due on October 3."]


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory):
    try:
        loading.packaged_encoder_path()
        loading.packaged_decoder_gguf()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))
    from larimar_memory import Larimar

    lar = Larimar(store=str(Path(tmp_path_factory.mktemp("scope")) / "s.sqlite3"))
    lar.remember(FACTS, metadata={"speaker": "lucia"})
    yield lar
    lar.close()


@pytest.mark.parametrize(("question", "fact"), [
    ("What's my dog's name?", "I have a greyhound called Bolt."),
    ("Who is our vet?", "My vet is Dr Kowalczyk."),
    ("What does my greyhound eat?", "My dog eats salmon kibble."),
])
def test_questions_about_the_users_facts_are_in_scope(memory, question, fact) -> None:
    result = memory.recall(question, k=3, decode=False)
    assert result.scope.in_scope and fact in [h.fact.text for h in result.hits]


def test_the_decoder_reads_only_the_facts_in_scope(memory) -> None:
    """Three facts recalled, one of them about the question: the answer reads that one."""
    question = "Who is our vet?"
    recall = memory.recall(question, k=3, decode=False)
    in_scope = [h.fact.text for h in recall.hits if h.score >= recall.scope.threshold]
    assert len(recall.hits) == 3 and recall.scope.in_scope and 0 < len(in_scope) < 3
    assert [f.text for f in memory.ask(question, k=3, max_new_tokens=4).facts] == in_scope


@pytest.mark.parametrize("question", ["What is my favourite colour?",
                                      "What's my email address?"])
def test_a_personal_question_with_nothing_on_it_stored_is_unknown(memory, question) -> None:
    assert not memory.recall(question, k=3, decode=False).scope.in_scope
    assert memory.ask(question, max_new_tokens=4).route == "unknown"


def test_a_general_question_gets_no_memory(memory) -> None:
    assert memory.ask("What is the smallest country in the world?",
                      max_new_tokens=4).route == "plain"


def test_the_forget_margin_is_not_hidden_by_evidence_every_candidate_shares(memory) -> None:
    """Both cat facts are the user's and name the cat: scores near 1 for both, yet the one
    meant leads at the operating point."""
    hits = memory.recall("my cat", k=2, decode=False).hits
    assert {h.fact.text for h in hits} == {FACTS[0], FACTS[4]}
    assert hits[0].score - hits[1].score < memory.settings.forget_margin  # near 1 together
    result = memory.forget_matching("my cat")
    assert [f.text for f in result.forgotten] == [FACTS[0]]
