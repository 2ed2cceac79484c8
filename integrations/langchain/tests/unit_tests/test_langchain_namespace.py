"""The namespace rule shared by every component."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from langchain_larimar._namespace import resolve_namespace


@dataclass
class Context:
    user_id: str


def test_precedence() -> None:
    both = {"configurable": {"user_id": "bob", "thread_id": "t1"}}
    assert resolve_namespace("fixed", both, runtime=SimpleNamespace(context=Context("al"))) == (
        "fixed"
    )
    assert resolve_namespace(None, both, runtime=SimpleNamespace(context=Context("al"))) == (
        "user:al"
    )
    assert resolve_namespace(None, both, runtime=SimpleNamespace(context={"user_id": "al"})) == (
        "user:al"
    )
    assert resolve_namespace(None, both) == "user:bob"
    assert resolve_namespace(None, {"configurable": {"thread_id": "t1"}}) == "thread:t1"
    runtime = SimpleNamespace(context=None, execution_info=SimpleNamespace(thread_id="t2"))
    assert resolve_namespace(None, {}, runtime=runtime) == "thread:t2"
    assert resolve_namespace(None, None) is None
    assert resolve_namespace(None, {"configurable": {"user_id": ""}}) is None


def test_runtime_found_in_config() -> None:
    config = {"configurable": {"__pregel_runtime": SimpleNamespace(context=Context("cy"))}}
    assert resolve_namespace(None, config) == "user:cy"
