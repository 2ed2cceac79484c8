"""The whole `MemoryBackend` contract over HTTP: remember with keys, metadata, ids and request
ids (per-input outcomes); recall with k, decode and filter (hits); ask with k and filter; list
with filter, limit and offset; get; limits. HTTP hygiene (415, invalid Unicode, NaN, request id
conflicts), Prometheus metrics, and `conversation.observe` through a `LarimarClient`.

The routing tests stub the core methods, so they check what the server forwards and how it maps
results."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from server_testing import KEY_A

from larimar_memory import errors
from larimar_memory.conversation import observe
from larimar_memory.server import LarimarClient
from larimar_memory.server.client import RetryPolicy
from larimar_memory.types import (
    AskResult,
    Fact,
    MemoryLimits,
    RecallHit,
    RecallResult,
    RememberResult,
    ScopeInfo,
    WriteOutcome,
)

A = {"Authorization": f"Bearer {KEY_A}"}
NS = "/v1/namespaces/notes"
FAST = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.05)


class Via(httpx.BaseTransport):
    """A LarimarClient transport that goes through a TestClient (in process, no sockets)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.client._transport.handle_request(request)
        return httpx.Response(response.status_code, headers=response.headers,
                              content=response.read())


def local(client: TestClient, namespace: str = "notes") -> LarimarClient:
    return LarimarClient("http://testserver", KEY_A, namespace=namespace, retry=FAST,
                         transport=Via(client))


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def _fact(fact_id: str, namespace: str = "acme/notes", **metadata: Any) -> Fact:
    return Fact(id=fact_id, namespace=namespace, text=f"text {fact_id}", key=f"key {fact_id}",
                rows=[0], created_at=1.0, metadata=metadata)


class Recorder:
    """Stands in for core methods: records each call's arguments, returns a canned result."""

    def __init__(self, result: Any = None, raises: BaseException | None = None) -> None:
        self.result, self.raises, self.calls = result, raises, []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        if self.raises is not None:
            raise self.raises
        return self.result


def canned_recall(memory: Any, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    stub = Recorder(RecallResult(query="q", scope=ScopeInfo(score=0, in_scope=False,
                                                            threshold=0.5)))
    monkeypatch.setattr(memory, "recall", stub)
    return stub


# -- what the server forwards, and how it maps results ------------------------------------------

def test_remember_forwards_keys_metadata_ids_and_maps_outcomes(client, memory, monkeypatch):
    old = _fact("f0")
    result = RememberResult(ids=["f0", "f1"], outcomes=[
        WriteOutcome(id="f0", status="replaced", replaced=old),
        WriteOutcome(id="f1", status="written"),
    ])
    stub = Recorder(result)
    monkeypatch.setattr(memory, "remember", stub)
    body = {"text": ["a b c", "d e f"], "key": ["ka", "kd"], "ids": ["f0", "f1"],
            "metadata": [{"speaker": "Ana"}, {"speaker": "Bo", "n": 2.5}], "request_id": "r1",
            "extra_keys": [["why a"], []]}
    r = client.post(NS + "/facts", json=body, headers=A)
    assert r.status_code == 201, r.text
    (args, kwargs), = stub.calls
    assert args == (["a b c", "d e f"],)
    assert kwargs == {"key": ["ka", "kd"], "namespace": "acme/notes", "ids": ["f0", "f1"],
                      "metadata": body["metadata"], "request_id": "r1",
                      "extra_keys": [["why a"], []]}
    out = r.json()
    assert [o["status"] for o in out["outcomes"]] == ["replaced", "written"]
    assert out["outcomes"][0]["replaced"]["namespace"] == "notes"  # no tenant prefix
    assert out["replaced"][0]["id"] == "f0" and out["replaced"][0]["namespace"] == "notes"

    client.post(NS + "/facts", json={"text": "x y z", "ids": "one"},
                headers={**A, "Idempotency-Key": "hdr"})
    assert stub.calls[-1][1]["ids"] == "one" and stub.calls[-1][1]["request_id"] == "hdr"


def test_recall_ask_list_forward_k_filter_and_map_hits(client, memory, monkeypatch):
    scope = ScopeInfo(score=0.9, in_scope=True, threshold=0.5)
    hits = [RecallHit(fact=_fact("f1", speaker="Ana"), score=0.9, text="t1"),
            RecallHit(fact=_fact("f2", speaker="Ana"), score=0.5, text="t2")]
    recall = Recorder(RecallResult(query="q", text="t1", scope=scope, fact=hits[0].fact,
                                   weight=0.9, hits=hits))
    ask = Recorder(AskResult(question="q", answer="a", route="memory", scope=scope,
                             fact=hits[0].fact, facts=[h.fact for h in hits]))
    listing = Recorder([_fact("f2")])
    monkeypatch.setattr(memory, "recall", recall)
    monkeypatch.setattr(memory, "ask", ask)
    monkeypatch.setattr(memory, "list", listing)

    r = client.post(NS + "/recall", json={"query": "q", "k": 2, "decode": False,
                                          "filter": {"speaker": "Ana"}}, headers=A)
    assert r.status_code == 200, r.text
    assert recall.calls[-1] == (("q",), {"k": 2, "namespace": "acme/notes", "decode": False,
                                         "filter": {"speaker": "Ana"}})
    out = RecallResult.model_validate(r.json())
    assert [h.fact.id for h in out.hits] == ["f1", "f2"]
    assert {h.fact.namespace for h in out.hits} == {"notes"} and out.fact.namespace == "notes"
    assert client.post(NS + "/recall", json={"query": "q"}, headers=A).status_code == 200
    assert recall.calls[-1][1]["k"] == 1 and recall.calls[-1][1]["filter"] is None
    for bad in (0, -1, 10**6, "two", "5", True, 2.0):
        r = client.post(NS + "/recall", json={"query": "q", "k": bad}, headers=A)
        assert r.status_code == 422 and error_of(r)["type"] == "ArgumentError", bad
    with local(client) as c:  # the client raises what the local Larimar raises for k=0
        with pytest.raises(errors.ArgumentError):
            c.recall("q", k=0)
        with pytest.raises(errors.ArgumentError):  # more texts than one request carries
            c.remember(["a b c"] * 300)

    r = client.post(NS + "/ask", json={"question": "q", "k": 3, "filter": {"speaker": "Ana"},
                                       "max_new_tokens": 4}, headers=A)
    assert r.status_code == 200, r.text
    assert ask.calls[-1] == (("q",), {"k": 3, "namespace": "acme/notes", "max_new_tokens": 4,
                                      "filter": {"speaker": "Ana"}})
    out_ask = AskResult.model_validate(r.json())
    assert out_ask.fact.namespace == "notes" and {f.namespace for f in out_ask.facts} == {"notes"}

    r = client.get(NS + "/facts", params={"filter": '{"speaker":"Ana"}', "limit": 5,
                                          "offset": 1}, headers=A)
    assert r.status_code == 200, r.text
    assert listing.calls[-1] == ((), {"namespace": "acme/notes", "filter": {"speaker": "Ana"},
                                      "limit": 5, "offset": 1})
    assert r.json()["facts"][0]["namespace"] == "notes"
    for bad, type_ in (("not json", "ArgumentError"), ("[1, 2]", "ArgumentError"),
                       ('{"x": NaN}', "ArgumentError"), ('{"x": "\\ud800"}', "TextInputError")):
        r = client.get(NS + "/facts", params={"filter": bad}, headers=A)
        assert r.status_code == 422 and error_of(r)["type"] == type_, bad
        assert "filter" in error_of(r)["message"]


def test_limits_endpoint(client, memory, monkeypatch):
    limits = MemoryLimits(max_fact_tokens=512, max_text_chars=4000, max_key_chars=1000)
    monkeypatch.setattr(memory, "limits", Recorder(limits), raising=False)
    r = client.get("/v1/limits", headers=A)
    assert r.status_code == 200 and MemoryLimits.model_validate(r.json()) == limits
    assert client.get("/v1/limits").status_code == 401
    assert "/v1/limits" in client.get("/openapi.json").json()["paths"]


# -- HTTP hygiene -----------------------------------------------------------------------------

def test_a_body_that_is_not_json_is_415(client, memory, monkeypatch):
    canned_recall(memory, monkeypatch)
    for path, ctype in ((NS + "/facts", "text/plain"), (NS + "/recall", "text/plain"),
                        (NS + "/ask", "application/x-www-form-urlencoded"),
                        (NS + "/forget", "multipart/form-data; boundary=x")):
        r = client.post(path, content=b'{"text": "a b c"}', headers={**A, "Content-Type": ctype})
        assert r.status_code == 415, (path, r.text)
        err = error_of(r)
        assert err["type"] == "UnsupportedMediaType" and "application/json" in err["message"]
    r = client.post(NS + "/recall", content=b'{"query": "q"}',
                    headers={**A, "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text
    r = client.post(NS + "/recall", content=b'{"query": "q"}',
                    headers={**A, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text


def test_invalid_unicode_is_a_4xx_never_a_500(client):
    for raw in ("%ED%A0%80", "%ED%BF%BF", "a%ED%A0%80b", "%F0%90", "%C3"):
        r = client.get(f"/v1/namespaces/{raw}/facts", headers=A)
        assert r.status_code in (400, 422), (raw, r.text)
        assert error_of(r)["type"] == "NamespaceError"
    lone = b'"\\ud800"'
    bodies = [
        (NS + "/facts", b'{"text": "a b c", "metadata": {"k": ' + lone + b"}}"),
        (NS + "/facts", b'{"text": "a b c", "metadata": {' + lone + b': 1}}'),
        (NS + "/facts", b'{"text": "a b c", "request_id": ' + lone + b"}"),
        (NS + "/facts", b'{"text": ' + lone + b"}"),
        (NS + "/facts", b'{"text": "a b c", "ids": [' + lone + b"]}"),
        (NS + "/recall", b'{"query": "q", "filter": {"k": ' + lone + b"}}"),
        (NS + "/recall", b'{"query": ' + lone + b"}"),
        (NS + "/forget", b'{"fact": ' + lone + b"}"),
    ]
    for path, body in bodies:
        r = client.post(path, content=body, headers={**A, "Content-Type": "application/json"})
        assert r.status_code in (400, 422), (body, r.text)
        assert "surrogate" in error_of(r)["message"], r.text
    with local(client, "ok") as c, pytest.raises(errors.TextInputError):
        c.list(namespace="\ud800")


def test_non_finite_metadata_is_refused_not_nulled(client, memory):
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"text": "a b c", "metadata": {"score": ' + literal + b"}}"
        r = client.post(NS + "/facts", content=body,
                        headers={**A, "Content-Type": "application/json"})
        assert r.status_code == 422 and error_of(r)["type"] == "TextInputError", r.text
        assert "NaN" in error_of(r)["message"] or "Infinity" in error_of(r)["message"]
        body = b'{"text": ["a b c"], "metadata": [{"deep": [1, {"x": ' + literal + b"}]}]}"
        r = client.post(NS + "/facts", content=body,
                        headers={**A, "Content-Type": "application/json"})
        assert r.status_code == 422, r.text
    assert memory.list(namespace="acme/notes") == []  # nothing was written


def test_client_refuses_what_json_would_change(client, memory):
    """NaN would become invalid JSON (or null) and an int key a string: refused before sending,
    with the exception the local Larimar raises for bad input."""
    with local(client) as c:
        for metadata in ({"x": math.nan}, {"x": math.inf}, {1: "one"}, {"x": {2: "two"}},
                         [{"ok": 1}, {"x": -math.inf}], {"x": object()}, {"\ud800": 1}):
            with pytest.raises(errors.TextInputError):
                c.remember("a b c", metadata=metadata)  # type: ignore[arg-type]
        with pytest.raises(errors.ArgumentError):  # a filter is an argument, not stored text
            c.recall("q", filter={"x": math.nan})
        with pytest.raises(errors.ArgumentError):
            c.list(filter={3: "x"})  # type: ignore[dict-item]
    assert memory.list(namespace="acme/notes") == []


def test_request_conflict_is_409_by_class_name(client, memory, monkeypatch):
    conflict = getattr(errors, "RequestConflictError", None)
    if conflict is None:  # mapped by name until the core defines it
        conflict = type("RequestConflictError", (errors.LarimarError, ValueError), {})
    monkeypatch.setattr(memory, "remember", Recorder(raises=conflict(
        "request id 'r1' was used for different text; use a new request id")))
    r = client.post(NS + "/facts", json={"text": "a b c", "request_id": "r1"}, headers=A)
    assert r.status_code == 409 and error_of(r)["type"] == "RequestConflictError"
    assert "request id" in error_of(r)["message"]
    with local(client) as c:
        with pytest.raises(errors.LarimarError) as info:
            c.remember("a b c", request_id="r1")
    assert type(info.value).__name__ in ("RequestConflictError", "LarimarHTTPError")
    assert info.value.status_code == 409  # type: ignore[attr-defined]


def test_purge_pending_is_not_resent(client, memory, monkeypatch):
    pending = getattr(errors, "PurgePendingError", None)
    if pending is None:
        pending = type("PurgePendingError", (errors.StoreError,), {})
    stub = Recorder(raises=pending("the delete committed; the purge is retried later"))
    monkeypatch.setattr(memory, "forget", stub)
    with local(client) as c, pytest.raises(errors.LarimarError) as info:
        c.forget("f1")
    assert info.value.status_code == 503  # type: ignore[attr-defined]
    assert isinstance(info.value, errors.StoreError) or not hasattr(errors, "PurgePendingError")
    assert len(stub.calls) == 1  # a resend would turn "forgotten" into "not found"


# -- metrics ----------------------------------------------------------------------------------

def test_prometheus_metrics_and_pending_purges(client, memory, monkeypatch):
    from prometheus_client.parser import text_string_to_metric_families

    canned_recall(memory, monkeypatch)

    client.post(NS + "/recall", json={"query": "q"}, headers=A)
    client.post(NS + "/recall", content=b"q", headers={**A, "Content-Type": "text/plain"})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert {"larimar_http_requests", "larimar_http_request_duration_seconds",
            "larimar_http_requests_in_flight", "larimar_process_start_time_seconds",
            "larimar_store_pending_purges"} <= set(families)
    statuses = {(s.labels["route"], s.labels["status"]): s.value
                for s in families["larimar_http_requests"].samples if s.name.endswith("_total")}
    assert statuses[(NS.replace("notes", "{namespace}") + "/recall", "200")] == 1
    assert statuses[(NS.replace("notes", "{namespace}") + "/recall", "415")] == 1
    gauge = families["larimar_store_pending_purges"].samples[0].value
    expected = getattr(memory.store, "pending_purges", 0)
    assert gauge == float(expected() if callable(expected) else expected)

    class Store:
        pending_purges = 3

        def close(self) -> None:
            pass

    monkeypatch.setattr(memory, "store", Store())
    assert "larimar_store_pending_purges 3.0" in client.get("/metrics").text


# -- against the real service --------------------------------------------------------------------

def test_the_contract_end_to_end_through_the_client(client):
    with local(client) as c:
        limits = c.limits()
        assert isinstance(limits, MemoryLimits) and limits.max_fact_tokens > 0
        first = c.remember(["Ana likes tea.", "Bo likes coffee.", "Ana plays chess."],
                           metadata=[{"speaker": "Ana"}, {"speaker": "Bo"}, {"speaker": "Ana"}],
                           ids=["t", "c", "ch"])
        assert first.ids == ["t", "c", "ch"]
        assert [o.status for o in first.outcomes] == ["written"] * 3
        again = c.remember("Ana likes green tea.", ids="t", metadata={"speaker": "Ana"})
        assert again.outcomes[0].status == "replaced"
        assert again.outcomes[0].replaced.text == "Ana likes tea."
        assert again.replaced[0].namespace == "notes"
        assert c.get("t").text == "Ana likes green tea."
        recall = c.recall("What does Ana like?", k=5, filter={"speaker": "Ana"})
        assert 1 <= len(recall.hits) <= 2
        assert {h.fact.id for h in recall.hits} <= {"t", "ch"}
        assert all(h.fact.namespace == "notes" for h in recall.hits)
        assert recall.fact == recall.hits[0].fact
        assert len(c.recall("anything", k=5).hits) == 3
        assert c.recall("anything", k=2, decode=False).hits[0].text == ""
        assert isinstance(c.ask("What does Bo like?", k=2, filter={"speaker": "Bo"},
                                max_new_tokens=2), AskResult)
        assert [f.id for f in c.list()] == ["c", "ch", "t"]
        assert [f.id for f in c.list(filter={"speaker": "Ana"})] == ["ch", "t"]
        assert [f.id for f in c.list(limit=1, offset=1)] == ["ch"]
        assert c.list(filter={"speaker": "Nobody"}) == []
        for bad in ({"k": 0}, {"k": -3}):
            with pytest.raises(ValueError) as info:  # ArgumentError, as the local Larimar
                c.recall("q", **bad)
            assert type(info.value).__name__ == "ArgumentError"
        with pytest.raises(errors.EmptyInputError):
            c.recall(" ")


def test_request_ids_end_to_end(client):
    r1 = client.post(NS + "/facts", json={"text": "Idem fact one.", "request_id": "rq"},
                     headers=A)
    assert r1.status_code == 201, r1.text
    r2 = client.post(NS + "/facts", json={"text": "Idem fact one.", "request_id": "rq"},
                     headers=A)
    assert r2.status_code == 200 and r2.json()["ids"] == r1.json()["ids"]
    assert r2.json()["duplicate_request"] is True
    r3 = client.post(NS + "/facts", json={"text": "Something else.", "request_id": "rq"},
                     headers=A)
    assert r3.status_code == 409 and error_of(r3)["type"] == "RequestConflictError", r3.text
    assert "rq" in error_of(r3)["message"] or "request" in error_of(r3)["message"]
    assert len(client.get(NS + "/facts", headers=A).json()["facts"]) == 1


def test_over_long_key_is_422(client, memory):
    too_long = "k" * (memory.limits().max_key_chars + 1)
    r = client.post(NS + "/facts", json={"text": "Short fact here.", "key": too_long}, headers=A)
    assert r.status_code == 422 and error_of(r)["type"] in ("TextInputError", "ValidationError")
    assert client.get(NS + "/facts", headers=A).json()["facts"] == []


def test_observe_through_the_client(served):
    """`conversation.observe` on a LarimarClient: same outcome as on a local Larimar."""
    with LarimarClient(served.url, KEY_A, namespace="chat", retry=FAST) as c:
        turn = observe(c, "Hi! Alice lives in Lisbon. Bob plays the cello. Where is Carol?")
        assert len(turn.remembered) == 2 and turn.questions == ["Where is Carol?"]
        assert {f.text for f in c.list()} == {"Alice lives in Lisbon.", "Bob plays the cello."}
        limit = c.limits().max_fact_tokens
        long = "My grandmother " + "really " * (limit // 7 + 1) + "likes tea."
        turn = observe(c, f"I live in Lisbon. {long}")
        assert turn.too_long == [long] and len(turn.remembered) == 1
        turn = observe(c, "Please forget that Bob plays the cello.")
        assert [f.text for f in turn.forgotten] == ["Bob plays the cello."]
        assert turn.forgotten[0].namespace == "chat"
        assert {f.text for f in c.list()} == {"Alice lives in Lisbon.", "I live in Lisbon."}


# -- reads of unknown namespaces allocate nothing --------------------------------------------

def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux)")
def test_recalls_on_unknown_namespaces_do_not_grow_memory(client):
    for i in range(20):  # warm up: imports, caches, thread pool, allocator arenas
        client.post(f"/v1/namespaces/warm{i}/recall", json={"query": "q", "decode": False},
                    headers=A)
    before = _rss_bytes()
    for i in range(1000):
        r = client.post(f"/v1/namespaces/unknown-{i}/recall",
                        json={"query": f"where is {i}?", "decode": False}, headers=A)
        assert r.status_code == 200, r.text
    grown = _rss_bytes() - before
    assert grown < 50 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 1000 unknown namespaces"
    assert client.get("/v1/namespaces", headers=A).json()["namespaces"] == []
