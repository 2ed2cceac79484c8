"""mem0-style scoping: ``user_id`` / ``agent_id`` / ``run_id`` on the memory verbs.

A scope is a set of metadata equalities, so it needs no mechanism of its own: a write stores
its scope in every fact's metadata (where it is also the fact's owner, `types.OWNER_FIELDS`:
a correction never replaces another user's fact), and a read, forget, list or clear in a scope
sees only the facts whose metadata carries it (a filter, `larimar_memory.filters`). `Larimar`,
the server and both clients apply these functions, so a scope means the same in process and
over HTTP; `ScopedMemory` binds one scope to a backend for components that take a memory.
Torch-free: the client uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypedDict

from .errors import ArgumentError, TextInputError
from .values import check_storable

SCOPE_FIELDS = ("user_id", "agent_id", "run_id")
MAX_SCOPE_CHARS = 200

SCOPED_VERBS = ("remember", "recall", "ask", "forget", "forget_matching", "forget_about",
                "list", "clear")
"""The verbs that take a scope; `get`, `update` and `history` address one fact by its id."""


class Scope(TypedDict, total=False):
    """The scope keywords a scoped verb takes (``**scope: Unpack[Scope]`` in the clients)."""

    user_id: str | None
    agent_id: str | None
    run_id: str | None


def check_scope(user_id: Any = None, agent_id: Any = None, run_id: Any = None) -> dict[str, str]:
    """The given scope ids as metadata equalities (none given: ``{}``). Each is a non-empty
    string of at most `MAX_SCOPE_CHARS`, storable text; anything else is a `TextInputError`."""
    return scope_of({"user_id": user_id, "agent_id": agent_id, "run_id": run_id})


def given_ids(source: Any) -> dict[str, Any]:
    """The scope ids a call gave, unchecked: the `SCOPE_FIELDS` that are not None, of a mapping
    (keyword arguments) or of an object with those attributes (a request body)."""
    get = source.get if isinstance(source, Mapping) else (lambda n: getattr(source, n, None))
    return {name: get(name) for name in SCOPE_FIELDS if get(name) is not None}


def scope_of(given: Mapping[str, Any]) -> dict[str, str]:
    """`check_scope` of keyword arguments collected as a mapping (a name that is not a scope
    field is an `ArgumentError`)."""
    unknown = sorted(set(given) - set(SCOPE_FIELDS))
    if unknown:
        raise ArgumentError(f"unknown argument {', '.join(unknown)}; a scope is "
                            f"{', '.join(SCOPE_FIELDS)}")
    scope = {}
    for name in SCOPE_FIELDS:
        value = given.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_SCOPE_CHARS:
            raise TextInputError(
                f"{name} must be a non-empty string of at most {MAX_SCOPE_CHARS} characters, "
                f"got {type(value).__name__} {value!r:.80}"
            )
        check_storable(value, name)
        scope[name] = value
    return scope


@dataclass(kw_only=True)
class ScopedCall:
    """A verb's arguments kept for a batch (`RecallCall`, `RememberCall`): the scope ids, and
    ``arguments()`` to replay the call."""

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None

    def arguments(self) -> dict[str, Any]:
        """The call's arguments in its verb's order (the first is the positional one), the
        scope ids last and only when given (so an unscoped call reaches a backend written
        before scoping unchanged)."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in SCOPE_FIELDS}
        return {**own, **{name: value for name in SCOPE_FIELDS
                          if (value := getattr(self, name)) is not None}}


def scoped_metadata(metadata: Any, scope: dict[str, str]) -> Any:
    """A remember call's metadata (None, one dict for every fact, or one per fact) with the
    scope added to each fact's; metadata that names another value for a scope field is refused
    (the fact would land outside the scope it was written in). Without a scope, or with
    metadata of the wrong shape (the contract's to refuse), it is returned as given."""
    if not scope:
        return metadata
    if metadata is None:
        return dict(scope)
    if isinstance(metadata, dict):
        return _with_scope(metadata, scope, "metadata")
    if isinstance(metadata, (list, tuple)):
        return [_with_scope(m, scope, f"metadata[{i}]") if isinstance(m, dict) else m
                for i, m in enumerate(metadata)]
    return metadata


def _with_scope(meta: dict[str, Any], scope: dict[str, str], where: str) -> dict[str, Any]:
    for name, value in scope.items():
        if name in meta and meta[name] != value:
            raise ArgumentError(f"{where} has {name}={meta[name]!r:.60} but the call's {name} "
                                f"is {value!r:.60}; pass one of them")
    return {**meta, **scope}


def scoped_filter(where: dict[str, Any], scope: dict[str, str]) -> dict[str, Any]:
    """A checked filter narrowed to the scope: merged when they name different fields (so
    plain equalities stay plain for SQL), else both must hold."""
    if not scope:
        return where
    if not where:
        return dict(scope)
    if scope.keys() & where.keys():
        return {"$and": [dict(scope), where]}
    return {**where, **scope}


class ScopedMemory:
    """A memory backend seen through one scope: every scoped verb (`SCOPED_VERBS`) gets the
    scope's ids, the rest pass through. It implements the backend's protocol, so any component
    that takes a memory takes it, in process or remote:
    ``LarimarMemory(larimar=ScopedMemory(lar, user_id="alice"))``."""

    def __init__(self, backend: Any, *, user_id: str | None = None,
                 agent_id: str | None = None, run_id: str | None = None) -> None:
        self.scope = check_scope(user_id, agent_id, run_id)
        if not self.scope:
            raise ArgumentError("ScopedMemory needs at least one of user_id, agent_id, run_id")
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.backend, name)
        verb = name[1:] if name.startswith("a") and name[1:] in SCOPED_VERBS else name
        if verb not in SCOPED_VERBS:
            return attr

        def scoped(*args: Any, **kwargs: Any) -> Any:
            for field, value in self.scope.items():
                if kwargs.setdefault(field, value) != value:
                    raise ArgumentError(f"{name} was given {field}={kwargs[field]!r:.60} on a "
                                        f"memory scoped to {field}={value!r:.60}")
            return attr(*args, **kwargs)

        scoped.__name__ = name
        return scoped

    @property
    def namespace(self) -> str:
        return self.backend.namespace

    def __repr__(self) -> str:
        scope = ", ".join(f"{k}={v!r}" for k, v in self.scope.items())
        return f"ScopedMemory({self.backend!r}, {scope})"
