"""LarimarClient / AsyncLarimarClient against a live uvicorn (loopback): the `Larimar`
interface, the same result types and exceptions, retries, and idempotent remember."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from server_testing import KEY_A, KEY_B, free_port

from larimar_memory.errors import (
    EmptyInputError,
    FactNotFoundError,
    RequestConflictError,
    StoreError,
    TextInputError,
)
from larimar_memory.server import AsyncLarimarClient, LarimarClient
from larimar_memory.server.client import (
    AuthenticationError,
    LarimarConnectionError,
    RetryPolicy,
)
from larimar_memory.types import AskResult, Fact, RecallResult, RememberResult

FAST = RetryPolicy(retries=3, base_delay=0.01, max_delay=0.05)


class FlakyTransport(httpx.BaseTransport):
    """Fails the first ``fails`` requests the way networks fail: before sending (connect
    error), or after the server did the work (the response is lost)."""

    def __init__(self, fails: int, mode: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.fails, self.mode, self.seen = fails, mode, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.content)
        if self.fails > 0:
            self.fails -= 1
            if self.mode == "connect":
                raise httpx.ConnectError("connection refused", request=request)
            if self.mode == "503":
                return httpx.Response(503, json={"error": {"type": "StoreError",
                                                           "message": "busy"}})
            response = self.inner.handle_request(request)  # the server writes...
            response.read()
            raise httpx.RemoteProtocolError("server disconnected", request=request)  # ...lost
        return self.inner.handle_request(request)


def test_sync_client_speaks_the_larimar_interface(served) -> None:
    with LarimarClient(served.url, KEY_A, namespace="notes", retry=FAST) as memory:
        result = memory.remember(["Alice lives in Lisbon.", "Bob plays the cello."],
                                 metadata={"source": "test"})
        assert isinstance(result, RememberResult) and len(result.ids) == 2
        facts = memory.list()
        assert all(isinstance(f, Fact) for f in facts)
        assert [f.text for f in facts] == ["Alice lives in Lisbon.", "Bob plays the cello."]
        assert facts[0].namespace == "notes" and facts[0].metadata == {"source": "test"}
        assert memory.get(result.ids[1]).text == "Bob plays the cello."
        recall = memory.recall("Where does Alice live?")
        assert isinstance(recall, RecallResult) and recall.fact is not None
        assert memory.recall("Where does Alice live?", decode=False).text == ""
        assert isinstance(memory.ask("Where does Alice live?", max_new_tokens=2), AskResult)
        assert [f.id for f in memory.forget(result.ids[0])] == [result.ids[0]]
        extra = memory.remember("Dave collects old stamps.").ids[0]
        gone = memory.forget_matching("Dave collects old stamps").forgotten
        assert [f.id for f in gone] == [extra]
        missed = memory.forget_matching("quantum chromodynamics lectures")
        assert missed.forgotten == [] and missed.reason
        assert memory.namespaces() == ["notes"]
        assert memory.export().count == 1
        other = memory.remember("Carol drinks tea.", namespace="other")
        assert memory.list(namespace="other")[0].id == other.ids[0]
        assert memory.clear() == 1 and memory.list() == []
        assert memory.health()["status"] == "ok"
    # what the core stored, under the tenant prefix
    assert [f.text for f in served.memory.list(namespace="acme/other")] == ["Carol drinks tea."]


def test_client_raises_the_core_exceptions(served) -> None:
    with LarimarClient(served.url, KEY_A, retry=FAST) as memory:
        with pytest.raises(FactNotFoundError, match="no fact"):
            memory.forget("never stored")
        with pytest.raises(FactNotFoundError):
            memory.get("0" * 32)
        with pytest.raises(EmptyInputError):
            memory.remember("   ")
        with pytest.raises(TextInputError):
            memory.remember("x" * 5000)
        with pytest.raises(TextInputError):  # wrong type: the server's 422, as locally
            memory.remember(42)  # type: ignore[arg-type]
        with pytest.raises(TextInputError):  # the namespace rule: a NamespaceError
            memory.list(namespace="../up")
        with pytest.raises(TextInputError):
            memory.recall("q", namespace="")
    with LarimarClient(served.url, "wrong-key-123", retry=FAST) as stranger:
        with pytest.raises(AuthenticationError) as info:
            stranger.list()
        assert info.value.status_code == 401
    with LarimarClient(served.url, KEY_B, namespace="notes", retry=FAST) as globex:
        with LarimarClient(served.url, KEY_A, namespace="notes", retry=FAST) as acme:
            fact_id = acme.remember("Acme only.").ids[0]
            assert globex.list() == []
            with pytest.raises(FactNotFoundError):
                globex.forget(fact_id)
            assert [f.id for f in acme.list()] == [fact_id]


@pytest.mark.parametrize("mode", ["connect", "503", "lost-response"])
def test_retries_never_write_twice(served, mode: str) -> None:
    transport = FlakyTransport(fails=2, mode=mode)
    with LarimarClient(served.url, KEY_A, namespace="retry", retry=FAST,
                       transport=transport) as memory:
        result = memory.remember("Dana keeps bees.")
    assert len(transport.seen) == 3
    assert len(set(transport.seen)) == 1  # one body, one request id, on every attempt
    stored = served.memory.list(namespace="acme/retry")
    assert [f.id for f in stored] == result.ids  # written exactly once
    assert result.duplicate_request == (mode == "lost-response")


def test_forget_is_not_resent_after_an_ambiguous_failure(served) -> None:
    with LarimarClient(served.url, KEY_A, namespace="f", retry=FAST) as memory:
        fact_id = memory.remember("Eve reads maps.").ids[0]
    transport = FlakyTransport(fails=1, mode="lost-response")
    with LarimarClient(served.url, KEY_A, namespace="f", retry=FAST,
                       transport=transport) as memory:
        with pytest.raises(LarimarConnectionError, match="may or may not"):
            memory.forget(fact_id)
        assert memory.list() == []  # it did take effect
    assert sum(b'"fact"' in body for body in transport.seen) == 1  # sent once, never resent


def test_retries_give_up_with_the_last_error(served) -> None:
    with LarimarClient(f"http://127.0.0.1:{free_port()}", KEY_A, retry=FAST) as nobody:
        with pytest.raises(LarimarConnectionError, match="4 attempts"):
            nobody.list()
    with LarimarClient(served.url, KEY_A, retry=FAST,
                       transport=FlakyTransport(fails=10, mode="503")) as memory:
        with pytest.raises(StoreError, match="busy"):
            memory.list()


def test_a_methods_work_from_one_event_loop_after_another(served) -> None:
    """``asyncio.run`` twice (a script, or LlamaIndex's sync entry points running their
    coroutines): the second loop gets its own async connections, not the first's, closed."""
    with LarimarClient(served.url, KEY_A, namespace="loops", retry=FAST) as client:
        ids = asyncio.run(client.aremember("First loop fact.")).ids
        assert [f.id for f in asyncio.run(client.alist())] == ids
        assert isinstance(asyncio.run(client.arecall("first loop")), RecallResult)


async def test_async_client_and_a_methods(served) -> None:
    async with AsyncLarimarClient(served.url, KEY_A, namespace="async", retry=FAST) as memory:
        results = await asyncio.gather(*(memory.remember(f"Async fact {w}.")
                                         for w in ("alpha", "bravo", "charlie", "delta")))
        assert len({r.ids[0] for r in results}) == 4
        assert len(await memory.list()) == 4
        assert isinstance(await memory.arecall("alpha"), RecallResult)
        assert isinstance(await memory.ask("bravo?", max_new_tokens=2), AskResult)
        with pytest.raises(FactNotFoundError):
            await memory.aforget("nope")
        assert await memory.aclear() == 4
    client = LarimarClient(served.url, KEY_A, namespace="mixed", retry=FAST)
    try:
        ids = (await client.aremember("Mixed fact.")).ids
        assert [f.id for f in await client.alist()] == ids
        assert [f.id for f in client.list()] == ids
        assert isinstance(await client.aask("Mixed?"), AskResult)
        assert [f.id for f in await client.aforget(ids[0])] == ids
    finally:
        await client.aclose()


def test_library_errors_travel(served, monkeypatch: pytest.MonkeyPatch) -> None:
    # A library error raised by the core comes out of the client as the same class.
    def conflict(*args: object, **kwargs: object) -> None:
        raise RequestConflictError("request id 'r1' was already used for other facts")

    monkeypatch.setattr(served.memory, "remember", conflict)
    with LarimarClient(served.url, KEY_A, retry=FAST) as c, pytest.raises(RequestConflictError):
        c.remember("one too many facts")


def test_concurrent_reads_and_forgets_never_500(served) -> None:
    """Recall/ask while other clients remember and forget in the same namespace (this found
    a race in the core: reads walked the namespace while a writer changed it)."""
    import threading
    import uuid

    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        with LarimarClient(served.url, KEY_A, namespace="race", retry=FAST) as c:
            while not stop.is_set():
                try:
                    ids = c.remember(" ".join(uuid.uuid4().hex[:8] for _ in range(3))).ids
                    c.forget(ids[0])
                except BaseException as exc:  # noqa: BLE001
                    failures.append(exc)
                    return

    def reader() -> None:
        with LarimarClient(served.url, KEY_A, namespace="race", retry=FAST) as c:
            while not stop.is_set():
                try:
                    c.recall("anything at all")
                    c.ask("anything?", max_new_tokens=1)
                except BaseException as exc:  # noqa: BLE001
                    failures.append(exc)
                    return

    threads = [threading.Thread(target=writer) for _ in range(2)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures[:3]
    assert 'status="500"' not in httpx.get(f"{served.url}/metrics").text
