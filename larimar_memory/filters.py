"""Metadata filters: one language and one evaluator for every path that filters facts.

`Larimar.recall` / `ask` / `list`, the store's `list_facts`, the server, both clients, the MCP
tools and the integrations (LangGraph's store, LlamaIndex's filters) all pass filters through
`check_filter` and `matches`; nothing else evaluates one. A filter is a JSON object:

* ``{"speaker": "Ann"}``: equality. JSON types must agree (``true`` is not ``1``), numbers
  compare by value (``1 == 1.0``), a missing field is not ``null``; lists and objects compare
  as whole JSON values.
* ``{"n": {"$gte": 2, "$lt": 5}}``: operators ``$eq $ne $gt $gte $lt $lte $in $nin``. Ordering
  compares numbers with numbers and strings with strings (other pairs do not match). A missing
  field matches only ``$ne`` and ``$nin``, as in MongoDB and mem0.
* ``{"doc": {"lang": "en"}}``: an object without ``$`` keys filters the fields of a nested
  object (LangGraph's nested filters); its own fields nest the same way.
* ``{"$and": [f, ...]}``, ``{"$or": [f, ...]}``, ``{"$not": f}``: combinations, at any level.

Several fields (or operators) in one object must all match. Top-level equality on scalars is
what a SQL store can push down (`equalities`); anything richer is evaluated by `matches`.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ArgumentError

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
COMBINATIONS = ("$and", "$or", "$not")
MAX_DEPTH = 16
"""Deepest nesting of a filter (objects, operators and combinations), so no filter can recurse
without bound."""

_MISSING = object()
_ALLOWED = ", ".join(COMPARISONS + COMBINATIONS)


def check_filter(filter: Any) -> dict[str, Any]:
    """A filter checked against the language above (None: no filter, ``{}``). Raises
    `ArgumentError` naming where the filter is malformed and what it may hold there."""
    if filter is None:
        return {}
    _check_object(filter, "filter", 0)
    return filter


def matches(metadata: dict[str, Any], filter: dict[str, Any]) -> bool:
    """Whether a fact's metadata passes a checked filter."""
    return _object_matches(metadata, filter)


def equalities(filter: dict[str, Any]) -> dict[str, Any] | None:
    """The filter as top-level field -> scalar equalities when that is all it says (what a SQL
    store filters itself), else None."""
    if all(not f.startswith("$") and _scalar(v) for f, v in filter.items()):
        return filter
    return None


# -- checking ----------------------------------------------------------------------------------


def _check_object(value: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ArgumentError(f"{where} nests deeper than {MAX_DEPTH} levels; flatten the filter")
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ArgumentError(
            f"{where} must be an object of metadata field -> value (or operators: {_ALLOWED}), "
            f"got {value!r:.80}"
        )
    for key, arg in value.items():
        at = f"{where}[{key!r}]"
        if key in ("$and", "$or"):
            if not isinstance(arg, list) or not arg:
                raise ArgumentError(f"{at} must be a non-empty list of filters, got {arg!r:.80}")
            for i, item in enumerate(arg):
                _check_object(item, f"{at}[{i}]", depth + 1)
        elif key == "$not":
            _check_object(arg, at, depth + 1)
        elif key.startswith("$"):
            raise ArgumentError(
                f"{where} has the operator {key!r} where a field or {COMBINATIONS} belongs; "
                f"compare a field instead: {{'field': {{{key!r}: ...}}}}"
                if key in COMPARISONS else f"{at}: unknown operator; use one of {_ALLOWED}"
            )
        else:
            _check_condition(arg, at, depth + 1)


def _check_condition(arg: Any, where: str, depth: int) -> None:
    """What a field is compared with: a JSON value, an object of operators, or a nested filter."""
    if isinstance(arg, dict) and any(str(k).startswith("$") for k in arg):
        if not all(str(k).startswith("$") for k in arg):
            raise ArgumentError(
                f"{where} mixes operators and fields ({sorted(arg)}); nest the fields in their "
                "own object or use $and"
            )
        for op, operand in arg.items():
            _check_operator(op, operand, f"{where}[{op!r}]", depth)
    elif isinstance(arg, dict):
        _check_object(arg, where, depth)
    else:
        _check_json(arg, where, depth)


def _check_operator(op: str, operand: Any, where: str, depth: int) -> None:
    if op in ("$eq", "$ne"):
        _check_json(operand, where, depth)
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        if not (_number(operand) or isinstance(operand, str)):
            raise ArgumentError(f"{where} must be a number or a string, got {operand!r:.80}")
        _check_json(operand, where, depth)
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise ArgumentError(f"{where} must be a list of values, got {operand!r:.80}")
        _check_json(operand, where, depth)
    elif op == "$not":
        _check_condition(operand, where, depth + 1)
    else:
        raise ArgumentError(f"{where}: unknown operator; use one of {_ALLOWED}")


def _check_json(value: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ArgumentError(f"{where} nests deeper than {MAX_DEPTH} levels; flatten the filter")
    if isinstance(value, float) and not math.isfinite(value):
        raise ArgumentError(f"{where} is {value}; JSON has no NaN or Infinity")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArgumentError(f"{where} has a non-string key {key!r}")
            _check_json(item, f"{where}[{key!r}]", depth + 1)
    elif not _scalar(value):
        raise ArgumentError(
            f"{where} must be a JSON value (str, number, bool, None, list, object), got "
            f"{type(value).__name__}"
        )


# -- evaluating --------------------------------------------------------------------------------


def _object_matches(value: Any, filter: dict[str, Any]) -> bool:
    for key, arg in filter.items():
        if key == "$and":
            ok = all(_object_matches(value, f) for f in arg)
        elif key == "$or":
            ok = any(_object_matches(value, f) for f in arg)
        elif key == "$not":
            ok = not _object_matches(value, arg)
        else:
            found = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
            ok = _condition_matches(found, arg)
        if not ok:
            return False
    return True


def _condition_matches(found: Any, arg: Any) -> bool:
    if isinstance(arg, dict) and arg and all(k.startswith("$") for k in arg):
        return all(_operator_matches(found, op, operand) for op, operand in arg.items())
    if isinstance(arg, dict):
        return isinstance(found, dict) and _object_matches(found, arg)
    return _json_equal(found, arg)


def _operator_matches(found: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return _json_equal(found, operand)
    if op == "$ne":
        return not _json_equal(found, operand)
    if op == "$in":
        return any(_json_equal(found, item) for item in operand)
    if op == "$nin":
        return not any(_json_equal(found, item) for item in operand)
    if op == "$not":
        return not _condition_matches(found, operand)
    comparable = (_number(found) and _number(operand)) or (
        isinstance(found, str) and isinstance(operand, str))
    if not comparable:
        return False
    if op == "$gt":
        return bool(found > operand)
    if op == "$gte":
        return bool(found >= operand)
    if op == "$lt":
        return bool(found < operand)
    return bool(found <= operand)  # $lte


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, but booleans, null and strings only with their own kind."""
    if a is _MISSING or b is _MISSING:
        return False
    if _number(a) and _number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))
