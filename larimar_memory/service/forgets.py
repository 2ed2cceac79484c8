"""Forgetting: by id or exact text, the one fact a description clearly points to (the safe
forget rule: a threshold and a lead over the runner-up), everything about something, and the
facts a filter or scope keeps. Every route ends in one place, `Forgetter.forget_chosen`: the
exact −1 update of each fact's block, then its rows purged from the store."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import contract
from ..errors import FactNotFoundError
from ..relevance import Hit
from ..types import Fact, ForgetCandidate, ForgetResult
from . import validation as check
from .cache import NamespaceState
from .parts import Parts, ScopeIds, kept
from .reads import Reader
from .writes import forget_targets

_ALL_TERMS = 1.0 - 1e-6  # Evidence.lexical when a fact's keys hold every term of the query


class Forgetter:
    """The forget verbs of `Larimar`, on its parts and its reader."""

    def __init__(self, parts: Parts, reader: Reader) -> None:
        self.parts, self.reader = parts, reader

    def forget(self, fact: str, namespace: str | None, filter: dict[str, Any] | None,
               scope: ScopeIds) -> list[Fact]:
        parts = self.parts
        ns_name = parts.namespace_name(namespace)
        target = parts.check_length(contract.check_text(fact, "fact"), "fact")
        where = parts.where(contract.check_filter(filter), scope)

        def choose(ns: NamespaceState) -> list[str]:
            by_id = ns.facts.get(target)  # an id is found without a scan
            if by_id is not None and check.matches(by_id.metadata, where):
                return [target]
            ids = [e.id for e in kept(ns, where, lambda e: e.text == target)]
            if not ids:
                raise FactNotFoundError(
                    f"no fact with id or exact text {target[:80]!r} in namespace {ns_name!r} "
                    f"({len(ns.facts)} facts stored); use list() to see ids"
                )
            return ids

        return self.forget_chosen(ns_name, choose)

    def forget_matching(self, description: str, namespace: str | None, threshold: float | None,
                        margin: float | None, filter: dict[str, Any] | None, scope: ScopeIds
                        ) -> ForgetResult:
        parts = self.parts
        ns_name = parts.namespace_name(namespace)
        description, threshold, margin = contract.forget_matching_args(description, threshold,
                                                                       margin)
        where = parts.where(contract.check_filter(filter), scope)
        parts.check_length(description, "description")
        exact = self._same_text(description, ns_name, where)
        if exact is not None:  # "forget that I live in Paris" naming the fact word for word
            return ForgetResult(description=description,
                                forgotten=self._forget_present([exact], ns_name))
        hits = self.reader.describe(description, ns_name, 3, where)
        limit = parts.scope_threshold if threshold is None else threshold
        lead = parts.settings.forget_margin if margin is None else margin
        candidates = self._candidates(hits, ns_name)
        if not hits or hits[0].score < limit:
            best = hits[0].score if hits else 0.0
            return ForgetResult(description=description, candidates=candidates,
                                reason=f"no stored fact matches well enough (best relevance "
                                       f"{best:.2f} < {limit:.2f})")
        runner_up = hits[1].score if len(hits) > 1 else 0.0
        if self._lead(hits[:2], limit) < lead:
            return ForgetResult(description=description, candidates=candidates, ambiguous=True,
                                reason=f"ambiguous: the best two matches score {hits[0].score:.2f}"
                                       f" and {runner_up:.2f} (margin {lead:.2f} needed at the "
                                       f"operating point); forget by id")
        return ForgetResult(description=description,
                            forgotten=self._forget_present([hits[0].fact_id], ns_name))

    def _lead(self, hits: list[Hit], limit: float) -> float:
        """How far the runner-up falls below the best once both are moved, by the same
        amount of evidence, until the best sits at the operating point ``limit``. Evidence
        that every candidate shares (a forget request names the speaker's own facts, so the
        speaker evidence is the same for each) then cannot hide the difference, as it does
        when it pushes both scores towards 1 ("my cat" against "The cat's vaccination is due
        on October 3.": 0.999 and 0.99)."""
        if len(hits) < 2:
            return 1.0  # nothing to confuse it with
        calibration = self.parts.ranker.calibration
        gap = calibration.log_odds(hits[0].evidence) - calibration.log_odds(hits[1].evidence)
        point = min(max(limit, 1e-6), 1 - 1e-6)
        return point - 1 / (1 + math.exp(gap - math.log(point / (1 - point))))

    def forget_about(self, description: str, namespace: str | None, threshold: float | None,
                     limit: int, filter: dict[str, Any] | None, scope: ScopeIds
                     ) -> ForgetResult:
        parts = self.parts
        ns_name = parts.namespace_name(namespace)
        description, threshold, limit = contract.forget_about_args(description, threshold, limit)
        where = parts.where(contract.check_filter(filter), scope)
        parts.check_length(description, "description")
        hits = self.reader.describe(description, ns_name, limit, where)
        bar = parts.scope_threshold if threshold is None else threshold
        chosen = [h.fact_id for h in hits if h.score >= bar or h.evidence.lexical >= _ALL_TERMS]
        if not chosen:
            return ForgetResult(description=description,
                                candidates=self._candidates(hits[:3], ns_name),
                                reason=f"no stored fact reaches relevance {bar:.2f}")
        return ForgetResult(description=description,
                            forgotten=self._forget_present(chosen, ns_name))

    def forget_where(self, ns_name: str, where: dict[str, Any]) -> list[Fact]:
        """Forget every fact that ``where`` keeps (`Larimar.clear` with a filter or scope)."""
        return self.forget_chosen(ns_name, lambda ns: [e.id for e in kept(ns, where)])

    def forget_chosen(self, ns_name: str, choose: Callable[[NamespaceState], list[str]]
                      ) -> list[Fact]:
        """In one transaction of the namespace: forget the facts ``choose`` picks from it
        (committed when any were), in that order."""
        parts = self.parts
        with parts.lock, parts.namespaces.transaction(ns_name) as (tx, ns):
            ids = choose(ns)
            removed = forget_targets(tx, ns, ids)
            if removed:
                parts.namespaces.commit(tx, ns)
        return [removed[i].to_fact(ns_name) for i in ids]

    def _forget_present(self, ids: list[str], ns_name: str) -> list[Fact]:
        """Forget the facts that are still stored (another writer may have removed some)."""
        return self.forget_chosen(ns_name, lambda ns: [i for i in ids if i in ns.facts])

    def _same_text(self, description: str, ns_name: str, where: dict[str, Any]) -> str | None:
        """The one stored fact (of those ``where`` keeps) whose text is the description but for
        case, spacing and final punctuation, if exactly one is."""
        wanted = _plain(description)
        with self.parts.lock:
            ns = self.parts.namespaces.synced(ns_name)
            same = [e.id for e in kept(ns, where, lambda e: _plain(e.text) == wanted)]
        return same[0] if len(same) == 1 else None

    def _candidates(self, hits: list[Hit], ns_name: str) -> list[ForgetCandidate]:
        with self.parts.lock:
            ns = self.parts.namespaces.synced(ns_name)
            return [ForgetCandidate(fact=ns.facts[h.fact_id].to_fact(ns_name), score=h.score)
                    for h in hits if ns is not None and h.fact_id in ns.facts]


def _plain(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!? ")
