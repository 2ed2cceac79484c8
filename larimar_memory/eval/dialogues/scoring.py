"""Scores of one dialogue run against its annotations, and their sums per mode × transport.

Pure functions over what a run recorded: per turn, the memory texts the model was given
(``context``) and the texts the memory held after it (``stored_after``); at the end, everything
stored. A fact is "in" a list of texts when its needle
is (whole words, case-blind), so a memory that keeps the user's own sentence ("Ok so my email
is …") counts as holding the fact.
"""

from __future__ import annotations

import statistics

from pydantic import BaseModel, Field

from .schema import Dialogue, Turn, TurnKind


class TurnRecord(BaseModel):
    """What one turn did, as seen from outside the memory."""

    session: int
    kind: TurnKind
    say: str
    context: list[str] = Field(default_factory=list, description="memory texts given the model")
    stored_after: list[str] | None = Field(None, description="the memory's texts after the turn")
    latency_s: float = 0.0
    error: str | None = None


class DialogueRun(BaseModel):
    """One dialogue through one mode and transport."""

    dialogue: str
    mode: str
    transport: str
    turns: list[TurnRecord] = Field(default_factory=list)
    final_stored: list[str] = Field(default_factory=list)
    error: str | None = Field(None, description="why the run stopped early, if it did")


class Failure(BaseModel):
    dialogue: str
    turn: int
    say: str
    what: str
    context: list[str] = Field(default_factory=list)


class Score(BaseModel):
    """Counts for one or more runs; the rates are derived from them."""

    asks: int = 0
    asks_in_context: int = 0
    stale_in_context: int = Field(0, description="asks whose context held a removed fact")
    off_topic: int = 0
    off_topic_clean: int = 0
    removals: int = Field(0, description="facts to forget or replace")
    removals_in_effect: int = 0
    stated: int = Field(0, description="facts stated (and new facts of corrections)")
    stated_stored: int = Field(0, description="... found in memory right after their turn")
    wrong_forgets: int = Field(0, description="facts that had to stay, gone after a turn that "
                                              "was not meant to remove them")
    must_stay: int = 0
    lost: int = Field(0, description="facts that had to be stored at the end and were not")
    must_go: int = 0
    leaked: int = Field(0, description="facts that had to be gone at the end and were not")
    errors: int = 0
    turns: int = 0
    latencies_s: list[float] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)

    def add(self, other: Score) -> Score:
        merged = {name: getattr(self, name) + getattr(other, name)
                  for name in type(self).model_fields}
        return Score(**merged)

    def summary(self) -> dict[str, float | int | None]:
        """The figures of the report (percentages, counts, latency in ms)."""
        lat = sorted(self.latencies_s)

        def pct(part: int, whole: int) -> float | None:
            return round(100.0 * part / whole, 1) if whole else None

        return {
            "asked_in_context_pct": pct(self.asks_in_context, self.asks),
            "off_topic_clean_pct": pct(self.off_topic_clean, self.off_topic),
            "removals_in_effect_pct": pct(self.removals_in_effect, self.removals),
            "stated_stored_pct": pct(self.stated_stored, self.stated),
            "wrong_forgets": self.wrong_forgets,
            "lost_facts": self.lost,
            "leaked_facts": self.leaked,
            "stale_in_context": self.stale_in_context,
            "errors": self.errors,
            "asks": self.asks, "off_topic": self.off_topic, "removals": self.removals,
            "stated": self.stated,
            "must_stay": self.must_stay, "must_go": self.must_go, "turns": self.turns,
            "latency_ms_median": round(1000 * statistics.median(lat), 1) if lat else None,
            "latency_ms_p95": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
        }


def _removal_ok(dialogue: Dialogue, turn: Turn, name: str, after: list[str]) -> bool:
    gone = not dialogue.facts[name].found_in(after)
    new = turn.corrects.get(name)
    return gone and (new is None or dialogue.facts[new].found_in(after))


def score_run(dialogue: Dialogue, run: DialogueRun) -> Score:
    """The counts of one run (see `Score`). Turns the run never reached count as failed."""
    s = Score(errors=int(run.error is not None))
    live: set[str] = set()
    removed: set[str] = set()
    before: list[str] = []
    records = run.turns
    for i, (_, turn) in enumerate(dialogue.turns):
        record = records[i] if i < len(records) else None
        s.turns += 1

        def fail(what: str, context: list[str] | None = None, i: int = i,
                 say: str = turn.say) -> None:
            s.failures.append(Failure(dialogue=dialogue.id, turn=i, say=say, what=what,
                                      context=context or []))

        if record is not None:
            s.latencies_s.append(record.latency_s)
            if record.error:
                s.errors += 1
                fail(f"error: {record.error}")
        context = record.context if record is not None else []
        if turn.asks:
            s.asks += 1
            fact = dialogue.facts[turn.asks]
            if fact.found_in(context):
                s.asks_in_context += 1
            else:
                fail(f"asked {turn.asks!r} ({fact.needle!r}) not in context", context)
            stale = [n for n in removed if dialogue.facts[n].found_in(context)]
            if stale:
                s.stale_in_context += 1
                fail(f"removed {stale} shown in context", context)
        elif turn.off_topic:
            s.off_topic += 1
            if context:
                fail("off-topic question given memory", context)
            else:
                s.off_topic_clean += 1
        seen = record is not None and record.stored_after is not None
        after = (record.stored_after if record else None) or []
        for name in turn.removes:
            s.removals += 1
            if seen and _removal_ok(dialogue, turn, name, after):
                s.removals_in_effect += 1
            else:
                fail(f"{turn.kind} {name!r} not in effect", after)
        for name in [*turn.states, *turn.corrects.values()]:
            s.stated += 1
            if dialogue.facts[name].found_in(after):
                s.stated_stored += 1
            else:
                fail(f"stated {name!r} ({dialogue.facts[name].needle!r}) not stored", after)
        for name in sorted(live - set(turn.removes)) if seen else []:
            fact = dialogue.facts[name]
            if fact.found_in(before) and not fact.found_in(after):
                s.wrong_forgets += 1
                fail(f"{name!r} ({fact.needle!r}) had to stay and is gone", after)
        if seen:
            before = after
        live -= set(turn.removes)
        removed |= set(turn.removes)
        live |= set(turn.states) | set(turn.corrects.values())
        removed -= set(turn.corrects.values())
    end = len(dialogue.turns)
    complete = len(records) == len(dialogue.turns) and run.error is None
    for name in dialogue.final.stored:
        s.must_stay += 1
        if not (complete and dialogue.facts[name].found_in(run.final_stored)):
            s.lost += 1
            fail(f"{name!r} ({dialogue.facts[name].needle!r}) not stored at the end", i=end,
                 say="(end)")
    for name in dialogue.final.gone:
        s.must_go += 1
        if dialogue.facts[name].found_in(run.final_stored):
            s.leaked += 1
            fail(f"{name!r} ({dialogue.facts[name].needle!r}) still stored at the end", i=end,
                 say="(end)")
    return s
