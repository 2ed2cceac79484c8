"""The HTTP API in process (TestClient): routes, tenant isolation, structured errors, limits,
metrics and OpenAPI, on a tiny Larimar with a temp SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_testing import KEY_A, KEY_B

from larimar_memory.server import ServerSettings, create_app
from larimar_memory.server.auth import (
    ApiKeyConfigError,
    core_namespace,
    load_keys_file,
    parse_env_keys,
    resolve_keys,
    visible_namespaces,
)
from larimar_memory.testing import tiny_larimar

A = {"Authorization": f"Bearer {KEY_A}"}
B = {"X-API-Key": KEY_B}
FACTS = "/v1/namespaces/notes/facts"


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"type", "message"} <= set(body["error"])
    return body["error"]


def test_remember_list_get_recall_ask_forget_export_clear(client: TestClient) -> None:
    r = client.post(FACTS, json={"text": ["Alice lives in Lisbon.", "Bob plays the cello."],
                                 "metadata": {"source": "chat"}}, headers=A)
    assert r.status_code == 201, r.text
    ids = r.json()["ids"]
    assert len(ids) == 2
    listed = client.get(FACTS, headers=A).json()
    assert listed["namespace"] == "notes"
    assert [f["text"] for f in listed["facts"]] == ["Alice lives in Lisbon.",
                                                    "Bob plays the cello."]
    assert all(f["namespace"] == "notes" for f in listed["facts"])  # no tenant prefix
    assert client.get(FACTS, params={"limit": 1, "offset": 1}, headers=A).json()["facts"][0][
        "id"] == ids[1]
    fact = client.get(f"{FACTS}/{ids[0]}", headers=A).json()
    assert fact["metadata"] == {"source": "chat"} and fact["namespace"] == "notes"

    recall = client.post("/v1/namespaces/notes/recall", json={"query": "Alice lives where?"},
                         headers=A).json()
    assert recall["fact"]["id"] == ids[0] and recall["fact"]["namespace"] == "notes"
    quick = client.post("/v1/namespaces/notes/recall",
                        json={"query": "Alice lives where?", "decode": False}, headers=A).json()
    assert quick["fact"]["id"] == ids[0] and quick["text"] == ""
    ask = client.post("/v1/namespaces/notes/ask",
                      json={"question": "Where does Alice live?", "max_new_tokens": 2},
                      headers=A).json()
    assert ask["route"] in ("memory", "plain")

    gone = client.delete(f"{FACTS}/{ids[0]}", headers=A).json()["forgotten"]
    assert [f["id"] for f in gone] == [ids[0]]
    by_text = client.post("/v1/namespaces/notes/forget", json={"fact": "Bob plays the cello."},
                          headers=A).json()["forgotten"]
    assert [f["id"] for f in by_text] == [ids[1]]
    client.post(FACTS, json={"text": "Carol drinks tea."}, headers=A)
    export = client.get("/v1/namespaces/notes/export", headers=A).json()
    assert export["count"] == 1 and export["facts"][0]["text"] == "Carol drinks tea."
    assert set(export["facts"][0]) == {"id", "namespace", "text", "key", "extra_keys", "rows",
                                       "slot", "created_at", "metadata"}  # never embeddings
    assert client.get("/v1/namespaces", headers=A).json() == {"namespaces": ["notes"]}
    assert client.delete(FACTS, headers=A).json() == {"deleted": 1}
    assert client.get(FACTS, headers=A).json()["facts"] == []


def test_request_id_makes_remember_idempotent(client: TestClient, memory) -> None:
    body = {"text": "Dave has a red bike.", "request_id": "req-42"}
    first = client.post(FACTS, json=body, headers=A)
    again = client.post(FACTS, json=body, headers=A)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["ids"] == first.json()["ids"] and again.json()["duplicate_request"]
    header = client.post(FACTS, json={"text": "Erin skis."},
                         headers={**A, "Idempotency-Key": "hdr-1"})
    replay = client.post(FACTS, json={"text": "Erin skis."},
                         headers={**A, "Idempotency-Key": "hdr-1"})
    assert replay.json()["ids"] == header.json()["ids"]
    assert len(memory.list(namespace="acme/notes")) == 2


def test_tenants_are_isolated(client: TestClient, memory) -> None:
    fact_id = client.post(FACTS, json={"text": "Acme's secret plan."}, headers=A).json()["ids"][0]
    assert memory.list(namespace="acme/notes")[0].id == fact_id  # what the core sees
    # Globex uses the same namespace name and the fact id, and sees nothing of Acme's.
    assert client.get(FACTS, headers=B).json()["facts"] == []
    assert client.get("/v1/namespaces", headers=B).json() == {"namespaces": []}
    assert client.get(f"{FACTS}/{fact_id}", headers=B).status_code == 404
    for r in (client.delete(f"{FACTS}/{fact_id}", headers=B),
              client.post("/v1/namespaces/notes/forget", json={"fact": "Acme's secret plan."},
                          headers=B)):
        assert r.status_code == 404 and error_of(r)["type"] == "FactNotFoundError"
        assert "acme" not in error_of(r)["message"]
    assert client.get("/v1/namespaces/notes/export", headers=B).json()["facts"] == []
    recall = client.post("/v1/namespaces/notes/recall", json={"query": "secret plan"},
                         headers=B).json()
    assert recall["fact"] is None
    assert client.delete(FACTS, headers=B).json() == {"deleted": 0}
    assert [f.id for f in memory.list(namespace="acme/notes")] == [fact_id]
    # no namespace name can climb out of the tenant prefix: '..' segments are refused, and
    # "acme/notes" named by globex is globex's own "globex/acme/notes"
    for bad in ("..%2Facme%2Fnotes", "%2E%2E", "%2Facme%2Fnotes"):
        r = client.get(f"/v1/namespaces/{bad}/facts", headers=B)
        assert r.status_code == 422, (bad, r.status_code)
        assert r.json() == {"error": r.json()["error"]}
    assert client.get("/v1/namespaces/acme%2Fnotes/facts", headers=B).json()["facts"] == []
    assert client.get("/v1/namespaces", headers=B).json()["namespaces"] == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key-000"},
                                     {"X-API-Key": "nope"}, {"Authorization": "Basic abc"}])
def test_missing_or_bad_key_is_401(client: TestClient, headers: dict) -> None:
    for method, path in (("GET", FACTS), ("POST", "/v1/namespaces/notes/recall"),
                         ("GET", "/v1/namespaces"), ("DELETE", FACTS)):
        r = client.request(method, path, json={"query": "x"}, headers=headers)
        assert r.status_code == 401 and error_of(r)["type"] == "Unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/healthz").status_code == 200  # probes need no key
    assert client.get("/metrics").status_code == 200


def test_bad_input_is_a_structured_4xx(client: TestClient) -> None:
    cases = [
        (dict(content=b'{"text": "unterminated', headers={"Content-Type": "application/json"}),
         400, "InvalidJSON"),
        (dict(json={"text": 42}), 422, "TextInputError"),
        (dict(json={"text": ["ok", 3]}), 422, "TextInputError"),
        (dict(json={"txt": "typo"}), 422, "ArgumentError"),
        (dict(json={"text": "a", "metdata": {}}), 422, "ArgumentError"),
        (dict(json=["not", "an", "object"]), 422, "ArgumentError"),
        (dict(json={"text": "   "}), 422, "EmptyInputError"),
        (dict(json={"text": []}), 422, "EmptyInputError"),
        (dict(json={"text": "x" * 5000}), 422, "TextInputError"),
        (dict(json={"text": "a", "key": ["k1", "k2"]}), 422, "ArgumentError"),
        (dict(json={"text": "a", "metadata": "not a dict"}), 422, "TextInputError"),
        (dict(json={"text": [f"fact {i}" for i in range(257)]}), 422, "ArgumentError"),
        (dict(json={"text": "a\x00b"}), 422, "TextInputError"),
        (dict(content=b'{"text": "\xff\xfe"}', headers={"Content-Type": "application/json"}),
         400, "InvalidJSON"),
        (dict(content=b"[" * 100_000 + b"]" * 100_000,
              headers={"Content-Type": "application/json"}), 400, "InvalidJSON"),
        (dict(content=b"text=plain", headers={"Content-Type": "text/plain"}), 415,
         "UnsupportedMediaType"),
    ]
    for kwargs, status, type_ in cases:
        kwargs.setdefault("headers", {})
        kwargs["headers"] = {**A, **kwargs["headers"]}
        r = client.post(FACTS, **kwargs)
        assert (r.status_code, error_of(r)["type"]) == (status, type_), (kwargs, r.text)
    r = client.post("/v1/namespaces/notes/ask", json={"question": "q", "max_new_tokens": 10**6},
                    headers=A)
    assert r.status_code == 422
    r = client.post("/v1/namespaces/notes/recall", json={"query": None}, headers=A)
    assert r.status_code == 422
    r = client.get(FACTS, params={"limit": -1}, headers=A)
    assert r.status_code == 422
    assert client.get(FACTS, headers=A).json()["facts"] == []  # nothing was written


def test_over_long_question_is_a_422(client: TestClient) -> None:
    r = client.post("/v1/namespaces/notes/ask", json={"question": "why " * 100}, headers=A)
    assert r.status_code == 422 and error_of(r)["type"] == "TextInputError"  # not a 500


def test_namespace_names(client: TestClient) -> None:
    # the core's rule (larimar_memory.names), checked by the server too
    assert client.get("/v1/namespaces/%ED%A0%80/facts", headers=A).status_code == 422  # UTF-8?
    for bad in ("%00", "%2E%2E", "%2E%2E%2Fx", "%2Fetc%2Fpasswd", "a%2F%2Fb", "%20", "a" * 257):
        r = client.get(f"/v1/namespaces/{bad}/facts", headers=A)
        assert r.status_code == 422 and error_of(r)["type"] == "NamespaceError", bad
    for good in ("-lead", "sp%20ace", "semi;colon", "user:alice", "langgraph%2Fmemories"):
        assert client.get(f"/v1/namespaces/{good}/facts", headers=A).status_code == 200, good
    # an unknown (well-formed) namespace is empty, not an error
    assert client.get("/v1/namespaces/never-used/facts", headers=A).json()["facts"] == []
    assert client.post("/v1/namespaces/never-used/recall", json={"query": "anything"},
                       headers=A).status_code == 200
    r = client.post("/v1/namespaces/never-used/forget", json={"fact": "x"}, headers=A)
    assert r.status_code == 404 and error_of(r)["type"] == "FactNotFoundError"
    r = client.get("/v1/nowhere", headers=A)
    assert r.status_code == 404 and error_of(r)["type"] == "NotFound"
    r = client.put(FACTS, headers=A)
    assert r.status_code == 405 and error_of(r)["type"] == "MethodNotAllowed"


def test_body_limit_is_413_with_json(memory) -> None:
    app = create_app(memory, ServerSettings(api_keys={KEY_A: "acme"}, max_body_bytes=1000))
    with TestClient(app) as c:
        r = c.post(FACTS, json={"text": "x" * 2000}, headers=A)
        assert r.status_code == 413 and error_of(r)["type"] == "PayloadTooLarge"

        def chunks():  # no Content-Length: the limit must hold on the stream too
            for _ in range(10):
                yield b"x" * 500

        r = c.post(FACTS, content=chunks(), headers={**A, "Content-Type": "application/json"})
        assert r.status_code == 413 and error_of(r)["type"] == "PayloadTooLarge"
        assert c.post(FACTS, json={"text": "small"}, headers=A).status_code == 201


def test_conflict_and_store_errors_map_to_409_and_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from larimar_memory.errors import RequestConflictError

    memory = tiny_larimar(tmp_path / "s.sqlite3")
    with TestClient(create_app(memory, ServerSettings(api_keys={KEY_A: "acme"}))) as c:
        assert c.post(FACTS, json={"text": "apples are red"}, headers=A).status_code == 201

        def full(*args: object, **kwargs: object) -> None:
            raise RequestConflictError("request id reused for other facts")

        with monkeypatch.context() as patch:
            patch.setattr(memory, "remember", full)
            r = c.post(FACTS, json={"text": "quartz quarries quietly"}, headers=A)
        assert r.status_code == 409 and error_of(r)["type"] == "RequestConflictError"
        memory.store.close()  # the store goes away under the server
        r = c.get(FACTS, headers=A)
        assert r.status_code == 503 and error_of(r)["type"] == "StoreError"
        assert r.headers["Retry-After"] == "1"
        health = c.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"


def test_metrics_and_openapi(client: TestClient) -> None:
    client.post(FACTS, json={"text": "Metrics fact."}, headers=A)
    client.get(FACTS, headers={"X-API-Key": "bad-key-123"})
    client.get("/v1/no/such/route/at/all", headers=A)
    text = client.get("/metrics").text
    assert ('larimar_http_requests_total{method="POST",route="/v1/namespaces/{namespace}/facts",'
            'status="201"} 1') in text
    assert 'route="/v1/namespaces/{namespace}/facts",status="401"} 1' in text
    assert 'route="unmatched",status="404"' in text  # raw paths never become labels
    assert "larimar_http_request_duration_seconds_bucket" in text
    assert 'le="+Inf"' in text and "larimar_http_requests_in_flight" in text
    assert "larimar_cache_loads_total 1.0" in text  # the namespace the POST loaded
    assert "larimar_cache_budget_bytes" in text and "larimar_cache_over_budget_bytes" in text
    assert "larimar_cache_evictions_total" in text
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/namespaces/{namespace}/facts", "/v1/namespaces/{namespace}/recall",
                 "/v1/namespaces/{namespace}/ask", "/v1/namespaces/{namespace}/export",
                 "/v1/namespaces/{namespace}/forget", "/healthz", "/metrics"):
        assert path in paths
    post = paths["/v1/namespaces/{namespace}/facts"]["post"]
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ErrorResponse")
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])


def test_metrics_auth_and_no_auth_mode(memory) -> None:
    settings = ServerSettings(api_keys={KEY_A: "acme"}, metrics_auth=True)
    with TestClient(create_app(memory, settings)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=A).status_code == 200
    memory.remember("A fact in the plain default namespace.", namespace="default")
    with TestClient(create_app(memory, ServerSettings(auth=False))) as c:
        facts = c.get("/v1/namespaces/default/facts").json()["facts"]
        assert [f["text"] for f in facts] == ["A fact in the plain default namespace."]
        assert "default" in c.get("/v1/namespaces").json()["namespaces"]


def test_auth_without_keys_is_refused(memory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LARIMAR_API_KEYS", raising=False)
    with pytest.raises(ApiKeyConfigError, match="--no-auth"):
        create_app(memory, ServerSettings())


def test_key_sources(tmp_path: Path) -> None:
    assert parse_env_keys("key-one-12345:tenantA, key-two-12345:tenant-b") == {
        "key-one-12345": "tenantA", "key-two-12345": "tenant-b"}
    j = tmp_path / "keys.json"
    j.write_text(json.dumps({"keys": [{"key": "json-key-123", "tenant": "t1"}]}))
    assert load_keys_file(j) == {"json-key-123": "t1"}
    t = tmp_path / "keys.toml"
    t.write_text('[keys]\n"toml-key-1234" = "t2"\n')
    assert load_keys_file(t) == {"toml-key-1234": "t2"}
    keys = resolve_keys({"explicit-key-1": "t0"}, t,
                        environ={"LARIMAR_API_KEYS": "env-key-12345:t3"})
    assert keys == {"explicit-key-1": "t0", "toml-key-1234": "t2", "env-key-12345": "t3"}
    for bad in ("short:t", "no-tenant-here", "key-1234567:bad/tenant"):
        with pytest.raises(ApiKeyConfigError):
            parse_env_keys(bad)
    with pytest.raises(ApiKeyConfigError, match="two tenants"):
        parse_env_keys("same-key-1234:a,same-key-1234:b")
    (tmp_path / "broken.toml").write_text("[keys\n")
    with pytest.raises(ApiKeyConfigError, match="not valid"):
        load_keys_file(tmp_path / "broken.toml")


def test_namespace_mapping() -> None:
    assert core_namespace("acme", "notes") == "acme/notes"
    assert core_namespace(None, "notes") == "notes"
    names = ["acme/a", "acme/b", "acmex/c", "globex/a", "plain", "acme/lang/nested", "acme/x//y"]
    assert visible_namespaces("acme", names) == ["a", "b", "lang/nested"]  # as written
    assert visible_namespaces(None, names) == names[:6]  # no tenants: every valid name


def test_cache_mb_reaches_the_larimar_settings(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    import uvicorn
    from typer.testing import CliRunner

    from larimar_memory.server.cli import serve
    from larimar_memory.server.factory import build_larimar, settings_from_env
    from larimar_memory.server.settings import SETTINGS_ENV

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    monkeypatch.delenv(SETTINGS_ENV, raising=False)  # restored after: serve sets it
    app = typer.Typer()
    app.command()(serve)
    result = CliRunner().invoke(app, ["--no-auth", "--tiny", "--cache-mb", "1.5",
                                      "--store", str(tmp_path / "s.sqlite3")])
    assert result.exit_code == 0, result.output
    settings = settings_from_env()  # what each worker process builds its Larimar from
    assert settings.cache_mb == 1.5
    memory = build_larimar(settings)
    try:
        assert memory.settings.cache_bytes == int(1.5 * 1024**2)
        assert memory.cache_stats()["budget_bytes"] == int(1.5 * 1024**2)
    finally:
        memory.store.close()
