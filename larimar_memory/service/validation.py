"""The checks every `Larimar` argument passes before anything is embedded or stored.

Each raises a library error (`larimar_memory.errors`) that says what to pass instead; nothing is
coerced except bytes that are valid UTF-8 text and NFC normalisation of text."""

from __future__ import annotations

import unicodedata
from typing import Any

from ..errors import ArgumentError, EmptyInputError, TextInputError
from ..filters import check_filter, matches  # noqa: F401 (the one filter language, re-exported)
from ..store import check_metadata, check_utf8
from .settings import MAX_NAME_CHARS


def check_name(name: Any, what: str) -> str:
    """A namespace, id or request id: a non-empty UTF-8 string of at most `MAX_NAME_CHARS`."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise TextInputError(
            f"{what} must be a non-empty string of at most {MAX_NAME_CHARS} characters, got "
            f"{name!r:.80}"
        )
    check_utf8(name, what)
    return name


def check_texts(value: Any, what: str, max_chars: int) -> list[str]:
    """One text or a non-empty list of texts, each visible, NFC-normalised and stripped."""
    items = [value] if isinstance(value, (str, bytes)) else value
    if not isinstance(items, (list, tuple)):
        raise TextInputError(f"{what} must be a string or a list of strings, got {type(value)}")
    if not items:
        raise EmptyInputError(f"{what} is an empty list; pass at least one string")
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TextInputError(
                    f"{what}[{i}] is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                    "decode it with the right encoding first"
                ) from exc
        if not isinstance(item, str):
            raise TextInputError(f"{what}[{i}] must be a string, got {type(item).__name__}")
        check_utf8(item, f"{what}[{i}]")
        item = unicodedata.normalize("NFC", item).strip()
        if not visible(item):
            raise EmptyInputError(
                f"{what}[{i}] is empty, whitespace or invisible characters only; pass some text"
            )
        if len(item) > max_chars:
            raise TextInputError(
                f"{what}[{i}] has {len(item)} characters; at most {max_chars} are allowed. "
                "Shorten or split it; nothing was written"
            )
        texts.append(item)
    return texts


def check_extra_keys(extra_keys: Any, n_texts: int, one_text: bool,
                     max_chars: int) -> list[list[str]]:
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
    return [check_texts(list(e), "extra_keys", max_chars) if e else [] for e in per_text]


def check_ids(ids: Any) -> list[str]:
    items = [ids] if isinstance(ids, str) else ids
    if not isinstance(items, (list, tuple)):
        raise ArgumentError(f"ids must be a string or a list of strings, got {type(ids)}")
    return [check_name(i, "id") for i in items]


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ArgumentError(f"k must be an integer >= 1, got {k!r}")
    return k


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


def check_paging(limit: Any, offset: Any) -> None:
    for name, value, allow_none in (("limit", limit, True), ("offset", offset, False)):
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ArgumentError(f"{name} must be an integer >= 0, got {value!r}")


def check_token_counts(counts: list[int], limit: int) -> None:
    for i, count in enumerate(counts):
        if count > limit:
            raise TextInputError(
                f"fact [{i}] is {count} tokens; at most max_fact_tokens={limit} are allowed. "
                "Split it into shorter facts (e.g. by paragraph) and remember those; nothing "
                "was written"
            )


def check_question_fits(count: int, new_tokens: int, positions: int | None) -> None:
    """A question plus its answer (plus a memory block of k facts' rows, which a context of a
    few thousand positions holds) must fit the decoder's positions; a GPT-2 style LM would
    otherwise fail with an IndexError."""
    if positions is not None and count + new_tokens > positions // 2:
        raise TextInputError(
            f"question is {count} tokens; with {new_tokens} new tokens it must stay under "
            f"{positions // 2} (half of the decoder's {positions} positions, the rest is "
            "for the memory block). Shorten it"
        )


def visible(text: str) -> bool:
    """True when the text has a character that is not whitespace, a control or a format
    character (zero-width spaces and joiners alone are not a fact)."""
    return any(unicodedata.category(c)[0] not in "ZC" for c in text)

