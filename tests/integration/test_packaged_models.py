"""The real packaged models: all-MiniLM-L6-v2 encoder and SmolLM2-135M-Instruct decoder (GGUF →
safetensors cache → reload), encoding and plain / memory-conditioned decoding (about a minute)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import torch

from larimar_memory import loading
from larimar_memory.errors import ModelNotFoundError
from larimar_memory.model import LarimarConfig, LarimarModel

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

SENTENCES = ["The Eiffel Tower is in Paris.", "Alice works as a nurse in Berlin."]


def _require_packaged_models() -> None:
    try:
        loading.packaged_encoder_path()
        loading.packaged_decoder_gguf()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def decoder_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh cache, converted from the GGUF once for this module (timed)."""
    _require_packaged_models()
    cache = tmp_path_factory.mktemp("larimar-cache")
    start = time.perf_counter()
    folder = loading.packaged_decoder_cache(cache)
    logger.warning("GGUF -> safetensors cache: %.1f s", time.perf_counter() - start)
    return folder.parent.parent


def test_gguf_cache_is_complete_and_reloads(decoder_cache: Path) -> None:
    folders = list((decoder_cache / "decoders").iterdir())
    assert len(folders) == 1 and not folders[0].name.startswith(".")  # no temp folder left
    assert (folders[0] / "config.json").is_file()
    assert list(folders[0].glob("*.safetensors"))
    start = time.perf_counter()
    tokenizer, lm = loading.load_decoder_backbone(loading.PACKAGED_DECODER, cache_dir=decoder_cache)
    logger.warning("cached decoder reload: %.1f s", time.perf_counter() - start)
    assert lm.config.num_hidden_layers == 30 and lm.config.hidden_size == 576
    assert lm.dtype == torch.float32 and tokenizer.chat_template
    assert getattr(lm.config, "quantization_config", None) is None


def test_encoder_backbone_loads() -> None:
    _require_packaged_models()
    tokenizer, encoder = loading.load_encoder_backbone(loading.PACKAGED_ENCODER)
    assert encoder.config.hidden_size == 384
    assert tokenizer("hello")["input_ids"][0] == tokenizer.cls_token_id


@pytest.fixture(scope="module")
def model(decoder_cache: Path) -> LarimarModel:
    return LarimarModel.from_config(LarimarConfig(), cache_dir=decoder_cache).eval()


def test_encode_two_sentences(model: LarimarModel) -> None:
    z = model.encode(SENTENCES)
    assert z.shape == (2, 3072) and torch.isfinite(z).all()
    assert not torch.allclose(z[0], z[1])


def test_plain_decoding_is_the_base_model(model: LarimarModel) -> None:
    out = model.decode(None, ["The capital of France is", "What is the capital of France?"], 4)
    assert len(out) == 2
    assert "Paris" in out[0]  # greedy SmolLM2, untouched: the (zero-init) LoRA changes nothing


def test_memory_conditioned_decoding(model: LarimarModel) -> None:
    z = model.encode(SENTENCES)
    prompted = model.decode(z, ["The capital of France is", "Alice works as a"], 4)
    reconstructed = model.decode(z, max_new_tokens=4)
    for out in (prompted, reconstructed):
        assert len(out) == 2 and all(isinstance(s, str) for s in out)
    assert any(s.strip() for s in prompted)


def test_packaged_checkpoint_loads_by_default(
    decoder_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        model = LarimarModel.from_pretrained("larimar-smol", cache_dir=decoder_cache)
    assert "UNTRAINED" not in caplog.text
    assert model.config.latent == "token-codes"
    assert model.encode(SENTENCES[:1]).shape == (1, model.latent_width)
