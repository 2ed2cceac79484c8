"""The input contract of the memory API: what each argument may be, written once and checked
the same way by `Larimar` (in process), the HTTP server (on every request body, before the
backend sees it) and both clients (before anything is sent). Torch-free, so the client uses it.

* **Types are strict.** Integers are `int` (never ``"5"``, ``True`` or ``5.0``); flags are
  `bool`; texts are `str` (bytes are refused: decode them yourself); ids are strings.
* **Ranges are bounded** (`BOUNDS`): ``k`` 1-`MAX_K`, ``limit`` 0-`MAX_LIST_LIMIT` or None,
  ``offset`` 0-`MAX_OFFSET`, ``max_new_tokens`` 1-`MAX_NEW_TOKENS`, ``threshold`` and
  ``margin`` 0-1; filter integers fit 64 bits.
* **One NUL policy**: no text, id, key, metadata string or filter string may contain NUL
  (U+0000) or a lone surrogate, on every backend (`store.check_storable`); PostgreSQL cannot
  hold NUL, so SQLite and HTTP refuse it too.
* **One namespace rule**: `larimar_memory.names`.
* **Errors** (`larimar_memory.errors`): `TextInputError` for a text, id or metadata that is
  not storable text, `EmptyInputError` for empty or invisible text, `NamespaceError` for a
  namespace, `ArgumentError` for every other argument (type, range, filter, lengths that do
  not match). Over HTTP the error body's ``type`` is the same class name and the clients raise
  the same class.

Each verb's arguments are checked in signature order (the namespace first, by the caller), so
an input with several faults gets the same error on every path. Limits that depend on the
served model (`MemoryLimits`: characters per text and key, tokens per fact) are checked by the
backend after these.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Any

from . import filters
from .errors import ArgumentError, EmptyInputError, TextInputError
from .values import check_metadata, check_storable

MAX_K = 100
"""Most facts one recall, ask or forget_about reads."""
MAX_LIST_LIMIT = 10_000
"""Largest page of ``list`` (a server may set a lower one)."""
MAX_OFFSET = 2**63 - 1
"""Largest ``list`` offset: what a 64-bit store integer holds."""
MAX_NEW_TOKENS = 256
"""Most tokens one ``ask`` generates."""
MAX_NAME_CHARS = 200
"""Longest fact id or request id."""
_INT64 = (-(2**63), 2**63 - 1)

BOUNDS = {"k": (1, MAX_K), "limit": (0, MAX_LIST_LIMIT), "offset": (0, MAX_OFFSET),
          "max_new_tokens": (1, MAX_NEW_TOKENS), "threshold": (0, 1), "margin": (0, 1)}
"""Inclusive bounds of every numeric argument, as documented in docs/deploy.md."""


# -- single values --------------------------------------------------------------------------------

def check_int(value: Any, what: str, low: int, high: int) -> int:
    """An `int` (not a bool, float or string) in ``[low, high]``; else `ArgumentError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"{what} must be an integer from {low} to {high}, got "
                            f"{type(value).__name__} {value!r:.40}")
    if not low <= value <= high:
        raise ArgumentError(f"{what} must be an integer from {low} to {high}, got "
                            f"{value!r:.40}")
    return value


def check_k(k: Any, what: str = "k") -> int:
    return check_int(k, what, *BOUNDS["k"])


def check_fraction(value: Any, what: str) -> float | None:
    """None, or a finite number (int or float, not bool) from 0 to 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 <= value <= 1):
        raise ArgumentError(f"{what} must be a number from 0 to 1 or None, got "
                            f"{type(value).__name__} {value!r:.40}")
    return float(value)


def check_flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ArgumentError(f"{what} must be True or False, got {type(value).__name__} "
                            f"{value!r:.40}")
    return value


def check_name(name: Any, what: str) -> str:
    """A fact id or request id: a non-empty string of at most `MAX_NAME_CHARS`, storable."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise TextInputError(
            f"{what} must be a non-empty string of at most {MAX_NAME_CHARS} characters, got "
            f"{type(name).__name__} {name!r:.80}"
        )
    check_storable(name, what)
    return name


def check_texts(value: Any, what: str) -> list[str]:
    """One text or a non-empty list of texts, each storable and visible; returned
    NFC-normalised and stripped. Lengths are the backend's (`check_lengths`)."""
    items = [value] if isinstance(value, (str, bytes)) else value
    if not isinstance(items, (list, tuple)):
        raise TextInputError(f"{what} must be a string or a list of strings, got "
                             f"{type(value).__name__}")
    if not items:
        raise EmptyInputError(f"{what} is an empty list; pass at least one string")
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, bytes):
            raise TextInputError(f"{what}[{i}] is bytes; decode it to str first (e.g. "
                                 "data.decode('utf-8'))")
        if not isinstance(item, str):
            raise TextInputError(f"{what}[{i}] must be a string, got {type(item).__name__}")
        check_storable(item, f"{what}[{i}]")
        item = unicodedata.normalize("NFC", item).strip()
        if not visible(item):
            raise EmptyInputError(
                f"{what}[{i}] is empty, whitespace or invisible characters only; pass some text"
            )
        texts.append(item)
    return texts


def check_text(value: Any, what: str) -> str:
    """One text (a query, question, description or fact to forget)."""
    if not isinstance(value, (str, bytes)):
        raise TextInputError(f"{what} must be a string, got {type(value).__name__}")
    return check_texts(value, what)[0]


def check_lengths(texts: list[str], what: str, max_chars: int) -> None:
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            raise TextInputError(
                f"{what}[{i}] has {len(text)} characters; at most {max_chars} are allowed. "
                "Shorten or split it; nothing was written"
            )


def check_filter(filter: Any) -> dict[str, Any]:
    """A filter in the one filter language (`larimar_memory.filters`: equality, ``$gt``/
    ``$in``/…, ``$and``/``$or``/``$not``, nested objects), with the contract's value policy on
    top: no NUL in any string, integers within 64 bits."""
    checked = filters.check_filter(filter)
    _check_filter_values(checked, "filter")
    return checked


def _check_filter_values(value: Any, where: str) -> None:
    if isinstance(value, str):
        check_storable(value, where)
    elif isinstance(value, int) and not isinstance(value, bool) and not (
            _INT64[0] <= value <= _INT64[1]):
        raise ArgumentError(f"{where} does not fit 64 bits; filter integers must")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, f"a field name in {where}")
            _check_filter_values(item, f"{where}[{key[:40]!r}]")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_filter_values(item, f"{where}[{i}]")


def check_paging(limit: Any, offset: Any, max_limit: int = MAX_LIST_LIMIT) -> None:
    if limit is not None:
        check_int(limit, "limit", 0, max_limit)
    check_int(offset, "offset", *BOUNDS["offset"])


def check_new_tokens(value: Any) -> int | None:
    return None if value is None else check_int(value, "max_new_tokens",
                                                *BOUNDS["max_new_tokens"])


def visible(text: str) -> bool:
    """True when the text has a character that is not whitespace, a control or a format
    character (zero-width spaces and joiners alone are not a fact)."""
    return any(unicodedata.category(c)[0] not in "ZC" for c in text)


# -- one verb's arguments -------------------------------------------------------------------------

@dataclass
class RememberArgs:
    """A checked remember call (texts not yet measured against the backend's limits)."""

    texts: list[str]
    keys: list[str]
    metas: list[dict[str, Any]]
    fact_ids: list[str] | None
    request_id: str | None
    extras: list[list[str]]


def remember_args(text: Any = None, *, messages: Any = None, key: Any = None,
                  metadata: Any = None, request_id: Any = None, ids: Any = None,
                  extra_keys: Any = None) -> RememberArgs | None:
    """The checks of `remember`; None for a ``messages`` call (checked, applied elsewhere)."""
    if messages is not None:
        from .conversation import check_messages

        if text is not None or key is not None or ids is not None or extra_keys is not None:
            raise ArgumentError("pass either text (with key/ids/extra_keys) or messages, not "
                                "both")
        check_messages(messages)
        if metadata is not None:
            check_metadata(metadata)
        if request_id is not None:
            check_name(request_id, "request_id")
        return None
    if text is None:
        raise ArgumentError("remember needs text or messages")
    texts = check_texts(text, "text")
    keys = texts if key is None else check_texts(key, "key")
    metas = check_metadata_list(metadata, len(texts))
    fact_ids = None if ids is None else check_ids(ids)
    check_same_length(len(texts), keys=keys, ids=fact_ids, metadata=metas)
    rid = None if request_id is None else check_name(request_id, "request_id")
    extras = check_extra_keys(extra_keys, len(texts), isinstance(text, str))
    return RememberArgs(texts, keys, metas, fact_ids, rid, extras)


def recall_args(query: Any, k: Any, decode: Any, filter: Any) -> tuple[str, int, bool,
                                                                         dict[str, Any]]:
    return check_text(query, "query"), check_k(k), check_flag(decode, "decode"), \
        check_filter(filter)


def ask_args(question: Any, k: Any, max_new_tokens: Any, filter: Any
             ) -> tuple[str, int | None, int | None, dict[str, Any]]:
    return (check_text(question, "question"), None if k is None else check_k(k),
            check_new_tokens(max_new_tokens), check_filter(filter))


def forget_matching_args(description: Any, threshold: Any, margin: Any
                         ) -> tuple[str, float | None, float | None]:
    return (check_text(description, "description"), check_fraction(threshold, "threshold"),
            check_fraction(margin, "margin"))


def forget_about_args(description: Any, threshold: Any, limit: Any
                      ) -> tuple[str, float | None, int]:
    return (check_text(description, "description"), check_fraction(threshold, "threshold"),
            check_k(limit, "limit"))


def list_args(filter: Any, limit: Any, offset: Any, max_limit: int = MAX_LIST_LIMIT
              ) -> dict[str, Any]:
    check_paging(limit, offset, max_limit)
    return check_filter(filter)


# -- parts of remember ----------------------------------------------------------------------------

def check_extra_keys(extra_keys: Any, n_texts: int, one_text: bool) -> list[list[str]]:
    """Extra keys per text: a list of strings for one text, one such list per text for many."""
    if extra_keys is None:
        return [[] for _ in range(n_texts)]
    per_text = [extra_keys] if one_text else extra_keys
    if not isinstance(per_text, (list, tuple)) or len(per_text) != n_texts or not all(
        isinstance(e, (list, tuple)) for e in per_text
    ):
        raise ArgumentError(
            "extra_keys must be a list of strings for one text, or one such list per text "
            f"for {n_texts} texts"
        )
    return [check_texts(list(e), "extra_keys") if e else [] for e in per_text]


def check_ids(ids: Any) -> list[str]:
    items = [ids] if isinstance(ids, str) else ids
    if not isinstance(items, (list, tuple)):
        raise ArgumentError(f"ids must be a string or a list of strings, got "
                            f"{type(ids).__name__}")
    return [check_name(i, "id") for i in items]


def check_metadata_list(metadata: Any, n: int) -> list[dict[str, Any]]:
    """One metadata dict per text: one dict for all, or a list of one per text."""
    if metadata is None:
        return [{} for _ in range(n)]
    if not isinstance(metadata, (list, tuple)):
        check_metadata(metadata)
        return [dict(metadata) for _ in range(n)]
    for item in metadata:
        check_metadata(item)
    if len(metadata) != n:
        raise ArgumentError(f"got {len(metadata)} metadata dicts for {n} texts; pass one per text")
    return [dict(item) for item in metadata]


def check_same_length(n_texts: int, **values: list[Any] | None) -> None:
    for name, items in values.items():
        if items is not None and len(items) != n_texts:
            raise ArgumentError(
                f"got {len(items)} {name} for {n_texts} texts; pass one per text"
            )
