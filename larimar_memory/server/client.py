"""`LarimarClient` / `AsyncLarimarClient`: the `Larimar` interface over HTTP.

Same method names, arguments, result types and exception classes as the local object, so code
written against `Larimar` runs against a server by swapping the constructor.

Setup:
    ``pip install larimar-memory[server]`` (the client itself needs only httpx)
Instantiate:
    ``memory = LarimarClient("http://127.0.0.1:8000", api_key="...", namespace="alice")``
Use:
    ``ids = memory.remember("Alice's favourite colour is green.").ids``
    ``memory.ask("What is Alice's favourite colour?").answer``
    ``memory.forget(ids[0])``

Transient failures (connection refused or reset, 502/503/504) are retried with exponential
backoff and jitter. ``remember`` sends one request id (a uuid, or yours) on every attempt, and
the server writes a request id at most once, so a retry after a lost response never writes
twice. ``forget`` is only resent when the request cannot have reached the server (connection
refused) or the server said it failed (503): resending a forget that may have succeeded would
turn success into "not found".
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import random
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from typing_extensions import Unpack

from .. import contract
from ..errors import ArgumentError, LarimarError, TextInputError
from ..names import check_namespace
from ..protocol import Filter, Metadata, update_arguments
from ..scoping import Scope, given_ids, scope_of
from ..types import (
    AskResult,
    ConversationResult,
    Fact,
    FactEvent,
    ForgetResult,
    MemoryLimits,
    RecallResult,
    RememberResult,
)
from ..values import check_json_value
from .protocol import (
    API_PREFIX,
    CORE_ERRORS,
    FORBIDDEN,
    INVALID_JSON,
    NOT_RETRYABLE,
    PAYLOAD_TOO_LARGE,
    UNAUTHORIZED,
    UNSUPPORTED_MEDIA_TYPE,
    ClearResponse,
    ExportResponse,
    FactHistory,
    FactList,
    ForgetResponse,
    NamespaceList,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({502, 503, 504})


class LarimarHTTPError(LarimarError):
    """The server answered with an error that has no core exception class (auth, routing)."""

    def __init__(self, status_code: int, error_type: str, message: str) -> None:
        super().__init__(f"HTTP {status_code} {error_type}: {message}")
        self.status_code, self.error_type, self.message = status_code, error_type, message


class AuthenticationError(LarimarHTTPError, PermissionError):
    """401/403: the API key is missing, unknown, or not allowed to do this."""


class LarimarConnectionError(LarimarError, ConnectionError):
    """The server could not be reached (after all retries)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: attempt ``n`` waits ``min(max_delay, base_delay·2ⁿ)`` scaled by a
    random factor in [0.5, 1] (so many clients do not retry in lock-step)."""

    retries: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        wait = min(self.max_delay, self.base_delay * 2**attempt) * (0.5 + random.random() / 2)
        if retry_after:
            try:
                wait = max(wait, min(self.max_delay, float(retry_after)))
            except ValueError:
                pass
        return wait


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One API call: what to send, whether resending after an ambiguous failure is safe, and
    how to turn the JSON answer into the result type."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: dict[str, Any] | None = None
    resend_safe: bool = True

    def content(self) -> bytes | None:
        """The JSON body as UTF-8; a string JSON can only carry escaped (a lone surrogate,
        which the server refuses) is sent as an escape instead of failing here."""
        if self.json is None:
            return None
        try:
            return json.dumps(self.json, ensure_ascii=False, allow_nan=False).encode()
        except UnicodeEncodeError:
            return json.dumps(self.json, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:  # only with check_inputs=False
            raise TextInputError(f"the request cannot be sent as JSON ({exc}); nothing was "
                                 "sent") from None


_JSON_HEADERS = {"Content-Type": "application/json"}


def _error_from(response: httpx.Response) -> LarimarError:
    """The exception the local `Larimar` would have raised for this error response."""
    try:
        body = response.json()["error"]
        type_, message = str(body["type"]), str(body["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        type_, message = "HTTPError", response.text[:500] or response.reason_phrase
    status = response.status_code
    cls = CORE_ERRORS.get(type_) or _TRANSPORT_ERRORS.get(type_)
    if cls is not None:
        exc: LarimarError = cls(message)
    elif status in (401, 403) or type_ in (UNAUTHORIZED, FORBIDDEN):
        exc = AuthenticationError(status, type_, message)
    else:
        exc = LarimarHTTPError(status, type_, message)
    exc.status_code = status  # type: ignore[attr-defined]
    return exc


_TRANSPORT_ERRORS: dict[str, type[LarimarError]] = {
    # HTTP-layer refusals of a request's form, as the library error a caller handles: a body
    # the server could not parse is a wrong argument, one too large (or not JSON) is text the
    # memory cannot take.
    INVALID_JSON: ArgumentError,
    PAYLOAD_TOO_LARGE: TextInputError,
    UNSUPPORTED_MEDIA_TYPE: TextInputError,
}


def _error_type(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["type"])
    except (ValueError, KeyError, TypeError):
        return None


def _json_checked(value: Any, what: str) -> Any:
    """``value`` if it survives JSON as itself: the local `Larimar` refuses NaN, non-string
    keys and lone surrogates, so the client refuses them before sending (json would turn an int
    key into a string and NaN into invalid JSON)."""
    if value is None:
        return None
    try:
        return check_json_value(value, what)
    except ValueError as exc:
        raise TextInputError(f"{exc}; nothing was sent") from None


def _query_value(value: Any) -> str:
    """A query parameter as JSON writes it (``true``, not Python's ``True``)."""
    return value if isinstance(value, str) else json.dumps(value)


def _resendable(exc: httpx.TransportError, call: _Call[Any]) -> bool:
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return True  # the request never reached the server
    return call.resend_safe


def _filter_query(filter: Filter) -> str:
    """A filter as the ``filter`` query parameter of a GET or DELETE."""
    return json.dumps(filter, allow_nan=False, separators=(",", ":"))


def _segment(name: str) -> str:
    """A name as one URL path segment: '/' as %2F, and '.' or '..' escaped, which an HTTP
    library would otherwise read as a relative path."""
    segment = quote(name, safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


class _Api:
    """Builds the calls, checking every argument with the input contract first (the same
    checks and errors as in process); shared by the sync and async clients. ``check=False``
    leaves the arguments of bodies and queries to the server (tests of its contract)."""

    def __init__(self, namespace: str, check: bool = True) -> None:
        self.namespace, self.check = namespace, check

    def _ns(self, namespace: str | None) -> str:
        name = check_namespace(self.namespace if namespace is None else namespace)
        return f"{API_PREFIX}/namespaces/{_segment(name)}"

    def remember(
        self, text: str | builtins.list[str] | None = None, *,
        messages: builtins.list[dict[str, Any]] | None = None,
        key: str | builtins.list[str] | None = None,
        namespace: str | None = None, metadata: Metadata | builtins.list[Metadata] | None = None,
        request_id: str | None = None, ids: str | builtins.list[str] | None = None,
        extra_keys: builtins.list[str] | builtins.list[builtins.list[str]] | None = None,
        scope: Scope | None = None,
    ) -> _Call[RememberResult]:
        path = f"{self._ns(namespace)}/facts"
        if self.check:
            contract.remember_args(text, messages=messages, key=key, metadata=metadata,
                                   request_id=request_id, ids=ids, extra_keys=extra_keys)
        parse = (RememberResult.model_validate if messages is None
                 else ConversationResult.model_validate)
        body = {"text": text, "key": key,
                "messages": _json_checked(messages, "messages"),  # may hold more than checked
                "metadata": metadata,
                "request_id": request_id or uuid.uuid4().hex,  # one id for every retry
                "ids": ids, "extra_keys": extra_keys, **self._scope(scope)}
        return _Call("POST", path, parse, {k: v for k, v in body.items() if v is not None})

    def recall(
        self, query: str, *, k: int = 1, namespace: str | None = None, decode: bool = True,
        filter: Filter | None = None, scope: Scope | None = None,
    ) -> _Call[RecallResult]:
        path = f"{self._ns(namespace)}/recall"
        if self.check:
            contract.recall_args(query, k, decode, filter)
        return _Call("POST", path, RecallResult.model_validate,
                     {"query": query, "k": k, "decode": decode, "filter": filter,
                      **self._scope(scope)})

    def ask(
        self, question: str, *, k: int | None = None, namespace: str | None = None,
        max_new_tokens: int | None = None, filter: Filter | None = None,
        scope: Scope | None = None,
    ) -> _Call[AskResult]:
        path = f"{self._ns(namespace)}/ask"
        if self.check:
            contract.ask_args(question, k, max_new_tokens, filter)
        return _Call("POST", path, AskResult.model_validate,
                     {"question": question, "k": k,
                      "max_new_tokens": max_new_tokens,
                      "filter": filter, **self._scope(scope)})

    def forget(self, fact: str, *, namespace: str | None = None, filter: Filter | None = None,
               scope: Scope | None = None) -> _Call[builtins.list[Fact]]:
        path = f"{self._ns(namespace)}/forget"
        if self.check:
            contract.check_text(fact, "fact")
            contract.check_filter(filter)
        return _Call("POST", path, lambda j: ForgetResponse.model_validate(j).forgotten,
                     {"fact": fact, "filter": filter, **self._scope(scope)},
                     resend_safe=False)

    def forget_matching(
        self, description: str, *, namespace: str | None = None, threshold: float | None = None,
        margin: float | None = None, filter: Filter | None = None, scope: Scope | None = None,
    ) -> _Call[ForgetResult]:
        path = f"{self._ns(namespace)}/forget-matching"
        if self.check:
            contract.forget_matching_args(description, threshold, margin)
            contract.check_filter(filter)
        return _Call("POST", path, ForgetResult.model_validate,
                     {"description": description, "threshold": threshold, "margin": margin,
                      "filter": filter, **self._scope(scope)},
                     resend_safe=False)

    def forget_about(
        self, description: str, *, namespace: str | None = None, threshold: float | None = None,
        limit: int = 50, filter: Filter | None = None, scope: Scope | None = None,
    ) -> _Call[ForgetResult]:
        path = f"{self._ns(namespace)}/forget-about"
        if self.check:
            contract.forget_about_args(description, threshold, limit)
            contract.check_filter(filter)
        return _Call("POST", path, ForgetResult.model_validate,
                     {"description": description, "threshold": threshold, "limit": limit,
                      "filter": filter, **self._scope(scope)},
                     resend_safe=False)

    def list(
        self, *, namespace: str | None = None, filter: Filter | None = None,
        limit: int | None = None, offset: int = 0, scope: Scope | None = None,
    ) -> _Call[builtins.list[Fact]]:
        path = f"{self._ns(namespace)}/facts"
        if self.check:
            contract.list_args(filter, limit, offset)
        params: dict[str, Any] = {"offset": _query_value(offset), **self._scope(scope)}
        if limit is not None:
            params["limit"] = _query_value(limit)
        if filter is not None:
            params["filter"] = _filter_query(filter)
        return _Call("GET", path, lambda j: FactList.model_validate(j).facts, params=params)

    def get(self, fact_id: str, *, namespace: str | None = None) -> _Call[Fact]:
        path = self._ns(namespace)  # a path segment is checked even with check=False
        return _Call("GET", f"{path}/facts/{_segment(contract.check_name(fact_id, 'fact_id'))}",
                     Fact.model_validate)

    def history(self, fact_id: str, *, namespace: str | None = None
                ) -> _Call[builtins.list[FactEvent]]:
        path = self._ns(namespace)
        return _Call("GET", f"{path}/facts/{_segment(contract.check_name(fact_id, 'fact_id'))}"
                     "/history", lambda j: FactHistory.model_validate(j).events)

    def clear(self, *, namespace: str | None = None, filter: Filter | None = None,
              scope: Scope | None = None) -> _Call[int]:
        params: dict[str, Any] = self._scope(scope)
        if filter is not None:
            if self.check:
                contract.check_filter(filter)
            params["filter"] = _filter_query(filter)
        return _Call("DELETE", f"{self._ns(namespace)}/facts",
                     lambda j: ClearResponse.model_validate(j).deleted, params=params or None)

    def _scope(self, scope: Scope | None) -> dict[str, str]:
        """The scope ids to send (checked here unless the server is to check them)."""
        given = given_ids(scope or {})
        return scope_of(given) if self.check else given  # type: ignore[return-value]

    def export(self, *, namespace: str | None = None) -> _Call[ExportResponse]:
        return _Call("GET", f"{self._ns(namespace)}/export", ExportResponse.model_validate)

    def limits(self) -> _Call[MemoryLimits]:
        return _Call("GET", f"{API_PREFIX}/limits", MemoryLimits.model_validate)

    def namespaces(self) -> _Call[builtins.list[str]]:
        return _Call("GET", f"{API_PREFIX}/namespaces",
                     lambda j: NamespaceList.model_validate(j).namespaces)

    def health(self) -> _Call[dict[str, Any]]:
        return _Call("GET", "/healthz", dict)


class _Base:
    def __init__(
        self, base_url: str, api_key: str | None, namespace: str, timeout: float,
        retry: RetryPolicy | None, headers: dict[str, str] | None, check_inputs: bool,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._api = _Api(namespace, check_inputs)
        self._headers = {"User-Agent": "larimar-memory-client", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @property
    def namespace(self) -> str:
        return self._api.namespace

    def _outcome(self, call: _Call[T], response: httpx.Response) -> tuple[bool, T | None]:
        """(retry?, result): raises for a final error response."""
        if response.is_success:
            return False, call.parse(response.json())
        if response.status_code in RETRY_STATUSES and _error_type(response) not in NOT_RETRYABLE:
            return True, None
        raise _error_from(response)

    def _give_up(self, call: _Call[Any], last: BaseException | httpx.Response) -> LarimarError:
        if isinstance(last, httpx.Response):
            return _error_from(last)
        return LarimarConnectionError(
            f"{call.method} {self.base_url}{call.path} failed after {self.retry.retries + 1} "
            f"attempts: {type(last).__name__}: {last}. Is the server running at "
            f"{self.base_url}?"
        )


class LarimarClient(_Base):
    """Blocking client with the `Larimar` interface, plus ``a*`` coroutines that use an
    httpx.AsyncClient of the event loop that calls them (one per loop: an httpx.AsyncClient's
    connections belong to the loop that opened them, and ``asyncio.run`` closes its loop)."""

    def __init__(
        self, base_url: str = DEFAULT_URL, api_key: str | None = None, *,
        namespace: str = "default", timeout: float = 120.0, retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None, transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None, check_inputs: bool = True,
    ) -> None:
        """``check_inputs=False`` sends arguments unchecked (the server refuses bad ones with
        the same errors); for testing a server's input contract."""
        super().__init__(base_url, api_key, namespace, timeout, retry, headers, check_inputs)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )
        self._async: AsyncLarimarClient | None = None
        self._async_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._async_transport = async_transport

    def _send(self, call: _Call[T]) -> T:
        last: BaseException | httpx.Response | None = None
        for attempt in range(self.retry.retries + 1):
            if attempt:
                retry_after = last.headers.get("Retry-After") if isinstance(
                    last, httpx.Response) else None
                time.sleep(self.retry.delay(attempt - 1, retry_after))
            try:
                response = self._http.request(
                    call.method, call.path, content=call.content(), params=call.params,
                    headers=_JSON_HEADERS if call.json is not None else None,
                )
            except httpx.TransportError as exc:
                if not _resendable(exc, call):
                    raise LarimarConnectionError(
                        f"{call.method} {call.path}: connection lost after the request was "
                        f"sent ({exc}); it may or may not have taken effect"
                    ) from exc
                logger.debug("attempt %d of %s failed: %r", attempt + 1, call.path, exc)
                last = exc
                continue
            retry, result = self._outcome(call, response)
            if not retry:
                return result  # type: ignore[return-value]
            last = response
        assert last is not None
        raise self._give_up(call, last)

    # -- the Larimar interface ---------------------------------------------------------------

    def limits(self) -> MemoryLimits:
        """What one fact, key or query may hold on this server."""
        return self._send(self._api.limits())

    def remember(
        self, text: str | builtins.list[str] | None = None, *,
        messages: builtins.list[dict[str, Any]] | None = None,
        key: str | builtins.list[str] | None = None,
        namespace: str | None = None, metadata: Metadata | builtins.list[Metadata] | None = None,
        request_id: str | None = None, ids: str | builtins.list[str] | None = None,
        extra_keys: builtins.list[str] | builtins.list[builtins.list[str]] | None = None,
        **scope: Unpack[Scope],
    ) -> RememberResult:
        """Write facts (or apply ``messages``), as `Larimar.remember`; without ``request_id``
        one is generated and reused by every retry of this call. ``user_id`` / ``agent_id``
        / ``run_id`` scope this and every verb that reads or forgets, as in `Larimar`."""
        return self._send(self._api.remember(text, messages=messages, key=key,
                                             namespace=namespace,
                                             metadata=metadata, request_id=request_id, ids=ids,
                                             extra_keys=extra_keys, scope=scope))

    def recall(
        self, query: str, *, k: int = 1, namespace: str | None = None, decode: bool = True,
        filter: Filter | None = None, **scope: Unpack[Scope],
    ) -> RecallResult:
        return self._send(self._api.recall(query, k=k, namespace=namespace, decode=decode,
                                           filter=filter, scope=scope))

    def ask(
        self, question: str, *, k: int | None = None, namespace: str | None = None,
        max_new_tokens: int | None = None, filter: Filter | None = None,
        **scope: Unpack[Scope],
    ) -> AskResult:
        return self._send(self._api.ask(question, k=k, namespace=namespace,
                                        max_new_tokens=max_new_tokens, filter=filter,
                                        scope=scope))

    def forget(self, fact: str, *, namespace: str | None = None, filter: Filter | None = None,
               **scope: Unpack[Scope]) -> builtins.list[Fact]:
        return self._send(self._api.forget(fact, namespace=namespace, filter=filter,
                                           scope=scope))

    def forget_matching(self, description: str, *, namespace: str | None = None,
                        threshold: float | None = None, margin: float | None = None,
                        filter: Filter | None = None, **scope: Unpack[Scope]) -> ForgetResult:
        return self._send(self._api.forget_matching(description, namespace=namespace,
                                                    threshold=threshold, margin=margin,
                                                    filter=filter, scope=scope))

    def forget_about(self, description: str, *, namespace: str | None = None,
                     threshold: float | None = None, limit: int = 50,
                     filter: Filter | None = None, **scope: Unpack[Scope]) -> ForgetResult:
        return self._send(self._api.forget_about(description, namespace=namespace,
                                                 threshold=threshold, limit=limit,
                                                 filter=filter, scope=scope))

    def list(
        self, *, namespace: str | None = None, filter: Filter | None = None,
        limit: int | None = None, offset: int = 0, **scope: Unpack[Scope],
    ) -> builtins.list[Fact]:
        return self._send(self._api.list(namespace=namespace, filter=filter, limit=limit,
                                         offset=offset, scope=scope))

    def get(self, fact_id: str, *, namespace: str | None = None) -> Fact:
        return self._send(self._api.get(fact_id, namespace=namespace))

    def update(self, fact_id: str, text: str, *, namespace: str | None = None,
               metadata: Metadata | None = None) -> RememberResult:
        """As `Larimar.update`: the fact read, then written again under its id."""
        fact = self.get(fact_id, namespace=namespace)
        return self.remember(text, namespace=namespace,
                             **update_arguments(fact, text, metadata))

    def history(self, fact_id: str, *, namespace: str | None = None
                ) -> builtins.list[FactEvent]:
        """As `Larimar.history`: a fact's events, oldest first, without its text."""
        return self._send(self._api.history(fact_id, namespace=namespace))

    def clear(self, *, namespace: str | None = None, filter: Filter | None = None,
              **scope: Unpack[Scope]) -> int:
        return self._send(self._api.clear(namespace=namespace, filter=filter, scope=scope))

    def namespaces(self) -> builtins.list[str]:
        return self._send(self._api.namespaces())

    def export(self, *, namespace: str | None = None) -> ExportResponse:
        return self._send(self._api.export(namespace=namespace))

    def health(self) -> dict[str, Any]:
        return self._send(self._api.health())

    # -- async variants, as on Larimar ----------------------------------------------------------

    def _aclient(self) -> AsyncLarimarClient:
        """The running loop's async client: a new one when the loop is not the last one's
        (whose connections, if that loop is closed, can be neither used nor closed)."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is None or self._async_loop() is not loop:
            self._async_loop = weakref.ref(loop)
            self._async = AsyncLarimarClient(
                self.base_url, None, namespace=self.namespace, timeout=self.timeout,
                retry=self.retry, headers=self._headers, transport=self._async_transport,
                check_inputs=self._api.check,
            )
        return self._async

    async def aremember(self, text: str | builtins.list[str] | None = None,
                        **kwargs: Any) -> RememberResult:
        return await self._aclient().remember(text, **kwargs)

    async def arecall(self, query: str, **kwargs: Any) -> RecallResult:
        return await self._aclient().recall(query, **kwargs)

    async def aask(self, question: str, **kwargs: Any) -> AskResult:
        return await self._aclient().ask(question, **kwargs)

    async def aforget(self, fact: str, **kwargs: Any) -> builtins.list[Fact]:
        return await self._aclient().forget(fact, **kwargs)

    async def aforget_matching(self, description: str, **kwargs: Any) -> ForgetResult:
        return await self._aclient().forget_matching(description, **kwargs)

    async def aforget_about(self, description: str, **kwargs: Any) -> ForgetResult:
        return await self._aclient().forget_about(description, **kwargs)

    async def alist(self, **kwargs: Any) -> builtins.list[Fact]:
        return await self._aclient().list(**kwargs)

    async def aget(self, fact_id: str, **kwargs: Any) -> Fact:
        return await self._aclient().get(fact_id, **kwargs)

    async def aupdate(self, fact_id: str, text: str, **kwargs: Any) -> RememberResult:
        return await self._aclient().update(fact_id, text, **kwargs)

    async def ahistory(self, fact_id: str, **kwargs: Any) -> builtins.list[FactEvent]:
        return await self._aclient().history(fact_id, **kwargs)

    async def aclear(self, **kwargs: Any) -> int:
        return await self._aclient().clear(**kwargs)

    def close(self) -> None:
        self._http.close()

    async def aclose(self) -> None:
        self.close()
        if self._async is not None:
            await self._async.aclose()

    def __enter__(self) -> LarimarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LarimarClient({self.base_url!r}, namespace={self.namespace!r})"


class AsyncLarimarClient(_Base):
    """Asyncio client: the same methods as `Larimar`, as coroutines (``await c.remember(...)``);
    the ``a*`` names are aliases, so code written for ``Larimar.a*`` also runs."""

    def __init__(
        self, base_url: str = DEFAULT_URL, api_key: str | None = None, *,
        namespace: str = "default", timeout: float = 120.0, retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None, check_inputs: bool = True,
    ) -> None:
        super().__init__(base_url, api_key, namespace, timeout, retry, headers, check_inputs)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )

    async def _send(self, call: _Call[T]) -> T:
        last: BaseException | httpx.Response | None = None
        for attempt in range(self.retry.retries + 1):
            if attempt:
                retry_after = last.headers.get("Retry-After") if isinstance(
                    last, httpx.Response) else None
                await asyncio.sleep(self.retry.delay(attempt - 1, retry_after))
            try:
                response = await self._http.request(
                    call.method, call.path, content=call.content(), params=call.params,
                    headers=_JSON_HEADERS if call.json is not None else None,
                )
            except httpx.TransportError as exc:
                if not _resendable(exc, call):
                    raise LarimarConnectionError(
                        f"{call.method} {call.path}: connection lost after the request was "
                        f"sent ({exc}); it may or may not have taken effect"
                    ) from exc
                logger.debug("attempt %d of %s failed: %r", attempt + 1, call.path, exc)
                last = exc
                continue
            retry, result = self._outcome(call, response)
            if not retry:
                return result  # type: ignore[return-value]
            last = response
        assert last is not None
        raise self._give_up(call, last)

    async def limits(self) -> MemoryLimits:
        return await self._send(self._api.limits())

    async def remember(
        self, text: str | builtins.list[str] | None = None, *,
        messages: builtins.list[dict[str, Any]] | None = None,
        key: str | builtins.list[str] | None = None,
        namespace: str | None = None, metadata: Metadata | builtins.list[Metadata] | None = None,
        request_id: str | None = None, ids: str | builtins.list[str] | None = None,
        extra_keys: builtins.list[str] | builtins.list[builtins.list[str]] | None = None,
        **scope: Unpack[Scope],
    ) -> RememberResult:
        return await self._send(self._api.remember(
            text, messages=messages, key=key, namespace=namespace, metadata=metadata,
            request_id=request_id, ids=ids, extra_keys=extra_keys, scope=scope,
        ))

    async def recall(
        self, query: str, *, k: int = 1, namespace: str | None = None, decode: bool = True,
        filter: Filter | None = None, **scope: Unpack[Scope],
    ) -> RecallResult:
        return await self._send(self._api.recall(query, k=k, namespace=namespace,
                                                 decode=decode, filter=filter, scope=scope))

    async def ask(
        self, question: str, *, k: int | None = None, namespace: str | None = None,
        max_new_tokens: int | None = None, filter: Filter | None = None,
        **scope: Unpack[Scope],
    ) -> AskResult:
        return await self._send(self._api.ask(question, k=k, namespace=namespace,
                                              max_new_tokens=max_new_tokens, filter=filter,
                                              scope=scope))

    async def forget(self, fact: str, *, namespace: str | None = None,
                     filter: Filter | None = None, **scope: Unpack[Scope]
                     ) -> builtins.list[Fact]:
        return await self._send(self._api.forget(fact, namespace=namespace, filter=filter,
                                                 scope=scope))

    async def forget_matching(self, description: str, *, namespace: str | None = None,
                              threshold: float | None = None, margin: float | None = None,
                              filter: Filter | None = None, **scope: Unpack[Scope]
                              ) -> ForgetResult:
        return await self._send(self._api.forget_matching(description, namespace=namespace,
                                                          threshold=threshold, margin=margin,
                                                          filter=filter, scope=scope))

    async def forget_about(self, description: str, *, namespace: str | None = None,
                           threshold: float | None = None, limit: int = 50,
                           filter: Filter | None = None, **scope: Unpack[Scope]
                           ) -> ForgetResult:
        return await self._send(self._api.forget_about(description, namespace=namespace,
                                                       threshold=threshold, limit=limit,
                                                       filter=filter, scope=scope))

    async def list(
        self, *, namespace: str | None = None, filter: Filter | None = None,
        limit: int | None = None, offset: int = 0, **scope: Unpack[Scope],
    ) -> builtins.list[Fact]:
        return await self._send(self._api.list(namespace=namespace, filter=filter, limit=limit,
                                               offset=offset, scope=scope))

    async def get(self, fact_id: str, *, namespace: str | None = None) -> Fact:
        return await self._send(self._api.get(fact_id, namespace=namespace))

    async def update(self, fact_id: str, text: str, *, namespace: str | None = None,
                     metadata: Metadata | None = None) -> RememberResult:
        fact = await self.get(fact_id, namespace=namespace)
        return await self.remember(text, namespace=namespace,
                                   **update_arguments(fact, text, metadata))

    async def history(self, fact_id: str, *, namespace: str | None = None
                      ) -> builtins.list[FactEvent]:
        return await self._send(self._api.history(fact_id, namespace=namespace))

    async def clear(self, *, namespace: str | None = None, filter: Filter | None = None,
                    **scope: Unpack[Scope]) -> int:
        return await self._send(self._api.clear(namespace=namespace, filter=filter,
                                                scope=scope))

    async def namespaces(self) -> builtins.list[str]:
        return await self._send(self._api.namespaces())

    async def export(self, *, namespace: str | None = None) -> ExportResponse:
        return await self._send(self._api.export(namespace=namespace))

    async def health(self) -> dict[str, Any]:
        return await self._send(self._api.health())

    aremember, arecall, aask, aforget = remember, recall, ask, forget
    aforget_matching, aforget_about = forget_matching, forget_about
    alist, aget, aclear, ahistory = list, get, clear, history

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncLarimarClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncLarimarClient({self.base_url!r}, namespace={self.namespace!r})"
