"""The one namespace rule (larimar_memory.names), as the core applies it."""

from __future__ import annotations

import pytest

from larimar_memory.errors import NamespaceError, TextInputError
from larimar_memory.names import MAX_NAMESPACE_CHARS, NAMESPACE_RULE, check_namespace

# what the integrations derive: LangChain's user/thread rule, LangGraph tuples joined by
# LarimarStore (labels percent-escaped), LlamaIndex session ids, plus plain names
INTEGRATION_NAMES = [
    "default", "user:alice", "thread:t1", "user:alice@example.com", "user:Zoë Brown",
    "thread:3f2c8a1e-9b7d-4c55-a0e1-2d3b4c5d6e7f", "langgraph/memories/alice",
    "langgraph/memories/a%2Fb", "langgraph/100%25/x", "session:42", "-lead", "semi;colon",
    "a" * MAX_NAMESPACE_CHARS,
]
REFUSED = [
    ("", "is empty"), (" ", "whitespace only"), ("../x", "'..'"), ("./x", "'.'"),
    ("/etc/passwd", "empty segment"), ("a//b", "empty segment"), ("x/", "empty segment"),
    ("a\x00b", "control character"), ("a\nb", "control character"), ("a\tb", "control"),
    ("bad\ud800name", "surrogate"), ("a" * (MAX_NAMESPACE_CHARS + 1), "at most"),
]


@pytest.mark.parametrize("name", INTEGRATION_NAMES)
def test_integration_names_pass_unchanged(name: str) -> None:
    assert check_namespace(name) == name


@pytest.mark.parametrize("name, why", REFUSED)
def test_refused_names_say_which_part_broke_the_rule(name: str, why: str) -> None:
    with pytest.raises(NamespaceError, match=why) as info:
        check_namespace(name)
    assert NAMESPACE_RULE in str(info.value)
    assert isinstance(info.value, TextInputError)  # what callers caught before


def test_not_a_string() -> None:
    with pytest.raises(NamespaceError, match="must be a string"):
        check_namespace(("memories", "alice"))


def test_the_core_uses_the_rule_and_round_trips_names(larimar) -> None:
    for name in INTEGRATION_NAMES[:8]:
        larimar.remember(f"A fact kept in {name}.", namespace=name)
    assert larimar.namespaces() == sorted(INTEGRATION_NAMES[:8])
    for name, why in REFUSED:
        with pytest.raises(NamespaceError, match=why):
            larimar.remember("Alice lives in Lisbon.", namespace=name)
        with pytest.raises(NamespaceError):
            larimar.list(namespace=name)
    assert sorted(larimar.namespaces()) == sorted(INTEGRATION_NAMES[:8])


def test_settings_refuse_a_bad_default_namespace() -> None:
    from pydantic import ValidationError

    from larimar_memory.service import LarimarSettings

    assert LarimarSettings(namespace="user:alice").namespace == "user:alice"
    with pytest.raises(ValidationError, match="segment"):
        LarimarSettings(namespace="../x")
