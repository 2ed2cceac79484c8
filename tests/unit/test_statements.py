"""Reading user sentences: clauses, labels, slots and changes (no model)."""

from __future__ import annotations

import pytest

from larimar_memory.statements import changed_subject, clauses, fact_slot, slot_head


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("Quick intro: I live in Montevideo but I work on London hours.",
         ["I live in Montevideo.", "I work on London hours."]),
        ("My landlord is Mr Abernathy and my rent is due on the 1st of each month.",
         ["My landlord is Mr Abernathy.", "My rent is due on the 1st of each month."]),
        ("My shift is on Saturday mornings and the volunteer coordinator is Hamid.",
         ["My shift is on Saturday mornings.", "The volunteer coordinator is Hamid."]),
        ("My old boss retired; my head of department is M. Bertrand now.",
         ["My old boss retired.", "My head of department is M. Bertrand now."]),
        ("My mortgage rate is 4.2 percent and it renews in March 2026.",
         ["My mortgage rate is 4.2 percent.", "My mortgage rate renews in March 2026."]),
        ("I have a cat called Pimienta and a greyhound called Bolt.",
         ["I have a cat called Pimienta.", "I have a greyhound called Bolt."]),
        ("I'd rather you didn't keep my landlord's name, please delete it.",
         ["I'd rather you didn't keep my landlord's name.", "Please delete it."]),
        # no new subject, or nothing before it with a verb: one clause
        ("My wife and my son live in Porto.", ["My wife and my son live in Porto."]),
        ("I work for Pellucid Labs, fully remote.", ["I work for Pellucid Labs, fully remote."]),
        ("In March, I moved to Lisbon.", ["In March, I moved to Lisbon."]),
        ("Hi!", []),
    ],
)
def test_clauses(sentence, expected):
    assert clauses(sentence) == expected


@pytest.mark.parametrize(
    "sentence, slot",
    [
        ("New test result: my FTP is 281 watts.", "my ftp"),
        ("From January my day rate is 720 euros.", "my day rate"),
        ("My broadband is with Community Fibre now.", "my broadband"),
        ("My broadband provider is Hyperoptic.", "my broadband"),
        ("My graphics card is an RTX 3070.", "my graphics card"),
        ("I drive a blue Volvo V60, it's ancient.", "my car"),
        ("My car is serviced at Garage de Vries.", None),  # which garage, not which car
        ("We're reading The Remains of the Day at the moment.", "my book"),
        ("My sister is a nurse.", None),
        ("My thesis is due on September 30.", "my thesis when"),  # not "my thesis" (its topic)
        ("My thesis is about topological insulators.", None),
        ("The rent is due by the 1st of each month.", "my rent when"),
    ],
)
def test_fact_slot_after_openings_and_for_named_values(sentence, slot):
    assert fact_slot(sentence) == slot


@pytest.mark.parametrize(
    "statement, sentence, head",
    [
        ("The rate is now 3.9 percent.", None, "rate"),
        ("I switched coaches, Greta coaches me now.", None, "coach"),
        ("I changed insurers, it's OUTsurance now.", None, "insurer"),
        ("I now have a Radeon RX 7800 XT graphics card.", None, "card"),
        ("The appointment is on Thursday at 10am.",
         "Sorry, the dentist moved me: the appointment is on Thursday at 10am.",
         "appointment when"),
        ("My thesis is now due on October 14.",
         "Good news: the deadline was extended, my thesis is now due on October 14.",
         "thesis when"),
        ("The rate is 3.9 percent.", None, None),  # no word says it changed
        ("I have a dog.", None, None),
    ],
)
def test_changed_subject(statement, sentence, head):
    assert changed_subject(statement, sentence) == head


def test_slot_head_keeps_named_subjects_apart():
    assert slot_head("my mortgage rate") == "rate"
    assert slot_head("my flight to oslo when") == "flight when"
    assert slot_head("my head of department") == "head"
    assert slot_head("residence") == "residence"
    assert slot_head("alice residence") == "alice residence"


def test_a_change_replaces_the_one_fact_with_that_head(larimar):
    from larimar_memory.conversation import observe

    observe(larimar, "My mortgage rate is 4.2 percent and it renews in March 2026.")
    observe(larimar, "My mortgage advisor is Declan.")
    turn = observe(larimar, "I remortgaged, the rate is now 3.9 percent.")
    assert [f.text for f in turn.replaced] == ["My mortgage rate is 4.2 percent."]
    assert {f.text for f in larimar.list()} == {
        "My mortgage rate renews in March 2026.", "My mortgage advisor is Declan.",
        "I remortgaged.", "The rate is now 3.9 percent."}


def test_a_change_with_two_candidates_replaces_nothing(larimar):
    from larimar_memory.conversation import observe

    observe(larimar, "My mortgage rate is 4.2 percent.")
    observe(larimar, "My day rate is 650 euros.")
    turn = observe(larimar, "The rate is now 3.9 percent.")
    assert turn.replaced == [] and len(larimar.list()) == 3


def test_a_tool_correction_replaces_by_head(larimar):
    from larimar_memory.conversation import observe, statement_metadata

    observe(larimar, "The venue is Hever Castle and we're inviting 120 guests.")
    fact = "The wedding venue is Leeds Castle."
    assert statement_metadata(fact).get("changes") is None
    result = larimar.remember(fact, metadata=statement_metadata(fact, corrects=True))
    assert result.outcomes[0].status == "replaced"
    assert {f.text for f in larimar.list()} == {"We're inviting 120 guests.", fact}


def test_forget_it_refers_to_the_rest_of_the_sentence(larimar):
    from larimar_memory.conversation import observe

    observe(larimar, "My landlord is Mr Abernathy and my rent is due on the 1st of each month.")
    turn = observe(larimar, "I'd rather you didn't keep my landlord's name, please delete it.")
    assert [f.text for f in turn.forgotten] == ["My landlord is Mr Abernathy."]
    assert [f.text for f in larimar.list()] == ["My rent is due on the 1st of each month."]
    assert {s.reason for s in turn.skipped} == {"reason for a forget request"}


def test_forget_about_takes_every_fact_naming_it(larimar):
    from larimar_memory.conversation import observe

    observe(larimar, "I grow heirloom tomatoes on my allotment. My allotment plot number is 23B. "
                     "I'm in a chess club that meets on Wednesdays.")
    turn = observe(larimar, "Forget everything about my allotment, I gave it up.")
    assert len(turn.forgotten) == 2
    assert [f.text for f in larimar.list()] == ["I'm in a chess club that meets on Wednesdays."]
