"""Inference-time weight quantization of the decoder LM, for serving (`Larimar`).

Decoding a short answer is bound by reading the decoder's weights once per token (135 M
parameters for SmolLM2: 540 MB in float32 per step) and, for the prompt, by multiplying by them,
so storing the big matrices in fewer bytes is what makes ``ask`` fast on a CPU. `serving_model`
returns a copy of a `LarimarModel` for the service to decode with; the model passed in is never
changed, so training and the paper-table experiments (`larimar_memory.eval`, which call
``LarimarModel.decode`` on their own model) see the float32 weights.

What is replaced: every ``nn.Linear`` of the decoder LM, that is the attention and MLP
projections and the output head, by fbgemm's kernels: ``"float16"`` stores them all in float16;
``"int8"`` stores them in int8 but for `FLOAT16_ONLY` and the output head, kept float16. The
copy holds two LMs without peft wrappers, sharing every layer LoRA does not adapt: ``lm``, for
memory-conditioned decoding, packs each adapted layer with its LoRA merged in (W + s·B·A), and
``plain_lm``, for plain decoding, packs its base weights (what ``disable_adapter()`` ran). peft's
wrappers ran the A/B products beside every adapted layer at each step, ~30 % of a decode step
for SmolLM2; merged, they cost nothing, for a float16 copy of the adapted layers beside their
int8 base (SmolLM2's attention: ~53 MB, `_quantized_copy`).
The input embedding table stays as it is even where the output head shares it: the memory block
and the token codebook read it (``get_input_embeddings()``); the head gets its own copy. The
copy's ``generate`` also asks the LM for the last position's logits only (``logits_to_keep``):
the prompt's other positions never needed the output head.

The copy shares every tensor it does not replace with the original (modules are copied, not
their parameters), so it costs only the new weights; when the service loaded the model itself,
the float32 matrices it replaced are freed with the original.

Kernels: ``torch.ao.quantization.quantize_dynamic`` is deprecated (torch 2.13) and slow to apply
(2.5 s for SmolLM2: it builds and packs a zero weight per layer and runs an observer); its
successor torchao ships CUDA builds on PyPI and its CPU int8 paths were slower here. The modules
below call the same fbgemm operators directly.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import threading
import types
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

from .decoder import takes_logits_to_keep

if TYPE_CHECKING:
    from .model import LarimarModel
    from .types import DecoderWeights

logger = logging.getLogger(__name__)


def _has_vnni() -> bool:
    try:
        with open("/proc/cpuinfo") as info:
            return any(flag in info.read() for flag in (" avx512_vnni", " avx_vnni"))
    except OSError:
        return False


class Int8Linear(nn.Module):
    """A linear layer with int8 weights, one scale per output row (symmetric), run by fbgemm's
    dynamically quantized product, which accumulates in int32 (``torch.ao``'s dynamic
    ``Linear`` kernel). Inputs get 8 bits where the CPU has VNNI (int32 products); elsewhere 7
    (``reduce_range``), as ``torch.ao`` always does, since pairs of 8-bit products can saturate
    AVX2's 16-bit sums.

    fbgemm quantizes a call's whole input with one range, so in a prompt of many tokens every
    token gets the widest token's steps. Each row is mapped onto [−1, 1] first,
    x = mid + half·x′, and the product put back, W·x = half·(W·x′) + mid·(W·1): one call, the
    precision of quantizing each token alone (SmolLM2's layers: 2-8 % error per product, against
    3-12 % with one range; a single token is unchanged)."""

    reduce_range = not _has_vnni()

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(dim=1) / 127).clamp_min(1e-12)
        codes = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        self._bias = None if linear.bias is None else linear.bias.detach().float()
        self._row_sums = codes.float().sum(dim=1) * scale  # W·1 of the weights as rounded
        with _quantized_tensors():
            qweight = torch._make_per_channel_quantized_tensor(
                codes, scale.double(), torch.zeros_like(scale, dtype=torch.long), 0)
            self._packed = torch.ops.quantized.linear_prepack(qweight, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        if rows.shape[0] > 1:
            high, low = rows.amax(dim=1, keepdim=True), rows.amin(dim=1, keepdim=True)
            mid, half = (high + low) / 2, ((high - low) / 2).clamp_min(1e-30)
            product = torch.ops.quantized.linear_dynamic((rows - mid) / half, self._packed,
                                                         self.reduce_range)
            out = torch.addcmul(mid * self._row_sums, product, half)
        else:
            out = torch.ops.quantized.linear_dynamic(rows, self._packed, self.reduce_range)
        if self._bias is not None:
            out = out + self._bias
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class Float16Linear(nn.Module):
    """A linear layer with float16 weights and float32 inputs and outputs (fbgemm)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        bias = None if linear.bias is None else linear.bias.detach().float()
        self._packed = torch.ops.quantized.linear_prepack_fp16(linear.weight.detach().float(),
                                                               bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic_fp16(x.float(), self._packed).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, float16"


@contextlib.contextmanager
def _quantized_tensors() -> Iterator[None]:
    """torch 2.13 warns that quantized tensor dtypes (qint8) are deprecated; the packed int8
    weight is built from one, and the warning is not something a user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*quantiz.*deprecated", category=UserWarning)
        yield


_QUANTIZERS: dict[str, type[nn.Module]] = {"int8": Int8Linear, "float16": Float16Linear}
FLOAT16_ONLY = frozenset({"down_proj"})
"""Layers kept in float16 when the rest is int8, as is the output head: the MLP's down
projection reads the gated activations, whose outliers one int8 scale per call flattens. Measured
on the dialogue suite (`larimar eval answers`): int8 everywhere drops token F1 from 66.8 to
62.7; int8 but these two keeps it (67.1)."""


def quantized_layers(module: nn.Module) -> int:
    """How many linear layers of ``module`` hold quantized weights."""
    return sum(isinstance(m, tuple(_QUANTIZERS.values())) for m in module.modules())


_SERVED: weakref.WeakKeyDictionary[nn.Module, dict[str, nn.Module]] = weakref.WeakKeyDictionary()
_SERVED_LOCK = threading.Lock()


def serving_model(model: LarimarModel, weights: DecoderWeights) -> LarimarModel:
    """``model`` itself for ``"float32"``; otherwise a copy whose decoder LMs have their linear
    layers in ``weights``, sharing every other tensor with ``model``. One
    copy per model and format: several `Larimar`s on one model (replicas in one process, the
    benchmarks) share it, rather than each packing its own (SmolLM2: 1.3-3 s and 280-420 MB
    each, by CPU)."""
    if weights == "float32":
        return model
    with _SERVED_LOCK:  # the cache first: every ask comes here, and a walk of the LM is ~15 ms
        copies = _SERVED.setdefault(model, {})
        served = copies.get(weights)
        if served is None and _served_already(model):
            return model
        if served is None:
            served = (_onnx_copy(model) if weights == "onnx-int8"
                      else _quantized_copy(model, weights))
            if served is not model:  # (a value holding its key would keep it alive)
                copies[weights] = served
        return served  # type: ignore[return-value]


def _quantized_copy(model: LarimarModel, weights: DecoderWeights) -> LarimarModel:
    if model.device.type != "cpu" or "fbgemm" not in torch.backends.quantized.supported_engines:
        logger.warning("decoder_weights=%r needs fbgemm on a CPU (this model is on %s); "
                       "decoding with the model as loaded", weights, model.device)
        return model
    base = getattr(model.decoder.lm, "get_base_model", None)
    lm = base() if callable(base) else model.decoder.lm  # peft's wrapped transformers model
    head = lm.get_output_embeddings()
    packed: dict[int, nn.Module] = {}  # one packed layer per weight, whichever tree it is in

    def pack(layer: nn.Module, name: str) -> nn.Module:
        if type(layer) is not nn.Linear:  # GPT-2's Conv1D: decoded as loaded
            return layer
        keep = layer.weight is getattr(head, "weight", None) or name in FLOAT16_ONLY
        if id(layer.weight) not in packed:
            packed[id(layer.weight)] = _QUANTIZERS["float16" if keep else weights](layer)
        return packed[id(layer.weight)]

    def pack_merged(wrapper: nn.Module, name: str) -> nn.Module:
        """Float16 whatever ``weights`` says: the adapters widen a merged layer's rows, and
        in int8 they lose what memory conditioning was trained into (SmolLM2's conditioned
        logits: 17 % off float32 against 6.5 %); for one token it costs what int8 does."""
        merged = _merged(wrapper)
        return Float16Linear(merged) if type(merged) is nn.Linear else merged

    memory_lm = _packed_tree(lm, pack_merged, pack)
    decoder = _share_shallow(model.decoder)
    decoder._modules["lm"] = memory_lm
    if _lora_wrappers(lm):
        decoder.plain_lm = _packed_tree(
            lm, lambda wrapper, name: pack(wrapper.get_base_layer(), name), pack)
    if takes_logits_to_keep(memory_lm):  # the prefill's other positions need no output head
        decoder.step_kwargs = {**model.decoder.step_kwargs, "logits_to_keep": 1}
    served = _share_shallow(model)
    served._modules["decoder"] = decoder
    return served


def _served_already(model: LarimarModel) -> bool:
    from .onnx_decoder import OnnxCausalLM

    lm = model.decoder.lm
    return bool(quantized_layers(lm)) or isinstance(lm, OnnxCausalLM)


def _onnx_copy(model: LarimarModel) -> LarimarModel:
    """The int8 copy whose memory LM runs in ONNX Runtime (`larimar_memory.onnx_decoder`:
    exported and quantized once, its adapters beside the base weights); plain decoding keeps
    the copy's PyTorch ``plain_lm``. Where ONNX Runtime cannot run it, the int8 copy as it is,
    with a warning."""
    from .onnx_decoder import OnnxDecoderUnavailableError, onnx_decoder

    served = _quantized_copy(model, "int8")
    if served is model:
        return model
    base = getattr(model.decoder.lm, "get_base_model", None)
    lm = base() if callable(base) else model.decoder.lm
    try:
        onnx_lm = onnx_decoder(lm)
    except OnnxDecoderUnavailableError as exc:
        logger.warning("decoder_weights='onnx-int8': %s; decoding with 'int8' in PyTorch", exc)
        return served
    if served.decoder.plain_lm is None:  # no adapters: plain decoding ran the LM itself
        served.decoder.plain_lm = served.decoder.lm
    served.decoder._modules["lm"] = onnx_lm
    return served


def _packed_tree(lm: nn.Module, adapted: Callable[[nn.Module, str], nn.Module],
                 linear: Callable[[nn.Module, str], nn.Module]) -> nn.Module:
    """A copy of ``lm`` (`_share`) whose LoRA-wrapped layers are ``adapted(wrapper, name)``
    and whose other linear layers are ``linear(layer, name)``: no peft wrapper is left."""
    tree = _share(lm)
    wrappers = _lora_wrappers(tree)
    targets = [(parent, name) for prefix, parent in tree.named_modules()
               if not any(prefix == w or prefix.startswith(f"{w}.") for w in wrappers)
               for name, child in parent._modules.items()
               if f"{prefix}.{name}".lstrip(".") in wrappers or type(child) is nn.Linear]
    for parent, name in targets:
        child = parent._modules[name]
        parent._modules[name] = (linear(child, name) if type(child) is nn.Linear
                                 else adapted(child, name))
    return tree


def _lora_wrappers(lm: nn.Module) -> set[str]:
    """Qualified names of the peft LoRA layers in ``lm``."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # no peft, no adapters
        return set()
    return {name for name, module in lm.named_modules() if isinstance(module, LoraLayer)}


def _merged(wrapper: nn.Module) -> nn.Module:
    """The wrapped linear layer with the active adapters merged in (W + s·B·A, by peft's own
    ``merge`` on a copy: the original keeps its weights and its switch)."""
    merged = copy.deepcopy(wrapper)
    merged.merge(safe_merge=True)
    return merged.get_base_layer()


def _share_shallow(module: nn.Module) -> nn.Module:
    """A new module object with the same attributes and its own table of children."""
    clone = copy.copy(module)
    clone._modules = dict(module._modules)  # type: ignore[assignment]
    return clone


def _share(module: nn.Module) -> nn.Module:
    """A copy of the module tree: new module objects (so children can be swapped in the copy
    alone), the same parameter and buffer tensors. Attributes outside the tree that point into
    it (peft keeps the wrapped model's bound ``prepare_inputs_for_generation``) are pointed at
    the copy, so the copy holds no reference to the original's modules: once the original is
    dropped, the float32 weights the copy replaced are freed."""
    memo: dict[int, nn.Module] = {}

    def clone(original: nn.Module) -> nn.Module:
        if id(original) not in memo:
            new = memo[id(original)] = copy.copy(original)
            new._parameters = dict(original._parameters)  # type: ignore[assignment]
            new._buffers = dict(original._buffers)  # type: ignore[assignment]
            new._modules = {name: None if child is None else clone(child)  # type: ignore[assignment]
                            for name, child in original._modules.items()}
        return memo[id(original)]

    root = clone(module)
    for new in list(memo.values()):
        for name, value in list(vars(new).items()):
            if isinstance(value, nn.Module) and id(value) in memo:
                object.__setattr__(new, name, memo[id(value)])
            elif inspect.ismethod(value) and id(value.__self__) in memo:
                object.__setattr__(new, name, types.MethodType(value.__func__,
                                                               memo[id(value.__self__)]))
    return root
