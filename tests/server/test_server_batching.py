"""Micro-batching in the server: concurrent remembers share one embedder pass and one
transaction per namespace, concurrent recalls one embedder and one reading pass, and each caller
still gets its own ids, outcome, hits or error."""

from __future__ import annotations

import asyncio

import httpx
from server_testing import KEY_A

from larimar_memory.server.app import _State

A = {"Authorization": f"Bearer {KEY_A}"}


def _state(server) -> _State:
    return server.server.config.app.state.larimar_state


def _batcher(server):
    return _state(server).remember_batcher


async def _concurrent(url: str, bodies: list[tuple[str, dict, dict]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await asyncio.gather(*(
            client.post(f"/v1/namespaces/{ns}/facts", json=body, headers={**A, **headers})
            for ns, body, headers in bodies
        ))


def test_eight_clients_three_namespaces_own_outcomes(served) -> None:
    memory = served.memory
    embeds = []
    real_embed = memory.embedder.embed

    def counting(texts):
        embeds.append(len(texts))
        return real_embed(texts)

    memory.embedder.embed = counting
    bodies = []
    for i in range(8):
        ns = f"team{i % 3}"
        body = {"text": f"client {i} fact about topic {i}"}
        headers = {"Idempotency-Key": f"req-{i}"} if i % 2 == 0 else {}
        if i == 5:
            body = {"text": ["a", "b"], "ids": ["dup", "dup"]}  # a bad request
        bodies.append((ns, body, headers))
    responses = asyncio.run(_concurrent(served.url, bodies))
    for i, response in enumerate(responses):
        if i == 5:
            assert response.status_code in (400, 422), response.text
            continue
        assert response.status_code == 201, response.text
        assert response.json()["outcomes"][0]["status"] == "written"
    ids = [r.json()["ids"][0] for i, r in enumerate(responses) if i != 5]
    assert len(set(ids)) == 7
    with httpx.Client(base_url=served.url, headers=A) as client:
        for n in range(3):
            texts = sorted(f["text"] for f in client.get(f"/v1/namespaces/team{n}/facts")
                           .json()["facts"])
            assert texts == sorted(bodies[i][1]["text"] for i in range(n, 8, 3) if i != 5)
    batcher = _batcher(served)
    assert batcher is not None and batcher.calls == 8
    assert batcher.batches < 8  # at least some callers shared a batch
    assert sum(embeds) == 9  # every key (the bad request's two too) once, one pass per batch
    assert len(embeds) == batcher.batches
    # the same request ids again, concurrently: nothing written, the first ids come back
    again = asyncio.run(_concurrent(served.url, [bodies[i] for i in (0, 2, 4, 6)]))
    for i, response in zip((0, 2, 4, 6), again, strict=True):
        assert response.status_code == 200, response.text
        assert response.json()["duplicate_request"] is True
        assert response.json()["ids"] == responses[i].json()["ids"]


def test_concurrent_recalls_get_their_own_hits_or_errors(served) -> None:
    with httpx.Client(base_url=served.url, headers=A) as client:
        for ns, texts in (("r1", ["Ada writes code.", "Bob likes tea."]),
                          ("r2", ["Cy plays chess."])):
            assert client.post(f"/v1/namespaces/{ns}/facts", json={"text": texts}).is_success
        queries = [("r1", {"query": "Ada writes code.", "k": 2}), ("r2", {"query": "chess"}),
                   ("r1", {"query": "tea", "decode": False}), ("r1", {"query": " "}),
                   ("r3", {"query": "nothing here"})] * 2
        alone = [client.post(f"/v1/namespaces/{ns}/recall", json=body) for ns, body in queries]

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, timeout=60, headers=A) as client:
            return await asyncio.gather(*(client.post(f"/v1/namespaces/{ns}/recall", json=body)
                                          for ns, body in queries))

    batcher = _state(served).recall_batcher
    assert batcher is not None
    before = batcher.calls
    responses = asyncio.run(together())
    # a blank query is refused by the input contract on the body, before the batcher
    assert batcher.calls - before == len(queries) - 2
    for one, many in zip(alone, responses, strict=True):
        assert many.status_code == one.status_code, many.text
        if one.is_success:
            assert [(h["fact"]["text"], h["text"]) for h in many.json()["hits"]] == \
                [(h["fact"]["text"], h["text"]) for h in one.json()["hits"]]
    assert responses[3].status_code == 422 and responses[4].json()["hits"] == []
    assert responses[0].json()["hits"][0]["fact"]["text"] == "Ada writes code."
