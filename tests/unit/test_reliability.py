"""Nothing a user stores is lost, mixed up, or left behind after a forget (issue 19), and a
namespace holds a whole conversation over many blocks (issue 13), on the tiny model."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from larimar_memory.errors import FactNotFoundError, PurgePendingError
from larimar_memory.testing import tiny_larimar

WORDS = ["alice", "bob", "lisbon", "oslo", "cello", "tea", "monday", "order", "10231", "10232",
         "thanks", "father", "record", "a7", "a17"]
OWNERS = [None, "Caroline", "Melanie"]
text_strategy = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)


class ServiceAgainstADict(RuleBasedStateMachine):
    """Random remember / replace / forget / clear / reopen sequences: the stored facts always
    equal a plain dict model of what the rules say should be stored."""

    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        self.larimar = tiny_larimar(self.folder / "s.sqlite3", block_rows=3)
        self.model: dict[str, tuple[str, str | None]] = {}  # id -> (text, owner)

    def _owner_of(self, owner: str | None) -> dict:
        return {} if owner is None else {"speaker": owner}

    @rule(target=ids, text=text_strategy, owner=st.sampled_from(OWNERS))
    def remember(self, text, owner):
        result = self.larimar.remember(text, metadata=self._owner_of(owner))
        (outcome,) = result.outcomes
        same = [i for i, (t, o) in self.model.items() if t == text and o == owner]
        if same:
            assert outcome.status == "duplicate" and outcome.id == same[0]
        else:
            assert outcome.status == "written"
            self.model[outcome.id] = (text, owner)
        return outcome.id

    @rule(target=ids, text=text_strategy, fact_id=st.sampled_from(["u1", "u2", "u3"]))
    def upsert(self, text, fact_id):
        result = self.larimar.remember(text, ids=fact_id)
        expected = "replaced" if fact_id in self.model else "written"
        assert result.outcomes[0].status == expected and result.ids == [fact_id]
        self.model[fact_id] = (text, None)
        return fact_id

    @rule(fact_id=ids)
    def forget(self, fact_id):
        if fact_id in self.model:
            assert [f.id for f in self.larimar.forget(fact_id)] == [fact_id]
            del self.model[fact_id]
        else:
            with pytest.raises(FactNotFoundError):
                self.larimar.forget(fact_id)

    @rule()
    def clear(self):
        assert self.larimar.clear() == len(self.model)
        self.model.clear()

    @rule()
    def reopen(self):
        self.larimar.close()
        self.larimar = tiny_larimar(self.folder / "s.sqlite3", block_rows=3)

    @invariant()
    def stored_equals_model(self):
        stored = {f.id: (f.text, f.metadata.get("speaker")) for f in self.larimar.list()}
        assert stored == self.model
        for fact_id, (text, _) in list(self.model.items())[:3]:
            hits = self.larimar.recall(text, k=len(self.model), decode=False).hits
            assert fact_id in [h.fact.id for h in hits]

    def teardown(self):
        self.larimar.close()


TestServiceAgainstADict = ServiceAgainstADict.TestCase
TestServiceAgainstADict.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _store_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


def test_a_long_fact_is_written_read_forgotten_and_purged(tmp_path):
    path = tmp_path / "s.sqlite3"
    secret = "Zanzibar-7731 " + " ".join(f"part {i} of a long turn." for i in range(14))
    with tiny_larimar(path) as mem:
        fact_id = mem.remember(secret).ids[0]
        assert len(mem.get(fact_id).rows) > 3
        assert b"Zanzibar-7731" in _store_bytes(path)
        mem.forget(fact_id)
        assert b"Zanzibar-7731" not in _store_bytes(path)


def test_forget_under_a_long_lived_reader_says_the_purge_is_pending(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as mem:
        fact_id = mem.remember("Secret-4242 lives in Oslo.").ids[0]
        reader = sqlite3.connect(path)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM larimar_facts").fetchall()  # holds an old snapshot
        with pytest.raises(PurgePendingError, match="snapshot"):
            mem.forget(fact_id)
        assert mem.list() == []  # logically gone at once
        reader.rollback()
        reader.close()
        mem.remember("Another fact to trigger the purge.")
        assert b"Secret-4242" not in _store_bytes(path)
        assert mem.store.pending_purges == 0


def test_clear_leaves_no_trace_of_the_namespace(tmp_path):
    path = tmp_path / "s.sqlite3"
    with tiny_larimar(path) as mem:
        mem.remember("Alice lives in Lisbon.", namespace="alice@example.com")
        mem.clear(namespace="alice@example.com")
        assert b"alice@example.com" not in _store_bytes(path)
        assert mem.namespaces() == []


def test_two_thousand_namespaces_under_a_small_cache_lose_nothing(tmp_path):
    """2,000 namespaces x 10 facts served under a byte budget far below 2,000 x the old 43.5
    MB per namespace: idle namespaces are evicted and rebuilt from the log on their next call."""
    budget = 2_000_000
    with tiny_larimar(tmp_path / "s.sqlite3", cache_bytes=budget) as mem:
        for n in range(2000):
            mem.remember([f"user{n} fact{i} item{n * 10 + i}" for i in range(10)],
                         namespace=f"user-{n}")
            assert mem._namespaces.cached_bytes() <= budget + 50_000
        assert len(mem._namespaces) < 2000
        for n in range(0, 2000, 7):  # evicted ones come back whole from the log
            ns = f"user-{n}"
            assert len(mem.list(namespace=ns)) == 10
            hit = mem.recall(f"user{n} fact3 item{n * 10 + 3}", namespace=ns, decode=False)
            assert hit.fact.text == f"user{n} fact3 item{n * 10 + 3}"
        assert mem._namespaces.cached_bytes() <= budget + 50_000
