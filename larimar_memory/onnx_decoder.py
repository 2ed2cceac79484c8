"""The decoder LM run by ONNX Runtime (``decoder_weights="onnx-int8"``).

`ask` is bound by the decoder's LM calls: a prefill of the memory block and the question, then
one call per token or per draft (`decoder.ReadoutDrafts`). In PyTorch each call of SmolLM2's 30
layers also pays ~30 ms of per-operator overhead, and fbgemm's small-matrix kernels stream
the weights slowly. ONNX Runtime runs the same graph with little overhead and int8 products
(MLAS); measured on this project's 2-core AVX2 CPU at 1 thread, a 27-token prefill ~70 ms and a
one-token step ~25 ms, against ~145 and 55-77 ms for the fbgemm int8 copy
(`larimar_memory.quantization`; docs/results.md, session 16).

What is exported (`exportable`): the memory-conditioned LM, float32, taking ``inputs_embeds``
(the memory block is mixed embeddings, not token ids), the attention mask, position ids, which
positions need logits and the key/value cache; returning those logits and the extended cache.
Its LoRA layers are `Adapted` (the adapters beside the base weights, not merged: int8 never
rounds away what memory conditioning trained into them), its other layers to quantize
`RowScaled` (each token's input in its own range, as `quantization.Int8Linear` does). The
float32 graph is checked against the PyTorch LM before it is kept. Then
``onnxruntime.quantization``'s dynamic int8 (one scale per output channel; 7-bit weights where
the CPU lacks VNNI, since AVX2's 16-bit sums of 8-bit products saturate) quantizes the
`RowScaled` layers: all linear layers but the adapters, the output head and
`quantization.FLOAT16_ONLY`, which stay float32 (ONNX Runtime has no fast float16 on x86).

Plain decoding (no memory) keeps the PyTorch int8 copy: run the same way, the base LM's long
free answers came out garbled ("L'Étoile, la maquette de la France…" for the capital of
France), while a memory answer is a few tokens copied from the block.

The file is cached under the user cache dir (``$LARIMAR_CACHE_DIR`` or the platform's),
``onnx-decoders/<fingerprint>/`` (~300 MB for SmolLM2), keyed by the weights: exported once
(~1 min, at the first decode), loaded in ~1 s after. Written to a temporary folder and renamed
into place, so a crash never leaves half a file and two processes exporting at once both end
with a complete copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

EXPORT_VERSION = "1"  # bump when the exported graph or its quantization changes
MODEL_FILE = "decoder.int8.onnx"
INPUTS = ("inputs_embeds", "attention_mask", "position_ids", "keep")  # then past_0, past_1, …


class OnnxDecoderUnavailableError(RuntimeError):
    """The decoder LM cannot run under ONNX Runtime here (a missing package, an architecture the
    exporter cannot trace, or a graph that does not reproduce the LM)."""


@dataclass
class OnnxCache:
    """The key/value cache between calls: per layer its keys then its values, ``(n, heads,
    tokens, head_dim)`` arrays. ``crop`` drops rejected draft tokens, as `DynamicCache` does."""

    arrays: list[np.ndarray]

    def crop(self, length: int) -> None:
        """Keep the first ``length`` tokens (negative: drop that many from the end)."""
        self.arrays = [a[:, :, :length] for a in self.arrays]


@dataclass
class OnnxOutput:
    logits: torch.Tensor
    cache: OnnxCache

    @property
    def past_key_values(self) -> OnnxCache:  # the name before transformers 5
        return self.cache


class OnnxCausalLM(nn.Module):
    """The exported LM behind the call `LatentDecoder.generate` makes of a transformers causal
    LM (``inputs_embeds``, ``attention_mask``, ``position_ids``, ``logits_to_keep``, the cache).
    The input embedding table stays the PyTorch one: the memory block and the token codebook
    read it."""

    def __init__(self, session: Any, embeddings: nn.Module, config: Any, path: Path) -> None:
        super().__init__()
        self.session, self.embeddings, self.config, self.path = session, embeddings, config, path
        text = config.get_text_config(decoder=True)
        self._layers = int(text.num_hidden_layers)
        self._kv_shape = (int(getattr(text, "num_key_value_heads", None)
                              or text.num_attention_heads), int(_head_dim(text)))

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor, logits_to_keep: int = 0, cache: Any = None,
                past_key_values: Any = None, **_: Any) -> OnnxOutput:
        n, tokens = inputs_embeds.shape[:2]
        past = self._past(cache if cache is not None else past_key_values, n)
        keep = logits_to_keep if 0 < logits_to_keep <= tokens else tokens
        feeds = {"inputs_embeds": inputs_embeds.detach().float().cpu().numpy(),
                 "attention_mask": attention_mask.detach().cpu().numpy().astype(np.int64),
                 "position_ids": position_ids.detach().cpu().numpy().astype(np.int64),
                 "keep": np.arange(tokens - keep, tokens, dtype=np.int64)}
        feeds.update({f"past_{i}": a for i, a in enumerate(past.arrays)})
        logits, *present = self.session.run(None, feeds)
        return OnnxOutput(torch.from_numpy(logits), OnnxCache(present))

    def _past(self, cache: Any, n: int) -> OnnxCache:
        """The cache as arrays: ours as it is; a transformers cache (the memory block's prefill
        starts an empty one; a KV prefix fills it) converted once."""
        if isinstance(cache, OnnxCache):
            return cache
        layers = list(getattr(cache, "layers", None) or [])
        keys = [getattr(layer, "keys", None) for layer in layers]
        if len(layers) == self._layers and all(k is not None and k.numel() for k in keys):
            return OnnxCache([t.detach().float().cpu().numpy()
                              for layer in layers for t in (layer.keys, layer.values)])
        empty = np.zeros((n, self._kv_shape[0], 0, self._kv_shape[1]), dtype=np.float32)
        return OnnxCache([empty] * (2 * self._layers))

    def extra_repr(self) -> str:
        return f"onnxruntime {self.path.parent.name}"


class Adapted(nn.Module):
    """A LoRA-adapted linear layer as exported: ``base(x) + s·B(A(x))``, the adapters kept apart
    from the base weights, which are quantized while the adapters stay float32: int8 never
    rounds away what memory conditioning was trained into them (merged into int8 weights, it
    was: `quantization._quantized_copy` keeps merged layers float16 for that reason)."""

    def __init__(self, base: nn.Module, lora_a: nn.Module, lora_b: nn.Module, scaling: float
                 ) -> None:
        super().__init__()
        self.base, self.lora_A, self.lora_B, self.scaling = base, lora_a, lora_b, float(scaling)

    @classmethod
    def of(cls, wrapper: nn.Module) -> Adapted:
        """From peft's LoRA ``Linear`` wrapper, its one active adapter."""
        active = list(getattr(wrapper, "active_adapters", []))
        if len(active) != 1 or getattr(wrapper, "use_dora", {}).get(active[0]) or getattr(
                wrapper, "merged", False):
            raise OnnxDecoderUnavailableError(
                f"the exporter takes one plain, unmerged LoRA adapter per layer, not {active}")
        name = active[0]
        return cls(wrapper.get_base_layer(), wrapper.lora_A[name], wrapper.lora_B[name],
                   wrapper.scaling[name])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


class RowScaled(nn.Module):
    """A linear layer whose input rows are each scaled onto [−1, 1] first and the product scaled
    back, W·x = a·(W·(x/a)) with a = max|x| per row: the same function in float32, but ONNX
    Runtime's dynamic int8, which quantizes a call's whole input with one range, then gives
    every token of a prompt the steps of its own range, as `quantization.Int8Linear` does in
    PyTorch (there centred too; here a centred row would need W·1 of the weights as the
    quantizer rounds them, and rounding them to its grid first measured no better)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = nn.Linear(linear.in_features, linear.out_features, bias=False,
                                device="meta")
        self.linear.weight = linear.weight  # (shared: the copy costs no weights)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)
        out = self.linear(x / scale) * scale
        return out if self.bias is None else out + self.bias


def exportable(lm: nn.Module) -> nn.Module:
    """A copy of ``lm`` (the transformers LM under any peft wrapper; tensors shared) as it is
    exported: LoRA layers as `Adapted`, and the layers to quantize (all linear layers but
    `quantization.FLOAT16_ONLY`, the output head and the adapters) as `RowScaled`."""
    from .quantization import FLOAT16_ONLY, _packed_tree

    head = getattr(lm.get_output_embeddings(), "weight", None)

    def scaled(layer: nn.Module, name: str) -> nn.Module:
        keep = layer.weight is head or name in FLOAT16_ONLY or type(layer) is not nn.Linear
        return layer if keep else RowScaled(layer)

    def adapted(wrapper: nn.Module, name: str) -> nn.Module:
        module = Adapted.of(wrapper)
        module.base = scaled(module.base, name)
        return module

    return _packed_tree(lm, adapted, scaled)


def onnx_decoder(lm: nn.Module, cache_dir: str | Path | None = None) -> OnnxCausalLM:
    """``lm`` (a transformers causal LM, float32, its LoRA adapters on) run by ONNX Runtime from
    its cached int8 export, exported first if needed. Raises `OnnxDecoderUnavailableError`."""
    embeddings = lm.get_input_embeddings()
    lm = exportable(lm)
    path = exported_decoder(lm, cache_dir)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a damaged cached file: say which, so it can be deleted
        raise OnnxDecoderUnavailableError(f"ONNX Runtime cannot load {path}: {exc}") from exc
    return OnnxCausalLM(session, embeddings, lm.config, path)


def exported_decoder(lm: nn.Module, cache_dir: str | Path | None = None) -> Path:
    """The cached int8 ONNX file of ``lm``, exported and quantized on first use."""
    try:
        import onnx  # noqa: F401  (the quantiser needs it)
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise OnnxDecoderUnavailableError(
            f"{exc.name} is not installed: pip install 'larimar-memory[fast]'") from exc
    from .loading import default_cache_dir

    root = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "onnx-decoders"
    target = root / _fingerprint(lm)
    if not (target / MODEL_FILE).is_file():
        _export(lm, target)
    return target / MODEL_FILE


def _fingerprint(lm: nn.Module) -> str:
    """Changes when the weights or the architecture change."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(EXPORT_VERSION.encode())
    digest.update(json.dumps(lm.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(lm.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def _head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


class _Step(nn.Module):
    """What is traced: one LM call over a cache passed as flat tensors."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm
        self.layers = int(lm.config.get_text_config(decoder=True).num_hidden_layers)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor, keep: torch.Tensor, *past: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        from transformers import DynamicCache

        from .decoder import CACHE_ARG

        cache = DynamicCache(config=self.lm.config)
        for i in range(self.layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.lm.get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                    position_ids=position_ids, use_cache=True,
                                    **{CACHE_ARG: cache})
        logits = self.lm.get_output_embeddings()(out.last_hidden_state.index_select(1, keep))
        layers = getattr(out, CACHE_ARG).layers
        present = [t for layer in layers for t in (layer.keys, layer.values)]
        return (logits, *present)


def _probe(lm: nn.Module, past_tokens: int) -> tuple[torch.Tensor, ...]:
    """Inputs that take the general paths of the traced graph: two rows, one left-padded (an
    explicit mask, not the all-ones shortcut), several new tokens over a cache."""
    config = lm.config.get_text_config(decoder=True)
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    n, tokens = 2, 5
    generator = torch.Generator().manual_seed(0)
    embeds = torch.randn(n, tokens, config.hidden_size, generator=generator) * 0.02
    mask = torch.ones(n, past_tokens + tokens, dtype=torch.long)
    mask[1, :2] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, past_tokens:]
    past = [torch.randn(n, heads, past_tokens, _head_dim(config), generator=generator)
            for _ in range(2 * config.num_hidden_layers)]
    return (embeds, mask, positions, torch.tensor([tokens - 2, tokens - 1]), *past)


def export_float(lm: nn.Module, path: Path) -> None:
    """``lm`` traced to a float32 ONNX graph at ``path`` (one LM call over a cache passed as
    tensors), checked against the PyTorch LM on inputs it was not traced with. Raises
    `OnnxDecoderUnavailableError` for an architecture the tracer cannot follow or a graph that
    does not reproduce the LM."""
    step = _Step(lm).eval()
    names = [f"past_{i}" for i in range(2 * step.layers)]
    outputs = ["logits"] + [f"present_{i}" for i in range(2 * step.layers)]
    axes = {"inputs_embeds": {0: "n", 1: "tokens"}, "attention_mask": {0: "n", 1: "all"},
            "position_ids": {0: "n", 1: "tokens"}, "keep": {0: "kept"},
            "logits": {0: "n", 1: "kept"},
            **{name: {0: "n", 2: "past"} for name in names},
            **{name: {0: "n", 2: "all"} for name in outputs[1:]}}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(step, _probe(lm, past_tokens=3), str(path),
                              input_names=[*INPUTS, *names], output_names=outputs,
                              dynamic_axes=axes, opset_version=17, dynamo=False)
    except Exception as exc:
        raise OnnxDecoderUnavailableError(f"exporting the decoder LM failed: {exc!r}") from exc
    _verify(step, path, _probe(lm, past_tokens=7))


def _export(lm: nn.Module, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .quantization import Int8Linear

    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Exporting the decoder LM to ONNX at %s (once, ~1 min)", target)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        float_file = tmp / "decoder.onnx"
        export_float(lm, float_file)
        import onnx

        graph = onnx.load(str(float_file), load_external_data=False).graph
        kept = [node.name for node in graph.node if node.op_type in ("MatMul", "Gemm")
                and "/linear/" not in node.name]  # only `RowScaled` layers are quantized
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.root.addFilter(_quantizer_notes)
            try:
                quantize_dynamic(str(float_file), str(tmp / MODEL_FILE),
                                 weight_type=QuantType.QInt8, per_channel=True,
                                 reduce_range=Int8Linear.reduce_range, nodes_to_exclude=kept)
            finally:
                logging.root.removeFilter(_quantizer_notes)
        float_file.unlink()
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: its copy is as good
            if not (target / MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Exported the decoder LM in %.0f s", time.perf_counter() - started)


def _verify(step: _Step, path: Path, probe: tuple[torch.Tensor, ...]) -> None:
    """The float32 graph must give the PyTorch LM's logits and cache on inputs it was not
    traced with (another cache length)."""
    import onnxruntime as ort

    with torch.no_grad():
        expected = step(*probe)
    names = [*INPUTS, *[f"past_{i}" for i in range(2 * step.layers)]]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: t.numpy() for name, t in zip(names, probe, strict=True)})
    for want, have in zip(expected, got, strict=True):
        error = float(np.abs(want.numpy() - have).max() / (np.abs(want.numpy()).max() + 1e-9))
        if want.shape != have.shape or error > 1e-3:
            raise OnnxDecoderUnavailableError(
                f"the exported decoder does not reproduce the LM (relative error {error:.2g}, "
                f"shapes {tuple(want.shape)} and {have.shape})")


def _quantizer_notes(record: logging.LogRecord) -> bool:
    """The quantiser logs a line per tensor it leaves alone, and advice meant for static
    quantisation, at the root logger: none of it is for a user."""
    return record.levelno >= logging.WARNING and "pre-processing" not in record.getMessage()
