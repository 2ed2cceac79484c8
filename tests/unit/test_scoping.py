"""mem0-style scoping (``user_id`` / ``agent_id`` / ``run_id``) on the core verbs: a scope is
stored with every fact written in it, and every read, forget, list and clear in a scope sees
only its facts. The same through `ScopedMemory`."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from larimar_memory.errors import ArgumentError, FactNotFoundError, TextInputError
from larimar_memory.scoping import ScopedMemory, check_scope, scoped_filter, scoped_metadata


def test_a_scope_is_stored_and_narrows_every_read(larimar) -> None:
    alice = larimar.remember("I live in Porto.", user_id="alice").ids[0]
    bob = larimar.remember("I live in Oslo.", user_id="bob", agent_id="planner").ids[0]
    assert larimar.get(alice).metadata["user_id"] == "alice"
    assert larimar.get(bob).metadata == {"user_id": "bob", "agent_id": "planner"}

    assert [h.fact.id for h in larimar.recall("Where do I live?", k=5, user_id="alice").hits] \
        == [alice]
    assert [f.id for f in larimar.list(user_id="bob")] == [bob]
    assert [f.id for f in larimar.list(agent_id="planner", user_id="alice")] == []
    assert {f.id for f in larimar.list()} == {alice, bob}
    assert larimar.ask("Where do I live?", user_id="carol").facts == []


def test_a_scope_and_a_filter_both_hold(larimar) -> None:
    larimar.remember(["Tea at nine.", "Coffee at ten."], user_id="alice",
                     metadata=[{"n": 1}, {"n": 2}])
    larimar.remember("Juice at noon.", user_id="bob", metadata={"n": 2})
    assert [f.text for f in larimar.list(user_id="alice", filter={"n": 2})] == ["Coffee at ten."]
    # a filter naming the scope's own field: both must hold
    assert larimar.list(user_id="alice", filter={"user_id": "bob"}) == []
    assert scoped_filter({"user_id": {"$ne": "x"}}, {"user_id": "a"}) == {
        "$and": [{"user_id": "a"}, {"user_id": {"$ne": "x"}}]}


def test_forgets_and_clears_stay_inside_the_scope(larimar) -> None:
    alice = larimar.remember("My email is a@example.com.", user_id="alice").ids[0]
    bob = larimar.remember("My email is b@example.com.", user_id="bob").ids[0]

    with pytest.raises(FactNotFoundError):
        larimar.forget(bob, user_id="alice")  # an id outside the scope is not there
    with pytest.raises(FactNotFoundError):
        larimar.forget("My email is b@example.com.", user_id="alice")
    result = larimar.forget_matching("my email", user_id="bob")
    assert [f.id for f in result.forgotten] == [bob]  # alone in bob's scope: no ambiguity
    assert [f.id for f in larimar.list()] == [alice]

    larimar.remember("My cat is Tom.", user_id="carol")
    assert larimar.forget_about("my cat", user_id="alice").forgotten == []
    assert larimar.clear(user_id="carol") == 1
    assert [f.id for f in larimar.list()] == [alice]
    assert larimar.clear(user_id="nobody") == 0
    assert larimar.clear(filter={"user_id": "alice"}) == 1
    assert larimar.list() == []


def test_a_correction_never_replaces_another_users_fact(larimar) -> None:
    larimar.remember(messages=[{"role": "user", "content": "I live in Porto."}], user_id="alice")
    larimar.remember(messages=[{"role": "user", "content": "I live in Oslo."}], user_id="bob")
    larimar.remember(messages=[{"role": "user", "content": "Actually, I moved to Lisbon."}],
                     user_id="alice")
    assert sorted(f.text for f in larimar.list(user_id="alice")) == ["I moved to Lisbon."]
    assert [f.text for f in larimar.list(user_id="bob")] == ["I live in Oslo."]


def test_a_forget_request_in_messages_forgets_in_its_scope(larimar) -> None:
    larimar.remember("My gym is Fitzone.", user_id="alice")
    larimar.remember("My gym is Ironworks.", user_id="bob")
    result = larimar.remember(messages=[{"role": "user", "content": "Please forget my gym."}],
                              user_id="bob")
    assert [f.text for f in result.forgotten] == ["My gym is Ironworks."]
    assert [f.text for f in larimar.list()] == ["My gym is Fitzone."]


@pytest.mark.parametrize("bad", ["", "   ", 5, True, "x" * 201, "a\x00b"])
def test_a_bad_scope_id_is_refused_and_nothing_is_stored(larimar, bad) -> None:
    with pytest.raises(TextInputError, match="user_id"):
        larimar.remember("A fact.", user_id=bad)
    with pytest.raises(TextInputError, match="user_id"):
        larimar.recall("A fact?", user_id=bad)
    assert larimar.list() == []


def test_metadata_that_contradicts_the_scope_is_refused(larimar) -> None:
    with pytest.raises(ArgumentError, match="user_id"):
        larimar.remember("A fact.", user_id="alice", metadata={"user_id": "bob"})
    larimar.remember("A fact.", user_id="alice", metadata={"user_id": "alice"})  # agrees
    assert [f.metadata for f in larimar.list()] == [{"user_id": "alice"}]
    assert scoped_metadata(None, {}) is None
    assert scoped_metadata([{"a": 1}, {}], {"run_id": "r"}) == [{"a": 1, "run_id": "r"},
                                                               {"run_id": "r"}]


def test_scoped_memory_binds_a_scope(larimar) -> None:
    alice = ScopedMemory(larimar, user_id="alice")
    alice.remember("I play the cello.")
    larimar.remember("I play the drums.", user_id="bob")
    assert [f.text for f in alice.list()] == ["I play the cello."]
    assert [h.fact.text for h in alice.recall("What do I play?", k=3).hits] == [
        "I play the cello."]
    assert alice.namespace == larimar.namespace
    with pytest.raises(ArgumentError, match="scoped to user_id"):
        alice.list(user_id="bob")
    with pytest.raises(ArgumentError, match="at least one"):
        ScopedMemory(larimar)
    assert alice.clear() == 1
    assert [f.text for f in larimar.list()] == ["I play the drums."]


async def test_scoped_memory_async_verbs(larimar) -> None:
    alice = ScopedMemory(larimar, user_id="alice")
    await alice.aremember("I like tea.")
    assert [f.text for f in await alice.alist()] == ["I like tea."]
    assert await larimar.alist(user_id="bob") == []


def test_check_scope_names_unknown_fields() -> None:
    from larimar_memory.scoping import scope_of

    assert check_scope() == {}
    assert check_scope(run_id="r1") == {"run_id": "r1"}
    with pytest.raises(ArgumentError, match="usr_id"):
        scope_of({"usr_id": "a"})


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(owners=st.lists(st.sampled_from(["ann", "ben", None]), min_size=1, max_size=8),
       who=st.sampled_from(["ann", "ben"]))
def test_a_scoped_list_is_the_filtered_list(larimar, owners, who) -> None:
    """Property: list/recall in a scope == the unscoped result restricted to that scope."""
    larimar.clear()
    for i, owner in enumerate(owners):
        larimar.remember(f"Fact number {i} is here.", user_id=owner)
    scoped = [f.id for f in larimar.list(user_id=who)]
    assert scoped == [f.id for f in larimar.list() if f.metadata.get("user_id") == who]
    hits = larimar.recall("Fact number", k=8, user_id=who, decode=False).hits
    assert sorted(h.fact.id for h in hits) == sorted(scoped)
