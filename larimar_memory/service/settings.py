"""`LarimarSettings`: how a `Larimar` memory behaves (its models are passed separately)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..names import check_namespace
from ..types import OWNER_FIELDS, SLOT_FIELD, DecoderWeights

NAMESPACE_FORMAT = "larimar-memory/namespace-v2"


def owner_of(metadata: dict[str, Any]) -> tuple[Any, ...]:
    """Whose a fact is, from its metadata (see `OWNER_FIELDS`)."""
    return tuple(metadata.get(name) for name in OWNER_FIELDS)


def names_of(text: str, key_text: str, metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """What a fact is known by for replacement: its explicit key (when it has one) and its
    slot (when its metadata names one)."""
    names = []
    if key_text != text:
        names.append(("key", key_text))
    slot = metadata.get(SLOT_FIELD)
    if isinstance(slot, str) and slot:
        names.append(("slot", slot))
    return names


class LarimarSettings(BaseModel):
    """Behaviour of a `Larimar` memory (the models are passed separately)."""

    model_config = ConfigDict(extra="forbid")

    namespace: Annotated[str, AfterValidator(check_namespace)] = "default"
    block_rows: int = Field(
        512, gt=0, le=65536, description="K: rows per memory block (the paper's memory size)"
    )
    ridge: float = Field(1e-3, gt=0, le=1, description="λ of each block's ridge prior")
    memory_dtype: Literal["float32", "float64"] = Field(
        "float32",
        description="dtype of the in-process memory rows. The one-hot blocks (`OneHotMemory`) "
        "keep no inverse to drift: a row is its value divided by 1 + λ and a forget resets it "
        "exactly, so float32 (the stored values' dtype) is exact to its rounding; float64 "
        "doubles the bytes",
    )
    value_dtype: Literal["float16", "float32"] = Field(
        "float16",
        description="values (latents) are rounded to this dtype before they are written, to "
        "the memory and the store alike, so every replica reads the same bits. float16 halves "
        "the bytes (`packed.py`); token codes have unit-RMS entries ~10 apart, so a rounding "
        "of 1e-3 changes no token a readout snaps to",
    )
    scope_threshold: float | None = Field(
        None, ge=0, le=1,
        description="operating point on the calibrated relevance score: a query whose best "
        "hit scores at least this is in scope. None = the calibration's own point",
    )
    context_threshold: float | None = Field(
        None, ge=0, le=1,
        description="the point at which memory is shown to a language model for a question "
        "about the person who said the best hit (`ScopeInfo.relevant`); below scope_threshold "
        "it lets a model see a fact worded unlike the question ('Who do I report to?', 'My "
        "manager is Sabine.'). None = the calibration's own context point",
    )
    correction_threshold: float | None = Field(
        None, ge=0, le=1.0001,
        description="opt-in: a new fact whose key has at least this cosine to a stored key of "
        "the same owner replaces it (reported per input). None: never replace by similarity",
    )
    forget_margin: float = Field(
        0.15, ge=0, le=1,
        description="forget_matching deletes its best match only when that match's relevance "
        "leads the runner-up's by at least this much; otherwise it deletes nothing and returns "
        "the candidates",
    )
    max_fact_tokens: int = Field(512, gt=0, le=8192, description="decoder tokens per fact")
    max_text_chars: int = Field(16000, gt=0, description="characters per fact or query")
    max_key_chars: int = Field(2000, gt=0, description="characters per explicit key")
    max_new_tokens: int = Field(32, gt=0, le=1024, description="decoding length for ask")
    copy_bias: float = Field(
        0.0, ge=0, le=50,
        description="logit bonus that makes memory-conditioned answers copy the readout as "
        "stored (`decoder.CopyBias`; token-code models). 0 (default): none, the packaged "
        "checkpoint is trained to copy; with it, 8 gave the same share of answers holding the "
        "fact at k = 3 and a lower F1 (66.7 vs 69.5 without; larimar eval answers --copy-bias)",
    )
    spell_as_stored: bool = Field(
        True,
        description="memory-conditioned answers finish a word begun from the readout as "
        "stored or end it, never with invented pieces ('oat milk', not 'oatmeal'; "
        "`decoder.StoredSpelling`; token-code models)",
    )
    decoder_weights: DecoderWeights = Field(
        "int8",
        description="the weights `ask` decodes with, on a CPU (`larimar_memory."
        "quantization`; packed at the first decode): its own copy of the decoder LM, "
        "the linear layers int8 but the MLP down projections and the output head float16 "
        "(`ask` ~2x faster, the same answer quality on the dialogue suite); float16 "
        "everywhere (the very answers of float32 there, ~1.7x faster); float32, the model "
        "as given; or onnx-int8: the int8 copy whose memory-conditioned LM runs in ONNX "
        "Runtime, int8 but the LoRA adapters, the down projections and the output head "
        "(`larimar_memory.onnx_decoder`: memory-route `ask` ~1.6x faster than int8 on one "
        "AVX2 core, a question or two fewer right; exported once to the user cache dir, "
        "~1 min; needs the [fast] extra, else int8 with a warning). LoRA A/B and the "
        "embeddings stay float32, and the model passed in keeps its float32 layers "
        "(training and LarimarModel.decode see those)",
    )
    ask_k: int = Field(
        3, ge=1, le=64,
        description="facts ask recalls for its memory block; of these the decoder reads the ones "
        "in scope, or, when none is, the ones worth showing (`service.reads.decoder_reads`). The "
        "packaged checkpoint was trained on blocks of 1-5 facts (recipes larimar-smol-chat, "
        "larimar-smol-chat-hard). Measured (docs/results.md): the asked fact in 88.3 % of the "
        "dialogue suite's answers at k = 3 (session 11); memory-route p50 171 / 222 / 263 ms "
        "at k = 1 / 3 / 5 (session 10), 204 ms at k = 3 (session 12)",
    )
    lexical_weight: float = Field(
        1.0, ge=0, le=10,
        description="weight of BM25 over the key texts, fused with the dense keys' cosine by "
        "reciprocal rank (0: dense keys only)",
    )
    cache_bytes: int = Field(
        2 * 1024**3, ge=0,
        description="in-process memories beyond this many bytes are evicted (least recently "
        "used first) and rebuilt from the fact log on their next call",
    )
    change_log_keep: int = Field(
        10000, ge=0,
        description="versions of each namespace's change log the store keeps: a replica whose "
        "cache is fewer versions behind applies only the changes it missed; one further behind "
        "(or a restart) rebuilds from the fact log",
    )
