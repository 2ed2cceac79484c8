"""`larimar demo`: a scripted conversation against the embedded defaults, with timings.

It writes facts, recalls one, corrects one, forgets one and routes an out-of-scope question to
plain decoding, printing what the memory did at each step and how long it took.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .conversation import observe

SCRIPT_FACTS = [
    "Alice lives in Lisbon.",
    "Alice works as a marine biologist.",
    "My favourite colour is blue.",
    "The team offsite is in Porto in May.",
]


def run_demo(
    store: Path | None = None,
    namespace: str = "demo",
    as_json: bool = False,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the scripted conversation; returns (and prints) what happened, with timings."""
    from .service import Larimar

    console = console or Console()
    say = (lambda *a, **k: None) if as_json else console.print
    timings: dict[str, float] = {}
    steps: list[dict[str, Any]] = []

    def timed(name: str, fn: Any) -> Any:
        start = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - start
        return result

    with tempfile.TemporaryDirectory() as tmp:
        path = store or Path(tmp) / "demo.sqlite3"
        say("[bold]Loading the packaged models[/bold] (the first run converts SmolLM2's GGUF "
            "once, ~30 s)")
        memory = timed("load_models", lambda: Larimar(store=path, namespace=namespace))
        with memory:
            memory.clear()
            say(f"\n[bold]user:[/bold] {' '.join(SCRIPT_FACTS)}")
            turn = timed("remember_4_facts", lambda: observe(memory, " ".join(SCRIPT_FACTS)))
            say(f"  wrote {len(turn.remembered)} facts one-shot (no gradient step, no LLM call)")
            steps.append({"step": "remember", "ids": turn.remembered})

            question = "Where does Alice live?"
            say(f"\n[bold]user:[/bold] {question}")
            recall = timed("recall", lambda: memory.recall(question))
            answer = timed("ask_in_scope", lambda: memory.ask(question, max_new_tokens=8))
            say(f"  scope {recall.scope.score:.2f} → route [green]{answer.route}[/green]; "
                f"addressed fact: {recall.fact.text if recall.fact else '-'}")
            say(f"  decoded readout: {recall.text!r}")
            say(f"  answer: {answer.answer!r}")
            steps.append({"step": "ask", "question": question, **answer.model_dump(
                include={"answer", "route"}),
                "addressed": recall.fact.text if recall.fact else None,
                "scope": recall.scope.score, "decoded_readout": recall.text})

            correction = "Actually, my favourite colour is green."
            say(f"\n[bold]user:[/bold] {correction}")
            turn = timed("correct", lambda: observe(memory, correction))
            replaced = [f.text for f in memory.list() if "colour" in f.text]
            say(f"  stored now: {replaced} (the old colour was replaced, not duplicated)")
            steps.append({"step": "correct", "stored": replaced})

            request = "Please forget that the team offsite is in Porto."
            say(f"\n[bold]user:[/bold] {request}")
            turn = timed("forget", lambda: observe(memory, request))
            say(f"  forgot: {[f.text for f in turn.forgotten]}")
            steps.append({"step": "forget", "forgotten": [f.text for f in turn.forgotten]})

            other = "What is the boiling point of water at sea level?"
            say(f"\n[bold]user:[/bold] {other}")
            plain = timed("ask_out_of_scope", lambda: memory.ask(other, max_new_tokens=16))
            say(f"  scope {plain.scope.score:.2f} → route [yellow]{plain.route}[/yellow]: "
                f"{plain.answer!r}")
            steps.append({"step": "ask", "question": other, "route": plain.route,
                          "answer": plain.answer, "scope": plain.scope.score})

            facts = [f.text for f in memory.list()]
            say(f"\n[bold]memory now holds[/bold] {len(facts)} facts: {facts}")
            stats = memory.stats()
            checkpoint = memory.model.config.model_dump(
                include={"codec", "decoder_name"}
            )

    table = Table(title="timings")
    table.add_column("step")
    table.add_column("ms", justify="right")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds * 1e3:.0f}")
    say(table)
    result = {"steps": steps, "timings_s": timings, "facts": facts, "stats": stats,
              "model": checkpoint}
    if as_json:
        import json

        console.print_json(json.dumps(result, default=str))
    return result
