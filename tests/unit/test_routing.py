"""The route decision of `ask`: memory, plain, or unknown (no model involved)."""

from __future__ import annotations

import pytest

from larimar_memory.routing import (
    UNKNOWN_ANSWER,
    asks_about_user,
    choose_route,
    names_their_life,
)

ABOUT_THE_USER = [
    "Where do I live?",
    "Who is my coach?",
    "What's my email address?",
    "Which company am I working for?",
    "Can you remind me where I live?",
    "Tell me my flight date.",
    "What kind of dog do we have?",
    "Who is our vet?",
    "What is your daughter's name?",
    "I’m trying to remember: which team am I on?",
    "How do I like my coffee?",
]
GENERAL = [
    "Who wrote Pride and Prejudice?",
    "What is the largest planet in our solar system?",
    "How do I boil an egg?",
    "Why do we dream?",
    "Can you explain photosynthesis to me?",
    "Tell me the capital of France.",
    "What is the boiling point of water at sea level?",
    "Is it safe for me to eat raw eggs?",
]

# Naming no one, yet about a particular thing of the asker's life: only memory knows it.
ABOUT_THEIR_LIFE = [
    "When is the party?",
    "Who is cooking this weekend?",
    "Is the meeting still on?",
    "When are the bills due?",
    "Where is the rehearsal next week?",
    "When is rent paid?",
]
# ... and the same words about the world.
WORLD_WITH_LIFE_WORDS = [
    "How many players are on a rugby team?",
    "What is a mortgage?",
    "What does a wedding planner do?",
    "Who is the manager of Arsenal?",
    "What is the traditional gift for a tenth anniversary?",
    "Who won the match in 1966?",
    "Where did the meteor land yesterday?",
    "How do I prepare for an interview?",
]


@pytest.mark.parametrize("question", ABOUT_THEIR_LIFE)
def test_questions_about_a_thing_of_their_life_take_the_unknown_route(question):
    assert not asks_about_user(question) and names_their_life(question)
    assert choose_route(question, relevant=False) == "unknown"


@pytest.mark.parametrize("question", WORLD_WITH_LIFE_WORDS + GENERAL)
def test_the_world_named_with_everyday_words_is_decoded_plainly(question):
    assert not names_their_life(question)
    assert choose_route(question, relevant=False) == "plain"


@pytest.mark.parametrize("question", ABOUT_THE_USER)
def test_questions_about_the_user_take_the_unknown_route_when_nothing_is_in_scope(question):
    assert asks_about_user(question)
    assert choose_route(question, relevant=False) == "unknown"


@pytest.mark.parametrize("question", GENERAL)
def test_general_questions_are_decoded_plainly(question):
    assert not asks_about_user(question)
    assert choose_route(question, relevant=False) == "plain"


@pytest.mark.parametrize("question", ABOUT_THE_USER + GENERAL)
def test_a_question_in_scope_is_answered_from_memory(question):
    assert choose_route(question, relevant=True) == "memory"


def test_the_unknown_answer_says_memory_has_nothing():
    assert "in memory" in UNKNOWN_ANSWER and "don't" in UNKNOWN_ANSWER
