"""The wire format shared by the server and the client: request bodies, response envelopes and
the error mapping. Pydantic only (no FastAPI), so the client installs without the web stack.

Errors travel as ``{"error": {"type": "<name>", "message": "..."}}``. For the core's exceptions
``type`` is the class name, so the client raises the very class the local `Larimar` would.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from .. import errors
from ..types import Fact

API_PREFIX = "/v1"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""Tenants and namespaces: 1-64 letters, digits, '.', '_', '-', and never '/', so a tenant's
prefix cannot be escaped."""
REQUEST_ID_HEADER = "Idempotency-Key"
MAX_BATCH = 256
"""Most texts one remember request may carry."""
MAX_NEW_TOKENS = 256


# -- errors ---------------------------------------------------------------------------------------

CORE_ERROR_STATUS: dict[type[errors.LarimarError], int] = {
    # Order matters: the first class the exception is an instance of wins.
    errors.FactNotFoundError: 404,
    errors.EmptyInputError: 422,
    errors.TextInputError: 422,
    errors.MemoryInputError: 422,
    errors.CapacityError: 409,
    errors.NotWrittenError: 409,
    errors.StoreError: 503,
    errors.StateFileError: 503,
    errors.ModelNotFoundError: 503,
}
"""HTTP status of each core exception; any other `LarimarError` is a 400."""

CORE_ERRORS: dict[str, type[errors.LarimarError]] = {
    cls.__name__: cls
    for cls in (
        errors.LarimarError, errors.MemoryInputError, errors.EmptyInputError,
        errors.NotWrittenError, errors.StateFileError, errors.ModelNotFoundError,
        errors.FactNotFoundError, errors.TextInputError, errors.CapacityError, errors.StoreError,
    )
}
"""Error ``type`` -> the exception class the client raises."""

# Error types produced by the HTTP layer itself (not core exceptions).
VALIDATION_ERROR = "ValidationError"  # a body or parameter of the wrong shape or type -> 422
INVALID_JSON = "InvalidJSON"  # 400
PAYLOAD_TOO_LARGE = "PayloadTooLarge"  # 413
UNAUTHORIZED = "Unauthorized"  # 401
FORBIDDEN = "Forbidden"  # 403
NOT_FOUND = "NotFound"  # 404 for a route, not a fact
INTERNAL_ERROR = "InternalError"  # 500: a bug, never bad input


def status_for(exc: errors.LarimarError) -> int:
    for cls, status in CORE_ERROR_STATUS.items():
        if isinstance(exc, cls):
            return status
    return 400


class ErrorBody(BaseModel):
    type: str = Field(description="the core exception's class name, or an HTTP-layer error name")
    message: str = Field(description="what was wrong and what to do")
    details: list[dict[str, Any]] | None = Field(
        None, description="per-field problems of a ValidationError"
    )


class ErrorResponse(BaseModel):
    error: ErrorBody


# -- requests -------------------------------------------------------------------------------------

class _Request(BaseModel):
    # Unknown fields are refused: a misspelt "metdata" must not be silently dropped.
    model_config = ConfigDict(extra="forbid")


_Batch = Annotated[list[str], Field(max_length=MAX_BATCH)]


class RememberRequest(_Request):
    text: str | _Batch = Field(description="one fact, or a list written in one call")
    key: str | _Batch | None = Field(
        None, description="text that addresses each fact (default: the fact itself)"
    )
    metadata: dict[str, Any] | None = Field(None, description="JSON object kept with the facts")
    request_id: str | None = Field(
        None, min_length=1, max_length=200,
        description="idempotency key: a repeated id writes nothing and returns the first ids "
        f"(the {REQUEST_ID_HEADER} header is used when this is absent)",
    )


class RecallRequest(_Request):
    query: str
    decode: bool = Field(
        True, description="False skips the (slow) decoding: only the addressed fact, its "
        "weight and the scope decision come back"
    )


class AskRequest(_Request):
    question: str
    max_new_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)


class ForgetRequest(_Request):
    fact: str = Field(description="a fact id, or a fact's exact text")


class ForgetMatchingRequest(_Request):
    description: str = Field(description="what to forget, e.g. 'my address'")
    threshold: float | None = Field(
        None, ge=-1, le=1, description="minimum key cosine; default: the scope threshold"
    )


# -- responses ------------------------------------------------------------------------------------

class FactList(BaseModel):
    namespace: str
    facts: list[Fact]


class ForgetResponse(BaseModel):
    forgotten: list[Fact]


class ClearResponse(BaseModel):
    deleted: int


class NamespaceList(BaseModel):
    namespaces: list[str]


class ExportResponse(BaseModel):
    """A namespace's facts as text, ids and metadata; never embeddings or memory state."""

    format: str = "larimar-memory/export"
    format_version: int = 1
    namespace: str
    exported_at: float
    count: int
    facts: list[Fact]


class Health(BaseModel):
    status: str
    store: str
