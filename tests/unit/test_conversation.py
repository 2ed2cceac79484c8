"""Conversation turns → memory operations, with no LLM call."""

from __future__ import annotations

import pytest

from larimar_memory.conversation import (
    extract_facts,
    is_fact,
    is_question,
    observe,
    parse_forget_request,
)


@pytest.mark.parametrize(
    "sentence, target",
    [
        ("Please forget that I live in Paris.", "I live in Paris"),
        ("forget my address", "my address"),
        ("Can you delete the fact that Bob plays cello?", "Bob plays cello"),
        ("Remove everything about my sister", "my sister"),
        ("I will never forget Paris.", None),
        ("Where do I live?", None),
    ],
)
def test_parse_forget_request(sentence, target):
    assert parse_forget_request(sentence) == target


def test_fact_and_question_classification():
    assert is_fact("I live in Lisbon.")
    assert is_fact("My sister is called Ana")
    assert not is_fact("Hi there friend!")
    assert not is_fact("Where do I live?")
    assert not is_fact("ok")
    assert is_question("what is my name")
    assert extract_facts("Hello! I live in Lisbon. What is my job? I work as a nurse.") == [
        "I live in Lisbon.",
        "I work as a nurse.",
    ]


@pytest.mark.parametrize(
    "sentence, slot",
    [
        ("My favourite colour is blue.", "my favourite colour"),
        ("Actually, my favorite colour is green.", "my favourite colour"),
        ("I live in Porto.", "residence"),
        ("Actually, I moved to Lisbon.", "residence"),
        ("Ok, so my email is tom@example.com", "my email"),
        ("My e-mail address is tom@example.org.", "my email"),
        ("My manager is now Priya.", "my manager"),
        ("My boss is Dan.", "my manager"),
        ("My flight is on May 8.", "my flight when"),
        ("The flight moved to May 9.", "my flight when"),
        ("My dog's name is Rex.", "my dog"),
        ("My dog is called Rex.", "my dog"),
        ("Alice lives in Lisbon.", "alice residence"),
        ("I am a nurse.", None),
        ("My sister is a doctor.", None),
        ("I adopted a dog called Rex.", None),
    ],
)
def test_fact_slot_names_what_a_statement_is_about(sentence, slot):
    from larimar_memory.conversation import fact_slot

    assert fact_slot(sentence) == slot


def test_filler_openings_are_stripped_not_dropped():
    assert extract_facts("Ok, my email is tom@example.com. Hi! I just moved to Lisbon.") == [
        "My email is tom@example.com.", "I just moved to Lisbon."]
    assert extract_facts("Remember that my dog is called Rex.") == ["My dog is called Rex."]
    assert extract_facts("I'm vegan.") == ["I'm vegan."]


def test_observe_strips_lead_ins(larimar):
    observe(larimar, "Remember that my dog is called Rex.")
    assert [f.text for f in larimar.list()] == ["My dog is called Rex."]


def test_observe_replaces_a_corrected_fact(larimar):
    observe(larimar, "My favourite colour is blue.")
    observe(larimar, "Actually, my favourite colour is green.")
    assert [f.text for f in larimar.list()] == ["My favourite colour is green."]


def test_observe_writes_facts_and_forgets_on_request(larimar):
    turn = observe(larimar, "Hi! Alice lives in Lisbon. Bob plays the cello. Where is Carol?")
    assert len(turn.remembered) == 2 and turn.questions == ["Where is Carol?"]
    assert {f.text for f in larimar.list()} == {"Alice lives in Lisbon.", "Bob plays the cello."}
    turn = observe(larimar, "Please forget that Bob plays the cello.")
    assert [f.text for f in turn.forgotten] == ["Bob plays the cello."]
    assert [f.text for f in larimar.list()] == ["Alice lives in Lisbon."]
    turn = observe(larimar, "Forget quantum chromodynamics entirely.")
    assert turn.forgotten == [] and turn.unmatched_forget_requests


def test_observe_skips_an_over_long_sentence_and_keeps_the_rest(larimar):
    limit = larimar.limits().max_fact_tokens
    long = "My grandmother " + "really " * (limit // 7 + 1) + "likes tea."
    assert larimar.model.text_token_counts([long])[0] > limit
    result = observe(larimar, f"I live in Lisbon. {long}")
    assert result.too_long == [long]
    assert [f.text for f in larimar.list()] == ["I live in Lisbon."]


class _CountingBackend:
    """Just enough of a MemoryBackend for `observe`: a limit in 'tokens' (words here, so the
    byte bound is loose) that only `remember` knows exactly."""

    def __init__(self, max_tokens: int) -> None:
        from larimar_memory.types import MemoryLimits

        self._limits = MemoryLimits(max_fact_tokens=max_tokens, max_text_chars=400,
                                    max_key_chars=400)
        self.calls: list[list[str]] = []

    def limits(self):
        return self._limits

    def forget_matching(self, description, *, namespace=None, threshold=None):
        raise AssertionError("no forget in this test")

    def remember(self, text, *, key=None, namespace=None, **_):
        from larimar_memory.errors import TextInputError
        from larimar_memory.types import RememberResult

        self.calls.append(list(text))
        if any(len(t.split()) > self._limits.max_fact_tokens for t in text):
            raise TextInputError("too many tokens; nothing was written")
        start = sum(len(c) for c in self.calls[:-1])
        return RememberResult(ids=[f"id{start + i}" for i in range(len(text))])


def test_observe_uses_limits_not_the_model():
    """Short facts go in one batch; a sentence the byte bound cannot clear is tried on its own,
    and refused ones (TextInputError, nothing written) land in too_long. No tokenizer here."""
    memory = _CountingBackend(max_tokens=30)
    fits = "Ana keeps " + "very " * 10 + "many old books."  # 14 words, > 30 bytes
    over = "Bo keeps " + "very " * 40 + "many old maps."  # 44 words
    huge = "Cy keeps " + "x" * 500 + " things."  # over max_text_chars: never sent
    turn = observe(memory, f"I live in Lisbon. {fits} {over} {huge} My cat is Tom.")
    assert turn.too_long == [over, huge]
    assert memory.calls[0] == ["I live in Lisbon.", "My cat is Tom."]  # surely fit: one batch
    assert [fits] in memory.calls and [over] in memory.calls
    assert not any(huge in c for c in memory.calls)
    assert len(turn.remembered) == 3


def test_observe_keeps_speaker_and_time_and_never_crosses_speakers(larimar):
    from larimar_memory.conversation import observe

    observe(larimar, "My favourite colour is blue.", metadata={"speaker": "Ann"})
    observe(larimar, "My favourite colour is red.", metadata={"speaker": "Ben"})
    facts = larimar.list()
    assert [(f.text, f.metadata["speaker"]) for f in facts] == [
        ("My favourite colour is blue.", "Ann"), ("My favourite colour is red.", "Ben")]
    assert all("time" in f.metadata for f in facts)
    observe(larimar, "Actually, my favourite colour is green.", metadata={"speaker": "Ann"})
    assert sorted(f.text for f in larimar.list()) == [
        "My favourite colour is green.", "My favourite colour is red."]


def test_observe_keys_each_fact_with_the_message_that_prompted_it(larimar):
    from larimar_memory.conversation import observe

    observe(larimar, "I adopted a dog called Rex.", context="What happened last weekend?")
    (fact,) = larimar.list()
    assert fact.extra_keys == ["What happened last weekend? I adopted a dog called Rex."]
    observe(larimar, "My sister lives in Oslo.")
    assert larimar.list()[1].extra_keys == []
