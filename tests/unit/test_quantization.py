"""The service's quantized decoder (`larimar_memory.quantization`, `decoder_weights`): on by
default, off when asked, the model passed in never changed, LoRA merged for memory decoding and
off for plain decoding."""

from __future__ import annotations

import gc
import warnings
import weakref

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from larimar_memory import quantization
from larimar_memory.model import LarimarModel
from larimar_memory.quantization import Float16Linear, Int8Linear, quantized_layers, serving_model
from larimar_memory.scope import SentenceEmbedder
from larimar_memory.service import Larimar, LarimarSettings
from larimar_memory.testing import HashingEmbedder, tiny_test_model

LAYERS = 2 * 7 + 1  # tiny Llama: q, k, v, o, gate, up, down per layer, and the output head


def _lora_model(targets: tuple[str, ...] | None = None) -> LarimarModel:
    """The packaged model's kind on a tiny Llama: token codes, LoRA (on ``targets``, default:
    the config's), with nonzero B matrices so that the adapters change what the decoder says."""
    lora = {} if targets is None else {"lora_target_modules": list(targets)}
    model = tiny_test_model("llama", decoder_training="lora", latent="token-codes",
                            num_latent_tokens=8, max_text_tokens=7, **lora)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    return model.eval().requires_grad_(False)


def _larimar(tmp_path, model: LarimarModel, **settings) -> Larimar:
    return Larimar(model, store=tmp_path / "facts.sqlite3",
                   embedder=SentenceEmbedder(model=HashingEmbedder()),
                   settings=LarimarSettings(max_new_tokens=4, **settings))


def _logits(model: LarimarModel, z: torch.Tensor | None) -> torch.Tensor:
    ids, mask = model.decoder.tokenize_targets(["Alice lives in Lisbon."], 16)
    with torch.no_grad():
        return model.decoder(z, ids, mask)


def _close(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
    return float((a - b).norm() / b.norm()) < tolerance


def test_the_service_decodes_with_int8_by_default(tmp_path) -> None:
    assert LarimarSettings().decoder_weights == "int8"
    model = _lora_model()
    with _larimar(tmp_path, model, scope_threshold=0.0) as memory:  # every question in scope
        assert memory.model is model  # it encodes; ask decodes with the copy
        assert quantization._SERVED.get(model) is None  # packed at the first decode, not before
        memory.remember("Alice lives in Lisbon.")
        assert memory.recall("Alice").hits and quantization._SERVED.get(model) is None
        assert memory.ask("Where does Alice live?").route == "memory"
        served = memory._parts.decoding
        assert quantization._SERVED[model] == {"int8": served}
        lm, plain = served.decoder.lm, served.decoder.plain_lm
        assert quantized_layers(lm) == quantized_layers(plain) == LAYERS
        assert not any("lora_" in n for n, _ in lm.named_modules())  # no peft wrapper
        assert not any("lora_" in n for n, _ in plain.named_modules())
        # plain: int8 but the down projection and the head; memory: every layer adapted by
        # LoRA (all of them in the tiny model) is merged, in float16
        kinds = {n: type(m) for n, m in plain.named_modules()
                 if type(m) in (Int8Linear, Float16Linear)}
        float16 = {n for n, kind in kinds.items() if kind is Float16Linear}
        assert float16 == {n for n in kinds if n.endswith(("down_proj", "lm_head"))}
        assert all(type(m) is not Int8Linear for m in lm.modules())
        assert served.decoder.step_kwargs == {"logits_to_keep": 1}
        assert model.decoder.step_kwargs == {}
        # the tiny model adapts every linear layer: the two LMs share only the output head
        assert lm.lm_head is plain.lm_head
        assert lm.model.layers[0].mlp.up_proj is not plain.model.layers[0].mlp.up_proj
        # the embedding table is the model's own tensor (the memory block and codebook read it)
        assert (lm.get_input_embeddings().weight is plain.get_input_embeddings().weight is
                model.decoder.lm.get_input_embeddings().weight)


def test_int8_keeps_the_down_projection_and_head_float16_beside_lora_on_attention() -> None:
    model = _lora_model(("q_proj", "k_proj", "v_proj", "o_proj"))  # as in larimar-smol
    decoder = serving_model(model, "int8").decoder
    lm, plain = decoder.lm, decoder.plain_lm
    kinds = {n: type(m).__name__ for n, m in lm.named_modules()
             if type(m) in (Int8Linear, Float16Linear)}
    assert len(kinds) == LAYERS
    # the attention projections carry the merged adapters: float16 in the memory LM
    assert {n.rsplit(".", 1)[-1] for n, k in kinds.items() if k == "Float16Linear"} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "down_proj", "lm_head"}
    assert {n.rsplit(".", 1)[-1] for n, k in kinds.items() if k == "Int8Linear"} == {
        "gate_proj", "up_proj"}
    plain_kinds = {n.rsplit(".", 1)[-1]: type(m).__name__ for n, m in plain.named_modules()
                   if type(m) in (Int8Linear, Float16Linear)}
    assert plain_kinds["q_proj"] == plain_kinds["o_proj"] == "Int8Linear"
    # the MLP and the head are packed once for both LMs; only the adapted layers twice
    for a, b in zip(lm.model.layers, plain.model.layers, strict=True):
        assert a.mlp.down_proj is b.mlp.down_proj and a.mlp.up_proj is b.mlp.up_proj
        assert a.self_attn.q_proj is not b.self_attn.q_proj
    assert lm.lm_head is plain.lm_head


def test_float32_turns_it_off(tmp_path) -> None:
    model = _lora_model()
    with _larimar(tmp_path, model, decoder_weights="float32") as memory:
        assert memory._parts.decoding is model and quantized_layers(model.decoder.lm) == 0


def test_float16_weights(tmp_path) -> None:
    with _larimar(tmp_path, _lora_model(), decoder_weights="float16") as memory:
        lm = memory._parts.decoding.decoder.lm
        assert quantized_layers(lm) == LAYERS
        assert sum(isinstance(m, Float16Linear) for m in lm.modules()) == LAYERS


def test_the_model_given_is_never_changed(tmp_path) -> None:
    model = _lora_model()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    with _larimar(tmp_path, model, scope_threshold=0.0) as memory:
        memory.remember("Alice lives in Lisbon.")
        assert memory.ask("Where does Alice live?").route == "memory"
    with _larimar(tmp_path, model) as memory:  # nothing in scope: plain, adapters off (copy)
        assert memory.ask("What is the capital of France?", namespace="empty").route == "plain"
    assert [type(m) for m in model.modules()] == types
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert not any(getattr(m, "_disable_adapters", False) is True for m in model.modules())


@pytest.mark.parametrize("weights", ["int8", "float16"])
def test_merged_adapters_and_the_plain_lm_decode_as_the_model_does(weights) -> None:
    """The copy's ``lm`` (LoRA merged in) gives the adapted model's logits, its ``plain_lm``
    the base model's (adapters off), each within the weights' rounding."""
    model = _lora_model()
    served = serving_model(model, weights)
    z = model.encode_facts(["Alice lives in Lisbon."])[0][:1]
    tolerance = 0.05 if weights == "int8" else 0.005
    # the tiny model's adapters (B ~ N(0, 0.5²)) change its logits by ~140 %: merged into int8
    # rows they widen them, and the rows' rounding is ~10-25 % of the logits
    merged_tolerance = 0.3 if weights == "int8" else 0.005
    ids = torch.tensor([[1, 70, 80]])
    # plain decoding: the base LM's logits
    with model.decoder.lm.disable_adapter():
        base = model.decoder.lm(input_ids=ids).logits
    assert _close(served.decoder.plain_lm(input_ids=ids).logits, base, tolerance)
    assert _close(_logits(served, None), _logits(model, None), tolerance)
    # memory-conditioned decoding: adapters merged, and they matter
    conditioned, conditioned_q = _logits(model, z), _logits(served, z)
    assert _close(conditioned_q, conditioned, merged_tolerance)
    target, mask = served.decoder.tokenize_targets(["Alice lives in Lisbon."], 16)
    with torch.no_grad():
        unadapted = served.decoder.conditioning.logits(served.decoder.plain_lm, z, target, mask)
    assert not _close(unadapted, conditioned_q, 1.0)
    assert not _close(served.decoder.lm(input_ids=ids).logits, base, 1.0)
    # generate works both ways
    for texts in (served.decode(z, prompts=["Where does Alice live?"], max_new_tokens=4),
                  served.decode(None, prompts=["Where does Alice live?"], max_new_tokens=4)):
        assert len(texts) == 1 and isinstance(texts[0], str)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(2, 12), bias=st.booleans(),
       spread=st.floats(0.0, 4.0))
def test_int8_quantizes_each_row_of_a_prompt_in_its_own_range(seed: int, rows: int, bias: bool,
                                                              spread: float) -> None:
    """Rows of very different ranges and offsets (a prompt's tokens) in one call: each row's
    error stays within the rounding of its own range (7-bit steps over [min, max]) and of the
    weights, however wide the other rows are."""
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(48, 20, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(20, 48, generator=g))
        if bias:
            layer.bias.copy_(torch.randn(20, generator=g))
    scales = torch.exp(spread * torch.randn(rows, 1, generator=g))
    x = torch.randn(rows, 48, generator=g) * scales + scales * torch.randn(rows, 1, generator=g)
    x[0, :3] = 0.0
    error = (Int8Linear(layer)(x[None])[0] - layer(x)).abs().detach()
    weight = layer.weight.detach()
    half = (x.amax(dim=1, keepdim=True) - x.amin(dim=1, keepdim=True)) / 2
    steps = half * (2 / 127) * weight.abs().sum(dim=1)  # a step of the row's own range
    rounding = x.abs().sum(dim=1, keepdim=True) * weight.abs().amax(dim=1) / 254
    assert bool((error <= steps + rounding + 1e-4).all())


def test_quantizing_warns_nothing() -> None:
    model = _lora_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for weights in ("int8", "float16"):
            served = serving_model(model, weights)
            served.decode(None, prompts=["Hello"], max_new_tokens=2)


def test_a_serving_copy_neither_trains_nor_saves(tmp_path) -> None:
    served = serving_model(_lora_model(), "int8")
    with pytest.raises(ValueError, match="serving copy"):
        served.train_mode()
    with pytest.raises(ValueError, match="serving copy"):
        served.save_pretrained(tmp_path / "out")
    assert serving_model(served, "int8") is served  # already quantized: used as it is


@pytest.mark.parametrize(("weights", "layers"), [(None, 1), ("float32", 0)])
def test_the_server_setting_reaches_the_larimar(tmp_path, weights, layers) -> None:
    from larimar_memory.server.factory import build_larimar
    from larimar_memory.server.settings import ServerSettings

    memory = build_larimar(ServerSettings(tiny=True, store=str(tmp_path / "s.sqlite3"),
                                          decoder_weights=weights))
    try:  # the tiny GPT-2's blocks are Conv1D: its output head is its one nn.Linear
        assert quantized_layers(memory._parts.decoding.decoder.lm) == layers
    finally:
        memory.store.close()


def test_the_copy_frees_the_weights_it_replaced() -> None:
    """Nothing in the copy points back into the original's modules (peft keeps a bound method
    of the wrapped model), so dropping the original frees the replaced float32 weights."""
    model = _lora_model()
    base = model.decoder.lm.get_base_model()
    replaced = weakref.ref(base.model.layers[0].mlp.down_proj.base_layer.weight)
    head = weakref.ref(base.lm_head)
    served = serving_model(model, "int8")
    del model, base
    gc.collect()
    assert replaced() is None and head() is None
    assert isinstance(served.decode(None, prompts=["Hello"], max_new_tokens=2)[0], str)


def test_larimars_on_one_model_share_one_copy(tmp_path) -> None:
    """Replicas in one process (and the benchmarks) pack the weights once per format; the
    copy is forgotten with its model."""
    model = _lora_model()
    with _larimar(tmp_path, model) as a, _larimar(tmp_path, model) as b:
        assert a._parts.decoding is b._parts.decoding is serving_model(model, "int8")
        assert serving_model(model, "float16") is not a._parts.decoding
        copy = weakref.ref(a._parts.decoding)
        a.store.close()
        b.store.close()
    key = weakref.ref(model)
    del model, a, b
    gc.collect()
    assert key() is None and copy() is None  # the copy went with its model
