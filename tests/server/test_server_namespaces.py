"""Namespaces over HTTP follow the core's rule (larimar_memory.names): every name an
integration derives works remotely as in process, and lists of namespaces round-trip exactly."""

from __future__ import annotations

import httpx
import pytest
from server_testing import KEY_A, KEY_B

from larimar_memory.errors import FactNotFoundError, NamespaceError
from larimar_memory.names import MAX_NAMESPACE_CHARS
from larimar_memory.server import LarimarClient
from larimar_memory.server.client import RetryPolicy

FAST = RetryPolicy(retries=1, base_delay=0.01, max_delay=0.02)
NAMES = ["user:alice", "thread:t1", "langgraph/memories/alice", "langgraph/memories/a%2Fb",
         "langgraph/100%25/x", "user:Zoë Brown", "user:alice@example.com", "semi;colon?#"]


def test_integration_namespaces_round_trip(served) -> None:
    with LarimarClient(served.url, KEY_A, retry=FAST) as memory:
        for name in NAMES:
            ids = memory.remember(f"Fact of {name}.", namespace=name, ids=["item/key 1"]).ids
            assert ids == ["item/key 1"]
            fact = memory.get("item/key 1", namespace=name)  # an id with '/' travels too
            assert (fact.namespace, fact.text) == (name, f"Fact of {name}.")
            assert [f.text for f in memory.list(namespace=name)] == [f"Fact of {name}."]
            hit = memory.recall(f"Fact of {name}.", namespace=name, decode=False).hits[0]
            assert hit.fact.namespace == name
        assert memory.namespaces() == sorted(NAMES)
        memory.forget("item/key 1", namespace=NAMES[2])
        with pytest.raises(FactNotFoundError):
            memory.get("item/key 1", namespace=NAMES[2])
    # the core holds them under the tenant, exactly
    assert sorted(n for n in served.memory.namespaces()) == sorted(f"acme/{n}" for n in NAMES)
    with LarimarClient(served.url, KEY_B, retry=FAST) as other:  # another tenant sees none
        assert other.namespaces() == []
        assert other.list(namespace="acme/user:alice") == []  # its own "acme/..." namespace


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a//b", "x\x00y", "line\nbreak", " "])
def test_bad_names_get_the_same_error_remotely(served, bad: str) -> None:
    with LarimarClient(served.url, KEY_A, retry=FAST) as memory:
        with pytest.raises(NamespaceError, match="Rule"):  # refused before sending
            memory.remember("Alice lives in Lisbon.", namespace=bad)
    # and by the server itself, when a caller sends it anyway
    quoted = httpx.URL(f"{served.url}/v1/namespaces/x/facts").copy_with(
        raw_path=b"/v1/namespaces/" + _quote(bad).encode() + b"/facts")
    r = httpx.get(quoted, headers={"Authorization": f"Bearer {KEY_A}"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "NamespaceError" and "Rule" in r.json()["error"]["message"]


def test_the_tenant_prefix_takes_part_of_the_length_budget(served) -> None:
    budget = MAX_NAMESPACE_CHARS - len("acme/")
    with LarimarClient(served.url, KEY_A, retry=FAST) as memory:
        memory.remember("Alice lives in Lisbon.", namespace="n" * budget)
        with pytest.raises(NamespaceError, match=f"at most {budget}"):
            memory.remember("Alice lives in Lisbon.", namespace="n" * (budget + 1))


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
