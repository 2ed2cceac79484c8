"""The HTTP API over one `Larimar`: remember, recall, ask, forget, list, export and clear per
namespace, with tenants isolated by API key.

Setup:
    ``pip install larimar-memory[server]``
Instantiate:
    ``settings = ServerSettings(api_keys={"<long random key>": "acme"})``
    ``app = create_app(Larimar(store="facts.sqlite3"), settings)``
    or ``larimar serve --api-keys-file keys.toml`` (uvicorn).
Use:
    ``curl -H 'Authorization: Bearer <key>' -d '{"text": "Alice lives in Lisbon."}'
    -H 'Content-Type: application/json' localhost:8000/v1/namespaces/notes/facts``

The core is blocking (torch, SQLite/PostgreSQL), so every core call runs in a worker thread under
a capacity limiter (``ServerSettings.max_concurrency``): the event loop keeps accepting requests,
answering health checks and metrics while the model works.
"""

# No ``from __future__ import annotations`` here: FastAPI resolves route annotations at runtime
# and `Tenant` is local to `create_app`.
import functools
import gc
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Header,
    Path,
    Query,
    Request,
    Response,
    Security,
)
from fastapi.responses import PlainTextResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .. import __version__, contract, scoping
from ..contract import MAX_LIST_LIMIT, MAX_OFFSET
from ..errors import ArgumentError
from ..names import NAMESPACE_RULE, check_namespace
from ..protocol import MemoryBackend
from ..types import (
    AskResult,
    ConversationResult,
    Fact,
    ForgetResult,
    MemoryLimits,
    RecallResult,
    RememberResult,
)
from .auth import ApiKeyConfigError, KeyRing, core_namespace, resolve_keys
from .auth import visible_namespaces as _visible
from .batching import MicroBatcher
from .errors import ApiError, install_error_handlers
from .limits import BodyLimitMiddleware
from .metrics import Metrics, MetricsMiddleware
from .paths import SegmentPathMiddleware, decode_segment
from .protocol import (
    API_PREFIX,
    FILTER_HELP,
    JSON_CONTENT_TYPES,
    REQUEST_ID_HEADER,
    UNAUTHORIZED,
    UNSUPPORTED_MEDIA_TYPE,
    AskRequest,
    ClearResponse,
    ErrorResponse,
    ExportResponse,
    FactHistory,
    FactList,
    ForgetAboutRequest,
    ForgetMatchingRequest,
    ForgetRequest,
    ForgetResponse,
    Health,
    NamespaceList,
    RecallRequest,
    RememberRequest,
)
from .settings import ServerSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "malformed JSON or an invalid request",
        401: "missing or unknown API key",
        404: "no such fact (in this tenant's namespace) or route",
        413: "request body too large",
        415: "the body is not JSON: send Content-Type: application/json",
        422: "input the memory cannot take (empty, too long, wrong type)",
        503: "store unavailable; retry",
    }.items()
}
_WRITE_ERRORS = {**_ERRORS, 409: {
    "model": ErrorResponse,
    "description": "namespace full, or a request id reused with different content"}}



def _namespace(namespace: Annotated[str, Path(
    min_length=1, description=f"one percent-encoded path segment ('/' as %2F); {NAMESPACE_RULE}",
)]) -> str:
    # Checked before the body, as in process (core_namespace checks the tenant's budget).
    return check_namespace(decode_segment(namespace))


def _fact_id(fact_id: Annotated[str, Path(
    min_length=1, description="a fact id, one percent-encoded path segment ('/' as %2F)",
)]) -> str:
    return decode_segment(fact_id)


Namespace = Annotated[str, Depends(_namespace)]
NS = API_PREFIX + "/namespaces/{namespace}"
FactId = Annotated[str, Depends(_fact_id)]
ScopeId = Annotated[str | None, Query(description="mem0's scoping: only facts stored with this id")]


class _State:
    """What the routes share: the memory, the thread limiter and the metrics."""

    def __init__(self, larimar: Any, settings: ServerSettings) -> None:
        self.larimar = larimar
        self.owned = larimar is None
        self.settings = settings
        self.limiter: anyio.CapacityLimiter | None = None
        self.metrics = Metrics(pending_purges=self._pending_purges,
                               cache_stats=self._cache_stats)
        self._batchers: dict[str, MicroBatcher | None] = {}

    @property
    def remember_batcher(self) -> MicroBatcher | None:
        """The remember collector, for a memory with ``remember_many``; None: call directly."""
        return self._batcher("remember_many", self._remember_batch)

    @property
    def recall_batcher(self) -> MicroBatcher | None:
        """The recall collector, for a memory with ``recall_many``; None: call directly."""
        return self._batcher("recall_many", self._recall_batch)

    def _batcher(self, method: str, run_batch: Any) -> MicroBatcher | None:
        if method not in self._batchers:
            usable = self.settings.micro_batching and callable(getattr(self.larimar, method,
                                                                       None))
            self._batchers[method] = MicroBatcher(
                run_batch, self.call, window_s=self.settings.batch_window_ms / 1000,
                max_batch=self.settings.max_batch,
            ) if usable else None
        return self._batchers[method]

    def _remember_batch(self, calls: list[Any]) -> list[Any]:
        return self._lone_or_many(calls, self.memory.remember, self.memory.remember_many)

    def _recall_batch(self, calls: list[Any]) -> list[Any]:
        return self._lone_or_many(calls, self.memory.recall, self.memory.recall_many)

    @staticmethod
    def _lone_or_many(calls: list[Any], one: Any, many: Any) -> list[Any]:
        """A lone call goes to the plain method as before (its first argument positional, the
        rest by name); several to its ``_many`` twin. Each caller gets its result or its own
        exception."""
        if len(calls) > 1:
            return list(many(calls))
        (_, first), *rest = calls[0].arguments().items()
        try:
            return [one(first, **dict(rest))]
        except Exception as exc:  # noqa: BLE001 - the caller's own error
            return [exc]

    def _pending_purges(self) -> float:
        """Forgets committed whose bytes the store has not purged yet (0 for stores that purge
        in the forget's own transaction)."""
        store = getattr(self.larimar, "store", None)
        pending = getattr(store, "pending_purges", None)
        if pending is None:
            return 0.0
        if callable(pending):
            pending = pending()
        return float(len(pending) if hasattr(pending, "__len__") else pending)

    def _cache_stats(self) -> dict[str, int]:
        """The namespace cache's figures; a memory without a cache (a test double) has none."""
        return self.memory.cache_stats()

    @property
    def memory(self) -> Any:  # a Larimar (any MemoryBackend with a ``store`` works)
        if self.larimar is None:  # only between app creation and startup
            raise ApiError(503, "NotReady", "the server is still loading the model; retry")
        return self.larimar

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking core call in a worker thread, at most `max_concurrency` at once."""
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self.limiter
        )


def _auth_dependency(settings: ServerSettings) -> Callable[..., Any]:
    """The dependency that turns request headers into the caller's tenant (None: no auth)."""
    if not settings.auth:
        async def no_auth() -> None:
            return None

        return no_auth
    keys = KeyRing(resolve_keys(settings.api_keys, settings.api_keys_file))
    if not len(keys):
        raise ApiKeyConfigError(
            "auth is on but no API keys are configured: pass --api-keys-file, set "
            "LARIMAR_API_KEYS=key:tenant,..., or start with --no-auth for local development"
        )
    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")
    challenge = {"WWW-Authenticate": "Bearer"}

    async def tenant(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
        api_key: Annotated[str | None, Security(header)] = None,
    ) -> str:
        presented = api_key or (credentials.credentials if credentials else None)
        if not presented:
            raise ApiError(401, UNAUTHORIZED, "missing API key: send 'Authorization: Bearer "
                           "<key>' or 'X-API-Key: <key>'", challenge)
        found = keys.tenant(presented)
        if found is None:
            raise ApiError(401, UNAUTHORIZED, "unknown API key; check the key you were given",
                           challenge)
        request.state.tenant = found  # lets error messages drop the tenant prefix
        return found

    return tenant


async def require_json(request: Request) -> None:
    """415 for a body that is not JSON (a missing Content-Type is read as JSON)."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_CONTENT_TYPES or (media.startswith("application/") and
                                       media.endswith("+json")):
        return
    raise ApiError(
        415, UNSUPPORTED_MEDIA_TYPE,
        f"the body was sent as {media or 'an empty Content-Type'!r}; send a JSON object with "
        "Content-Type: application/json",
    )


def _json_query(raw: str | None, name: str) -> Any:
    """The JSON value of a query parameter (``?filter={"speaker":"Ana"}``); the contract
    checks what it is."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ArgumentError(
            f"query parameter {name!r} must be a JSON object of metadata fields, e.g. "
            f'{name}={{"speaker":"Ana"}} (URL-encoded); it is not JSON: {exc}'
        ) from None


def create_app(larimar: MemoryBackend | None, settings: ServerSettings | None = None
               ) -> FastAPI:
    """The FastAPI app serving ``larimar``; with None, it opens the store and model named in
    ``settings`` at startup and closes them at shutdown."""
    settings = settings or ServerSettings()
    state = _State(larimar, settings)
    tenant_of = _auth_dependency(settings)
    Tenant = Annotated[str | None, Depends(tenant_of)]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.limiter = anyio.CapacityLimiter(settings.max_concurrency)
        if state.larimar is None:
            from .factory import build_larimar

            started = time.perf_counter()
            state.larimar = await anyio.to_thread.run_sync(build_larimar, settings)
            logger.info("model and store ready in %.1f s", time.perf_counter() - started)
            # The model stack is ~450,000 long-lived objects: each full collection scanned them
            # all (0.4 s at a time on 2 cores, a stall of every request). Frozen, a collection
            # scans only what requests allocate.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if state.owned and state.larimar is not None:
                state.larimar.close()
                state.larimar.store.close()
                state.larimar = None

    app = FastAPI(
        title="larimar-memory",
        version=__version__,
        description="Episodic memory for LLM agents: one-shot writes, exact forgetting, "
        "memory-conditioned decoding. Namespaces are private to the API key's tenant.",
        lifespan=lifespan,
    )
    app.state.larimar_state = state
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)  # counts 413s too
    app.add_middleware(SegmentPathMiddleware)  # outermost: routes %2F inside a namespace

    @app.get("/healthz", response_model=Health, tags=["ops"],
             responses={503: {"model": Health, "description": "store unreachable"}})
    async def healthz(response: Response) -> Health:
        """Liveness and store reachability (no auth)."""
        try:
            await state.call(state.memory.store.version, "__healthz__")
        except Exception as exc:  # any failure means "not healthy", never a 500
            response.status_code = 503
            return Health(status="unavailable", store=f"{type(exc).__name__}: {exc}"[:300])
        return Health(status="ok", store="ok")

    metrics_deps = [Depends(tenant_of)] if settings.metrics_auth else []

    @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"],
             dependencies=metrics_deps)
    async def metrics() -> PlainTextResponse:
        """Prometheus text exposition: requests by route and status, latency histograms,
        requests in flight, pending purges."""
        # Collecting reads the store (pending purges): off the event loop, outside the limiter
        # so a busy model never blocks a scrape.
        body = await anyio.to_thread.run_sync(state.metrics.render)
        return PlainTextResponse(body, media_type=state.metrics.content_type)

    # Full paths on the routes (no include prefix): the route template is the metrics label.
    app.include_router(_memory_router(state, Tenant))
    return app


def _memory_router(state: _State, Tenant: Any) -> APIRouter:
    router = APIRouter(tags=["memory"], responses=_ERRORS)
    JSON = [Depends(require_json)]

    def public(fact: Fact, namespace: str) -> Fact:
        # The core sees "tenant/ns"; callers only ever see their own name for it.
        return fact.model_copy(update={"namespace": namespace})

    def public_opt(fact: Fact | None, namespace: str) -> Fact | None:
        return None if fact is None else public(fact, namespace)

    def public_forget(result: ForgetResult, namespace: str) -> ForgetResult:
        return result.model_copy(update={
            "forgotten": [public(f, namespace) for f in result.forgotten],
            "candidates": [c.model_copy(update={"fact": public(c.fact, namespace)})
                           for c in result.candidates],
        })

    @router.get(API_PREFIX + "/limits", response_model=MemoryLimits)
    async def limits(tenant: Tenant) -> MemoryLimits:
        """What one fact, key or query may hold, so callers can split input before sending."""
        return await state.call(state.memory.limits)

    @router.get(API_PREFIX + "/namespaces", response_model=NamespaceList)
    async def namespaces(tenant: Tenant) -> NamespaceList:
        """The caller's namespaces that hold facts."""
        names = await state.call(state.memory.namespaces)
        return NamespaceList(namespaces=_visible(tenant, names))

    @router.post(NS + "/facts", response_model=ConversationResult, status_code=201,
                 dependencies=JSON, responses={**_WRITE_ERRORS, 200: {
                     "model": ConversationResult,
                     "description": "repeated request id: nothing written, the first ids"}})
    async def remember(
        namespace: Namespace, body: RememberRequest, tenant: Tenant, response: Response,
        idempotency_key: Annotated[
            str | None, Header(alias=REQUEST_ID_HEADER, min_length=1, max_length=200)
        ] = None,
    ) -> RememberResult:
        """Write facts in one shot; one outcome per text ("written", "replaced",
        "duplicate"). A repeated request id writes nothing and returns the ids of the first
        request (status 200), so retries never write twice; the same id with different content
        is a 409. With ``messages`` instead of ``text``: a conversation applied as
        ``Larimar.remember(messages=...)`` (forgotten and skipped sentences reported)."""
        memory = state.memory
        if body.messages is not None:
            result = await state.call(
                memory.remember, body.text, key=body.key, ids=body.ids,
                extra_keys=body.extra_keys,
                messages=[m.model_dump(exclude_none=True) for m in body.messages],
                namespace=core_namespace(tenant, namespace), metadata=body.metadata,
                request_id=body.request_id or idempotency_key, **scoping.given_ids(body),
            )
            return result.model_copy(update={
                "forgotten": [public(f, namespace) for f in result.forgotten],
                "ambiguous": [public_forget(r, namespace) for r in result.ambiguous],
            })
        arguments = {"key": body.key, "namespace": core_namespace(tenant, namespace),
                     "metadata": body.metadata,
                     "request_id": body.request_id or idempotency_key, "ids": body.ids,
                     "extra_keys": body.extra_keys, **scoping.given_ids(body)}
        batcher = state.remember_batcher
        if batcher is not None:  # concurrent callers share one embedder pass and transaction
            from ..service import RememberCall

            result = await batcher.submit(RememberCall(text=body.text, **arguments))
        else:
            result = await state.call(memory.remember, body.text, **arguments)
        if result.duplicate_request:
            response.status_code = 200
        outcomes = [
            o.model_copy(update={"replaced": public_opt(o.replaced, namespace)})
            for o in result.outcomes
        ]
        return result.model_copy(update={"outcomes": outcomes})

    @router.get(NS + "/facts", response_model=FactList)
    async def list_facts(
        namespace: Namespace, tenant: Tenant,
        limit: Annotated[int | None, Query(
            description=f"page size, 0 to the server's max_list_limit (at most {MAX_LIST_LIMIT})",
        )] = None,
        offset: Annotated[int, Query(description=f"0 to {MAX_OFFSET}")] = 0,
        filter: Annotated[str | None, Query(
            max_length=4096,
            description="JSON object, " + FILTER_HELP,
        )] = None,
        user_id: ScopeId = None, agent_id: ScopeId = None, run_id: ScopeId = None,
    ) -> FactList:
        """Stored facts, oldest first (an unknown namespace is empty)."""
        where = contract.list_args(_json_query(filter, "filter"), limit, offset,
                                   state.settings.max_list_limit)
        facts = await state.call(
            state.memory.list, namespace=core_namespace(tenant, namespace),
            filter=where or None, limit=limit, offset=offset,
            **scoping.check_scope(user_id, agent_id, run_id),
        )
        return FactList(namespace=namespace, facts=[public(f, namespace) for f in facts])

    @router.delete(NS + "/facts", response_model=ClearResponse)
    async def clear(
        namespace: Namespace, tenant: Tenant,
        filter: Annotated[str | None, Query(
            max_length=4096, description="JSON object: delete only the facts it keeps",
        )] = None,
        user_id: ScopeId = None, agent_id: ScopeId = None, run_id: ScopeId = None,
    ) -> ClearResponse:
        """Delete every fact of the namespace, or only those of a filter or scope (mem0's
        ``delete_all(user_id=...)``)."""
        where = contract.check_filter(_json_query(filter, "filter"))
        n = await state.call(state.memory.clear, namespace=core_namespace(tenant, namespace),
                             filter=where or None,
                             **scoping.check_scope(user_id, agent_id, run_id))
        return ClearResponse(deleted=n)

    @router.get(NS + "/facts/{fact_id}", response_model=Fact)
    async def get_fact(namespace: Namespace, fact_id: FactId, tenant: Tenant) -> Fact:
        fact = await state.call(
            state.memory.get, contract.check_name(fact_id, "fact_id"),
            namespace=core_namespace(tenant, namespace),
        )
        return public(fact, namespace)

    @router.get(NS + "/facts/{fact_id}/history", response_model=FactHistory)
    async def history(namespace: Namespace, fact_id: FactId, tenant: Tenant) -> FactHistory:
        """What happened to a fact, oldest first (written, updated, forgotten); kept after a
        forget, never with the fact's text."""
        fact_id = contract.check_name(fact_id, "fact_id")
        events = await state.call(state.memory.history, fact_id,
                                  namespace=core_namespace(tenant, namespace))
        return FactHistory(namespace=namespace, fact_id=fact_id, events=[
            e.model_copy(update={"namespace": namespace}) for e in events])

    async def _forget(namespace: str, target: str, tenant: str | None,
                      **where: Any) -> ForgetResponse:
        removed = await state.call(
            state.memory.forget, target, namespace=core_namespace(tenant, namespace), **where
        )
        return ForgetResponse(forgotten=[public(f, namespace) for f in removed])

    @router.delete(NS + "/facts/{fact_id}", response_model=ForgetResponse,
                   responses=_WRITE_ERRORS)
    async def forget_by_id(namespace: Namespace, fact_id: FactId, tenant: Tenant,
                           user_id: ScopeId = None, agent_id: ScopeId = None,
                           run_id: ScopeId = None) -> ForgetResponse:
        """Forget one fact: the exact −1 update, then its text leaves the store."""
        return await _forget(namespace, fact_id, tenant,
                             **scoping.check_scope(user_id, agent_id, run_id))

    @router.post(NS + "/forget", response_model=ForgetResponse,
                 dependencies=JSON, responses=_WRITE_ERRORS)
    async def forget(namespace: Namespace, body: ForgetRequest, tenant: Tenant
                     ) -> ForgetResponse:
        """Forget by id or by exact text (every fact with that text)."""
        return await _forget(namespace, body.fact, tenant, filter=body.filter,
                             **scoping.given_ids(body))

    @router.post(NS + "/forget-matching", response_model=ForgetResult,
                 dependencies=JSON, responses=_WRITE_ERRORS)
    async def forget_matching(namespace: Namespace, body: ForgetMatchingRequest,
                              tenant: Tenant) -> ForgetResult:
        """Forget the one stored fact a description clearly points to; when none does (too
        weak, or two about as good), nothing is deleted and the candidates come back."""
        result = await state.call(
            state.memory.forget_matching, body.description,
            namespace=core_namespace(tenant, namespace), threshold=body.threshold,
            margin=body.margin, filter=body.filter, **scoping.given_ids(body),
        )
        return public_forget(result, namespace)

    @router.post(NS + "/forget-about", response_model=ForgetResult,
                 dependencies=JSON, responses=_WRITE_ERRORS)
    async def forget_about(namespace: Namespace, body: ForgetAboutRequest,
                           tenant: Tenant) -> ForgetResult:
        """Forget every stored fact about something ("my sister")."""
        result = await state.call(
            state.memory.forget_about, body.description,
            namespace=core_namespace(tenant, namespace), threshold=body.threshold,
            limit=body.limit, filter=body.filter, **scoping.given_ids(body),
        )
        return public_forget(result, namespace)

    @router.post(NS + "/recall", response_model=RecallResult, dependencies=JSON)
    async def recall(namespace: Namespace, body: RecallRequest, tenant: Tenant
                     ) -> RecallResult:
        """Up to k facts the query addresses, best first, each read back from the memory."""
        arguments = {"k": body.k, "namespace": core_namespace(tenant, namespace),
                     "decode": body.decode, "filter": body.filter, **scoping.given_ids(body)}
        batcher = state.recall_batcher
        if batcher is not None:  # concurrent callers share one embedder and one reading pass
            from ..service import RecallCall

            result = await batcher.submit(RecallCall(query=body.query, **arguments))
        else:
            result = await state.call(state.memory.recall, body.query, **arguments)
        hits = [h.model_copy(update={"fact": public(h.fact, namespace)}) for h in result.hits]
        return result.model_copy(
            update={"fact": public_opt(result.fact, namespace), "hits": hits}
        )

    @router.post(NS + "/ask", response_model=AskResult, dependencies=JSON)
    async def ask(namespace: Namespace, body: AskRequest, tenant: Tenant) -> AskResult:
        """Answer from memory when the question is in scope, plainly otherwise."""
        result = await state.call(
            state.memory.ask, body.question, k=body.k,
            namespace=core_namespace(tenant, namespace), max_new_tokens=body.max_new_tokens,
            filter=body.filter, **scoping.given_ids(body),
        )
        return result.model_copy(update={
            "fact": public_opt(result.fact, namespace),
            "facts": [public(f, namespace) for f in result.facts],
        })

    @router.get(NS + "/export", response_model=ExportResponse)
    async def export(namespace: Namespace, tenant: Tenant) -> ExportResponse:
        """Every fact as text, id, key text and metadata; never embeddings."""
        facts = await state.call(state.memory.list, namespace=core_namespace(tenant, namespace))
        return ExportResponse(
            namespace=namespace, exported_at=time.time(), count=len(facts),
            facts=[public(f, namespace) for f in facts],
        )

    return router
