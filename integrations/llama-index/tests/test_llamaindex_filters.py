"""LlamaIndex `MetadataFilters` map onto the core's filter language and run in the memory."""

from __future__ import annotations

import pytest
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.memory.larimar import LarimarQueryEngine
from llama_index.memory.larimar._filters import larimar_filter

from larimar_memory.errors import ArgumentError


def f(key: str, value: object, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


def test_mapping() -> None:
    assert larimar_filter(None) is None
    assert larimar_filter(MetadataFilters(filters=[])) is None
    assert larimar_filter(MetadataFilters(filters=[f("kind", "todo")])) == {
        "kind": {"$eq": "todo"}}
    both = MetadataFilters(filters=[f("n", 2, FilterOperator.GTE), f("k", ["a", "b"],
                                                                       FilterOperator.NIN)])
    assert larimar_filter(both) == {"$and": [{"n": {"$gte": 2}}, {"k": {"$nin": ["a", "b"]}}]}
    nested = MetadataFilters(condition=FilterCondition.OR, filters=[
        f("n", 1, FilterOperator.LT),
        MetadataFilters(condition=FilterCondition.NOT, filters=[f("k", "x"), f("k", "y")]),
    ])
    assert larimar_filter(nested) == {"$or": [
        {"n": {"$lt": 1}}, {"$not": {"$or": [{"k": {"$eq": "x"}}, {"k": {"$eq": "y"}}]}}]}


def test_operators_without_an_equivalent_are_refused() -> None:
    with pytest.raises(ArgumentError, match="no Larimar equivalent"):
        larimar_filter(MetadataFilters(filters=[f("t", "a", FilterOperator.CONTAINS)]))


def test_filters_run_in_the_memory(larimar) -> None:
    larimar.remember(["Alice's favourite colour is green.", "Alice's favourite food is pasta."],
                     metadata=[{"n": 1}, {"n": 2}])
    engine = LarimarQueryEngine(larimar, k=2, context_source="stored", filters=MetadataFilters(
        filters=[f("n", 1, FilterOperator.GT)]))
    nodes = engine.query("What is Alice's favourite food?").source_nodes
    assert [n.node.text for n in nodes] == ["Alice's favourite food is pasta."]
