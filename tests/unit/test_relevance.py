"""The relevance module and what rests on it: fusion unbiased by key count, calibrated scores
and scope, safe forgets, corrections that replace, conversations as message lists."""

from __future__ import annotations

import numpy as np
import pytest

from larimar_memory.errors import ArgumentError, EmptyInputError, TextInputError
from larimar_memory.relevance import CONVERSATION, EDITS, Calibration, Evidence, Hit, refers_to
from larimar_memory.scope import ExternalScopeDetector
from larimar_memory.service.reads import decoder_reads
from larimar_memory.types import ScopeInfo


def test_extra_keys_do_not_outrank_a_better_single_key_match(larimar):
    """A fact with context keys appears in more lists only if the lists it lacks are filled by
    the others' main keys: the exact single-key match stays first."""
    larimar.remember("Tom plays the violin every evening.")
    larimar.remember("Tom has a cat.", extra_keys=["Tom violin evening plays chat",
                                                   "Tom plays evening violin talk"])
    hits = larimar.recall("Tom plays the violin every evening", k=2).hits
    assert hits[0].fact.text == "Tom plays the violin every evening."


def test_scores_are_calibrated_and_scope_uses_the_same_score(larimar):
    larimar.remember(["Alice lives in Lisbon.", "Bob plays the cello."])
    result = larimar.recall("Where does Alice live in Lisbon?", k=2)
    assert 0.0 <= result.hits[-1].score <= result.hits[0].score <= 1.0
    assert set(result.hits[0].evidence) == {"dense", "lexical", "agreement", "speaker", "form"}
    assert result.scope.score == result.hits[0].score
    assert result.scope.in_scope == (result.scope.score >= result.scope.threshold)
    off = larimar.recall("quantum chromodynamics lecture notes", k=1)
    assert not off.scope.in_scope


def test_calibration_is_monotone_in_evidence_and_edits_is_the_cosine_rule():
    weak, strong = Evidence(0.2, 0.0, 0.1), Evidence(0.7, 1.0, 0.9)
    assert CONVERSATION.score(weak) < CONVERSATION.threshold < CONVERSATION.score(strong)
    assert EDITS.accepts(Evidence(0.57, 0.0, 0.0)) and not EDITS.accepts(Evidence(0.55, 0, 0))
    rule = Calibration.dense_only("x", 0.3)
    assert rule.accepts(Evidence(0.31, 0, 0)) and not rule.accepts(Evidence(0.29, 0, 0))


def test_the_context_point_shows_memory_for_questions_about_the_speaker_only():
    """Below the decoding point, memory is still shown to a model when the question is about
    the person who said the fact and the score reaches the context point; a question about
    nobody in memory needs the decoding point."""
    calibration = Calibration("c", dense=10.0, lexical=0.0, agreement=0.0, bias=-5.0,
                              threshold=0.6, context_threshold=0.2)
    near = Evidence(dense=0.45, lexical=0.0, agreement=0.0, speaker=1.0)  # score 0.38
    assert not calibration.accepts(near) and calibration.shows(near)
    assert not calibration.shows(Evidence(dense=0.45, lexical=0.0, agreement=0.0, speaker=0.0))
    assert not calibration.shows(Evidence(dense=0.3, lexical=0.0, agreement=0.0, speaker=1.0))
    assert calibration.shows(near, context_threshold=0.3)
    assert not calibration.shows(near, context_threshold=0.5)
    without = Calibration("c", dense=10.0, lexical=0.0, agreement=0.0, bias=-5.0, threshold=0.6)
    assert not without.shows(near) and without.shows(Evidence(0.6, 0.0, 0.0, 1.0))
    assert CONVERSATION.context_threshold is not None
    assert CONVERSATION.context_threshold < CONVERSATION.threshold


def test_a_quantity_question_about_nobody_is_not_answered_by_a_fact_without_one():
    """"How many characters are in the hiragana alphabet?" is not about "I am learning
    Japanese.": a question about nobody in memory that asks for a quantity needs a fact that
    holds one; a question about the speaker, or a fact with a number, is judged as before."""
    strong = Evidence(dense=0.9, lexical=1.0, agreement=1.0)
    lacking = Evidence(dense=0.9, lexical=1.0, agreement=1.0, form=0.0)
    assert CONVERSATION.accepts(strong) and not CONVERSATION.accepts(lacking)
    about = Evidence(dense=0.9, lexical=1.0, agreement=1.0, speaker=1.0, form=0.0)
    assert CONVERSATION.accepts(about)
    assert EDITS.accepts(Evidence(0.9, 0.0, 0.0, form=0.0))  # the edit rule reads the cosine


@pytest.mark.parametrize(
    "query, text, form",
    [
        ("How many characters are in the Japanese hiragana alphabet?", "I am learning Japanese.",
         0.0),
        ("How long do greyhounds usually live?", "I have a greyhound called Bolt.", 0.0),
        ("What is the population of Singapore?", "My sister lives in Singapore.", 0.0),
        ("How old is Felix?", "My son Felix is six years old.", 1.0),
        ("How long is the commute?", "My commute takes 40 minutes.", 1.0),
        ("Where does my sister live?", "My sister lives in Singapore.", 1.0),
    ],
)
def test_the_form_evidence_reaches_the_hits(larimar, query, text, form):
    larimar.remember(text)
    assert larimar.recall(query).hits[0].evidence["form"] == form


def test_scope_says_whether_memory_is_relevant_to_show(larimar):
    """`ScopeInfo.relevant` is the context point's decision; in scope implies relevant."""
    larimar.remember(["I live in Porto."], metadata={"speaker": "user"})
    for query in ("Where do I live?", "Where is Porto?", "quantum chromodynamics notes"):
        scope = larimar.recall(query).scope
        hit = larimar.recall(query).hits[0]
        expected = scope.in_scope or (hit.evidence["speaker"] == 1.0
                                      and scope.score >= CONVERSATION.context_threshold)
        assert scope.relevant is expected
        assert not scope.in_scope or scope.relevant


def test_scope_info_from_an_older_server_reads_relevant_as_in_scope():
    from larimar_memory.types import ScopeInfo

    assert ScopeInfo(score=0.9, in_scope=True, threshold=0.5).relevant is True
    assert ScopeInfo(score=0.1, in_scope=False, threshold=0.5).relevant is False
    assert ScopeInfo(score=0.3, in_scope=False, threshold=0.5, relevant=True).relevant is True
    assert ScopeInfo(score=0.9, in_scope=True, threshold=0.5, relevant=False).relevant is True


@pytest.mark.parametrize(
    "query, speaker, about",
    [
        ("Who do I report to?", "user", True),
        ("Who do I report to?", None, True),  # no speaker recorded: the user's own fact
        ("Who do I report to?", "Caroline", True),  # a named user asking about herself
        ("What did Caroline research?", "Caroline", True),
        ("What did Caroline research?", "Melanie", False),
        ("Who created the Python language?", "user", False),
        ("Where do I live?", "assistant", False),  # the assistant is not who a question is about
    ],
)
def test_refers_to(query, speaker, about):
    assert refers_to(query, speaker) is about


def test_speaker_evidence_reaches_the_hits(larimar):
    larimar.remember(["I live in Porto."], metadata={"speaker": "user"})
    assert larimar.recall("Where do I live?").hits[0].evidence["speaker"] == 1.0
    assert larimar.recall("Where is Porto?").hits[0].evidence["speaker"] == 0.0


def test_the_edit_scope_detector_decides_with_the_calibration(larimar):
    esd = ExternalScopeDetector(larimar.embedder, threshold=0.5)
    assert esd.calibration == Calibration.dense_only("edits", 0.5)


def test_forget_matching_refuses_an_ambiguous_description(larimar):
    larimar.remember(["My sister Ana lives in Oslo.", "My sister Ana lives in Rome."])
    result = larimar.forget_matching("my sister Ana lives", margin=0.2)
    assert result.forgotten == [] and result.ambiguous and len(result.candidates) == 2
    assert "forget by id" in result.reason and len(larimar.list()) == 2
    assert "Candidates" in result.describe()


def test_forget_matching_deletes_the_clear_match_only(larimar):
    larimar.remember(["Alice lives in Lisbon.", "Bob plays the cello on Sundays."])
    result = larimar.forget_matching("that Bob plays the cello")
    assert [f.text for f in result.forgotten] == ["Bob plays the cello on Sundays."]
    assert [f.text for f in larimar.list()] == ["Alice lives in Lisbon."]
    nothing = larimar.forget_matching("quantum chromodynamics")
    assert nothing.forgotten == [] and not nothing.ambiguous and nothing.reason


def test_forget_matching_takes_the_word_for_word_fact(larimar):
    larimar.remember(["My sister is called Ana.", "My sister is called Ana by her friends."])
    result = larimar.forget_matching("my sister is called ana")
    assert [f.text for f in result.forgotten] == ["My sister is called Ana."]


def test_forget_about_removes_everything_about_it(larimar):
    larimar.remember(["My sister Ana lives in Oslo.", "My sister Ana is a doctor.",
                      "I play chess on Mondays."])
    result = larimar.forget_about("my sister Ana", threshold=0.3)
    assert len(result.forgotten) == 2
    assert [f.text for f in larimar.list()] == ["I play chess on Mondays."]


@pytest.mark.parametrize("bad, error", [("", EmptyInputError), ("   ", EmptyInputError),
                                        (None, TextInputError)])
def test_empty_forget_descriptions_are_refused(larimar, bad, error):
    larimar.remember("Alice lives in Lisbon.")
    with pytest.raises(error):
        larimar.forget_matching(bad)
    with pytest.raises(error):
        larimar.forget_about(bad)
    assert len(larimar.list()) == 1


def test_a_correction_replaces_whichever_path_wrote_the_fact(larimar):
    from larimar_memory.conversation import observe, statement_metadata

    observe(larimar, "I live in Porto.", metadata={"speaker": "user"})
    turn = observe(larimar, "Actually, I moved to Lisbon.", metadata={"speaker": "user"})
    assert [f.text for f in turn.replaced] == ["I live in Porto."]
    fact = "I now live in Madrid."  # a tool writes with the same speaker and slot
    result = larimar.remember(fact, metadata=statement_metadata(fact))
    assert result.outcomes[0].status == "replaced"
    assert [f.text for f in larimar.list()] == ["I now live in Madrid."]
    observe(larimar, "My sister is a doctor.", metadata={"speaker": "user"})
    observe(larimar, "My sister is a pilot.", metadata={"speaker": "user"})
    assert len(larimar.list()) == 3  # distinct facts (no slot) are never replaced


def test_remember_messages_attributes_speakers_and_reports_every_skip(larimar):
    result = larimar.remember(messages=[
        {"role": "user", "content": "Hi! Ok, so my email is tom@example.com. What's up?"},
        {"role": "assistant", "content": "Where do you live?"},
        {"role": "user", "content": "I live in Porto.", "name": "Tom"},
    ])
    facts = larimar.list()
    assert [(f.text, f.metadata["speaker"]) for f in facts] == [
        ("My email is tom@example.com.", "user"), ("I live in Porto.", "Tom")]
    assert facts[1].extra_keys == ["Where do you live? I live in Porto."]
    assert facts[0].metadata["slot"] == "my email"
    assert {s.reason for s in result.skipped} == {"filler", "question"}
    assert len(result.ids) == 2
    forget = larimar.remember(messages=[{"role": "user", "content": "Forget my email."}])
    assert [f.text for f in forget.forgotten] == ["My email is tom@example.com."]


@pytest.mark.parametrize("messages, error", [
    ([{"role": "robot", "content": "I live in Porto."}], ArgumentError),
    ([{"role": "user", "content": ["I live", "in Porto"]}], TextInputError),
    ([{"role": "user"}], ArgumentError),
    ([], ArgumentError),
])
def test_bad_messages_are_refused_and_store_nothing(larimar, messages, error):
    with pytest.raises(error):
        larimar.remember(messages=[{"role": "user", "content": "I live in Lisbon."}, *messages]
                         if messages else messages)
    assert larimar.list() == []


def test_text_and_messages_together_are_refused(larimar):
    with pytest.raises(ArgumentError):
        larimar.remember("x y z", messages=[{"role": "user", "content": "I live in Porto."}])


def test_fallback_lists_hold_every_fact_once(larimar):
    """Every fact has exactly one entry in each kind's dense and lexical lists."""
    larimar.remember("Ann sings.", extra_keys=["context one Ann sings."])
    larimar.remember("Ben runs.")
    ns = larimar._namespaces.synced("default")
    ranker = larimar.ranker
    emb = larimar.embedder.embed(["Ben runs"])
    for kind in (0, 1):
        lacking = ranker._lacking(ns.memory, kind, None)
        dense = ranker._dense(ns.memory, emb[0], 10, None, kind, lacking)
        assert sorted(dense) == sorted(np.unique(dense)) and len(dense) == 2


def test_an_extra_kind_of_key_adds_the_list_of_its_own_agreement(larimar, monkeypatch):
    """Per extra kind of key, one list fuses that kind's dense and BM25 rankings (sharply:
    `KEY_AGREEMENT_CONSTANT`); a namespace without extra keys ranks as before."""
    from larimar_memory import relevance

    fused: list[list[tuple[list[str], float]]] = []
    real = relevance.reciprocal_rank_fusion

    def spy(rankings, k, constant=60.0):
        rankings = list(rankings)
        fused.append(rankings)
        return real(rankings, k, constant)

    monkeypatch.setattr(relevance, "reciprocal_rank_fusion", spy)
    larimar.remember(["Tom has a cat.", "Ann plays the cello."], namespace="plain")
    larimar.recall("Who plays the cello?", k=2, namespace="plain")
    assert len(fused[-1]) == 2  # main key: dense and BM25, no cue
    fused.clear()
    larimar.remember("For walking or running?", namespace="turns",
                     extra_keys=["Mel: Look at my new shoes! Ann: For walking or running?"])
    larimar.remember("I like my cat.", namespace="turns", extra_keys=["Mel: And you? Ann: Cats."])
    larimar.recall("What are the new shoes for?", k=2, namespace="turns")
    final = fused[-1]
    assert len(final) == 5  # 2 kinds x (dense, BM25) + the extra kind's agreement
    agreement = real([final[2], final[3]], 50, relevance.KEY_AGREEMENT_CONSTANT)
    assert final[4] == ([f for f, _ in agreement], relevance.KEY_AGREEMENT_WEIGHT)


def _hit(fact_id: str, evidence: Evidence) -> Hit:
    return Hit(fact_id, CONVERSATION.score(evidence), evidence)


def _decision(hits: list[Hit]) -> ScopeInfo:
    best = hits[0]
    return ScopeInfo(score=best.score, in_scope=best.score >= CONVERSATION.threshold,
                     threshold=CONVERSATION.threshold,
                     relevant=CONVERSATION.shows(best.evidence))


def test_the_decoder_reads_the_hits_in_scope_when_the_best_one_is():
    sure = _hit("aisle", Evidence(dense=0.67, lexical=0.2, agreement=1.0, speaker=1.0))
    near = _hit("flight", Evidence(dense=0.37, lexical=0.0, agreement=0.47, speaker=1.0))
    far = _hit("hotel", Evidence(dense=0.17, lexical=0.0, agreement=0.4, speaker=1.0))
    also = _hit("seat", Evidence(dense=0.66, lexical=0.2, agreement=0.9, speaker=1.0))
    assert sure.score >= CONVERSATION.threshold > near.score >= CONVERSATION.context_threshold
    hits = [sure, near, far, also]
    assert [h.fact_id for h in decoder_reads(hits, _decision(hits), CONVERSATION)] == [
        "aisle", "seat"]


def test_the_decoder_reads_every_hit_worth_showing_when_none_is_in_scope():
    hits = [_hit(f, Evidence(dense=d, lexical=0.0, agreement=a, speaker=1.0))
            for f, d, a in (("date", 0.376, 0.5), ("slides", 0.356, 0.47),
                            ("conference", 0.355, 0.44), ("unrelated", 0.1, 0.4))]
    decision = _decision(hits)
    assert decision.relevant and not decision.in_scope
    assert [h.fact_id for h in decoder_reads(hits, decision, CONVERSATION)] == [
        "date", "slides", "conference"]
    unrelated = [hits[-1]]
    assert decoder_reads(unrelated, _decision(unrelated), CONVERSATION) == []
