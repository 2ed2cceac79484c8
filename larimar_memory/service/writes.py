"""Remember calls, from arguments to stored facts: validate, embed, resolve, apply.

Nothing a user stores is replaced unless the user says so: the same caller-chosen id, the same
explicit ``key=`` from the same owner, or the same ``slot`` (metadata field) from the same owner
(a correction: "I moved to Lisbon." after "I live in Porto."). The same text from the same owner
is a duplicate and is not written twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from .. import contract
from ..blocks import BlockWrite
from ..errors import ArgumentError, RequestConflictError
from ..scoping import ScopedCall, check_scope, scoped_metadata
from ..statements import slot_head
from ..store import FactRecord
from ..types import CHANGE_FIELD, SLOT_FIELD, Fact, RememberResult, WriteOutcome
from . import validation as check
from .cache import FactEntry, NamespaceState, encode_values
from .settings import LarimarSettings, names_of, owner_of

if TYPE_CHECKING:
    from ..model import LarimarModel
    from ..scope import SentenceEmbedder

@dataclass
class RememberCall(ScopedCall):
    """One `Larimar.remember` call, for `Larimar.remember_many`: the same arguments."""

    text: str | list[str]
    key: str | list[str] | None = None
    namespace: str | None = None
    metadata: dict[str, Any] | list[dict[str, Any]] | None = None
    request_id: str | None = None
    ids: str | list[str] | None = None
    extra_keys: list[str] | list[list[str]] | None = None


@dataclass
class PendingWrite:
    """One input of a remember call, as it is resolved."""

    text: str
    key_text: str
    metadata: dict[str, Any]
    id: str
    key: torch.Tensor
    values: torch.Tensor
    extra_key_texts: list[str] = field(default_factory=list)
    extra_keys: torch.Tensor | None = None
    status: Literal["written", "replaced", "duplicate"] = "written"
    replaces: str | None = None  # a stored fact this input replaces
    superseded: PendingWrite | None = None  # an earlier input of the same call it replaces
    written: bool = True  # False when a later input of the same call superseded it


@dataclass
class PreparedRemember:
    """A validated remember call; ``writes`` are filled when its inputs are embedded."""

    args: contract.RememberArgs
    ns_name: str
    writes: list[PendingWrite] = field(default_factory=list)


class Writer:
    """Turns remember calls into memory updates and fact rows, inside a namespace transaction."""

    def __init__(self, settings: LarimarSettings, model: LarimarModel,
                 embedder: SentenceEmbedder) -> None:
        self.settings, self.model, self.embedder = settings, model, embedder

    def prepare(self, call: RememberCall, ns_name: str) -> PreparedRemember:
        """Validate one remember call (nothing embedded, nothing read from the store)."""
        limits = self.settings
        args = contract.remember_args(call.text, key=call.key, metadata=call.metadata,
                                      request_id=call.request_id, ids=call.ids,
                                      extra_keys=call.extra_keys)
        assert args is not None  # a call with messages never reaches the writer
        args.metas = scoped_metadata(args.metas, check_scope(call.user_id, call.agent_id,
                                                             call.run_id))
        contract.check_lengths(args.texts, "text", limits.max_text_chars)
        if call.key is not None:
            contract.check_lengths(args.keys, "key", limits.max_key_chars)
        for extra in args.extras:
            contract.check_lengths(extra, "extra_keys", limits.max_key_chars)
        check.check_token_counts(self.model.text_token_counts(args.texts), limits.max_fact_tokens)
        return PreparedRemember(args=args, ns_name=ns_name)

    def embed(self, prepared: list[PreparedRemember]) -> None:
        """Keys (and extra keys) of all the calls in one embedder pass, values in one encoder
        pass."""
        if not prepared:
            return
        keys = [k for p in prepared for k in p.args.keys]
        extras = [e for p in prepared for per_text in p.args.extras for e in per_text]
        embedded = self.embedder.embed(keys + extras)
        key_emb, extra_emb = embedded[: len(keys)], embedded[len(keys):]
        values = encode_values(self.model, self.settings,
                               [t for p in prepared for t in p.args.texts])
        at = extra_at = 0
        for p in prepared:
            a, p.writes = p.args, []
            for i, (t, k, m) in enumerate(zip(a.texts, a.keys, a.metas, strict=True)):
                n = len(a.extras[i])
                p.writes.append(PendingWrite(
                    text=t, key_text=k, metadata=m,
                    id=a.fact_ids[i] if a.fact_ids else uuid.uuid4().hex,
                    key=key_emb[at + i], values=values[at + i],
                    extra_key_texts=a.extras[i],
                    extra_keys=extra_emb[extra_at: extra_at + n] if n else None,
                ))
                extra_at += n
            at += len(a.texts)

    def plan(self, tx: Any, ns: NamespaceState, p: PreparedRemember) -> RememberResult | None:
        """Inside the transaction, before anything changes: the first call's result for a
        repeated request id, or None after resolving each input (which may refuse the call)."""
        request_id = p.args.request_id
        if request_id is not None:
            seen = tx.find_by_request_id(request_id)
            if seen:
                return _replayed(seen, p.args.texts, request_id)
        self._resolve(ns, p.writes, caller_ids=p.args.fact_ids is not None)
        return None

    def apply(self, tx: Any, ns: NamespaceState, p: PreparedRemember) -> RememberResult:
        """The resolved call's replacements, memory update and fact rows (the caller commits)."""
        writes = p.writes
        replaced = forget_targets(tx, ns, [w.replaces for w in writes if w.replaces])
        new = [w for w in writes if w.status != "duplicate" and w.written]
        rows = ns.memory.write(
            [BlockWrite(w.id, w.key, w.values, extra_keys=w.extra_keys) for w in new]
        )
        records = [
            FactRecord(
                namespace=p.ns_name, text=w.text, key_text=w.key_text,
                key=w.key.numpy(), values=w.values.numpy(), rows=np.asarray(rows[w.id]),
                metadata=w.metadata, request_id=p.args.request_id, id=w.id,
                extra_key_texts=w.extra_key_texts,
                extra_keys=None if w.extra_keys is None else w.extra_keys.numpy(),
            )
            for w in new
        ]
        tx.add_facts(records)
        for record in records:
            ns.add(FactEntry.from_record(record))
        return RememberResult(
            ids=[w.id for w in writes],
            outcomes=[
                WriteOutcome(id=w.id, status=w.status,
                             replaced=_replaced_fact(w, replaced, p.ns_name))
                for w in writes
            ],
        )

    def _resolve(self, ns: NamespaceState, writes: list[PendingWrite], caller_ids: bool) -> None:
        """Decide per input: written, replaced (and what), or duplicate (of which id). Inputs
        see the ones before them in the same call: a later input with the same id, key or slot
        supersedes an earlier one, which is then not written."""
        if caller_ids and len({w.id for w in writes}) != len(writes):
            raise ArgumentError("an id is given twice in one call; ids must differ")
        pending: dict[str, PendingWrite] = {}
        by_text: dict[tuple[Any, ...], str] = {}
        by_name: dict[tuple[Any, ...], str] = {}  # (owner, "key"/"slot", name) -> id
        for w in writes:
            owner = owner_of(w.metadata)
            names = _names(w)
            target = None
            if caller_ids:
                target = w.id if w.id in ns.facts else None
            else:
                for name in names:
                    target = target or by_name.get((owner, *name)) or ns.by_name.get((owner, *name))
                if target is None:
                    target = _changed_target(ns, pending, w, owner)
                if target is None and self.settings.correction_threshold is not None:
                    target = self._similar(ns, w, owner)
                duplicate = by_text.get((owner, w.text)) or ns.by_text.get((owner, w.text))
                if duplicate is not None and target in (None, duplicate):
                    w.status, w.id = "duplicate", duplicate
                    continue
                w.id = w.id if target is None else uuid.uuid4().hex
            if target in pending:
                superseded = pending.pop(target)
                w.status, w.superseded = "replaced", superseded
            elif target is not None:
                w.status, w.replaces = "replaced", target
            pending[w.id] = w
            by_text[(owner, w.text)] = w.id
            for name in names:
                by_name[(owner, *name)] = w.id
        for w in writes:
            if w.status != "duplicate" and w.id not in pending:
                w.written = False

    def _similar(self, ns: NamespaceState, w: PendingWrite, owner: tuple[Any, ...]) -> str | None:
        threshold = self.settings.correction_threshold
        allowed = [e.id for e in ns.facts.values() if e.owner == owner]
        hits = ns.memory.search(w.key, 1, allowed)
        return hits[0][0] if hits and threshold is not None and hits[0][1] >= threshold else None


def _changed_target(ns: NamespaceState, pending: dict[str, PendingWrite], w: PendingWrite,
                    owner: tuple[Any, ...]) -> str | None:
    """The one fact of this owner whose slot has the head noun a change names ("the rate is
    now 3.9 percent" replaces "My mortgage rate is 4.2 percent."); None when no fact or several
    do. O(facts of the namespace), on change statements only."""
    head = w.metadata.get(CHANGE_FIELD)
    if not isinstance(head, str) or not head:
        return None
    replaced = {p.replaces for p in pending.values()}
    candidates = {
        fid for fid, slot, fowner in (
            *((e.id, e.metadata.get(SLOT_FIELD), e.owner) for e in ns.facts.values()),
            *((p.id, p.metadata.get(SLOT_FIELD), owner_of(p.metadata)) for p in pending.values()),
        )
        if fowner == owner and isinstance(slot, str) and slot_head(slot) == head
        and fid not in replaced
    }
    return candidates.pop() if len(candidates) == 1 else None


def _names(w: PendingWrite) -> list[tuple[str, str]]:
    return names_of(w.text, w.key_text, w.metadata)


def forget_targets(tx: Any, ns: NamespaceState, ids: list[str]) -> dict[str, FactEntry]:
    """The exact −1 update of each fact's block and its deletion from the log."""
    if not ids:
        return {}
    records = tx.delete_facts(ids)  # raises before any change for an unknown id
    for record in records:
        ns.memory.forget(record.id)  # its rows return to the prior: no values needed
    return {record.id: ns.remove(record.id) for record in records}


def _replaced_fact(w: PendingWrite, replaced: dict[str, FactEntry], ns_name: str) -> Fact | None:
    if w.replaces is not None:
        return replaced[w.replaces].to_fact(ns_name)
    if w.superseded is not None:
        old = w.superseded
        return Fact(id=old.id, namespace=ns_name, text=old.text, key=old.key_text,
                    created_at=0.0, metadata=old.metadata)
    return None


def _replayed(seen: list[FactRecord], texts: list[str], request_id: str) -> RememberResult:
    if [r.text for r in seen] != texts[: len(seen)] or len(seen) > len(texts):
        raise RequestConflictError(
            f"request_id {request_id!r} was already used for other facts "
            f"({seen[0].text[:60]!r}…); use a new request_id for new facts"
        )
    return RememberResult(
        ids=[r.id for r in seen], duplicate_request=True,
        outcomes=[WriteOutcome(id=r.id, status="duplicate") for r in seen],
    )
