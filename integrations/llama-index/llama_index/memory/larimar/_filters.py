"""LlamaIndex `MetadataFilters` as a Larimar filter (`larimar_memory.filters`), so a component's
``filters`` run in the memory itself, in process and over HTTP alike."""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from larimar_memory.errors import ArgumentError

_OPERATORS = {
    FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte", FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in", FilterOperator.NIN: "$nin",
}


def larimar_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """``filters`` in Larimar's filter language (None: no filter). AND, OR and NOT (none of
    them matches, as LlamaIndex's own stores read it) nest; operators Larimar has no twin for
    (``any``, ``all``, ``contains``, ``text_match``, ``is_empty``) raise `ArgumentError`."""
    if filters is None or not filters.filters:
        return None
    parts = [_part(f) for f in filters.filters]
    if filters.condition == FilterCondition.OR:
        return {"$or": parts}
    if filters.condition == FilterCondition.NOT:
        return {"$not": {"$or": parts}}
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _part(item: MetadataFilter | MetadataFilters) -> dict[str, Any]:
    if isinstance(item, MetadataFilters):
        return larimar_filter(item) or {}
    op = _OPERATORS.get(FilterOperator(item.operator))
    if op is None:
        raise ArgumentError(
            f"filter operator {item.operator!r} on {item.key!r} has no Larimar equivalent; use "
            f"one of {', '.join(o.value for o in _OPERATORS)} (or filter the results yourself)"
        )
    value = list(item.value) if isinstance(item.value, (list, tuple)) else item.value
    return {item.key: {op: value}}
