"""Query cues (`larimar_memory.cues`) and how the ranker uses them."""

from __future__ import annotations

import pytest

from larimar_memory import cues


def test_when_questions_and_others():
    assert cues.asks_when("When did Melanie go to the museum?")
    assert cues.asks_when("How long has Jon been dancing?")
    assert cues.asks_when("What did Gina do after the fair?")
    assert not cues.asks_when("What did Melanie paint?")
    assert not cues.asks_when("Whenever I ask, what is my name?")


def test_named_speakers_are_whole_words_in_any_case():
    speakers = {"Ann", "Bo", "Melanie"}
    assert cues.named_speakers("What is Melanie's favourite book?", speakers) == {"Melanie"}
    assert cues.named_speakers("did ann and BO meet?", speakers) == {"Ann", "Bo"}
    assert cues.named_speakers("What about boats?", speakers) == set()


def test_time_expressions_do_not_count_the_facts_own_timestamp():
    date = {"date": "1:56 pm on 8 May, 2023"}
    assert not cues.has_time_expression("1:56 pm on 8 May, 2023 Ann: I love my cat.", date)
    assert cues.has_time_expression("1:56 pm on 8 May, 2023 Ann: Yesterday I went out.", date)
    assert cues.has_time_expression("I moved there three years ago.", {})
    assert cues.has_time_expression("We met last Friday.", {})
    assert not cues.has_time_expression("I like dancing.", {})


def test_months_of_questions_and_facts():
    assert cues.months_named("When did she go camping in June or July?") == {6, 7}
    assert cues.months_named("What did she do?") == set()
    assert cues.fact_month({"date": "1:56 pm on 8 May, 2023"}) == 5
    assert cues.fact_month({"time": "2026-12-02T20:15:00+00:00"}) == 12
    assert cues.fact_month({"speaker": "Ann"}) is None


def test_a_named_speaker_puts_their_fact_first(larimar):
    """Two turns match the words equally; the question names who said one of them."""
    larimar.remember(["I painted a sunrise by the lake.", "I painted a sunrise at the lake."],
                     metadata=[{"speaker": "Caroline"}, {"speaker": "Melanie"}])
    for who in ("Melanie", "Caroline"):
        hits = larimar.recall(f"What did {who} paint by the lake?", k=2).hits
        assert hits[0].fact.metadata["speaker"] == who


def test_a_when_question_prefers_the_turn_that_places_it_in_time(larimar):
    """The words favour the first turn (without the cue it ranks first); *when* asks for the
    turn that says when."""
    larimar.remember(["I took the kids to the museum, the kids loved it.",
                      "Yesterday we went to the museum."])
    hits = larimar.recall("When did she take the kids to the museum?", k=2).hits
    assert hits[0].fact.text.startswith("Yesterday")
    hits = larimar.recall("Did she take the kids to the museum?", k=2).hits
    assert hits[0].fact.text.startswith("I took")


def test_days_of_questions_and_facts():
    assert cues.days_named("What painting did she show on October 13, 2023?") == {(10, 13)}
    assert cues.days_named("What did she start, as mentioned on 3 June, 2023?") == {(6, 3)}
    assert cues.days_named("What happened on the 1st of May?") == set()  # not a form it reads
    assert cues.days_named("What did she do in May 2023?") == set()  # a month and a year
    assert cues.fact_day({"date": "1:56 pm on 8 May, 2023"}) == (5, 8)
    assert cues.fact_day({"time": "2026-12-02T20:15:00+00:00"}) == (12, 2)
    assert cues.fact_day({"speaker": "Ann"}) is None


def test_phrases_are_adjacent_terms():
    assert cues.phrases("What are the new shoes for?") == {("new", "shoe")}
    assert ("art", "show") in cues.phrases("I painted it for the art show.")
    assert cues.phrases("The show had art in it.") == set()  # "had" is no stopword, but apart
    assert cues.phrases("it is the") == set()


def test_a_question_naming_a_day_prefers_the_fact_dated_that_day(larimar, monkeypatch):
    """The same words on two days; the month alone cannot tell them apart."""
    larimar.remember(["I painted a sunset with my kids.", "I painted a sunset with my kids!"],
                     metadata=[{"date": "1:00 pm on 2 October, 2023"},
                               {"date": "1:00 pm on 13 October, 2023"}])
    for day in ("2", "13"):
        hits = larimar.recall(f"What did Mel paint on October {day}, 2023?", k=2).hits
        assert hits[0].fact.metadata["date"].startswith(f"1:00 pm on {day} ")


def test_a_shared_phrase_puts_its_fact_first(larimar, monkeypatch):
    """BM25 and the bag-of-words test embedder favour the second turn (more of the query's
    words); only the first has "art show" as a phrase."""
    from larimar_memory import relevance

    larimar.remember(["I painted for the art show.", "At school she painted art to show."])
    question = "What did she paint for the art show at school?"
    monkeypatch.setattr(relevance, "PHRASE_WEIGHT", 0.0)
    assert larimar.recall(question, k=2).hits[0].fact.text.startswith("At school")
    monkeypatch.setattr(relevance, "PHRASE_WEIGHT", 0.5)
    assert larimar.recall(question, k=2).hits[0].fact.text.startswith("I painted")


@pytest.mark.parametrize(
    "query, asks",
    [("How many legs does a spider have?", True), ("How long is a marathon?", True),
     ("What is the population of Spain?", True), ("What's the speed of light?", True),
     ("Who wrote Pride and Prejudice?", False), ("When is the wedding?", False),
     ("What is the capital of Lithuania?", False)],
)
def test_quantity_questions(query, asks):
    assert cues.asks_quantity(query) is asks


@pytest.mark.parametrize(
    "text, holds",
    [("My commute takes 40 minutes.", True), ("Felix is six years old.", True),
     ("We invited a few friends.", True), ("I am learning Japanese.", False),
     ("I have a greyhound called Bolt.", False)],
)
def test_texts_holding_a_quantity(text, holds):
    assert cues.holds_quantity(text) is holds
