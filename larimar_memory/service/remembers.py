"""Running remember calls: one call in its namespace's transaction, or many at once (all keys
embedded in one pass, all values in one, one transaction per namespace); the rules of what a
call writes and replaces are the `writes.Writer`'s."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..types import RememberResult
from .batching import batch_or_each, each
from .cache import NamespaceState
from .parts import Parts
from .writes import PreparedRemember, RememberCall

logger = logging.getLogger(__name__)


def remember(parts: Parts, call: RememberCall, ns_name: str) -> RememberResult:
    """`Larimar.remember` of texts: validate, embed, then resolve and apply in one
    transaction (a repeated request id replays the first call's result)."""
    prepared = parts.writer.prepare(call, ns_name)
    parts.writer.embed([prepared])
    with parts.lock, parts.namespaces.transaction(prepared.ns_name) as (tx, ns):
        replayed = parts.writer.plan(tx, ns, prepared)
        if replayed is not None:
            return replayed
        result = parts.writer.apply(tx, ns, prepared)
        parts.namespaces.commit(tx, ns)
    return result


def remember_many(parts: Parts, requests: Sequence[RememberCall],
                  remember: Callable[..., RememberResult]) -> list[RememberResult | Exception]:
    """`Larimar.remember_many`: validate and embed all calls together, then one transaction
    per namespace; a namespace that rolls back is redone call by call through ``remember``."""
    results: list[Any] = [None] * len(requests)
    prepared = each(results, {
        i: (lambda c=call: parts.writer.prepare(c, parts.namespace_name(c.namespace)))
        for i, call in enumerate(requests)
    })
    batch_or_each(results, prepared, lambda ps: parts.writer.embed(ps))
    by_namespace: dict[str, list[int]] = {}
    for i, p in prepared.items():
        by_namespace.setdefault(p.ns_name, []).append(i)
    for ns_name, members in by_namespace.items():
        try:
            with parts.lock, parts.namespaces.transaction(ns_name) as (tx, ns):
                if _apply_calls(parts, tx, ns, members, prepared, results):
                    parts.namespaces.commit(tx, ns)
        except Exception:  # noqa: BLE001 - the namespace rolled back: redo call by call
            logger.warning("batched write to %r rolled back; retrying its %d calls one by "
                           "one", ns_name, len(members), exc_info=True)
            each(results, {i: (lambda c=requests[i]: remember(**c.arguments()))
                           for i in members}, into_results=True)
    return [r if r is not None else RuntimeError("no result") for r in results]


def _apply_calls(parts: Parts, tx: Any, ns: NamespaceState, members: list[int],
                 prepared: dict[int, PreparedRemember], results: list[Any]) -> bool:
    """The batched calls of one namespace in order; True when any of them wrote."""
    changed = False
    for i in members:
        try:  # refusals happen before anything of the call is applied
            replayed = parts.writer.plan(tx, ns, prepared[i])
        except Exception as exc:  # noqa: BLE001 - the caller's own error
            results[i] = exc
            continue
        if replayed is not None:
            results[i] = replayed
            continue
        results[i] = parts.writer.apply(tx, ns, prepared[i])
        changed = True
    return changed
