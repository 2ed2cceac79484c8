"""Looking after a namespace rather than using it: its sizes (`stats`) and re-writing every
fact with the current models and settings (`reencode`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..blocks import BlockWrite
from ..store import FactRecord
from .cache import encode_values
from .parts import Parts


def stats(parts: Parts, ns_name: str) -> dict[str, Any]:
    """`Larimar.stats`: facts, memory rows and blocks, in-process bytes."""
    with parts.lock:
        ns = parts.namespaces.synced(ns_name)
        memory = ns.memory if ns else None
        return {
            "facts": len(ns.facts) if ns else 0,
            "rows": sum(len(e.rows) for e in ns.facts.values()) if ns else 0,
            "blocks": len(memory.blocks) if memory else 0,
            "block_rows": parts.settings.block_rows,
            "latent_width": parts.model.latent_width,
            "state_bytes": memory.nbytes() if memory else 0,
            "cached_namespaces": len(parts.namespaces),
            "cached_bytes": parts.namespaces.cached_bytes(),
            "cache": parts.namespaces.stats(),
        }


def reencode(parts: Parts, ns_name: str) -> int:
    """`Larimar.reencode`: keys, values and memory rows of every fact written again in one
    store transaction (texts, ids, metadata and creation times kept); the cached copy is
    dropped. Returns the count."""
    with parts.lock, parts.store.transaction(ns_name) as tx:
        records = tx.all_facts()
        if not records:
            return 0
        extra_texts = [t for r in records for t in r.extra_key_texts]
        embedded = parts.embedder.embed([r.key_text for r in records] + extra_texts)
        keys, extra_emb = embedded[: len(records)], embedded[len(records):]
        starts = np.cumsum([0] + [len(r.extra_key_texts) for r in records])
        values = encode_values(parts.model, parts.settings, [r.text for r in records])
        memory = parts.namespaces.new_memory()
        extra = [extra_emb[starts[i]: starts[i + 1]] for i in range(len(records))]
        rows = memory.write([BlockWrite(r.id, keys[i], values[i], None,
                                        extra[i] if len(extra[i]) else None)
                             for i, r in enumerate(records)])
        tx.delete_facts([r.id for r in records])
        tx.add_facts([
            FactRecord(namespace=ns_name, text=r.text, key_text=r.key_text,
                       key=keys[i].numpy(), values=values[i].numpy(),
                       rows=np.asarray(rows[r.id]), metadata=r.metadata,
                       request_id=r.request_id, id=r.id, created_at=r.created_at,
                       extra_key_texts=r.extra_key_texts, extra_keys=extra[i].numpy())
            for i, r in enumerate(records)
        ])
        tx.set_namespace_meta(parts.namespaces.namespace_meta())
        tx.commit_version()
        parts.namespaces.drop(ns_name)
    return len(records)
