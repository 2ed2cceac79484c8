"""What text and JSON values every store keeps as themselves: the one set of value checks, used
by the stores, the input contract, the scoping and the HTTP client. Free of numpy and torch, so
the client imports fast."""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import TextInputError

METADATA_MAX_DEPTH = 32
"""Deepest nesting of dicts and lists allowed in a fact's metadata (the top dict is level 1)."""

METADATA_MAX_BYTES = 64 * 1024
"""Largest serialised (UTF-8 JSON) metadata of one fact."""


def check_metadata(metadata: Any, *, allow_nul: bool = False) -> str:
    """Validate a fact's metadata and return its JSON text (the one place these rules live).

    A dict with str keys, JSON values (str, int, float, bool, None, lists and dicts of those)
    nested at most `METADATA_MAX_DEPTH` deep, no NaN/Inf, at most `METADATA_MAX_BYTES` as
    UTF-8 JSON, no NUL (``allow_nul``: metadata read back from a store that once kept NUL;
    `SQLTransaction.add_facts` refuses NUL on every backend). Raises `TextInputError` naming
    the offending path.
    """
    if not isinstance(metadata, dict):
        raise TextInputError(
            f"metadata must be a dict of JSON values (e.g. {{'source': 'chat'}}), got "
            f"{type(metadata).__name__}: {metadata!r:.80}"
        )
    check_json_value(metadata, "metadata", max_depth=METADATA_MAX_DEPTH, allow_nul=allow_nul)
    text = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
    size = len(text.encode("utf-8"))
    if size > METADATA_MAX_BYTES:
        raise TextInputError(
            f"metadata is {size} bytes as JSON; the limit is {METADATA_MAX_BYTES} bytes "
            "(64 KiB). Keep large payloads elsewhere and store a reference."
        )
    return text


def check_json_value(value: Any, where: str = "value", *, max_depth: int | None = None,
                     allow_nul: bool = False, _depth: int = 1) -> Any:
    """``value`` if it is plain JSON that every store keeps as itself: str keys, finite
    numbers, valid Unicode without NUL (`check_storable`; ``allow_nul`` for what a store
    reads back), JSON types only, and (``max_depth``) nested at most that deep. Raises
    `TextInputError` (a ValueError) naming the place. The one JSON check: metadata here and in
    the input contract, a conversation's messages in the client."""
    if isinstance(value, (dict, list, tuple)) and max_depth is not None and _depth > max_depth:
        raise TextInputError(f"{where} nests deeper than {max_depth} levels; flatten it.")
    check = check_utf8 if allow_nul else check_storable
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TextInputError(
                    f"keys must be str, got {type(k).__name__} key {k!r} in {where}; convert "
                    "it yourself (JSON would silently turn it into a string)."
                )
            check(k, f"key {k[:40]!r} of {where}")
            check_json_value(v, f"{where}[{k[:40]!r}]", max_depth=max_depth,
                             allow_nul=allow_nul, _depth=_depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_json_value(v, f"{where}[{i}]", max_depth=max_depth, allow_nul=allow_nul,
                             _depth=_depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            what = "NaN" if math.isnan(value) else "infinite"
            raise TextInputError(
                f"value at {where} is {what}; JSON has no NaN or Infinity: send a finite "
                "number, null or a string instead."
            )
    elif isinstance(value, str):
        check(value, f"value at {where}")
    elif value is not None and not isinstance(value, (bool, int)):
        raise TextInputError(
            f"value at {where} is a {type(value).__name__}, which is not JSON-serialisable; "
            "use str, int, float, bool, None, lists and dicts."
        )
    return value


def check_storable(text: str, where: str) -> None:
    """The one policy for text every store keeps: valid UTF-8 (`check_utf8`) and no NUL
    (U+0000), which PostgreSQL cannot hold; so SQLite and HTTP refuse it too."""
    check_utf8(text, where)
    if "\x00" in text:
        raise TextInputError(
            f"{where} contains a NUL character (\\x00) at {text.index(chr(0))}; no store keeps "
            "NUL (PostgreSQL cannot), remove it."
        )


def check_utf8(text: str, where: str) -> None:
    """A `TextInputError` naming ``where`` for text that cannot be encoded (lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TextInputError(
            f"{where} is not valid UTF-8 ({exc.reason} at {exc.start}): a lone surrogate; "
            "remove it."
        ) from exc
