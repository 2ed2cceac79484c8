"""The memory LM under ONNX Runtime (`larimar_memory.onnx_decoder`, ``decoder_weights=
"onnx-int8"``): the float32 graph decodes exactly what PyTorch decodes (prefill, drafts and their
rejection, left-padded rows), the int8 file is exported once and reused, plain decoding stays in
PyTorch, and where ONNX Runtime cannot run the LM the service falls back to PyTorch's int8 with
a warning."""

from __future__ import annotations

import logging

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from larimar_memory import onnx_decoder, quantization  # noqa: E402
from larimar_memory.onnx_decoder import (  # noqa: E402
    OnnxCausalLM,
    OnnxDecoderUnavailableError,
    export_float,
    exportable,
    exported_decoder,
)
from larimar_memory.quantization import serving_model  # noqa: E402
from larimar_memory.scope import SentenceEmbedder  # noqa: E402
from larimar_memory.service import Larimar, LarimarSettings  # noqa: E402
from larimar_memory.testing import HashingEmbedder, tiny_test_model  # noqa: E402


def _lora_model():
    """The packaged model's kind on a tiny Llama, with adapters that change what it says."""
    model = tiny_test_model("llama", decoder_training="lora", latent="token-codes",
                            num_latent_tokens=8, max_text_tokens=7)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    return model.eval().requires_grad_(False)


def _exported(model, path):
    """The model's LM exported in float32 to ``path``, and run from there."""
    import onnxruntime as ort

    lm = model.decoder.lm.get_base_model()
    export_float(exportable(lm), path)
    return OnnxCausalLM(ort.InferenceSession(str(path)), lm.get_input_embeddings(), lm.config,
                        path)


def _generate(model, z, prompts):
    return model.decoder.generate(z, prompts=prompts, max_new_tokens=6, spell_as_stored=True)


def test_the_float_graph_decodes_what_pytorch_decodes(tmp_path) -> None:
    """What the LoRA model decodes from memory: single rows (drafts checked and rejected) and a
    left-padded batch."""
    model = _lora_model()
    z = model.encode(["Alice lives in Lisbon.", "Bob keeps bees."])
    prompts = ["Where does Alice live?", "Who keeps bees, and where?"]

    def answers():
        rows = [_generate(model, z[i: i + 1], prompts[i: i + 1])[0] for i in range(2)]
        return rows, _generate(model, z, prompts)

    expected = answers()
    model.decoder._modules["lm"] = _exported(model, tmp_path / "decoder.onnx")
    assert answers() == expected


def test_the_cache_steps_and_crops_as_pytorchs_does(tmp_path) -> None:
    """Prefill, a step checking three drafted tokens, two of them rejected (``crop``), then one
    more step: the logits of each call as PyTorch's with its `DynamicCache`."""
    from transformers import DynamicCache

    from larimar_memory.decoder import CACHE_ARG

    model = _lora_model()
    lm = model.decoder.lm  # peft's model, its adapters on
    onnx_lm = _exported(model, tmp_path / "decoder.onnx")
    table = lm.get_input_embeddings()
    calls = [(torch.tensor([[5, 9, 14, 3, 7]]), None), (torch.tensor([[11, 4, 8]]), 2),
             (torch.tensor([[6]]), None)]
    caches = {"torch": DynamicCache(config=lm.config), "onnx": DynamicCache(config=lm.config)}
    seen = 0
    for ids, rejected in calls:
        mask = torch.ones(1, seen + ids.shape[1], dtype=torch.long)
        positions = torch.arange(seen, seen + ids.shape[1])[None]
        got = {}
        for name, runner in (("torch", lm), ("onnx", onnx_lm)):
            with torch.no_grad():
                out = runner(inputs_embeds=table(ids), attention_mask=mask, position_ids=positions,
                            use_cache=True, logits_to_keep=ids.shape[1],
                            **{CACHE_ARG: caches[name]})
            got[name], caches[name] = out.logits, getattr(out, CACHE_ARG)
        torch.testing.assert_close(got["onnx"], got["torch"], rtol=1e-4, atol=1e-4)
        seen += ids.shape[1]
        if rejected:
            for cache in caches.values():
                cache.crop(-rejected)
            seen -= rejected


def test_the_int8_file_is_exported_once_and_reused(tmp_path, monkeypatch) -> None:
    lm = exportable(_lora_model().decoder.lm.get_base_model())
    path = exported_decoder(lm, cache_dir=tmp_path)
    assert path.is_file() and path.parent.parent == tmp_path / "onnx-decoders"
    assert [p.name for p in path.parent.iterdir()] == [onnx_decoder.MODEL_FILE]

    def fail(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_decoder, "_export", fail)
    assert exported_decoder(lm, cache_dir=tmp_path) == path
    with torch.no_grad():  # other adapter weights: another file
        next(p for name, p in lm.named_parameters() if "lora_B" in name).add_(1.0)
    with pytest.raises(AssertionError, match="exported again"):
        exported_decoder(lm, cache_dir=tmp_path)


def test_a_graph_that_does_not_reproduce_the_lm_is_refused(tmp_path, monkeypatch) -> None:
    lm = exportable(_lora_model().decoder.lm.get_base_model())
    real = onnx_decoder._Step.forward

    def off(self, *inputs):  # the traced graph and the reference disagree
        logits, *rest = real(self, *inputs)
        return (logits + (0.0 if torch.jit.is_tracing() else 1.0), *rest)

    monkeypatch.setattr(onnx_decoder._Step, "forward", off)
    with pytest.raises(OnnxDecoderUnavailableError, match="does not reproduce"):
        export_float(lm, tmp_path / "decoder.onnx")


def test_the_service_asks_through_onnx_runtime(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LARIMAR_CACHE_DIR", str(tmp_path / "cache"))
    model = _lora_model()
    settings = LarimarSettings(max_new_tokens=4, scope_threshold=0.0, decoder_weights="onnx-int8")
    with Larimar(model, store=tmp_path / "facts.sqlite3", settings=settings,
                 embedder=SentenceEmbedder(model=HashingEmbedder())) as memory:
        memory.remember("Alice lives in Lisbon.")
        result = memory.ask("Where does Alice live?")
        served = memory._parts.decoding
        assert isinstance(served.decoder.lm, OnnxCausalLM)
        assert quantization.quantized_layers(served.decoder.plain_lm)  # plain stays PyTorch
        assert result.route == "memory" and isinstance(result.answer, str)
        assert isinstance(served.decode(None, prompts=["Hello"], max_new_tokens=2)[0], str)
        assert memory.model is model and not isinstance(model.decoder.lm, OnnxCausalLM)
        assert serving_model(served, "onnx-int8") is served  # already served: as it is


def test_without_onnx_runtime_the_service_decodes_with_pytorch_int8(tmp_path, monkeypatch,
                                                                    caplog) -> None:
    def unavailable(*args, **kwargs):
        raise OnnxDecoderUnavailableError("onnxruntime is not installed")

    monkeypatch.setattr(onnx_decoder, "onnx_decoder", unavailable)
    model = _lora_model()
    with caplog.at_level(logging.WARNING, logger="larimar_memory.quantization"):
        served = serving_model(model, "onnx-int8")
    assert "onnxruntime is not installed" in caplog.text
    assert quantization.quantized_layers(served.decoder.lm)
    assert isinstance(served.decode(None, prompts=["Hello"], max_new_tokens=2)[0], str)
