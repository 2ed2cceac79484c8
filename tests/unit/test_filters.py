"""The metadata filter language (`larimar_memory.filters`): what matches, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from larimar_memory.errors import ArgumentError
from larimar_memory.filters import check_filter, equalities, matches

FACTS: dict[str, dict[str, Any]] = {
    "a": {"speaker": "Ann", "n": 1, "ok": True, "note": None, "tags": ["x", "y"],
          "doc": {"lang": "en", "page": 3}},
    "b": {"speaker": "Ben", "n": 2.5, "ok": False, "doc": {"lang": "pt", "page": 10}},
    "c": {"speaker": "Cy", "n": "3", "ok": 1},
    "d": {},
}


def passing(filter: dict[str, Any]) -> list[str]:
    check_filter(filter)
    return [name for name, meta in FACTS.items() if matches(meta, filter)]


@pytest.mark.parametrize(("filter", "expected"), [
    ({}, ["a", "b", "c", "d"]),
    ({"speaker": "Ann"}, ["a"]),
    ({"n": 1.0}, ["a"]),  # numbers by value
    ({"ok": True}, ["a"]),  # true is not 1
    ({"ok": 1}, ["c"]),
    ({"note": None}, ["a"]),  # null, not missing
    ({"tags": ["x", "y"]}, ["a"]),  # whole JSON values
    ({"tags": ["y", "x"]}, []),
    ({"n": {"$eq": 2.5}}, ["b"]),
    ({"speaker": {"$ne": "Ann"}}, ["b", "c", "d"]),  # a missing field is "not Ann"
    ({"n": {"$gt": 1}}, ["b"]),  # "3" is a string: not ordered against a number
    ({"n": {"$gte": 1, "$lt": 2.5}}, ["a"]),
    ({"n": {"$lte": 2.5}}, ["a", "b"]),
    ({"speaker": {"$gt": "Ann"}}, ["b", "c"]),  # strings order with strings
    ({"ok": {"$gt": 0}}, ["c"]),  # booleans are not numbers
    ({"speaker": {"$in": ["Ann", "Cy"]}}, ["a", "c"]),
    ({"ok": {"$in": [1]}}, ["c"]),
    ({"speaker": {"$nin": ["Ann", "Cy"]}}, ["b", "d"]),
    ({"doc": {"lang": "en"}}, ["a"]),  # nested objects, field by field
    ({"doc": {"page": {"$gte": 5}}}, ["b"]),
    ({"doc": {"$eq": {"lang": "en", "page": 3}}}, ["a"]),
    ({"doc": {"$eq": {"lang": "en"}}}, []),  # $eq compares the whole object
    ({"$or": [{"speaker": "Ann"}, {"n": {"$gt": 2}}]}, ["a", "b"]),
    ({"$and": [{"ok": {"$ne": False}}, {"speaker": {"$in": ["Ann", "Ben", "Cy"]}}]}, ["a", "c"]),
    ({"$not": {"speaker": "Ann"}}, ["b", "c", "d"]),
    ({"n": {"$not": {"$gt": 1}}}, ["a", "c", "d"]),
    ({"speaker": "Ann", "n": {"$gt": 5}}, []),  # every field must match
])
def test_what_passes(filter: dict[str, Any], expected: list[str]) -> None:
    assert passing(filter) == expected


@pytest.mark.parametrize(("bad", "says"), [
    ([("speaker", "Ann")], "must be an object"),
    ({1: "x"}, "must be an object"),
    ({"n": {"$gt": [1]}}, "number or a string"),
    ({"n": {"$gt": True}}, "number or a string"),
    ({"n": {"$in": "Ann"}}, "list of values"),
    ({"n": {"$regex": "A"}}, "unknown operator"),
    ({"$gt": 1}, "compare a field instead"),
    ({"$xor": []}, "unknown operator"),
    ({"$or": []}, "non-empty list"),
    ({"$and": {"a": 1}}, "non-empty list"),
    ({"doc": {"$eq": 1, "lang": "en"}}, "mixes operators and fields"),
    ({"n": float("nan")}, "NaN"),
    ({"n": {"$in": [float("inf")]}}, "NaN"),
    ({"n": object()}, "JSON value"),
])
def test_malformed_filters_are_refused(bad: Any, says: str) -> None:
    with pytest.raises(ArgumentError, match=says):
        check_filter(bad)


def test_depth_is_bounded() -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(40):
        deep = {"$not": deep}
    with pytest.raises(ArgumentError, match="deeper than"):
        check_filter(deep)


def test_equalities_are_what_sql_can_push_down() -> None:
    assert equalities({"speaker": "Ann", "ok": True, "note": None}) is not None
    assert equalities({"n": {"$gt": 1}}) is None
    assert equalities({"doc": {"lang": "en"}}) is None
    assert equalities({"tags": ["x"]}) is None
    assert equalities({"$or": [{"a": 1}]}) is None


def test_recall_and_list_share_the_filter(tmp_path) -> None:
    from larimar_memory.testing import tiny_larimar

    with tiny_larimar(tmp_path / "s.sqlite3") as memory:
        memory.remember(["I like tea.", "I like coffee.", "I like water."],
                        metadata=[{"n": 1, "who": {"name": "Ann"}}, {"n": 2}, {"n": 3}])
        wanted = {"n": {"$gte": 2}, "$not": {"n": 3}}
        assert [f.text for f in memory.list(filter=wanted)] == ["I like coffee."]
        assert [h.fact.text for h in memory.recall("like", k=3, filter=wanted).hits] == [
            "I like coffee."]
        assert [f.text for f in memory.list(filter={"who": {"name": "Ann"}})] == ["I like tea."]
        with pytest.raises(ArgumentError, match="unknown operator"):
            memory.recall("tea", filter={"n": {"$like": 1}})
