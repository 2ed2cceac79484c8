"""Specific exceptions. Every message says what was wrong, what was received, and what to do."""

from __future__ import annotations


class LarimarError(Exception):
    """Base class for every error this library raises on purpose."""


class MemoryInputError(LarimarError, ValueError):
    """A tensor handed to the memory has the wrong shape, dtype, device or values (NaN/Inf)."""


class EmptyInputError(LarimarError, ValueError):
    """An empty batch or empty/whitespace-only text where content is required."""


class NotWrittenError(LarimarError, ValueError):
    """A forget would remove more than was written (the key covariance stops being positive
    definite); the memory is left unchanged."""


class StateFileError(LarimarError, ValueError):
    """A saved state is corrupted, from an incompatible format version, or does not match the
    configuration it is loaded into."""


class ModelNotFoundError(LarimarError, FileNotFoundError):
    """A model could not be located offline; the message says which package to install."""


class FactNotFoundError(LarimarError, KeyError):
    """An unknown fact id or text was given to forget/get."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "fact not found"


class TextInputError(LarimarError, ValueError):
    """Text that cannot be stored: empty, not valid UTF-8, or longer than allowed."""


class NamespaceError(TextInputError):
    """A namespace name breaks the namespace rule (``larimar_memory.names.NAMESPACE_RULE``)."""


class StoreError(LarimarError, RuntimeError):
    """The persistent store is unusable: wrong schema version, locked too long, or corrupted."""


class StoreURLError(StoreError, ValueError):
    """A store URL is malformed or names a scheme no store serves (see ``store_url``)."""


class PurgePendingError(StoreError):
    """A delete committed (the fact is gone from every answer), but its bytes could not be
    purged from the store's files yet: another connection holds an old snapshot. The purge is
    retried on the next write and at close."""


class ArgumentError(LarimarError, ValueError):
    """An argument has the wrong type or value (k < 1, a malformed filter, ids twice)."""


class RequestConflictError(LarimarError, ValueError):
    """A request id was reused for different facts: retries must send the same facts."""


class StoreMismatchError(StoreError):
    """A namespace was written with another model, embedder or memory settings."""
