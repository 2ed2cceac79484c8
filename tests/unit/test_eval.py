"""The evaluation harness: metrics on hand-made cases, loaders on tiny fixtures of every schema,
the memories experiments measure (the service's BlockMemory, the paper's single EpisodicMemory),
decoder scoring, and every experiment end to end on the tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from larimar_memory.eval import EXPERIMENTS, EvalOptions, load_context, load_edits
from larimar_memory.eval import metrics as m
from larimar_memory.eval.cli import eval_app
from larimar_memory.eval.context import PAPER_MEMORY, SERVICE_MEMORY
from larimar_memory.eval.data import (
    DATA_ENV,
    EvalDataError,
    last_sentence,
    load_text_lines,
    parse_edit,
    resolve_data,
)
from larimar_memory.eval.paper import PAPER
from larimar_memory.eval.report import file_stem
from larimar_memory.eval.scoring import TargetScore, score_targets
from larimar_memory.testing import tiny_test_model

# --------------------------------------------------------------------------------------------
# fixtures: one tiny file per schema, laid out like ../shared/data
# --------------------------------------------------------------------------------------------

SUBJECTS = ["Alpha Corp", "Beta Town", "Gamma Ray", "Delta Blues", "Echo Park", "Foxtrot Inc",
            "Golf Club", "Hotel Nine", "India Ink", "Juliet Rose"]
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Quito", "Seoul", "Dakar", "Hanoi", "Perth"]


def _flat(i: int) -> dict:
    s = SUBJECTS[i % 10] + ("" if i < 10 else f" {i}")
    return {"case_id": i, "prompt": f"{s} is based in", "target_new": CITIES[i % 10],
            "subject": s, "ground_truth": CITIES[(i + 3) % 10],
            "rephrase_prompt": f"The home city of {s} is",
            "locality_prompt": f"Zulu {i} is based in",
            "locality_ground_truth": CITIES[(i + 3) % 10]}


def _rome(i: int) -> dict:
    s = SUBJECTS[i]
    return {"case_id": 100 + i,
            "requested_rewrite": {"prompt": "{} originates from", "relation_id": "P19",
                                  "target_new": {"str": CITIES[i], "id": "Q1"},
                                  "target_true": {"str": CITIES[i - 1], "id": "Q2"},
                                  "subject": s},
            "paraphrase_prompts": [f"Noise here. {s} is native to", f"Other text. {s} was born in"],
            "neighborhood_prompts": [f"Zulu {i} originates from", f"Yankee {i} originates from"],
            "attribute_prompts": [], "generation_prompts": []}


def _mend(i: int) -> dict:
    s = SUBJECTS[i % 10]
    return {"subject": s, "src": f"Which city is {s} in?", "pred": CITIES[i % 10],
            "rephrase": f"In which city is {s} located?", "alt": CITIES[(i + 5) % 10],
            "answers": [CITIES[i % 10]], "loc": f"nq question: who founded {s}",
            "loc_ans": "John Smith"}


KNOWEDIT_ZSRE = {"subject": "Epaspidoceras", "target_new": "Noctuidae",
                 "prompt": "Which family does Epaspidoceras belong to?",
                 "ground_truth": ["Aspidoceratidae"],
                 "rephrase_prompt": "What family are Epaspidoceras?",
                 "locality": {"Relation_Specificity": [
                     {"prompt": "The taxon rank of Epaspidoceras is", "ground_truth": ["genus"]}]}}
KNOWEDIT_RECENT = {"subject": "Ingrida", "prompt": "The gender of Ingrida is",
                   "target_new": "female", "portability": {},
                   "locality": {"Relation_Specificity": [
                       {"prompt": "The place of birth of Ingrida is",
                        "ground_truth": [["Cesis", "Cēsis"]]}]}}
QNA = {"case_index": 0, "question": "The mother tongue of Danielle Darrieux is",
       "subject": "Danielle Darrieux", "answer": "English",
       "qna_question": "What is the mother tongue of Danielle Darrieux?"}
WIKI = (" = Robert Boulter = \r\n Robert Boulter is an English actor .\r\n\r\n"
        " = = Career = = \r\n In 2006 , Boulter starred in a play .\r\n"
        " He appeared on television in 2008 .\r\n")


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    files = {
        "counterfact/counterfact-edit.json": [_flat(i) for i in range(40)],
        "counterfact/counterfact-val.json": [_flat(i) for i in range(10)],
        "counterfact/counterfact_portability_gpt4.json": [_rome(i) for i in range(1, 6)],
        "zsre/zsre_mend_eval_portability_gpt4.json": [_mend(i) for i in range(12)],
    }
    for rel, rows in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(rows, indent=1))
    wiki = root / "wikitext/wikitext-2-raw/wiki.test.raw"
    wiki.parent.mkdir(parents=True)
    wiki.write_bytes(WIKI.encode())
    monkeypatch.setenv(DATA_ENV, str(root))
    return root


# --------------------------------------------------------------------------------------------
# metrics on hand-made cases
# --------------------------------------------------------------------------------------------


def test_success_and_magnitude_from_given_probabilities():
    p_new = [[0.5], [0.1, 0.6]]
    p_true = [[0.2], [0.3, 0.4]]
    # record 1: success 1, diff 0.3; record 2: successes (0, 1), diffs (-0.2, 0.2)
    out = m.success_and_magnitude(p_new, p_true)
    assert out["S"] == pytest.approx(75.0) and out["M"] == pytest.approx(15.0)
    assert out["records"] == 2
    nb = m.success_and_magnitude(p_new, p_true, neighborhood=True)
    assert nb["S"] == pytest.approx(25.0) and nb["M"] == pytest.approx(-15.0)
    empty = m.success_and_magnitude([[]], [[]])
    assert empty["S"] is None and empty["records"] == 0


def test_probability_is_geometric_mean_of_token_probabilities():
    lp = math.log(0.25) + math.log(1.0)
    assert m.geometric_probability(lp, 2) == pytest.approx(0.5)
    assert TargetScore(lp, 2, 1).probability == pytest.approx(0.5)
    assert TargetScore(0.0, 0, 0).probability == 0.0
    assert m.token_accuracy(1, 2) == 0.5 and m.token_accuracy(0, 0) is None


def test_em_f1_normalisation():
    assert m.normalize_answer("  The Cat, sat!  ") == "cat sat"
    assert m.exact_match("the Eiffel Tower.", "Eiffel tower") == 1.0
    assert m.exact_match("Eiffel", "Eiffel Tower") == 0.0
    assert m.token_f1("the cat sat", "cat sat down") == pytest.approx(0.8)
    assert m.token_f1("dog", "cat") == 0.0
    assert m.token_f1("", "") == 1.0
    assert m.contains_answer("It is in Paris, France", "paris")
    assert not m.contains_answer("Parisian food", "Paris")
    assert not m.contains_answer("anything", "")


def test_retention_perplexity_and_harmonic_mean():
    assert m.retention([1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert m.retention([]) is None
    assert m.perplexity(4 * math.log(5), 4) == pytest.approx(5.0)
    assert m.perplexity(1.0, 0) is None
    assert m.harmonic_mean([50.0, 100.0, 100.0]) == pytest.approx(75.0)
    assert m.harmonic_mean([0.0, 100.0]) == 0.0
    assert m.harmonic_mean([None, 100.0]) is None


# --------------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------------


def test_loaders_detect_each_schema(tmp_path: Path):
    rows = [_flat(0), _rome(1), _mend(2), KNOWEDIT_ZSRE, KNOWEDIT_RECENT, QNA]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(rows))
    flat, rome, mend, kz, kr, qna = load_edits(path)
    assert (flat.schema, flat.prompt, flat.target_new, flat.target_true) == (
        "easyedit", "Alpha Corp is based in", "Paris", "Lima")
    assert flat.paraphrases == ("The home city of Alpha Corp is",)
    assert flat.neighborhood == (("Zulu 0 is based in", "Lima"),)
    assert flat.fact == "Alpha Corp is based in Paris"
    assert rome.schema == "rome" and rome.prompt == "Beta Town originates from"
    assert (rome.target_new, rome.target_true) == ("Rome", "Paris")
    assert len(rome.paraphrases) == 2 and rome.neighborhood[1] == ("Yankee 1 originates from",
                                                                   "Paris")
    assert last_sentence(rome.paraphrases[0]) == "Beta Town is native to"
    assert mend.schema == "mend" and mend.prompt == "Which city is Gamma Ray in?"
    assert (mend.target_new, mend.target_true) == ("Dakar", "Oslo")
    assert mend.neighborhood == (("nq question: who founded Gamma Ray", "John Smith"),)
    assert kz.schema == "knowedit" and kz.target_true == "Aspidoceratidae"
    assert kz.neighborhood == (("The taxon rank of Epaspidoceras is", "genus"),)
    assert kr.target_true is None and kr.neighborhood[0][1] == "Cesis"
    assert qna.schema == "qna" and qna.target_new == "English" and qna.paraphrases


def test_loader_reads_jsonl_limits_and_rejects_unknown(tmp_path: Path):
    path = tmp_path / "cf.jsonl"
    path.write_text("\n".join(json.dumps(_flat(i)) for i in range(5)) + "\n")
    assert len(load_edits(path, limit=3)) == 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"text": "x", "labels": "y"}]))
    with pytest.raises(EvalDataError, match="no known schema"):
        load_edits(bad)
    with pytest.raises(EvalDataError):
        parse_edit({"foo": 1})


def test_resolve_data_uses_the_data_root(data_root: Path, tmp_path: Path):
    path = resolve_data(None, "zsre/zsre_mend_eval_portability_gpt4.json")
    assert path == data_root / "zsre/zsre_mend_eval_portability_gpt4.json"
    assert resolve_data("counterfact/counterfact-val.json", "x") == (
        data_root / "counterfact/counterfact-val.json")
    with pytest.raises(EvalDataError, match="--data"):
        resolve_data(tmp_path / "missing.json", "x")


def test_wikitext_lines_skip_headings_and_crlf(data_root: Path):
    lines = load_text_lines(data_root / "wikitext/wikitext-2-raw/wiki.test.raw")
    assert lines == ["Robert Boulter is an English actor .",
                     "In 2006 , Boulter starred in a play .",
                     "He appeared on television in 2008 ."]
    assert len(load_text_lines(data_root / "wikitext/wikitext-2-raw/wiki.test.raw", 2)) == 2


# --------------------------------------------------------------------------------------------
# the memories experiments measure, and scoring
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_ctx():
    return load_context("tiny", EvalOptions(block_rows=2, paper_slots=4))


def test_service_memory_reads_back_routes_and_forgets_exactly(tiny_ctx):
    from larimar_memory.blocks import BlockMemory

    ctx = tiny_ctx
    torch.manual_seed(0)
    keys = torch.nn.functional.normalize(torch.randn(3, ctx.embedder.dim), dim=-1)
    values = [torch.randn(1, ctx.model.latent_width), torch.randn(2, ctx.model.latent_width),
              torch.randn(1, ctx.model.latent_width)]
    memory = ctx.new_memory()
    assert isinstance(memory, BlockMemory) and memory.block_rows == 2
    ctx.write(memory, ["a", "b", "c"], keys, values)
    # the 2-row fact needs a block of its own; the third fact fills the first block's free row
    assert len(memory.blocks) == 2 and memory.rows_of("b") == (2, 3)
    # a query reads what Larimar.ask reads: top-1 search, readout, model.memory_context
    contexts = ctx.contexts(memory, keys)
    for context, value, fid, key in zip(contexts, values, "abc", keys, strict=True):
        (hit, score, readout), = memory.read(key, 1)
        assert hit == fid and score == pytest.approx(1.0, abs=1e-5)
        assert torch.allclose(readout, value.to(readout.dtype), atol=1e-2)
        assert torch.equal(context, ctx.model.memory_context([readout]).cpu())
    assert ctx.hits(memory, keys) == ["a", "b", "c"]
    alone = ctx.new_memory()
    ctx.write(alone, ["a", "c"], keys[[0, 2]], [values[0], values[2]])
    rows = memory.rows_of("b")
    memory.forget("b")
    block = memory.blocks[rows[0] // 2]
    assert block.memory[[r % 2 for r in rows]].abs().max() < 1e-6  # back to the zero prior
    assert ctx.hits(memory, keys[1:2])[0] in ("a", "c")  # b's key now reads another fact
    for fid in ("a", "c"):
        assert torch.allclose(memory.readout(fid), alone.readout(fid), atol=1e-6)
    assert ctx.contexts(ctx.new_memory(), keys[:1]) == [None]  # empty: ask decodes plainly
    with pytest.raises(Exception, match="is not in this memory"):
        memory.readout("b")


def test_robustness_noise_is_on_the_block_rows_only(tiny_ctx):
    from larimar_memory.eval.experiments.robustness import noisy_readout

    ctx = tiny_ctx
    memory = ctx.new_memory(block_rows=4)
    keys = torch.eye(ctx.embedder.dim)[:3].double()
    values = [torch.randn(1, ctx.model.latent_width) for _ in range(3)]
    ctx.write(memory, ["a", "b", "c"], keys, values)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(noisy_readout(memory, "b", 0.0, gen), memory.readout("b"))
    noisy = noisy_readout(memory, "b", 0.5, gen)
    assert noisy.shape == (1, ctx.model.latent_width)
    assert not torch.allclose(noisy, memory.readout("b"), atol=1e-3)
    assert noisy_readout(memory, None, 0.5, gen) is None


def test_paper_memory_capacity_and_pseudo_inverse(tiny_ctx):
    from larimar_memory.addressing import random_reference
    from larimar_memory.memory import EpisodicMemory

    ctx = tiny_ctx
    D, C = ctx.embedder.dim, ctx.model.latent_width
    keys = torch.eye(D)[:6].double()
    values = torch.randn(6, C, dtype=torch.float64)
    # batch: one K=4 Gaussian memory whose reference starts with the batch's keys
    reference = random_reference(4, D, seed=0, dtype=torch.float64)
    reference[:4] = keys[:4]
    memory = ctx.paper_memory(addressing="gaussian", reference=reference)
    assert isinstance(memory, EpisodicMemory) and memory.slots == 4
    weights = memory.address(keys)
    memory.write(values, weights=weights)
    readouts = memory.read(weights=weights)
    cos = torch.nn.functional.cosine_similarity(readouts, values, dim=-1)
    assert cos[:4].min() > 0.7 and cos.min() < 0.99  # past K = 4 facts share rows
    within = ctx.paper_memory(addressing="gaussian", reference=reference)
    within.write(values[:4], weights=weights[:4])
    assert torch.allclose(within.read(weights=weights[:4]), values[:4], atol=1e-2)
    # sequential: pseudo-inverse weights key·R⁺ against the fixed random reference
    pinv = ctx.paper_memory(slots=8, addressing="pseudo_inverse")
    assert pinv.config.addressing == "pseudo_inverse"
    for i in range(3):
        pinv.write(values[i : i + 1], keys[i : i + 1])
    cos = torch.nn.functional.cosine_similarity(pinv.read(keys=keys[:3]), values[:3], dim=-1)
    assert cos.min() > 0.999  # within capacity: back up to the ridge's shrinkage


def test_scoring_takes_one_context_per_row_with_plain_rows(tiny_ctx):
    from larimar_memory.eval.scoring import generate

    model = tiny_ctx.model
    z = torch.randn(3, model.latent_width)
    prompts, targets = ["ab", "xyz", "q"], ["cd", "q", "r"]
    dense = score_targets(model, prompts, targets, z, batch_size=2)
    rows = [z[0:1], None, z[2:3]]
    mixed = score_targets(model, prompts, targets, rows, batch_size=2)
    plain = score_targets(model, prompts, targets, None)
    for i, expected in ((0, dense[0]), (1, plain[1]), (2, dense[2])):
        assert mixed[i].logprob == pytest.approx(expected.logprob, abs=1e-4)
    torch.manual_seed(0)
    texts = generate(model, prompts, rows, 3, batch_size=8)
    assert len(texts) == 3
    with pytest.raises(ValueError):
        score_targets(model, prompts, targets, rows[:2])


def test_score_targets_matches_a_manual_log_softmax():
    model = tiny_test_model().eval()
    scores = score_targets(model, ["ab", "xyz"], ["cd", "q"])
    tok = model.decoder.tokenizer
    ids = [model.decoder.start_token_id] + tok("ab cd", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model.decoder.lm(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits.float(), dim=-1)
    begin = 1 + len(tok("ab", add_special_tokens=False)["input_ids"])
    expected = sum(float(logp[i - 1, ids[i]]) for i in range(begin, len(ids)))
    assert scores[0].tokens == len(ids) - begin == 3  # " cd" in bytes
    assert scores[0].logprob == pytest.approx(expected, abs=1e-4)
    z = torch.zeros(2, model.latent_width)
    with_z = score_targets(model, ["ab", "xyz"], ["cd", "q"], z)
    assert len(with_z) == 2 and all(s.tokens > 0 for s in with_z)


def test_record_blocks_split_queries_by_record():
    from larimar_memory.eval.experiments.common import Queries, record_blocks

    queries = Queries()
    for owner, count in enumerate([2, 1, 3, 1, 2]):
        for k in range(count):
            queries.add(owner, "edit", f"q{owner}.{k}", "new", "old")
    blocks = list(record_blocks(queries, 5, 2))
    assert blocks == [(slice(0, 2), slice(0, 3)), (slice(2, 4), slice(3, 7)),
                      (slice(4, 5), slice(7, 9))]
    sub = queries.subset(blocks[1][1], blocks[1][0].start)
    assert sub.owner == [0, 0, 0, 1] and sub.prompt[0] == "q2.0"
    assert sub.by_owner() == {0: [0, 1, 2], 1: [3]}


def test_registry_matches_the_experiment_modules():
    import importlib

    for name, experiment in EXPERIMENTS.items():
        module = importlib.import_module(f"larimar_memory.eval.experiments.{experiment.module}")
        assert module.NAME == name and module.DEFAULT_DATA == experiment.default_data


def test_paper_reference_covers_every_experiment():
    assert set(PAPER) == set(EXPERIMENTS)
    assert all("values" in entry and "table" in entry for entry in PAPER.values())


# --------------------------------------------------------------------------------------------
# every experiment end to end on the tiny model
# --------------------------------------------------------------------------------------------

FAST = ["--model", "tiny", "--max-new-tokens", "4", "--batch-size", "8"]
RUNS = {
    "edit-time": ["--limit", "3", "--sweep", "2,3", "--block-rows", "8"],
    "counterfact": ["--limit", "3"],
    "zsre": ["--limit", "3"],
    "sequential": ["--limit", "4", "--sample", "2", "--block-rows", "2", "--paper-slots", "8"],
    "batch": ["--limit", "4", "--block-rows", "2", "--paper-slots", "2", "--sample", "2"],
    "forgetting": ["--block-rows", "2", "--sample", "2"],
    "rephrase": ["--limit", "3"],
    "robustness": ["--limit", "3", "--sweep", "0,0.1"],
    "long-context": ["--limit", "2", "--sweep", "4,40", "--block-rows", "16"],
    "reconstruct": ["--limit", "2", "--block-rows", "4"],
}


@pytest.mark.parametrize("experiment", list(RUNS))
def test_experiment_runs_end_to_end_on_tiny(experiment: str, data_root: Path, tmp_path: Path):
    out = tmp_path / "results"
    result = CliRunner().invoke(eval_app, [experiment, *FAST, *RUNS[experiment],
                                           "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    payload = json.loads((out / f"{file_stem(experiment)}.json").read_text())
    assert payload["experiment"] == experiment and payload["model"] == "tiny"
    assert payload["summary"] and payload["paper"] == PAPER[experiment]
    # every payload says which memory it measures: the service's or the paper's
    memory = payload["memory"]
    kinds = [memory["memory"]] if "memory" in memory else [m["memory"] for m in memory.values()]
    assert kinds and set(kinds) <= {SERVICE_MEMORY, PAPER_MEMORY}
    for plot in payload.get("plots", []):
        assert Path(plot).is_file() and Path(plot).suffix == ".png"


def test_cli_reports_missing_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nowhere"))
    result = CliRunner().invoke(eval_app, ["counterfact", "--model", "tiny", "--limit", "2",
                                           "--out", str(tmp_path)])
    assert result.exit_code == 2 and "EvalDataError" in result.output


def test_eval_app_mounts_as_a_subcommand():
    import typer

    parent = typer.Typer()
    parent.add_typer(eval_app, name="eval")
    result = CliRunner().invoke(parent, ["eval", "list"])
    assert result.exit_code == 0
    assert all(name in result.output for name in EXPERIMENTS)
