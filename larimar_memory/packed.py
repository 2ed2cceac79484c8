"""Packed value rows: a fact's latents in the fewest bytes that give them back bit for bit.

Why: a latent row is wide (token codes: 48 slots × 64 = 3,072 floats, 12 KB in float32) but
mostly empty (a sentence fills ~15 slots; the slots after its EOS are zero), and the service
rounds values to float16 before writing them (`LarimarSettings.value_dtype`). A packed row keeps
only the columns up to the last non-zero one, in the narrowest of float16 / float32 / float64
that holds every value exactly: ~1.7 KB for a CounterFact sentence. Packing never rounds, so
what is unpacked is what was packed: the store (``vals``) and the in-process memory
(``onehot.py``) keep the same bytes.

Layout: one byte for the dtype (``h`` / ``f`` / ``d``), the kept width as a little-endian
uint32, then the ``(n, width)`` values row-major, little-endian. A packed blob therefore always
has an odd length, and a raw float32 blob (format 3 of the store, ``n × C × 4`` bytes) an even
one: the store tells them apart by length alone.

numpy only (the store never imports torch).
"""

from __future__ import annotations

import numpy as np

_HEADER = 5
_DTYPES = {b"h": np.dtype("<f2"), b"f": np.dtype("<f4"), b"d": np.dtype("<f8")}
_CODES = {dtype: code for code, dtype in _DTYPES.items()}


class PackedFormatError(ValueError):
    """A blob that is not a packed row of the expected shape (a corrupted store or state)."""


def pack(values: np.ndarray) -> bytes:
    """``values`` ``(n, C)`` (float16/32/64) as a packed blob; `unpack` gives them back exactly."""
    array = np.asarray(values)
    if array.ndim != 2 or array.dtype.kind != "f":
        raise PackedFormatError(f"pack takes a 2-D float array, got {array.dtype} "
                                f"{tuple(array.shape)}")
    used = np.flatnonzero(array.any(axis=0))
    width = int(used[-1]) + 1 if len(used) else 0
    kept = array[:, :width]
    dtype = np.dtype(f"<f{array.dtype.itemsize}")
    for narrow in (_DTYPES[b"h"], _DTYPES[b"f"]):
        if narrow.itemsize < dtype.itemsize and np.array_equal(kept.astype(narrow), kept):
            dtype = narrow
            break
    return _CODES[dtype] + width.to_bytes(4, "little") + kept.astype(dtype).tobytes()


def unpack(blob: bytes, n: int, width: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """The ``(n, width)`` array a blob packs, as ``dtype``; `PackedFormatError` if the blob is
    not a packed row of that shape."""
    stored, kept = check(blob, n, width)
    out = np.zeros((n, width), dtype=dtype)
    out[:, :kept] = np.frombuffer(blob, dtype=stored, offset=_HEADER).reshape(n, kept)
    return out


def check(blob: bytes, n: int, width: int) -> tuple[np.dtype, int]:
    """The stored dtype and kept width of a packed ``(n, width)`` blob; `PackedFormatError` if
    it is not one (without reading its values)."""
    stored = _DTYPES.get(blob[:1]) if is_packed(blob) else None
    if stored is None:
        raise PackedFormatError(f"not a packed blob ({len(blob)} bytes)")
    kept = int.from_bytes(blob[1:_HEADER], "little")
    if kept > width or len(blob) != _HEADER + n * kept * stored.itemsize:
        raise PackedFormatError(
            f"packed blob of {len(blob)} bytes with width {kept} does not hold ({n}, {width})"
        )
    return stored, kept


def split_rows(blob: bytes, n: int, width: int) -> list[bytes]:
    """A packed ``(n, width)`` blob as ``n`` packed rows, each exactly what `pack` gives for
    that row alone (one row: the blob itself, after `check`)."""
    if n == 1:
        check(blob, 1, width)
        return [blob]
    dtype = check(blob, n, width)[0]
    return [pack(row[None]) for row in unpack(blob, n, width, dtype.newbyteorder("="))]


_SIZES = {code: dtype.itemsize for code, dtype in _DTYPES.items()}
_MASKS = {b"h": 0x7C00, b"f": 0x7F800000, b"d": 0x7FF0000000000000}
_HEAD = np.dtype([("code", "S1"), ("kept", "<u4")])


def rows_valid(blobs: list[bytes], width: int) -> bool:
    """Whether every blob is a packed ``(1, width)`` row (as `check` accepts it) holding only
    finite values: one vectorised pass over the headers, then one per stored dtype over the
    joined values, testing the exponent bits (all ones: Inf or NaN) without converting one."""
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    if not len(blobs) or bool((lengths < _HEADER).any()):
        return not len(blobs)
    heads = np.frombuffer(b"".join([b[:_HEADER] for b in blobs]), dtype=_HEAD)
    sizes = np.zeros(len(blobs), dtype=np.int64)
    for code, size in _SIZES.items():
        sizes[heads["code"] == code] = size
    if not bool(((sizes > 0) & (heads["kept"] <= width)
                 & (lengths == _HEADER + heads["kept"] * sizes)).all()):
        return False
    for code, mask in _MASKS.items():
        chosen = np.flatnonzero(sizes == _SIZES[code]).tolist()
        if chosen:
            payload = b"".join([memoryview(blobs[i])[_HEADER:] for i in chosen])
            bits = np.frombuffer(payload, dtype=f"<u{_SIZES[code]}")
            if bool(((bits & mask) == mask).any()):
                return False
    return True


def is_packed(blob: bytes) -> bool:
    """A packed blob's length is odd (header of 5 + whole floats); a raw float32 blob's even."""
    return len(blob) % 2 == 1 and len(blob) >= _HEADER
