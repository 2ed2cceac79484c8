"""The input contract in process: what issue 29 found, each now a documented library error
(the same inputs over HTTP: tests/server/test_contract_fuzz.py)."""

from __future__ import annotations

import pytest

from larimar_memory import contract
from larimar_memory.errors import ArgumentError, NamespaceError, TextInputError


@pytest.mark.parametrize("kwargs", [
    {"limit": "5"}, {"limit": True}, {"limit": 5.0}, {"limit": -1}, {"limit": 10**30},
    {"limit": contract.MAX_LIST_LIMIT + 1}, {"offset": None}, {"offset": "0"},
    {"offset": 2**63}, {"offset": -(10**30)}, {"filter": {"x": float("nan")}},
    {"filter": {"x": 10**30}}, {"filter": {1: "a"}}, {"filter": [("a", 1)]},
])
def test_list_refuses_wrong_types_and_out_of_range(larimar, kwargs):
    with pytest.raises(ArgumentError):
        larimar.list(**kwargs)


def test_list_takes_its_bounds(larimar):
    larimar.remember("Alice lives in Lisbon.")
    assert len(larimar.list(limit=contract.MAX_LIST_LIMIT, offset=0)) == 1
    assert larimar.list(offset=contract.MAX_OFFSET) == []
    assert len(larimar.list(filter={"x": 2**63 - 1}, limit=None)) == 0


@pytest.mark.parametrize("k", ["5", True, 5.0, 0, contract.MAX_K + 1, None])
def test_k_is_a_bounded_int(larimar, k):
    with pytest.raises(ArgumentError):
        larimar.recall("Alice?", k=k)


@pytest.mark.parametrize("kwargs", [
    {"decode": "yes"}, {"decode": 1},
])
def test_recall_flags_are_bools(larimar, kwargs):
    with pytest.raises(ArgumentError):
        larimar.recall("Alice?", **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"threshold": "0.5"}, {"threshold": 1.5}, {"margin": float("nan")}, {"margin": True},
])
def test_forget_matching_fractions(larimar, kwargs):
    with pytest.raises(ArgumentError):
        larimar.forget_matching("where Alice lives", **kwargs)


def test_bytes_are_not_text_and_none_is_not_an_id(larimar):
    for text in (b"bytes", [b"a"], 123):
        with pytest.raises(TextInputError):
            larimar.remember(text)
    with pytest.raises(TextInputError):
        larimar.get(None)
    assert larimar.list() == []


def test_no_nul_on_any_store(larimar):
    for kwargs in ({"text": "a\x00b"}, {"text": "a", "key": "k\x00"},
                   {"text": "a", "metadata": {"x": "\x00"}}, {"text": "a", "ids": "i\x00"},
                   {"text": "a", "request_id": "r\x00"},
                   {"text": "a", "extra_keys": ["e\x00"]}):
        with pytest.raises(TextInputError, match="NUL"):
            larimar.remember(**kwargs)
    with pytest.raises(NamespaceError):
        larimar.remember("a", namespace="n\x00")
    assert larimar.namespaces() == []


def test_the_namespace_is_checked_first(larimar):
    with pytest.raises(NamespaceError):
        larimar.recall(b"bad query", k="bad", namespace="../x")
    with pytest.raises(TextInputError):  # then the arguments in order
        larimar.recall(b"bad query", k="bad")
