"""Exception handlers: every error leaves as ``{"error": {"type", "message"}}`` with a status that
tells the client whose fault it was. Bad input is a 4xx, a store that cannot be reached a 503
(retryable), and only a bug is a 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from ..errors import ArgumentError, LarimarError, NamespaceError, StoreError, TextInputError
from ..names import NAMESPACE_RULE
from .protocol import (
    INTERNAL_ERROR,
    INVALID_JSON,
    NOT_FOUND,
    status_for,
)

logger = logging.getLogger(__name__)

_PATH_ERRORS: dict[str, type[LarimarError]] = {"namespace": NamespaceError,
                                               "fact_id": TextInputError}
_HTTP_TYPES = {404: NOT_FOUND, 405: "MethodNotAllowed", 401: "Unauthorized", 403: "Forbidden"}


class ApiError(Exception):
    """An HTTP-layer error (auth, limits) raised from dependencies and routes."""

    def __init__(
        self, status: int, type: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type, message, headers


def error_response(
    status: int, type: str, message: str, headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _clean_details(errors: list[Any]) -> list[dict[str, Any]]:
    # Never echo the input back: it may be a megabyte of text or someone's secret.
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
         "type": str(e.get("type", ""))}
        for e in errors
    ]


async def _on_core_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LarimarError)
    return core_error_response(request, exc)


def core_error_response(request: Request, exc: LarimarError,
                        details: list[dict[str, Any]] | None = None) -> JSONResponse:
    """The body of a core exception: its class name as ``type``, its status."""
    status = status_for(exc)
    message = str(exc)
    tenant = getattr(request.state, "tenant", None)
    if tenant:  # the core names "tenant/ns"; the caller only knows "ns"
        message = message.replace(f"{tenant}/", "")
    headers = {"Retry-After": "1"} if isinstance(exc, StoreError) else None
    if status >= 500:
        logger.warning("%s %s: %s: %s", request.method, request.url.path,
                       type(exc).__name__, exc)
    return error_response(status, type(exc).__name__, message, headers, details)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.type, exc.message, exc.headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    """A body the input contract refused leaves as the contract's error (pydantic wrapped it);
    any other shape problem (an unknown or missing field, a body that is not an object) is an
    `ArgumentError`, as a wrong argument is in process."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for e in errors:
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, LarimarError):
            return core_error_response(request, cause)
        loc = tuple(e.get("loc", ()))
        if len(loc) == 2 and loc[0] == "path" and loc[1] in _PATH_ERRORS:
            # a URL segment that is not UTF-8 (the ASGI server keeps it as a lone surrogate)
            return core_error_response(request, _PATH_ERRORS[loc[1]](
                f"{loc[1]} in the URL is not valid UTF-8 text; send it percent-encoded UTF-8"
                + (f". Rule: {NAMESPACE_RULE}" if loc[1] == "namespace" else "")))
    if any(e.get("type") == "json_invalid" for e in errors):
        ctx = errors[0].get("ctx") or {}
        return error_response(
            400, INVALID_JSON,
            f"the request body is not valid JSON ({ctx.get('error', 'decode error')}); send "
            "a JSON object with Content-Type: application/json",
        )
    details = _clean_details(errors)
    summary = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details[:5])
    return core_error_response(request, ArgumentError(f"invalid request: {summary}"), details)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    type_ = _HTTP_TYPES.get(exc.status_code, "HTTPError")
    message = str(exc.detail)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 400:  # FastAPI could not parse the body (not UTF-8, nested too deep)
        type_ = INVALID_JSON
        message = ("the request body could not be read as JSON (bytes that are not UTF-8, or "
                   "nesting deeper than the parser allows); send a UTF-8 JSON object")
    elif exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        message = f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}"
    return error_response(exc.status_code, type_, message, headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method any route serves on this path (Starlette lists only the first route's,
    though GET, POST and DELETE on one path are separate routes)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        500, INTERNAL_ERROR, "internal server error; the server log has the traceback"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LarimarError, _on_core_error)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
