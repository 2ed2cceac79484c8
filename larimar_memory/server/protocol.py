"""The wire format shared by the server and the client: request bodies, response envelopes and
the error mapping. Pydantic only (no FastAPI), so the client installs without the web stack.

Errors travel as ``{"error": {"type": "<name>", "message": "..."}}``. For the core's exceptions
``type`` is the class name, so the client raises the very class the local `Larimar` would.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import contract, errors, scoping
from ..contract import MAX_K, MAX_NEW_TOKENS
from ..types import Fact, FactEvent

API_PREFIX = "/v1"
REQUEST_ID_HEADER = "Idempotency-Key"
MAX_BATCH = 256
"""Most texts one remember request may carry."""
JSON_CONTENT_TYPES = ("application/json",)
"""Request bodies are JSON; ``application/<x>+json`` is accepted too."""


# -- errors ---------------------------------------------------------------------------------------

CORE_ERROR_STATUS: dict[type[errors.LarimarError], int] = {
    # Order matters: the first class the exception is an instance of wins.
    errors.FactNotFoundError: 404,
    errors.EmptyInputError: 422,
    errors.TextInputError: 422,
    errors.MemoryInputError: 422,
    errors.NotWrittenError: 409,
    errors.StoreError: 503,
    errors.StateFileError: 503,
    errors.ModelNotFoundError: 503,
}
"""HTTP status of each core exception; any other `LarimarError` is a 400."""

CORE_ERROR_STATUS_BY_NAME: dict[str, int] = {
    # Matched on the class name (and its bases' names) before the table above, so classes that
    # newer cores add map correctly whether or not this module can import them.
    "RequestConflictError": 409,  # a request id reused with different content
    "ArgumentError": 422,  # k < 1, a malformed filter, an id given twice
    "PurgePendingError": 503,  # forget committed, bytes not yet purged: do not resend
    "StoreMismatchError": 503,  # namespace written with another model: an operator's problem
}

NOT_RETRYABLE = frozenset({"PurgePendingError", "StoreMismatchError"})
"""Error types a client must not resend even on a retryable status (the change happened)."""


def _core_errors() -> dict[str, type[errors.LarimarError]]:
    return {
        name: cls for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.LarimarError)
    }


CORE_ERRORS: dict[str, type[errors.LarimarError]] = _core_errors()
"""Error ``type`` -> the exception class the client raises (every class in
`larimar_memory.errors`, including ones added after this module was written)."""

# Error types produced by the HTTP layer itself (not core exceptions). Input the contract
# refuses is never one of these: it travels as the core's class name (`CORE_ERRORS`).
INVALID_JSON = "InvalidJSON"  # 400: not JSON, not UTF-8, or nested too deep to parse
UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"  # 415: a body that is not JSON
PAYLOAD_TOO_LARGE = "PayloadTooLarge"  # 413
UNAUTHORIZED = "Unauthorized"  # 401
FORBIDDEN = "Forbidden"  # 403
NOT_FOUND = "NotFound"  # 404 for a route, not a fact
INTERNAL_ERROR = "InternalError"  # 500: a bug, never bad input


def status_for(exc: errors.LarimarError) -> int:
    for cls in type(exc).__mro__:
        if cls.__name__ in CORE_ERROR_STATUS_BY_NAME:
            return CORE_ERROR_STATUS_BY_NAME[cls.__name__]
    for cls, status in CORE_ERROR_STATUS.items():
        if isinstance(exc, cls):
            return status
    return 400


FILTER_HELP = ("a metadata filter: {\"speaker\": \"Ana\"} (equality), operators $eq $ne $gt $gte "
               "$lt $lte $in $nin ({\"n\": {\"$gte\": 2}}), nested objects, $and $or $not")


class ErrorBody(BaseModel):
    type: str = Field(description="the core exception's class name, or an HTTP-layer error name")
    message: str = Field(description="what was wrong and what to do")
    details: list[dict[str, Any]] | None = Field(
        None, description="per-field problems of a request of the wrong shape"
    )


class ErrorResponse(BaseModel):
    error: ErrorBody


# -- requests -------------------------------------------------------------------------------------

class _Request(BaseModel):
    """A request body: first the input contract on the raw JSON values (`check`), so a refusal
    is the very error the core raises (the app's handler unwraps it); then strict fields
    (no coercion) and unknown fields refused: a misspelt "metdata" must not be dropped."""

    model_config = ConfigDict(extra="forbid", strict=True)
    scoped: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _contract(cls, data: Any) -> Any:
        if isinstance(data, dict):
            cls.check(data)
            if cls.scoped:  # last, as in the verbs' signatures
                scoping.scope_of({k: data.get(k) for k in scoping.SCOPE_FIELDS})
        return data

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        """The contract's checks of this verb (`larimar_memory.contract`)."""


class _Scoped(_Request):
    """A body of a scoped verb: mem0's ids (`larimar_memory.scoping`), checked first."""

    user_id: str | None = Field(None, description="only this user's facts (stored with each "
                                "fact written)")
    agent_id: str | None = Field(None, description="only this agent's facts")
    run_id: str | None = Field(None, description="only this run's facts")

    scoped: ClassVar[bool] = True


_Batch = Annotated[list[str], Field(max_length=MAX_BATCH)]
_Id = Annotated[str, Field(min_length=1, max_length=200)]
_Object = dict[str, Any]


class ChatMessage(BaseModel):
    """One message of a conversation, as mem0's ``add(messages)`` takes them."""

    model_config = ConfigDict(extra="forbid")
    role: str = Field(description="user, assistant, system or tool")
    content: str
    name: str | None = Field(None, max_length=200, description="who spoke (default: the role)")


class RememberRequest(_Scoped):
    text: str | _Batch | None = Field(
        None, description="one fact, or a list written in one call (or pass messages)"
    )
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_BATCH)] | None = (
        Field(None, description="a conversation instead of text: statements are stored with "
              "their speaker, corrections replace, forget requests are honoured")
    )
    key: str | _Batch | None = Field(
        None, description="text that addresses each fact (default: the fact itself)"
    )
    metadata: _Object | Annotated[list[_Object], Field(max_length=MAX_BATCH)] | None = Field(
        None, description="JSON object kept with every fact, or a list: one per text"
    )
    request_id: str | None = Field(
        None, min_length=1, max_length=200,
        description="idempotency key: a repeated id writes nothing and returns the first ids "
        f"(the {REQUEST_ID_HEADER} header is used when this is absent); the same id with "
        "different content is a 409",
    )
    ids: _Id | Annotated[list[_Id], Field(max_length=MAX_BATCH)] | None = Field(
        None, description="caller-chosen fact ids, one per text; a stored id is replaced"
    )
    extra_keys: list[str] | list[list[str]] | None = Field(
        None, description="further texts that address a fact: a list for one text, or one "
        "list per text"
    )

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        contract.remember_args(**{k: data.get(k) for k in (
            "text", "messages", "key", "metadata", "request_id", "ids", "extra_keys")})


class RecallRequest(_Scoped):
    query: str
    k: int = Field(1, ge=1, le=MAX_K, description="how many facts to read, best first")
    decode: bool = Field(
        True, description="False skips the (slow) decoding: only the addressed facts, their "
        "scores and the scope decision come back"
    )
    filter: dict[str, Any] | None = Field(
        None, description=FILTER_HELP
    )

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        contract.recall_args(data.get("query"), data.get("k", 1), data.get("decode", True),
                             data.get("filter"))


class AskRequest(_Scoped):
    question: str
    k: int | None = Field(
        None, ge=1, le=MAX_K, description="facts whose readouts condition the answer "
        "(default: the service's measured default)"
    )
    max_new_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)
    filter: dict[str, Any] | None = Field(
        None, description=FILTER_HELP
    )

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        contract.ask_args(data.get("question"), data.get("k"), data.get("max_new_tokens"),
                          data.get("filter"))


class ForgetRequest(_Scoped):
    fact: str = Field(description="a fact id, or a fact's exact text")
    filter: dict[str, Any] | None = Field(None, description="only facts it keeps: " + FILTER_HELP)

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        contract.check_text(data.get("fact"), "fact")
        contract.check_filter(data.get("filter"))


class ForgetMatchingRequest(_Scoped):
    description: str = Field(description="what to forget, e.g. 'my address'")
    threshold: float | None = Field(
        None, ge=0, le=1, description="minimum calibrated relevance; default: the scope point"
    )
    margin: float | None = Field(
        None, ge=0, le=1, description="lead over the runner-up needed to delete"
    )
    filter: dict[str, Any] | None = Field(None, description="only facts it keeps: " + FILTER_HELP)

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        contract.forget_matching_args(data.get("description"), data.get("threshold"),
                                      data.get("margin"))
        contract.check_filter(data.get("filter"))


class ForgetAboutRequest(_Scoped):
    description: str = Field(description="what to forget everything about, e.g. 'my sister'")
    threshold: float | None = Field(
        None, ge=0, le=1, description="minimum calibrated relevance; default: the scope point"
    )
    limit: int = Field(50, ge=1, le=MAX_K, description="at most this many facts")
    filter: dict[str, Any] | None = Field(None, description="only facts it keeps: " + FILTER_HELP)

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        contract.forget_about_args(data.get("description"), data.get("threshold"),
                                   data.get("limit", 50))
        contract.check_filter(data.get("filter"))


# -- responses ------------------------------------------------------------------------------------

class FactList(BaseModel):
    namespace: str
    facts: list[Fact]


class FactHistory(BaseModel):
    namespace: str
    fact_id: str
    events: list[FactEvent]


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
