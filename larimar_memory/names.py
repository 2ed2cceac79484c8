"""The namespace rule: which names a namespace may have, the same in process and over HTTP.

Every path checks names here: `Larimar` (core), the HTTP server and its clients, the MCP server.
What the integrations derive must pass unchanged, so the rule is wide:

* 1 to `MAX_NAMESPACE_CHARS` characters of text: any printable Unicode, spaces and punctuation
  included (``user:alice``, ``thread:3f2c…``, ``user:Zoë Brown``); no control characters
  (NUL, tab, newline, …) and no lone surrogates (not UTF-8);
* ``/`` separates segments (LangGraph's namespace tuples become ``langgraph/memories/alice``):
  no segment may be empty, ``.`` or ``..``, so ``/etc/passwd``, ``a//b``, ``x/`` and ``../x``
  are refused: a name never reads as a path that climbs out of another;
* not whitespace only.

Names are kept exactly as given (no trimming, no Unicode normalisation), so ``namespaces()``
returns them as written. The server keeps each tenant's namespaces under ``<tenant>/``; tenants
(`TENANT_PATTERN`) are single plain segments, so a caller can never name another tenant's
namespace. Over HTTP a namespace is one percent-encoded URL path segment (``/`` sent as
``%2F``), see ``larimar_memory.server.paths``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .errors import NamespaceError

__all__ = [
    "MAX_NAMESPACE_CHARS",
    "NAMESPACE_RULE",
    "SEPARATOR",
    "TENANT_PATTERN",
    "TENANT_RULE",
    "check_namespace",
    "is_namespace",
    "is_tenant",
]

MAX_NAMESPACE_CHARS = 256
SEPARATOR = "/"
NAMESPACE_RULE = (
    f"a namespace is 1-{MAX_NAMESPACE_CHARS} characters of printable text (no control "
    "characters), not whitespace only; '/' separates segments, and no segment may be empty, "
    "'.' or '..'"
)
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TENANT_RULE = "a tenant is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
_TENANT = re.compile(TENANT_PATTERN)


def check_namespace(name: Any, *, max_chars: int = MAX_NAMESPACE_CHARS) -> str:
    """``name`` if it follows `NAMESPACE_RULE`; else `NamespaceError` saying which part broke
    it. ``max_chars`` is lower only where a prefix takes part of the budget (the server's
    ``<tenant>/``)."""
    if not isinstance(name, str):
        raise NamespaceError(f"namespace must be a string, got {type(name).__name__}: "
                             f"{name!r:.80}. Rule: {NAMESPACE_RULE}")
    problem = _problem(name, max_chars)
    if problem:
        raise NamespaceError(f"namespace {name!r:.120} {problem}. Rule: {NAMESPACE_RULE}")
    return name


def _problem(name: str, max_chars: int) -> str | None:
    if not name:
        return "is empty"
    if len(name) > max_chars:
        return f"has {len(name)} characters; at most {max_chars} are allowed here"
    if name.isspace():
        return "is whitespace only"
    for i, ch in enumerate(name):
        category = unicodedata.category(ch)
        if category == "Cc":
            return f"contains the control character {ch!r} at {i}"
        if category == "Cs":
            return f"contains a lone surrogate {ch!r} at {i} (not UTF-8)"
    for segment in name.split(SEPARATOR):
        if segment in ("", ".", ".."):
            shown = "an empty segment" if not segment else f"the segment {segment!r}"
            return f"has {shown}"
    return None


def is_namespace(name: Any) -> bool:
    """Whether ``name`` follows `NAMESPACE_RULE` (no exception)."""
    return isinstance(name, str) and _problem(name, MAX_NAMESPACE_CHARS) is None


def is_tenant(tenant: Any) -> bool:
    """Whether ``tenant`` follows `TENANT_RULE`."""
    return isinstance(tenant, str) and _TENANT.match(tenant) is not None
