"""Training: recipes validate, data never includes evaluation files, every term of eq. 1 can be
switched, the tiny model learns, checkpoints round-trip and resume from their step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from larimar_memory.model import LarimarModel  # noqa: E402
from larimar_memory.testing import byte_level_tokenizer, tiny_test_model  # noqa: E402
from larimar_memory.training import (  # noqa: E402
    TrainingConfigError,
    TrainingDataError,
    available_recipes,
    is_evaluation_file,
    load_config,
    train,
)
from larimar_memory.training.config import BetaSchedule, DataConfig, LossConfig, OptimConfig  # noqa: E402
from larimar_memory.training.data import (  # noqa: E402
    VALIDATION_TEXT_FILES,
    EpisodeCollator,
    build_chunks,
    chunk_texts,
    fact_sentences,
)
from larimar_memory.training.module import LarimarLightningModule  # noqa: E402
from larimar_memory.training.recipe import model_config  # noqa: E402

SUBJECTS = ["Paris", "Berlin", "Rome", "Madrid", "Lisbon", "Vienna", "Oslo", "Prague"]
ANSWERS = ["France", "Germany", "Italy", "Spain", "Portugal", "Austria", "Norway", "Czechia"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: a second thread only adds contention on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small training fact file (flat CounterFact schema) and a validation text."""
    root = tmp_path_factory.mktemp("data")
    records = [
        {"prompt": f"{s} is the capital of", "target_new": a, "ground_truth": a}
        for s, a in zip(SUBJECTS, ANSWERS, strict=True)
    ] * 4
    (root / "facts-train.json").write_text(json.dumps(records))
    (root / "valid.txt").write_text("\n".join(f" {s} lies in {a} ." for s, a in zip(
        SUBJECTS, ANSWERS, strict=True)))
    return root


def run_overrides(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"output_dir={out}",
        f"data.root={root}",
        "data.sources=[{kind: facts, path: facts-train.json}]",
        "data.episode_size=4",
        "data.batch_size=2",
        "data.heldout_chunks=4",
        "data.max_chunks=null",
        "eval.ppl_file=valid.txt",
        "eval.recon_episodes=1",
        "trainer.progress_bar=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tiny"
    return train("tiny", run_overrides(data_root, out, "trainer.max_steps=24",
                                       "trainer.log_every_n_steps=4", "checkpoint.every_n_steps=8"))


# -- configs ---------------------------------------------------------------------------------


def test_every_recipe_validates_without_building_models() -> None:
    names = available_recipes()
    assert {"tiny", "larimar-1.3b", "larimar-6b", "larimar-smol",
            "larimar-smol-pooled"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name
        if cfg.model.init == "config":
            model_config(cfg.model)  # LarimarConfig validates the architecture fields
        assert cfg.data.chunk_tokens <= model_config(cfg.model).max_text_tokens
        for source in cfg.data.sources:
            path = getattr(source, "path", "") or "x-train.json"
            if getattr(source, "allow_validation_split", False):
                assert Path(path).name in VALIDATION_TEXT_FILES  # never a test split
            else:
                assert not is_evaluation_file(path)


def test_recipe_commands_are_in_the_header() -> None:
    from larimar_memory.training.config import recipe_path

    for name in available_recipes():
        header = recipe_path(name).read_text().split("\nname:")[0]
        assert f"larimar train {name}" in header


def test_overrides_apply_and_errors_name_the_field() -> None:
    cfg = load_config("tiny", ["trainer.max_steps=7", "data.episode_size=3", "loss.kl.max=0"])
    assert (cfg.trainer.max_steps, cfg.data.episode_size, cfg.loss.kl.max) == (7, 3, 0.0)
    with pytest.raises(TrainingConfigError, match="trainer.max_stepz"):
        load_config("tiny", ["trainer.max_stepz=7"])
    with pytest.raises(TrainingConfigError, match="trainer.max_steps"):
        load_config("tiny", ["trainer.max_steps=0"])
    with pytest.raises(TrainingConfigError, match="key.path=value"):
        load_config("tiny", ["trainer.max_steps"])
    with pytest.raises(TrainingConfigError, match="unknown recipe"):
        load_config("no-such-recipe")
    with pytest.raises(TrainingConfigError, match="every loss weight is 0"):
        load_config("tiny", ["loss.recon_memory=0", "loss.recon_direct=0", "loss.lm=0",
                             "loss.kl.max=0"])


def test_cyclical_beta_schedule() -> None:
    beta = BetaSchedule(kind="cyclical", max=0.5, cycles=2, ratio_zero=0.5, ratio_increase=0.25)
    values = [beta.value(s, 40) for s in range(40)]
    assert values[:10] == [0.0] * 10  # first half of the first cycle at zero
    assert values[10] == 0.0 and 0 < values[12] < 0.5 and values[15:20] == [0.5] * 5
    assert values[20:30] == [0.0] * 10  # second cycle restarts
    assert beta.value(100, 40) == 0.5  # after the schedule
    assert BetaSchedule(kind="constant", max=0.3).value(7, 40) == 0.3


# -- data ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["counterfact-val.json", "counterfact-edit.json", "zsre_mend_eval.json",
     "KnowEdit_ZsRE-test-all.json", "wiki.test.raw", "valid.txt", "my_facts-test.jsonl",
     "zsre_mend_eval_portability_gpt4.json", "known_1000.json"],
)
def test_evaluation_files_are_refused(name: str, tmp_path: Path) -> None:
    assert is_evaluation_file(name)
    (tmp_path / name).write_text("[]")
    cfg = DataConfig(root=str(tmp_path), sources=[{"kind": "facts", "path": name}])
    with pytest.raises(TrainingDataError, match="evaluation file"):
        build_chunks(cfg, byte_level_tokenizer())


def test_a_validation_text_trains_only_when_asked_and_a_test_file_never(tmp_path: Path) -> None:
    (tmp_path / "valid.txt").write_text(" Paris lies in France .\n Rome lies in Italy .\n" * 8)
    (tmp_path / "test.txt").write_text(" Oslo lies in Norway .\n" * 8)

    def chunks(path: str, allow: bool) -> list[str]:
        source = {"kind": "text", "path": path, "allow_validation_split": allow}
        cfg = DataConfig(root=str(tmp_path), sources=[source], episode_size=2, heldout_chunks=0)
        return build_chunks(cfg, byte_level_tokenizer()).train

    with pytest.raises(TrainingDataError, match="evaluation file"):
        chunks("valid.txt", allow=False)
    assert "Paris lies in France ." in chunks("valid.txt", allow=True)
    with pytest.raises(TrainingDataError, match="evaluation file"):
        chunks("test.txt", allow=True)
    with pytest.raises(TrainingConfigError, match="also a training source"):
        load_config("larimar-smol-pooled", ["eval.ppl_file=wikitext/wikitext-2/valid.txt"])


def test_training_files_are_allowed() -> None:
    for name in ["counterfact-train.json", "zsre_mend_train-1k.json",
                 "wiki_counterfact_train_cf.json", "wikibio-train-all.json", "wiki.train.raw"]:
        assert not is_evaluation_file(name)


def test_fact_sentences_of_each_schema() -> None:
    flat = {"prompt": "BBC One, by", "target_new": "Sega", "ground_truth": "BBC"}
    assert fact_sentences(flat) == ["BBC One, by Sega", "BBC One, by BBC"]
    assert fact_sentences(flat, "new") == ["BBC One, by Sega"]
    rome = {"requested_rewrite": {"prompt": "{} originates from", "subject": "Spike Hughes",
                                  "target_new": {"str": "Philadelphia"},
                                  "target_true": {"str": "London"}}}
    assert fact_sentences(rome, "true") == ["Spike Hughes originates from London"]
    zsre = {"src": "What is the product made by UniFirst?", "alt": "unmanned aircraft",
            "answers": ["uniform"]}
    assert fact_sentences(zsre)[0] == "What is the product made by UniFirst? unmanned aircraft"
    knowedit = {"prompt": "The gender of X is", "target_new": "female",
                "ground_truth": [["male", "man"]]}
    assert fact_sentences(knowedit) == ["The gender of X is female", "The gender of X is male"]
    with pytest.raises(TrainingDataError, match="unknown fact record schema"):
        fact_sentences({"foo": 1})


def test_chunks_fit_the_decoder_budget_and_episodes_are_shaped() -> None:
    model = tiny_test_model()
    tok = model.decoder.tokenizer
    text = "The European lobster is a species of clawed lobster. " * 5
    pieces = chunk_texts([text], tok, chunk_tokens=16)[0]
    assert len(pieces) > 1
    assert all(len(tok(p, add_special_tokens=False)["input_ids"]) <= 16 for p in pieces)
    batch = EpisodeCollator(model.tokenize, episode_size=3)(pieces[:6])
    assert batch["enc_input_ids"].shape[:2] == (2, 3)
    assert batch["dec_input_ids"].shape[:2] == (2, 3)
    assert batch["texts"] == [pieces[:3], pieces[3:6]]


# -- the loss --------------------------------------------------------------------------------


def _module(**loss: object) -> LarimarLightningModule:
    return LarimarLightningModule(tiny_test_model(), LossConfig(**loss), OptimConfig(),
                                  max_steps=10)


def _batch(model: LarimarModel) -> dict[str, object]:
    texts = [f"{s} is the capital of {a}." for s, a in zip(SUBJECTS, ANSWERS, strict=True)]
    return EpisodeCollator(model.tokenize, episode_size=4)(texts)


def test_every_loss_term_switches_on_and_off() -> None:
    module = _module()
    batch = _batch(module.model)
    terms = ("recon_memory", "recon_direct", "lm")

    def losses(**weights: float) -> dict[str, float]:
        module.loss_cfg = LossConfig(**{t: weights.get(t, 0.0) for t in terms},
                                     kl=BetaSchedule(kind="constant", max=weights.get("kl", 0.0)))
        torch.manual_seed(0)
        with torch.no_grad():
            return {k: float(v) for k, v in module.losses(batch, module.beta()).items()}

    full = losses(recon_memory=1, recon_direct=1, lm=1, kl=0.5)
    assert all(full[t] > 0 for t in (*terms, "kl"))
    for term in (*terms, "kl"):
        alone = losses(**{term: 1.0})
        assert alone[term] > 0 and alone["total"] == pytest.approx(alone[term])
        assert all(alone[t] == 0 for t in (*terms, "kl") if t != term)
        without = losses(**{t: (0.5 if t == "kl" else 1.0) for t in (*terms, "kl") if t != term})
        assert without[term] == 0 and without["total"] != pytest.approx(full["total"])


def test_optimizer_holds_only_trainable_parameters() -> None:
    module = LarimarLightningModule(
        tiny_test_model(train_encoder=False, decoder_training="frozen"), LossConfig(),
        OptimConfig(), max_steps=10,
    )
    opt = module.configure_optimizers()["optimizer"]
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in module.model.parameters() if p.requires_grad}
    assert not any(id(p) in in_opt for p in module.model.codec.backbone.parameters())


# -- training runs ---------------------------------------------------------------------------


def test_tiny_model_loss_falls(trained_run: Path) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    first, last = metrics["train"][0], metrics["train"][-1]
    assert first["step"] == 1 and last["step"] == 24
    assert last["total"] < 0.8 * first["total"]
    assert {"recon_memory", "recon_direct", "lm", "beta"} <= set(first)
    val = metrics["val"][-1]
    assert {"recon_exact", "recon_exact_direct", "ppl_no_memory", "total"} <= set(val)
    assert (trained_run / "metrics.png").stat().st_size > 0


def test_exported_model_loads(trained_run: Path) -> None:
    model = LarimarModel.from_pretrained(trained_run / "model")
    ckpt = torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=False)
    trained = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), trained[name]), name


def test_checkpoint_round_trips(trained_run: Path) -> None:
    """The Lightning checkpoint, loaded into a fresh module, gives the same outputs as the
    exported model (both hold the final weights) and not those of an untrained one."""
    from larimar_memory.training.recipe import build_model

    cfg = load_config(trained_run / "config.yaml")
    state = torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 24

    def module(model: LarimarModel) -> LarimarLightningModule:
        return LarimarLightningModule(model, cfg.loss, cfg.optim, max_steps=24).eval()

    untrained = module(build_model(cfg.model))
    from_ckpt = module(build_model(cfg.model))
    from_ckpt.load_state_dict(state["state_dict"])
    exported = module(LarimarModel.from_pretrained(trained_run / "model"))
    batch = _batch(from_ckpt.model)

    def total(m: LarimarLightningModule) -> float:
        torch.manual_seed(0)  # the same σ_w / ξ noise draws
        with torch.no_grad():
            return m.losses(batch, 0.01)["total"].item()

    assert total(from_ckpt) == total(exported)
    assert total(from_ckpt) != total(untrained)
    text = ["Paris is the capital of France."]
    assert torch.equal(from_ckpt.model.encode(text), exported.model.encode(text))


def test_resume_continues_from_the_saved_step(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    common = ("trainer.log_every_n_steps=1", "checkpoint.every_n_steps=3",
              "checkpoint.save_frozen=false", "eval.recon_episodes=0",
              "model.config.codec.train_encoder=false")
    train("tiny", run_overrides(data_root, out, "trainer.max_steps=3", *common))
    first = json.loads((out / "metrics.json").read_text())["train"]
    assert [r["step"] for r in first] == [1, 2, 3]
    train("tiny", run_overrides(data_root, out, "trainer.max_steps=5", *common))
    rows = json.loads((out / "metrics.json").read_text())["train"]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]  # no restart from step 0
    assert rows[:3] == first
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 5
    assert not any(k.startswith("model.codec.backbone.") for k in state["state_dict"])
    # a finished run goes straight to export
    train("tiny", run_overrides(data_root, out, "trainer.max_steps=5", *common))
    assert json.loads((out / "metrics.json").read_text())["steps"] == 5


def test_fact_questions_ask_each_paraphrase_for_both_answers() -> None:
    from larimar_memory.training.data import fact_questions

    cf = {"prompt": "Toko Yasuda, the", "target_new": "piano", "ground_truth": "guitar",
          "rephrase_prompt": "Toko Yasuda is incredible at"}
    assert fact_questions(cf) == [
        ("Toko Yasuda, the piano", "Toko Yasuda is incredible at", "piano"),
        ("Toko Yasuda, the guitar", "Toko Yasuda is incredible at", "guitar"),
    ]
    zsre = {"src": "What did UniFirst make?", "alt": "drones", "answers": ["uniforms"],
            "rephrase": "What does UniFirst produce?"}
    assert [q[1:] for q in fact_questions(zsre)] == [
        ("What does UniFirst produce?", "drones"), ("What does UniFirst produce?", "uniforms")]
    assert fact_questions({"text": "a biography"}) == []  # no paraphrases, no questions


def test_token_code_run_trains_the_qa_term_and_exports(tmp_path: Path) -> None:
    from larimar_memory.training.recipe import export_run

    records = [{"prompt": f"{s} is the capital of", "target_new": a, "ground_truth": a,
                "rephrase_prompt": f"The country whose capital is {s} is"}
               for s, a in zip(SUBJECTS, ANSWERS, strict=True)] * 2
    (tmp_path / "qa-train.json").write_text(json.dumps(records))
    out = tmp_path / "run"
    overrides = run_overrides(
        tmp_path, out, "trainer.max_steps=3", "trainer.log_every_n_steps=1",
        "data.sources=[{kind: facts, path: qa-train.json, questions: true}]",
        "data.chunk_tokens=47", "eval.ppl_file=null", "eval.recon_episodes=0",
        "model.config.codec={kind: token-codes, num_latent_tokens: 48}",
        "loss.qa=1.0", "loss.chat_share=0.5",
    )
    train("tiny", overrides)
    rows = json.loads((out / "metrics.json").read_text())["train"]
    assert all(r["qa"] > 0 for r in rows)
    exported = export_run(load_config(out / "config.yaml"), tmp_path / "exported")
    model = LarimarModel.from_pretrained(exported)
    assert model.config.latent == "token-codes"
    with pytest.raises(TrainingConfigError, match="no checkpoint"):
        export_run(load_config(out / "config.yaml", ["output_dir=" + str(tmp_path / "none")]),
                   tmp_path / "x")


def test_profiles_train_questions_over_memory_blocks_of_several_facts(tmp_path: Path) -> None:
    """A profiles source with loss.qa_facts above 1: each question reads a block of R facts
    (its own among its person's others), R drawn per batch, and the QA term trains on it."""
    out = tmp_path / "run"
    overrides = run_overrides(
        tmp_path, out, "trainer.max_steps=3", "trainer.log_every_n_steps=1",
        "data.sources=[{kind: profiles, count: 40, facts_per_profile: [3, 5]}]",
        "data.chunk_tokens=47", "eval.ppl_file=null", "eval.recon_episodes=0",
        "model.config.codec={kind: token-codes, num_latent_tokens: 48}",
        "loss.qa=1.0", "loss.qa_facts=[3, 3]",
    )
    train("tiny", overrides)
    rows = json.loads((out / "metrics.json").read_text())["train"]
    assert len(rows) == 3 and all(r["qa"] > 0 for r in rows)


def test_question_blocks_put_the_asked_fact_among_the_others() -> None:
    from larimar_memory.model import QuestionBatch
    from larimar_memory.training.data import EpisodeCollator
    from larimar_memory.training.profiles import make_profiles

    model = tiny_test_model("llama", latent="token-codes", num_latent_tokens=48,
                            max_text_tokens=47)
    profile = make_profiles(1, seed=3, facts_per_profile=(4, 4))[0]
    texts = [f.text for f in profile.facts] + [f"Filler chunk {i}." for i in range(4)]
    questions = {f.text: [(f.questions[0], f.answer)] for f in profile.facts}
    neighbours = {t: [o for o in texts[:4] if o != t] for t in texts[:4]}
    collate = EpisodeCollator(model.tokenize, 8, questions, model.decoder.tokenize_answers,
                              neighbours=neighbours, facts_per_question=(4, 4))
    batch = collate(texts)
    asked: QuestionBatch = batch["questions"]
    assert asked.index.tolist() == [0, 1, 2, 3]
    assert asked.others_input_ids is not None and asked.others_input_ids.shape[0] == 4 * 3
    # the others of a profile fact are its person's three other facts, none of the fillers
    others = model.decoder.tokenizer.batch_decode(asked.others_input_ids[:3],
                                                  skip_special_tokens=True)
    # (the tiny byte-level codec keeps 47 bytes of each)
    assert sorted(o.strip()[:40] for o in others) == sorted(t[:40] for t in texts[1:4])
    readouts = torch.randn(8, model.latent_width)
    blocks = model._question_blocks(readouts, asked)
    assert blocks.shape == (4, 4 * model.latent_width)
    for i, p in enumerate(asked.position.tolist()):
        row = blocks[i].view(4, -1)[p]
        assert torch.equal(row, readouts[i])


def test_checkpoints_with_a_0d_sigma_w_upgrade() -> None:
    """Runs saved before σ_w became a 1-element parameter (FSDP shards no 0-d ones) resume."""
    from larimar_memory.training.module import upgrade_checkpoint

    model = tiny_test_model()
    module = LarimarLightningModule(model, LossConfig(), OptimConfig(), max_steps=10)
    state = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    state["model.log_sigma_w"] = torch.tensor(-1.5)
    step = torch.tensor(3.0)
    ckpt = {"state_dict": state, "optimizer_states": [{"state": {0: {
        "step": step, "exp_avg": torch.tensor(0.1), "exp_avg_sq": torch.zeros(2, 2)}}}]}
    upgrade_checkpoint(ckpt)
    moments = ckpt["optimizer_states"][0]["state"][0]
    assert moments["exp_avg"].shape == (1,) and moments["step"].dim() == 0
    module.load_state_dict(ckpt["state_dict"])
    assert model.log_sigma_w.tolist() == [-1.5]


def test_pooled_recipe_on_tiny_parts_learns_and_loads(data_root: Path, tmp_path: Path) -> None:
    """larimar-smol-pooled's composition (trained encoder pooled into P slots, KV prefix and
    embedding shift, LoRA decoder, every term of eq. 1, text + facts) on tiny random parts:
    the reconstruction terms fall in 20 steps and the exported model loads."""
    (data_root / "wiki-train.txt").write_text("\n".join(
        f" {s} is a city in {a} , with a long history ." for s, a in zip(
            SUBJECTS, ANSWERS, strict=True)) * 2)
    out = tmp_path / "pooled"
    overrides = [
        f"output_dir={out}", f"data.root={data_root}",
        "data.sources=[{kind: text, path: wiki-train.txt}, {kind: facts, path: facts-train.json}]",
        "model.config.codec.encoder_name=tiny-random:bert",
        "model.config.codec.latent_token_dim=16", "model.config.codec.max_text_tokens=48",
        "model.config.decoder_name=tiny-random:llama", "model.config.memory_slots=8",
        # a random frozen head (std 0.02) caps logits near ±1.3 for RMS-normed 64-wide states:
        # a floor of ~5.15 nats whatever else learns; LoRA on it too lifts the floor (a trained
        # LM's head has no such cap)
        "model.config.lora_target_modules=[q_proj, k_proj, v_proj, o_proj, lm_head]",
        "loss.kl.cycles=2",  # 10 cycles of 2 steps would hold beta at 0 for all 20
        "data.chunk_tokens=48", "data.episode_size=4", "data.batch_size=2",
        "data.heldout_chunks=4", "optim.lr=3.0e-3", "optim.warmup_steps=0",
        "trainer.max_steps=20", "trainer.accelerator=cpu", "trainer.cpu_threads=1",
        "trainer.progress_bar=false", "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1",
        "checkpoint.every_n_steps=20",
    ]
    cfg = load_config("larimar-smol-pooled", overrides)
    assert (cfg.loss.recon_memory, cfg.loss.recon_direct, cfg.loss.lm) == (1.0, 1.0, 1.0)
    assert cfg.loss.kl.max > 0
    train("larimar-smol-pooled", overrides)
    rows = json.loads((out / "metrics.json").read_text())["train"]
    first, last = rows[0], rows[-1]
    assert (first["step"], last["step"]) == (1, 20)
    assert last["recon_memory"] < 0.8 * first["recon_memory"]
    assert last["recon_direct"] < 0.8 * first["recon_direct"]
    assert any(r["kl"] > 0 for r in rows) and all(r["lm"] > 0 for r in rows)
    model = LarimarModel.from_pretrained(out / "model")
    assert model.config.latent == "pooled" and model.config.decoder_training == "lora"
    assert model.config.latent_width == 8 * 16
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    for name, param in model.named_parameters():
        if param.requires_grad:  # frozen base weights are not in the checkpoint
            assert torch.equal(param.detach(), ckpt[f"model.{name}"]), name


def test_profiles_draw_families_of_confusable_facts_and_made_up_values() -> None:
    """``family_share`` fills profiles from one family of easily confused relations, with an
    event's date fact naming the same venue as its place fact; ``made_up_share`` swaps pool
    values for made-up words; both 0 draw from the everyday relations only."""
    from larimar_memory.training import profiles as p

    plain = p.make_profiles(50, seed=2)
    assert {f.relation for pr in plain for f in pr.facts} <= {r.key for r in p.RELATIONS}
    hard = p.make_profiles(200, seed=2, family_share=1.0, made_up_share=1.0)
    families = [{r.key for r in family} for family in p.FAMILIES]
    for profile in hard:
        keys = {f.relation for f in profile.facts}
        assert len(keys) == len(profile.facts)  # one answer per question in a profile
        assert any(len(keys & fam) >= min(len(fam), len(keys)) for fam in families)
        by_key = {f.relation: f for f in profile.facts}
        for key, fact in by_key.items():
            if key.endswith("_date") and key.replace("_date", "_place") in by_key:
                place = by_key[key.replace("_date", "_place")].answer
                assert " at " not in fact.text or place in fact.text
            assert fact.answer in fact.text
    employers = [f.answer for pr in hard for f in pr.facts if f.relation == "employer"]
    assert employers and not set(employers) & set(p.COMPANIES)
    word = p.made_up_word(__import__("random").Random(0))
    assert word.isalpha() and word[0].isupper()
