"""Differential fuzz of the input contract: the same generated calls (mostly bad inputs, some
good ones) go through four paths, and every path must answer alike.

* ``local``: `Larimar` in process, on its own store;
* ``client``: `LarimarClient` against a real ``larimar serve`` subprocess;
* ``async``: `AsyncLarimarClient` against the same server;
* ``server``: `LarimarClient(check_inputs=False)`: the arguments go unchecked over the wire, so
  the server's own checks answer (only for calls JSON can carry as they are).

Each remote path is its own tenant of the one server, so the four stores see the same calls in
the same order and stay equal. For every call: the same outcome on every path (success, or the
same library error class; any other exception fails), and after a refusal ``list`` of the
namespace (or ``namespaces()``) is what it was before. Runs on SQLite and, with
``LARIMAR_TEST_PG_DSN``, on PostgreSQL; the number of calls and the time go to the log.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_testing import SubprocessServer, drop_schema

from larimar_memory.errors import LarimarError
from larimar_memory.names import is_namespace

PG_ENV = "LARIMAR_TEST_PG_DSN"
KEYS = {"local": None, "client": "fuzz-key-client-0123", "async": "fuzz-key-async-01234",
        "server": "fuzz-key-server-0123"}
TENANTS = {"client": "c", "async": "a", "server": "s"}
EXAMPLES = int(os.environ.get("LARIMAR_FUZZ_EXAMPLES", "250"))
"""Calls per verb (9 verbs): 2,250 per backend by default."""
STATS: Counter[str] = Counter()

# -- values: good ones, and the bad ones users send -----------------------------------------------

GOOD_TEXTS = ["Alice lives in Lisbon.", "Bob's favourite colour is green.", "The meeting is on "
              "Friday.", "Carol works at the bakery."]
BAD_TEXTS = ["", "   ", "\u200b\u200d", "a\x00b", "\ud800 lone", b"bytes", b"\xff\xfe", 123, 1.5,
             True, [], ["ok", 3], [b"x"], {"text": "a"}, "x" * 600, "y" * 16_001]
texts = st.one_of(st.sampled_from(GOOD_TEXTS), st.sampled_from(BAD_TEXTS),
                  st.lists(st.sampled_from(GOOD_TEXTS + ["", "a\x00"]), max_size=3),
                  st.text(max_size=12))
queries = st.one_of(st.sampled_from(GOOD_TEXTS + ["Where does Alice live?"]),
                    st.sampled_from(BAD_TEXTS + [None, ["a", "b"]]), st.text(max_size=12))
GOOD_NAMESPACES = [None, "n1", "user:alice", "langgraph/mem/alice", "Zoë Brown"]
NAMESPACES = GOOD_NAMESPACES + ["../x", "/etc/passwd", "a//b", "x/", ".", "", " ", "a\x00",
                                "a\tb", "a\ud800", "x" * 300, 5, b"n1", ["n1"]]
# about 70 % of calls name a valid namespace, so the other arguments' checks are reached
namespaces = (st.sampled_from(GOOD_NAMESPACES * 3 + NAMESPACES)
              | st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]),
                        min_size=1, max_size=10)
              | st.text(max_size=6))
INTS = [0, 1, 2, 3, 50, 100, 101, -1, 10**30, -(10**30), 2**63, 2**63 - 1, "5", True, False,
        5.0, None, [1], float("nan")]
ints = st.one_of(st.sampled_from(INTS), st.integers(-5, 120))
fractions = st.sampled_from([None, 0, 1, 0.5, 0.9, -0.1, 1.5, "0.5", True, float("nan"),
                             float("inf"), [0.5]])
flags = st.sampled_from([True, False, 1, 0, "true", None, [True]])
filters = st.sampled_from([
    None, {}, {"speaker": "Ana"}, {"n": 1}, {"ok": True}, {"x": None}, {"x": 1.5},
    {"x": float("nan")}, {"x": float("inf")}, {"x": 10**30}, {"x": 2**63 - 1}, {1: "a"},
    {"x": [1]}, {"x": {"y": 1}}, {"x": "a\x00"}, {"x\x00": "a"}, {"x": "\ud800"}, {"x": b"a"},
    [1], "speaker=Ana", 3,
])
DEEP: dict[str, Any] = {}
_level = DEEP
for _ in range(40):
    _level["d"] = {}
    _level = _level["d"]
metadatas = st.sampled_from([
    None, {"speaker": "Ana"}, {"n": 1, "tags": ["a", "b"]}, [{"a": 1}], [{"a": 1}, {"b": 2}],
    {"a": float("nan")}, {"a": b"x"}, {1: 2}, "meta", 5, [5], DEEP, {"a": "\x00"},
    {"a\x00": 1}, {"a": "\udc80"}, {"a": (1, 2)}, {"big": 10**30}, {"x": "y" * 70_000},
])
IDS = [None, "id-1", ["id-1"], ["id-1", "id-2"], "", " ", 5, [5], "a" * 201, "..", ".",
       "a/b", "a\x00", "\ud800", b"id", ("id-3",)]
ids = st.sampled_from(IDS)
request_ids = st.sampled_from([None, "rid-1", "rid-2", "", 5, "r" * 201, "r\x00", b"rid"])
extra_keys = st.sampled_from([None, [], ["another way to say it"], [["k"]], [["k"], ["j"]],
                              "just a string", [""], [5], ["a\x00"], [[5]], [b"k"]])


def _call(verb: str, *strategies: Any, **named: Any) -> st.SearchStrategy[tuple]:
    return st.tuples(st.just(verb), st.tuples(*strategies), st.fixed_dictionaries(named))


CALLS = {
    "remember": _call("remember", texts, key=st.one_of(st.none(), texts), namespace=namespaces,
                      metadata=metadatas, request_id=request_ids, ids=ids,
                      extra_keys=extra_keys),
    "recall": _call("recall", queries, k=ints, namespace=namespaces, decode=flags,
                    filter=filters),
    "ask": _call("ask", queries, k=ints, namespace=namespaces,
                 max_new_tokens=st.sampled_from([None, 1, 2, 0, -1, 257, 10**30, "2", True,
                                                 2.0]),
                 filter=filters),
    "forget": _call("forget", st.one_of(queries, st.sampled_from(IDS)), namespace=namespaces),
    "forget_matching": _call("forget_matching", queries, namespace=namespaces,
                             threshold=fractions, margin=fractions),
    "forget_about": _call("forget_about", queries, namespace=namespaces, threshold=fractions,
                          limit=ints),
    "list": _call("list", namespace=namespaces, filter=filters, limit=ints, offset=ints),
    "get": _call("get", st.sampled_from(IDS + [None]), namespace=namespaces),
    "clear": _call("clear", namespace=namespaces),
}


# -- the four paths -------------------------------------------------------------------------------

class Paths:
    """The four ways in, each with its own store (or tenant), called alike."""

    def __init__(self, local: Any, url: str, served: Any = None) -> None:
        from larimar_memory.server import AsyncLarimarClient, LarimarClient

        self.local, self.served = local, served
        self.loop = asyncio.new_event_loop()
        self.clients = {
            "client": LarimarClient(url, KEYS["client"], namespace="default"),
            "async": AsyncLarimarClient(url, KEYS["async"], namespace="default"),
            "server": LarimarClient(url, KEYS["server"], namespace="default",
                                    check_inputs=False),
            # the server tenant's twin for calls JSON cannot carry unchecked: keeps its
            # store in step with the others
            "server checked": LarimarClient(url, KEYS["server"], namespace="default"),
        }

    def backend(self, path: str) -> Any:
        return self.local if path == "local" else self.clients[path]

    def run(self, path: str, verb: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        result = getattr(self.backend(path), verb)(*args, **kwargs)
        return self.loop.run_until_complete(result) if asyncio.iscoroutine(result) else result

    def snapshot(self, namespace: Any) -> Any:
        """What a refused call must leave as it was. In process: ``list`` of the namespace
        (or, for a name no call can reach, ``namespaces()``). The served store: every row of
        every tenant's namespaces, read from its database (one query instead of three
        ``list`` calls over HTTP, and it sees all namespaces, not only the call's)."""
        if namespace is None or is_namespace(namespace):
            local = [(f.id, f.text, f.metadata) for f in self.local.list(namespace=namespace)]
        else:
            local = sorted(self.local.namespaces())
        return local, self.served()

    def close(self) -> None:
        for name in ("client", "server", "server checked"):
            self.clients[name].close()
        self.loop.run_until_complete(self.clients["async"].aclose())
        self.loop.close()


def outcome(paths: Paths, path: str, verb: str, args: tuple, kwargs: dict[str, Any]) -> str:
    """'ok' or the library error's class name; anything else is a failure of the contract."""
    try:
        paths.run(path, verb, args, kwargs)
    except LarimarError as exc:
        return type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - what the test is looking for
        return f"RAW {type(exc).__name__}: {exc}"[:300]
    return "ok"


def wire_safe(value: Any) -> bool:
    """Whether JSON carries ``value`` as itself (no bytes, tuples, NaN or non-string keys):
    only such calls can be sent unchecked."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return json.loads(text) == value and _no_tuples(value)


def _no_tuples(value: Any) -> bool:
    if isinstance(value, tuple):
        return False
    if isinstance(value, list):
        return all(_no_tuples(v) for v in value)
    if isinstance(value, dict):
        return all(_no_tuples(v) for v in value.values())
    return not (isinstance(value, float) and not math.isfinite(value))


_QUERY_ARGS = {"list": ("limit", "offset"), "get": (), "clear": ()}


def sendable_unchecked(verb: str, args: tuple, kwargs: dict[str, Any]) -> bool:
    """Calls the unchecked client can put on the wire unchanged: JSON-safe bodies; query
    parameters that are ints (a query string cannot tell ``"5"`` from ``5``); the namespace
    and fact id (URL segments) are checked on every path."""
    body = {k: v for k, v in kwargs.items() if k != "namespace"}
    if verb in _QUERY_ARGS:
        numbers = [body.pop(name, None) for name in _QUERY_ARGS[verb]]
        if not all(n is None or (type(n) is int) for n in numbers):
            return False
    return wire_safe(list(args)) and wire_safe(body)


# -- fixtures -------------------------------------------------------------------------------------

_ROWS = ("SELECT namespace, id, text, key_text, metadata FROM larimar_facts ORDER BY namespace, "
         "id", "SELECT name, version FROM larimar_namespaces ORDER BY name")


def _reader(backend: str, store: str) -> Any:
    """A read-only connection to the served store (each query sees the latest commit) and a
    function that reads every fact and namespace version through it."""
    if backend == "sqlite":
        import sqlite3

        conn: Any = sqlite3.connect(f"file:{store}?mode=ro", uri=True, isolation_level=None)
    else:
        import psycopg

        conn = psycopg.connect(store, autocommit=True)

    def read() -> Any:
        return [conn.execute(q).fetchall() for q in _ROWS]

    return conn, read


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def paths(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          warm_imports: None) -> Iterator[Paths]:
    from larimar_memory.testing import tiny_larimar

    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    schemas: list[str] = []
    if request.param == "postgres":
        dsn = os.environ.get(PG_ENV)
        if not dsn:
            pytest.skip(f"{PG_ENV} is not set")
        from larimar_memory.store_postgres import PostgresStore

        schemas = ["fz_" + uuid.uuid4().hex[:10] for _ in range(2)]
        local_store: Any = PostgresStore(dsn, schema=schemas[0])
        sep = "&" if "?" in dsn else "?"
        served_store = f"{dsn}{sep}options=-csearch_path%3D{schemas[1]}"
        with PostgresStore(dsn, schema=schemas[1]):  # created before the server opens it
            pass
    else:
        local_store, served_store = tmp / "local.sqlite3", str(tmp / "served.sqlite3")
    local = tiny_larimar(local_store)
    server = SubprocessServer(served_store, tmp, keys=",".join(
        f"{KEYS[p]}:{t}" for p, t in TENANTS.items()))
    started = time.perf_counter()
    server.start()
    reader, read_served = _reader(request.param, served_store)
    out = Paths(local, server.url, read_served)
    STATS[f"{request.param}: server start (s)"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    try:
        yield out
    finally:
        STATS[f"{request.param}: fuzz time (s)"] = round(time.perf_counter() - started, 1)
        out.close()
        reader.close()
        server.stop()
        local.close()
        if request.param == "postgres":
            local_store.close()
            for schema in schemas:
                drop_schema(os.environ[PG_ENV], schema)
        print(f"\ncontract fuzz: {dict(STATS)}\nserver log tail: {server.log_tail(800)}")


# -- the test -------------------------------------------------------------------------------------

@pytest.mark.parametrize("verb", list(CALLS))
def test_every_path_answers_alike(paths: Paths, verb: str, request: pytest.FixtureRequest
                                  ) -> None:
    backend = request.node.callspec.params["paths"]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(CALLS[verb])
    def check(call: tuple) -> None:
        verb, args, kwargs = call
        namespace = kwargs.get("namespace")
        unchecked = sendable_unchecked(verb, args, kwargs)
        chosen = ["local", "client", "async", "server" if unchecked else "server checked"]
        STATS[f"{backend}: sent unchecked"] += unchecked
        before = paths.snapshot(namespace)
        outcomes = {p: outcome(paths, p, verb, args, kwargs) for p in chosen}
        STATS[f"{backend}: calls"] += 1
        raw = {p: o for p, o in outcomes.items() if o.startswith("RAW")}
        assert not raw, f"{verb}{args} {kwargs}: raw exceptions {raw}"
        assert len(set(outcomes.values())) == 1, f"{verb}{args} {kwargs}: {outcomes}"
        STATS[f"{backend}: {outcomes['local']}"] += 1
        if outcomes["local"] != "ok":
            STATS[f"{backend}: refused"] += 1
            assert paths.snapshot(namespace) == before, f"{verb}{args} {kwargs} changed a store"

    check()

