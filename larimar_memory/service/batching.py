"""Many calls at once (a server's concurrent callers), each with its own result or its own
exception: the one batch fallback, shared by `remember_many` and `recall_many`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def each(results: list[Any], calls: dict[int, Callable[[], T]],
         into_results: bool = False) -> dict[int, T]:
    """Run each call; a call's exception becomes its result. Returns the successful values
    by index (also stored in ``results`` when ``into_results``)."""
    out: dict[int, T] = {}
    for i, call in calls.items():
        try:
            out[i] = call()
            if into_results:
                results[i] = out[i]
        except Exception as exc:  # noqa: BLE001 - the caller's own error
            results[i] = exc
    return out


def batch_or_each(results: list[Any], prepared: dict[int, T],
                  run: Callable[[list[T]], None]) -> None:
    """``run`` over all prepared calls in one pass; when it fails, over each alone, so only the
    calls whose input the models refuse get an error (and leave ``prepared``)."""
    try:
        run(list(prepared.values()))
    except Exception:  # noqa: BLE001 - find whose input was refused
        each(results, {i: (lambda p=p: run([p])) for i, p in prepared.items()})
        for i in [i for i in prepared if isinstance(results[i], Exception)]:
            del prepared[i]
