"""`FactColumns`: a namespace's facts read as columns, what loads a memory in bulk.

Why: a cache that has no copy of a namespace (a restart, an eviction) loads every fact. Built
one `FactRecord` at a time, with its arrays checked one by one and its rows packed again, that
took 0.13 ms per fact (1.5 s at 10,000 facts). Here the stored rows of one query become a few
arrays and lists: the keys one ``(n, D)`` array, the memory rows one int64 array, and each
row's value the stored packed blob as it is (`packed.py`; a row written once holds exactly its
value, so the blob is the row's moment in `OneHotMemory`). Every check runs once over a whole
column (lengths, finiteness by exponent bits, distinct rows), and a stored row that fails one
is a `StoreError` naming the fact, never a wrong memory.

Only what is stored is read: no snapshot of derived state is kept anywhere, so a forgotten
fact leaves no bytes behind (the purge and crypto-shredding guarantees hold as they are).

numpy only (the store never imports torch).
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np

from .errors import StoreError
from .packed import PackedFormatError, check, is_packed, pack, rows_valid, split_rows

__all__ = ["FactColumns", "from_rows"]

_SCAN = json.scanner.make_scanner(json.JSONDecoder())
"""One JSON value from the start of a string, without `json.loads`'s wrappers (a load
parses ~10,000 metadata objects)."""
_F32 = np.dtype("<f4")
_I64 = np.dtype("<i8")


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


@dataclass
class FactColumns:
    """Facts as columns, in store order (oldest first). Fact ``i``'s extra keys are
    ``extra_keys[extra_offsets[i]:extra_offsets[i + 1]]``, its memory rows
    ``rows[row_offsets[i]:row_offsets[i + 1]]`` and their values ``moments`` at the same
    positions: one packed ``(1, value_dim)`` row each."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    key_texts: list[str] = field(default_factory=list)
    extra_key_texts: list[tuple[str, ...]] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    created_at: list[float] = field(default_factory=list)
    request_ids: list[str | None] = field(default_factory=list)
    keys: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (n, D)
    extra_keys: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    extra_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (R,)
    row_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    moments: list[bytes] = field(default_factory=list)  # (R,)
    value_dim: int = 0

    def __len__(self) -> int:
        return len(self.ids)


def from_rows(rows: Sequence[Sequence[Any]]) -> FactColumns:
    """Columns from stored rows (``namespace, id, text, key_text, key, key_dim, vals, n_rows,
    value_dim, mem_rows, metadata, created_at, request_id, extra_key_texts``, unsealed), each
    column checked in one pass; a row that fails is a `StoreError` that names its fact."""
    if not rows:
        return FactColumns()
    (_, ids, texts, key_texts, key_blobs, key_dims, vals, n_rows, value_dims, row_blobs,
     metadata, created_at, request_ids, extra_texts) = (list(c) for c in zip(*rows, strict=True))
    _check(ids, [type(v) is not str or not v for v in ids], "its id is not a string")
    _check(ids, [type(t) is not str or type(k) is not str for t, k in zip(texts, key_texts,
                                                                        strict=True)],
           "its text or key text is not a string")
    _check(ids, [r is not None and type(r) is not str for r in request_ids],
           "its request id is not a string")
    meta = _json(ids, metadata, dict, "metadata")
    extra = [() if raw == "[]" else tuple(e) for raw, e in zip(
        extra_texts, _json(ids, extra_texts, list, "extra key texts", skip="[]"), strict=True)]
    _check(ids, [bool(e) and not all(type(t) is str for t in e) for e in extra],
           "its extra key texts are not strings")
    created = _numbers(ids, created_at, np.float64, "created_at")
    _check(ids, ~np.isfinite(created), "its created_at is not finite")

    dims = _numbers(ids, key_dims, np.int64, "key width")
    _check(ids, dims < 1, "its key width is < 1")
    _check(ids, dims != dims[0], f"its key width differs from the first fact's ({dims[0]})")
    dim = int(dims[0])
    per_fact = 1 + np.asarray([len(e) for e in extra], dtype=np.int64)
    _check(ids, np.asarray([len(k) for k in key_blobs]) != per_fact * dim * _F32.itemsize,
           f"its stored keys do not hold (1 + extra keys) x {dim} float32 values")
    keys = np.frombuffer(b"".join(bytes(k) for k in key_blobs), dtype=_F32).reshape(-1, dim)
    finite = np.isfinite(keys).all(axis=1)
    key_offsets = _offsets(per_fact)
    _check(ids, ~np.logical_and.reduceat(finite, key_offsets[:-1]), "its keys contain NaN or Inf")
    main = np.zeros(len(keys), dtype=bool)
    main[key_offsets[:-1]] = True

    counts = _numbers(ids, n_rows, np.int64, "number of rows")
    _check(ids, counts < 1, "it has no memory rows")
    _check(ids, np.asarray([len(r) for r in row_blobs]) != counts * _I64.itemsize,
           "its stored memory rows do not match its number of rows")
    all_rows = np.frombuffer(b"".join(bytes(r) for r in row_blobs), dtype=_I64).astype(np.int64)
    row_offsets = _offsets(counts)
    owner = np.repeat(np.arange(len(ids)), counts)
    _check(ids, np.logical_or.reduceat(all_rows < 0, row_offsets[:-1]), "a memory row is < 0")
    order = np.lexsort((all_rows, owner))  # by fact, then row: a repeat is a neighbour
    by_fact, by_row = owner[order], all_rows[order]
    repeats = (by_fact[1:] == by_fact[:-1]) & (by_row[1:] == by_row[:-1])
    _check(ids, np.bincount(by_fact[1:][repeats], minlength=len(ids)) > 0,
           "it holds a memory row twice")

    widths = _numbers(ids, value_dims, np.int64, "value width")
    _check(ids, widths != widths[0], f"its value width differs from the first fact's "
                                     f"({widths[0]})")
    width = int(widths[0])
    moments = _moments(ids, vals, counts, width)
    if not rows_valid(moments, width):
        _fail(*_bad_values(ids, moments, row_offsets, width))
    return FactColumns(
        ids=ids, texts=texts, key_texts=key_texts, extra_key_texts=extra, metadata=meta,
        created_at=created.tolist(), request_ids=request_ids,
        keys=np.array(keys[main], dtype=np.float32), extra_offsets=_offsets(per_fact - 1),
        extra_keys=np.array(keys[~main], dtype=np.float32), rows=all_rows,
        row_offsets=row_offsets, moments=moments, value_dim=width,
    )


def _moments(ids: list[str], vals: list[Any], counts: np.ndarray, width: int) -> list[bytes]:
    """One packed row per memory row: a one-row fact's stored blob as it is (`rows_valid`
    checks them all at once); a longer fact's, or raw float32 values (format 3), packed row
    by row."""
    out: list[bytes] = []
    for fid, blob, n in zip(ids, vals, counts.tolist(), strict=True):
        if n == 1 and type(blob) is bytes and len(blob) & 1:  # packed (`is_packed`)
            out.append(blob)
            continue
        blob = bytes(blob)
        try:
            if is_packed(blob):
                out += split_rows(blob, n, width)
            elif len(blob) == n * width * _F32.itemsize:
                out += [pack(row[None]) for row in np.frombuffer(blob, _F32).reshape(n, width)]
            else:
                raise PackedFormatError(f"{len(blob)} bytes hold neither packed nor raw "
                                        f"({n}, {width}) float32 values")
        except PackedFormatError as exc:
            _fail(fid, f"its stored values are malformed ({exc})")
    return out


def _bad_values(ids: list[str], moments: list[bytes], offsets: np.ndarray, width: int
                ) -> tuple[str, str]:
    """The first fact whose packed rows `rows_valid` refuses, and why."""
    bounds = offsets.tolist()
    for i, fid in enumerate(ids):
        rows = moments[bounds[i]:bounds[i + 1]]
        if not rows_valid(rows, width):
            try:
                for row in rows:
                    check(row, 1, width)
            except PackedFormatError as exc:
                return fid, f"its stored values are malformed ({exc})"
            return fid, "its values contain NaN or Inf"
    raise AssertionError("rows_valid refused the whole but none of its parts")


def _json(ids: list[str], raws: list[Any], kind: type, what: str, skip: str | None = None
          ) -> list[Any]:
    """Each raw value parsed (None for those equal to ``skip``, not parsed)."""
    out = []
    for fid, raw in zip(ids, raws, strict=True):
        if skip is not None and raw == skip:
            out.append(None)
            continue
        try:
            value, end = _SCAN(raw, 0)
            if end != len(raw):  # trailing text: json.loads accepts it or says what is wrong
                value = json.loads(raw)
        except StopIteration:  # the scanner's "no JSON value here": json.loads says why
            try:
                value = json.loads(raw)
            except (TypeError, ValueError) as exc:
                _fail(fid, f"its {what} are not valid JSON ({exc})")
        except (TypeError, ValueError) as exc:
            _fail(fid, f"its {what} are not valid JSON ({exc})")
        if type(value) is not kind:
            _fail(fid, f"its {what} are not a JSON {kind.__name__}")
        out.append(value)
    return out


def _numbers(ids: list[str], values: list[Any], dtype: type, what: str) -> np.ndarray:
    """A numeric column as an array; `StoreError` for the first value that is not a number
    of that kind (a stored text, a fraction where a count belongs)."""
    found = np.asarray(values)  # int64 when all are ints, float64 when some are floats
    if found.dtype.kind in ("i" if dtype is np.int64 else "if"):
        return found.astype(dtype)
    allowed = (int,) if dtype is np.int64 else (int, float)
    _check(ids, [type(v) not in allowed for v in values], f"its {what} is not a number")
    raise AssertionError(f"{what}: no value refused, yet the column is {found.dtype}")


def _check(ids: list[str], bad: Any, problem: str) -> None:
    """`StoreError` for the first fact flagged in ``bad`` (one flag per fact)."""
    flags = np.asarray(bad, dtype=bool)
    if flags.any():
        _fail(ids[int(np.argmax(flags))], problem)


def _fail(fid: str, problem: str) -> NoReturn:
    raise StoreError(f"Fact {fid} as stored is invalid: {problem}; the store is corrupted. "
                     "Forget this fact or restore the store from a backup.")

