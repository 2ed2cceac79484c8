"""`larimar eval locomo` on a tiny synthetic two-session conversation and the tiny random model."""

from __future__ import annotations

import json

import pytest

from larimar_memory.eval.locomo_data import (
    contains_answer,
    locomo_f1,
    parse_conversation,
    parse_evidence,
    token_f1,
)
from larimar_memory.eval.locomo_systems import LarimarSystem, offline_mem0_env
from larimar_memory.types import Fact, RememberResult, WriteOutcome

# Short turns: the tiny model takes facts of at most 48 byte tokens, date prefix included.
CONVERSATION = {
    "sample_id": "toy-1",
    "conversation": {
        "speaker_a": "Ann",
        "speaker_b": "Bo",
        "session_1_date_time": "1 May 2023",
        "session_1": [
            {"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a cat, Miso."},
            {"speaker": "Bo", "dia_id": "D1:2", "text": "Nice! I bake bread."},
            {"speaker": "Ann", "dia_id": "D1:3", "text": "Thanks!"},
        ],
        "session_2_date_time": "9 June 2023",
        "session_2": [
            {"speaker": "Bo", "dia_id": "D2:1", "text": "I ran a marathon in Oslo."},
            {"speaker": "Ann", "dia_id": "D2:2", "text": "Thanks!"},
        ],
        "session_3_date_time": "10 June 2023",  # a date with no session, as in LoCoMo
    },
    "qa": [
        {"question": "What is the name of Ann's cat?", "answer": "Miso", "evidence": ["D1:1"],
         "category": 4},
        {"question": "Where did Bo run a marathon?", "answer": "Oslo",
         "evidence": ["D2:1; D1:2"], "category": 2},
        {"question": "What year did Ann adopt a cat?", "answer": 2023, "evidence": ["D1:1"],
         "category": 2},
        {"question": "What does Bo hate?", "adversarial_answer": "cats", "evidence": ["D1:2"],
         "category": 5},
    ],
}


def test_parse_conversation_units_and_questions():
    conv = parse_conversation(CONVERSATION)
    assert [u.dia_id for u in conv.units] == ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2"]
    unit = conv.units[3]
    assert (unit.session, unit.date, unit.speaker) == (2, "9 June 2023", "Bo")
    assert unit.render("bare") == "I ran a marathon in Oslo."
    assert unit.render("dated") == "9 June 2023 Bo: I ran a marathon in Oslo."
    assert unit.metadata() == {"speaker": "Bo", "session": 2, "date": "9 June 2023",
                               "dia_id": "D2:1"}
    assert [q.category for q in conv.questions] == [4, 2, 2]  # category 5 has no gold answer
    assert conv.questions[1].evidence == {"D2:1", "D1:2"}
    assert conv.questions[2].answer == "2023"  # int answers become strings


def test_metrics_follow_locomo():
    assert token_f1("The cats", "cat") == 1.0  # articles dropped, Porter stem
    assert token_f1("in Oslo, Norway", "Oslo") == pytest.approx(0.5)  # P 1/3, R 1
    assert token_f1("", "Oslo") == 0.0
    # multi-hop: each comma-separated gold part takes its best predicted part
    assert locomo_f1("painting, running", "running, painting", 1) == 1.0
    assert locomo_f1("painting", "running, painting", 1) == 0.5
    # open-domain: the first ';' alternative is the gold answer
    assert locomo_f1("psychology", "psychology; counseling", 3) == 1.0
    assert contains_answer("2023", ["1 May 2023 Ann: I adopted a cat."])
    assert not contains_answer("Oslo", ["I bake bread."])
    assert parse_evidence(["D8:6; D9:17", "D1:2"]) == {"D8:6", "D9:17", "D1:2"}


def test_larimar_outcomes_are_accounted():
    """Duplicates credit the stored fact; replacements are listed with both texts."""

    class FakeLarimar:
        def recall(self, query, *, k=1, namespace=None, decode=True, filter=None): ...

    conv = parse_conversation(CONVERSATION)
    system = LarimarSystem(FakeLarimar(), "ns")  # type: ignore[arg-type]
    first, second = conv.units[2], conv.units[4]  # "Thanks!" twice, same text
    def result(status: str) -> RememberResult:
        return RememberResult(ids=["f1"], outcomes=[WriteOutcome(id="f1", status=status)])

    system._account(result("written"), first, first.text)
    system._account(result("duplicate"), second, second.text)
    assert system.aliases["f1"] == ["D1:3", "D2:2"]
    old = Fact(id="f1", namespace="ns", text="Thanks!", key="Thanks!", created_at=0.0,
               metadata={"dia_id": "D1:3"})
    system._account(RememberResult(ids=["f2"], outcomes=[
        WriteOutcome(id="f2", status="replaced", replaced=old)]), conv.units[0], "I adopted a cat")
    statuses = [e["status"] for e in system.log.events]
    assert statuses == ["duplicate", "replaced"]
    replaced = system.log.events[1]
    assert (replaced["replaced_dia_id"], replaced["replaced_text"]) == ("D1:3", "Thanks!")
    assert "f1" not in system.aliases and system.aliases["f2"] == ["D1:1"]


@pytest.fixture()
def toy_file(tmp_path):
    path = tmp_path / "toy-locomo.json"
    path.write_text(json.dumps([CONVERSATION]), encoding="utf-8")
    return path


def _run(toy_file, tmp_path, **overrides):
    torch = pytest.importorskip("torch")
    from larimar_memory.eval.locomo import LocomoOptions, markdown_table, run_locomo, save_locomo

    torch.set_num_threads(1)
    overrides.setdefault("scale_facts", 12)
    options = LocomoOptions(model="tiny", data=toy_file, ks=[1, 2], limit_questions=1,
                            max_new_tokens=2, out_dir=tmp_path / "out", **overrides)
    payload = run_locomo(options)
    json_path, png_path = save_locomo(payload, options.out_dir)
    return payload, json_path, png_path, markdown_table(payload)


def test_run_locomo_tiny_end_to_end(toy_file, tmp_path):
    pytest.importorskip("langchain_core")
    pytest.importorskip("bm25s")
    payload, json_path, png_path, table = _run(toy_file, tmp_path, skip_mem0=True)
    assert json_path.name == "eval-conversation-recall.json" and json_path.is_file()
    assert png_path is not None and png_path.is_file()
    assert json.loads(json_path.read_text())["counts"] == {
        "conversations": ["toy-1"], "turns": 5, "questions": 3,
        "questions_by_category": {"multi-hop": 0, "temporal": 2, "open-domain": 0,
                                  "single-hop": 1},
    }
    for variant in ("bare", "dated"):
        systems = payload["metrics"][variant]
        assert set(systems) == {"larimar", "vector", "bm25", "bm25+vector-rrf",
                                "vector (larimar keys)", "bm25 (larimar keys)",
                                "bm25+vector-rrf (larimar keys)"}
        for row in systems.values():
            assert row["questions"] == 3
            assert set(row["recall_at_k"]) == {"1", "2"}
            assert row["recall_ms_p50"] is not None and row["write_ms_per_turn"] is not None
            assert row["recall_ms_p95"] >= row["recall_ms_p50"]
            assert set(row["recall_at_k_by_category"]) == {"temporal", "single-hop"}
        larimar = systems["larimar"]
        assert larimar["refused"] == 0 and larimar["turns"] == 5
        assert larimar["bytes_per_namespace"]
        # BM25 finds the keyword turns ("cat", "marathon"/"Oslo") within the top 2
        assert systems["bm25"]["recall_at_k"]["2"] == 100.0
        assert systems["vector"]["bytes_per_namespace"] == 5 * 256 * 4  # hashing embedder, f32
        # the same-key baselines index both keys of every turn
        assert systems["vector (larimar keys)"]["bytes_per_namespace"] == 10 * 256 * 4
    assert payload["baselines"]["mem0"] == "skipped (--skip-mem0)"
    ask = payload["ask"]
    assert ask["questions"] == 1
    assert set(ask["systems"]) == {"larimar", "vector+decoder", "decoder, no memory"}
    assert "| dated | bm25 |" in table and "End-to-end answers" in table
    assert "| dated | bm25 (larimar keys) |" in table and "temporal (2) R@1" in table
    assert (json_path.parent / "eval-conversation-recall-by-category.png").is_file()
    # 12 distinct facts in one namespace: the 5 turns, then again with the years moved on
    scale = payload["scale"]
    assert scale["facts"] == 12 and scale["queries"] == 3
    assert scale["recall_ms_p95"] >= scale["recall_ms_p50"] > 0


def test_same_key_baselines_find_a_turn_by_its_context_key():
    """The fair baselines index the key Larimar adds (the turn with the turn before it): a
    question phrased like the previous turn finds the answer turn only with it."""
    pytest.importorskip("bm25s")
    from larimar_memory.eval.locomo_systems import BM25System, unit_keys

    conv = parse_conversation(CONVERSATION)
    units = list(conv.units)
    assert unit_keys(units, "bare")[1] == ["Nice! I bake bread.",
                                           "Ann: I adopted a cat, Miso. Bo: Nice! I bake bread."]
    plain, same = BM25System(), BM25System(same_keys=True)
    for system in (plain, same):
        system.write(units, "bare")
    assert [h.dia_ids for h in plain.search("Miso adopted", 2)] == [("D1:1",)]
    assert [h.dia_ids for h in same.search("Miso adopted", 2)] == [("D1:1",), ("D1:2",)]
    assert same.search("adopting", 1)[0].dia_ids == ("D1:1",)  # stemmed as Larimar's keys


def test_scale_units_are_distinct_dated_turns():
    from larimar_memory.eval.locomo import scale_units

    units = scale_units([parse_conversation(CONVERSATION)], 12)
    assert len({u.render("dated") for u in units}) == 12
    assert units[5].date == "1 May 2024" and units[5].dia_id == "D1:1#1"


def test_run_locomo_with_mem0_offline(toy_file, tmp_path):
    offline_mem0_env()  # before mem0 is first imported: no telemetry, no ~/.mem0
    pytest.importorskip("mem0")
    pytest.importorskip("qdrant_client")
    pytest.importorskip("langchain_core")
    payload, *_ = _run(toy_file, tmp_path, skip_ask=True, skip_larimar=True,
                       variants=["bare"])
    mem0 = payload["metrics"]["bare"]["mem0"]
    vector = payload["metrics"]["bare"]["vector"]
    assert mem0["turns"] == 5 and mem0["replacements"] == 0 and mem0["other_write_events"] == 0
    # infer=False over the same embeddings: the same ranking as the vector store
    assert mem0["recall_at_k"] == vector["recall_at_k"]
    assert payload["ask"] is None and "larimar" not in payload["metrics"]["bare"]
