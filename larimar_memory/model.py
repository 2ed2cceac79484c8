"""``LarimarModel``, read top to bottom: its config, then the model, composed of three parts.

* a **latent codec** (``codec.LatentCodec``): text ↔ latent ``(N, C)``. ``PooledCodec`` pools a
  trainable encoder backbone; ``TokenCodeCodec`` writes codes of the decoder's own tokens.
* the **memory prior**: ``M0`` (``prior_memory``, K × C) and the readout noise σ_w, used by the
  paper's training loss (eq. 1) to write and read an episode (``memory.write_episode``/
  ``read_memory``).
* a **decoder** (``decoder.LatentDecoder``): a causal LM and the ``Conditioning`` by which a
  readout reaches it. A pooled latent is read through a per-layer ``KVPrefix``; token codes as a
  ``MemoryBlock`` of snapped token embeddings.

The config names the codec by ``codec.kind``; each codec kind comes with its conditioning, and
the config holds only fields that kind uses. ``save_pretrained`` / ``from_pretrained`` are
symmetric; only what training changes is saved (heads, ``M0``, σ_w, and backbone weights or LoRA
adapters the config trains); frozen backbones are rebuilt from their names. Checkpoints of
format 1 (flat config, parameters under ``encoder.*`` and ``decoder.codebook.*``) are converted
on load.

Words: the *key embedder* (``scope.SentenceEmbedder``) makes the keys that address facts; the
*latent codec* makes the values the memory stores; the *decoder* turns readouts into text.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from .codec import LatentCodec, PooledCodec
from .decoder import IGNORE_INDEX, KVPrefix, LatentDecoder, MemoryBlock
from .errors import ModelNotFoundError, StateFileError
from .loading import (
    PACKAGED_DECODER,
    PACKAGED_ENCODER,
    load_decoder_backbone,
    load_encoder_backbone,
)
from .memory import read_memory, write_episode
from .quiet import quiet_loading
from .token_codes import TokenCodebook, TokenCodeCodec

logger = logging.getLogger(__name__)

CONFIG_FILE = "larimar_config.json"
WEIGHTS_FILE = "larimar_weights.safetensors"
FORMAT_NAME = "larimar-memory/model"
FORMAT_VERSION = 2  # 2: config.codec, parameters under codec.* and decoder.conditioning.*
DEFAULT_CHECKPOINT = "larimar-smol"
CHECKPOINTS_DIR = Path(__file__).parent / "checkpoints"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_LOSS_KEYS = ("recon_memory", "recon_direct", "kl", "lm", "qa")


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PooledLatent(_Part):
    """A trainable encoder backbone attention-pooled into ``P`` slots (``PooledCodec``), read
    by the decoder through a per-layer KV prefix (``KVPrefix``). Defaults P=8 × d=384 = C=3072:
    384 is MiniLM's own width (the projection loses nothing) and 8 token-level slots is the ICAE
    regime in which short facts decode almost exactly, while C stays small enough that a K=512
    memory is 6 MB and its pseudoinverse cheap."""

    kind: Literal["pooled"] = "pooled"
    encoder_name: str = Field(PACKAGED_ENCODER, description="packaged name, HF id or folder")
    train_encoder: bool = Field(True, description="fine-tune the encoder backbone")
    num_latent_tokens: int = Field(8, ge=1, le=256, description="P, latent slots per text")
    latent_token_dim: int = Field(384, ge=1, le=16384, description="d, width of one slot")
    max_text_tokens: int = Field(
        128, ge=1, le=8192, description="encoder tokens one latent holds (longer texts: more rows)"
    )
    embedding_shift: bool = Field(True, description="also add a map of z to every token embedding")
    prefix_init_scale: float = Field(
        0.02, ge=0, le=10, description="scale of the initial prefix keys/values (small = fluent)"
    )


class TokenCodeLatent(_Part):
    """One ``d``-wide code of a decoder token per slot, ``P − 1`` tokens plus EOS
    (``TokenCodeCodec``), read by the decoder as a memory block of snapped token embeddings
    (``MemoryBlock``). No encoder backbone. Defaults are ``larimar-smol``'s: P=48 × d=64."""

    kind: Literal["token-codes"] = "token-codes"
    num_latent_tokens: int = Field(48, ge=2, le=256, description="P, latent slots per text")
    latent_token_dim: int = Field(64, ge=1, le=16384, description="d, width of one code")

    @property
    def max_text_tokens(self) -> int:
        """Decoder tokens one latent holds: P − 1 (the last slot is EOS)."""
        return self.num_latent_tokens - 1


LatentConfig = Annotated[PooledLatent | TokenCodeLatent, Field(discriminator="kind")]

#: keys of format-1 (flat) configs that now live in ``LarimarConfig.codec``
_FLAT_CODEC_KEYS = frozenset({
    "latent", "encoder_name", "train_encoder", "num_latent_tokens", "latent_token_dim",
    "max_text_tokens", "embedding_shift", "prefix_init_scale",
})


class LarimarConfig(_Part):
    """Architecture and trainable parts of a ``LarimarModel``: the latent codec (with the
    conditioning that reads it), the decoder LM and how it is adapted, and the memory prior.

    The flat form of format 1 (``latent="token-codes", num_latent_tokens=48, …`` at the top
    level; no ``latent`` meant pooled) is still accepted and converted; fields the chosen codec
    never used (e.g. ``encoder_name`` for token codes) are dropped.
    """

    codec: LatentConfig = Field(
        default_factory=TokenCodeLatent,
        description="how text becomes a latent and the decoder reads it back ('kind' picks)",
    )
    decoder_name: str = Field(PACKAGED_DECODER, description="packaged name, HF id or folder")
    decoder_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    decoder_training: Literal["full", "lora", "frozen"] = Field(
        "lora", description="how the decoder LM is adapted"
    )
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank (decoder_training='lora')")
    lora_alpha: float = Field(32.0, gt=0, le=4096)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names LoRA adapts; 'all-linear' = every linear layer"
    )
    memory_slots: int = Field(512, ge=1, le=65536, description="K, rows of the prior memory M0")
    readout_noise_init: float = Field(
        0.1, gt=0, le=10, description="initial σ_w of the readout weights (learned)"
    )
    observation_noise: float = Field(
        0.0, ge=0, le=10, description="ξ, std of noise added to latents written in training"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not _FLAT_CODEC_KEYS & set(data):
            return data
        if "codec" in data:
            raise ValueError(
                f"give the codec's fields inside 'codec', not also at the top level: "
                f"{sorted(_FLAT_CODEC_KEYS & set(data))}"
            )
        data = dict(data)
        flat = {k: data.pop(k) for k in sorted(_FLAT_CODEC_KEYS & set(data))}
        kind = flat.pop("latent", "pooled")
        if kind == "token-codes":
            p = flat.get("num_latent_tokens", TokenCodeLatent.model_fields["num_latent_tokens"]
                         .default)
            rows = flat.pop("max_text_tokens", None)
            if isinstance(p, int) and isinstance(rows, int) and rows > p - 1:
                raise ValueError(
                    f"token-code latents hold num_latent_tokens - 1 = {p - 1} text tokens (plus "
                    f"EOS); max_text_tokens ({rows}) must not exceed that"
                )
            flat = {k: v for k, v in flat.items() if k in TokenCodeLatent.model_fields}
        data["codec"] = {"kind": kind, **flat}
        return data

    # what every codec has, read through the config (namespaces record these)

    @property
    def latent(self) -> str:
        """The codec's kind: ``"pooled"`` or ``"token-codes"``."""
        return self.codec.kind

    @property
    def num_latent_tokens(self) -> int:
        """P, latent slots per text."""
        return self.codec.num_latent_tokens

    @property
    def latent_token_dim(self) -> int:
        """d, width of one slot."""
        return self.codec.latent_token_dim

    @property
    def latent_width(self) -> int:
        """C = P·d."""
        return self.num_latent_tokens * self.latent_token_dim

    @property
    def max_text_tokens(self) -> int:
        """Tokens one latent holds; longer texts are cut (``encode``) or split over rows
        (``encode_facts``)."""
        return self.codec.max_text_tokens

    @property
    def train_encoder(self) -> bool:
        """Whether an encoder backbone is trained (token codes have none)."""
        return isinstance(self.codec, PooledLatent) and self.codec.train_encoder


class LossWeights(BaseModel):
    """Weights of eq. 1's terms; 0 switches a term off (it is then not computed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recon_memory: float = Field(1.0, ge=0, description="decode the episode from the memory readout")
    recon_direct: float = Field(1.0, ge=0, description="α: decode from the encoding, no memory")
    kl: float = Field(0.01, ge=0, description="β: KL(q(w) ‖ N(0, I)), mean per weight entry")
    lm: float = Field(1.0, ge=0, description="plain-text LM loss with no memory (fluency)")
    qa: float = Field(
        0.0, ge=0, description="answer a question about a fact from its memory readout"
    )


@dataclass
class QuestionBatch:
    """Questions about some facts of an episode batch: ``index`` picks rows of the flattened
    (B·N) facts; ``input_ids``/``attention_mask``/``labels`` come from
    ``LatentDecoder.tokenize_answers``. A (non-frozen) dataclass, so Lightning moves it to the
    device with the rest of the batch."""

    index: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    #: other facts each question's memory block holds, ``(n·(R−1), T)`` encoder inputs (R − 1
    #: per question, in order), and where among them the asked fact sits, ``(n,)``; None: the
    #: asked fact alone
    others_input_ids: torch.Tensor | None = None
    others_attention_mask: torch.Tensor | None = None
    position: torch.Tensor | None = None


class LarimarModel(nn.Module):
    """A latent codec (text ↔ latent), the learned memory prior (``M0``, σ_w) and a decoder LM
    conditioned on memory readouts. Build with ``from_config`` (fresh heads) or
    ``from_pretrained`` (a folder written by ``save_pretrained``, or ``"larimar-smol"``).

    >>> from larimar_memory.testing import tiny_test_model
    >>> model = tiny_test_model()
    >>> z = model.encode(["Paris is in France."])       # (1, C)
    >>> texts = model.decode(z, max_new_tokens=8)         # one string per row

    What trains is decided here alone: ``set_trainable`` applies the config's switches,
    ``trainable_parameters`` lists what they leave trainable, ``train_mode`` keeps frozen
    backbones out of dropout.
    """

    def __init__(self, config: LarimarConfig, codec: LatentCodec, decoder: LatentDecoder):
        super().__init__()
        self.config = config
        self.codec = codec
        self.decoder = decoder
        K, C = config.memory_slots, config.latent_width
        # std 1/√K puts the first readout weights w̄ near unit scale, the KL prior's
        self.prior_memory = nn.Parameter(torch.randn(K, C) / math.sqrt(K))  # M0
        # one element, not a 0-d tensor: FSDP shards only parameters of one or more dimensions
        self.log_sigma_w = nn.Parameter(torch.tensor([math.log(config.readout_noise_init)]))
        # backbones whose full weights a loaded checkpoint held: they stay saved even if the
        # config now freezes them, so freezing never silently drops fine-tuned weights
        self._stored_backbones: set[str] = set()
        self.set_trainable()

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: LarimarConfig | None = None,
        *,
        cache_dir: str | Path | None = None,
        encoder_backbone: tuple[Any, nn.Module] | None = None,
        decoder_backbone: tuple[Any, nn.Module] | None = None,
    ) -> LarimarModel:
        """A fresh model: backbones by name (or given as ``(tokenizer, model)``), new heads."""
        config = config or LarimarConfig()
        dec_tok, lm = decoder_backbone or load_decoder_backbone(
            config.decoder_name, cache_dir=cache_dir, dtype=_DTYPES[config.decoder_dtype]
        )
        spec = config.codec
        codec: LatentCodec
        if isinstance(spec, TokenCodeLatent):
            codebook = TokenCodebook(lm.get_input_embeddings(), spec.latent_token_dim)
            decoder = LatentDecoder(dec_tok, lm, MemoryBlock(dec_tok, codebook,
                                                             spec.num_latent_tokens))
            codec = TokenCodeCodec(dec_tok, codebook, spec.num_latent_tokens,
                                   decoder.stop_token_ids[0])
        else:
            enc_tok, enc_model = encoder_backbone or load_encoder_backbone(spec.encoder_name)
            codec = PooledCodec(
                enc_tok, enc_model, spec.num_latent_tokens, spec.latent_token_dim,
                spec.max_text_tokens,
            )
            prefix = KVPrefix(
                lm, spec.num_latent_tokens, spec.latent_token_dim,
                embedding_shift=spec.embedding_shift, prefix_init_scale=spec.prefix_init_scale,
            )
            decoder = LatentDecoder(dec_tok, lm, prefix)
        if config.decoder_training == "lora":
            decoder.lm = _with_lora(lm, config)
        return cls(config, codec, decoder)

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | Path = DEFAULT_CHECKPOINT,
        *,
        device: str | torch.device | None = None,
        cache_dir: str | Path | None = None,
    ) -> LarimarModel:
        """Load a folder written by ``save_pretrained``; ``"larimar-smol"`` is the packaged,
        trained checkpoint. Should its files be missing from an installation, that name falls
        back to an untrained model on the packaged decoder, with a warning."""
        with quiet_loading():
            model = cls._load(name_or_dir, cache_dir)
        return model.to(device) if device is not None else model

    @classmethod
    def _load(cls, name_or_dir: str | Path, cache_dir: str | Path | None) -> LarimarModel:
        folder = _resolve_checkpoint(name_or_dir)
        if folder is None:
            logger.warning(
                "The packaged %r checkpoint files are missing; using an UNTRAINED model on the "
                "packaged decoder (memory-conditioned decoding will not recall facts).",
                DEFAULT_CHECKPOINT,
            )
            model = cls.from_config(LarimarConfig(), cache_dir=cache_dir)
        else:
            config, stored, version = _read_document(folder)
            model = cls.from_config(config, cache_dir=cache_dir)
            model._stored_backbones = stored
            model._load_trained_state(folder / WEIGHTS_FILE, version)
        return model

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``CONFIG_FILE`` and ``WEIGHTS_FILE`` (the trained parts only) into a folder."""
        from safetensors.torch import save_file

        self._check_full_precision("saved")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {n: p.detach().cpu().contiguous() for n, p in self._saved_parameters().items()}
        document = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "config": self.config.model_dump(mode="json"),
            "stored_backbones": sorted(self._full_backbones()),
        }
        meta = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)}
        # write beside, then rename: a crash leaves the previous files, never half-written ones
        tmp_weights = folder / f".{WEIGHTS_FILE}.tmp"
        tmp_config = folder / f".{CONFIG_FILE}.tmp"
        save_file(tensors, str(tmp_weights), metadata=meta)
        tmp_config.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        os.replace(tmp_weights, folder / WEIGHTS_FILE)
        os.replace(tmp_config, folder / CONFIG_FILE)
        return folder

    # -- properties ------------------------------------------------------------------------------

    @property
    def latent_width(self) -> int:
        """C, the width of one latent (``encode`` rows, memory rows)."""
        return self.config.latent_width

    @property
    def num_latent_tokens(self) -> int:
        return self.config.num_latent_tokens

    @property
    def device(self) -> torch.device:
        return self.prior_memory.device

    @property
    def dtype(self) -> torch.dtype:
        return self.prior_memory.dtype

    @property
    def context_length(self) -> int | None:
        """Positions the decoder LM can attend to (None when its config does not say)."""
        config = self.decoder.lm.config.get_text_config(decoder=True)
        value = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        return int(value) if value else None

    @property
    def sigma_w(self) -> torch.Tensor:
        """Readout noise σ_w, shape (1,) (learned through its log)."""
        return self.log_sigma_w.exp()

    # -- inference -------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Latents ``(N, C)`` of ``texts``; each is cut to ``max_text_tokens`` tokens (callers
        that must refuse long texts check ``text_token_counts`` first)."""
        if not texts:
            return torch.zeros(0, self.latent_width, device=self.device, dtype=self.dtype)
        return self.codec.encode(list(texts), batch_size).to(self.dtype)

    @torch.no_grad()
    def encode_facts(self, texts: list[str]) -> list[torch.Tensor]:
        """Each text as the memory rows that keep it whole, ``(n_i, C)``: one row per
        ``max_text_tokens`` tokens (token codes: decoder tokens; pooled: encoder tokens)."""
        if not texts:
            return []
        return [rows.to(self.dtype) for rows in self.codec.encode_facts(list(texts))]

    @torch.no_grad()
    def read_facts(self, readouts: list[torch.Tensor]) -> list[str]:
        """The texts memory readouts hold, one per fact ``(n_i, C)``. Token codes are read by
        snapping each slot to its nearest code (no language model, a few ms); a pooled latent
        has to be decoded by the language model, row by row."""
        return self.codec.read_facts([rows.to(self.dtype) for rows in readouts], self.decode)

    def memory_context(self, readouts: list[torch.Tensor]) -> torch.Tensor:
        """What conditions the decoder on several facts' readouts ``(n_i, C)``: a memory block
        reads them all, ``(1, R·C)``; a KV prefix takes one latent, the best fact's first row."""
        return self.decoder.conditioning.context(readouts).to(self.dtype)

    def text_token_counts(self, texts: list[str]) -> list[int]:
        """Tokens per text before truncation (compare with ``config.max_text_tokens``)."""
        return self.codec.count_tokens(list(texts))

    def decode(
        self,
        z: torch.Tensor | None,
        prompts: list[str] | None = None,
        max_new_tokens: int = 32,
        **kwargs: Any,
    ) -> list[str]:
        """Text from readouts ``z (N, C)`` (``None``: plain LM); see ``LatentDecoder.generate``."""
        if z is not None:
            z = z.to(self.device)
        return self.decoder.generate(z, prompts, max_new_tokens=max_new_tokens, **kwargs)

    # -- what trains -----------------------------------------------------------------------------

    def set_trainable(
        self,
        *,
        train_encoder: bool | None = None,
        decoder_training: Literal["full", "lora", "frozen"] | None = None,
    ) -> None:
        """Apply the config's trainable-part switches, after changing them if given. Heads
        (pooling, W_M, codebook), ``M0`` and σ_w always train; LoRA cannot be switched on or off
        here (it changes the architecture)."""
        if train_encoder is not None:
            if not isinstance(self.config.codec, PooledLatent):
                if train_encoder:
                    raise ValueError("token-code latents have no encoder backbone to train")
            else:
                self.config.codec.train_encoder = train_encoder
        if decoder_training is not None and decoder_training != self.config.decoder_training:
            if "lora" in (decoder_training, self.config.decoder_training):
                raise ValueError(
                    f"cannot switch decoder_training from {self.config.decoder_training!r} to "
                    f"{decoder_training!r}: LoRA changes the architecture"
                )
            self.config.decoder_training = decoder_training
        backbone = getattr(self.codec, "backbone", None)
        if backbone is not None:
            backbone.requires_grad_(self.config.train_encoder)
        if self.config.decoder_training == "full":
            self.decoder.lm.requires_grad_(True)
        elif self.config.decoder_training == "frozen":
            self.decoder.lm.requires_grad_(False)
        # "lora": peft froze the base and left the adapters trainable

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters training updates (each once): what ``set_trainable`` left on."""
        return [p for p in self.parameters() if p.requires_grad]

    def train_mode(self) -> LarimarModel:
        """``train()``, but frozen backbones stay in eval mode (they load that way): dropout in a
        frozen part only blurs the signal the trained parts learn from."""
        self._check_full_precision("trained")
        self.train()
        backbone = getattr(self.codec, "backbone", None)
        if backbone is not None and not self.config.train_encoder:
            backbone.eval()
        if self.config.decoder_training == "frozen":
            self.decoder.lm.eval()
        return self

    # -- training --------------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Codec inputs (``enc_*``) and decoder targets of a flat list of texts, each ``(N, T)``."""
        enc = self.codec.tokenize(list(texts))
        dec_ids, dec_mask = self.decoder.tokenize_targets(list(texts), self.config.max_text_tokens)
        return {
            "enc_input_ids": enc["input_ids"],
            "enc_attention_mask": enc["attention_mask"],
            "dec_input_ids": dec_ids,
            "dec_attention_mask": dec_mask,
        }

    def training_losses(
        self,
        enc_input_ids: torch.Tensor,
        enc_attention_mask: torch.Tensor,
        dec_input_ids: torch.Tensor,
        dec_attention_mask: torch.Tensor,
        lm_input_ids: torch.Tensor | None = None,
        lm_attention_mask: torch.Tensor | None = None,
        weights: LossWeights | None = None,
        questions: QuestionBatch | None = None,
    ) -> dict[str, torch.Tensor]:
        """Eq. 1 on a batch of episodes ``(B, N, T)`` (or one episode ``(N, T)``). Returns the
        weighted terms ``recon_memory``, ``recon_direct``, ``kl``, ``lm`` and their ``total``.

        The memory is written one-shot from the episode's own latents with ``M0`` as prior, then
        read back with each latent as its query and σ_w noise on the weights. The LM term uses
        ``lm_input_ids`` if given, else the episode's decoder targets, with no memory. The QA
        term answers ``questions`` from the readouts of the facts they ask about.
        """
        w = weights or LossWeights()
        enc_ids, enc_mask = _episodes(enc_input_ids), _episodes(enc_attention_mask)
        dec_ids, dec_mask = _episodes(dec_input_ids), _episodes(dec_attention_mask)
        B, N = enc_ids.shape[:2]
        if dec_ids.shape[:2] != (B, N):
            raise ValueError(
                f"encoder inputs hold {B}×{N} texts but decoder inputs {tuple(dec_ids.shape[:2])}"
            )
        C = self.latent_width
        flat_ids, flat_mask = dec_ids.reshape(B * N, -1), dec_mask.reshape(B * N, -1)
        labels = flat_ids.masked_fill(flat_mask == 0, IGNORE_INDEX)
        losses = {key: self.prior_memory.new_zeros(()) for key in _LOSS_KEYS}
        asks = bool(w.qa) and questions is not None and questions.index.numel() > 0
        if w.recon_memory or w.recon_direct or w.kl or asks:
            Z = self.codec(enc_ids.reshape(B * N, -1), enc_mask.reshape(B * N, -1))
            Z = Z.view(B, N, C).to(self.prior_memory.dtype)
            if w.recon_memory or w.kl or asks:
                M = write_episode(Z, self.prior_memory, noise_std=self.config.observation_noise)
                Zr, w_mean = read_memory(Z, M, sigma_w=self.sigma_w)  # (B, N, C), (B, N, K)
                if w.recon_memory:
                    loss = self.decoder.loss(Zr.reshape(B * N, C), flat_ids, flat_mask, labels)
                    losses["recon_memory"] = w.recon_memory * loss
                if w.kl:
                    losses["kl"] = w.kl * kl_to_standard_normal(w_mean, self.sigma_w)
                if asks:
                    assert questions is not None
                    rows = self._question_blocks(Zr.reshape(B * N, C), questions)
                    loss = self.decoder.loss(
                        rows, questions.input_ids, questions.attention_mask, questions.labels
                    )
                    losses["qa"] = w.qa * loss
            if w.recon_direct:
                loss = self.decoder.loss(Z.reshape(B * N, C), flat_ids, flat_mask, labels)
                losses["recon_direct"] = w.recon_direct * loss
        if w.lm:
            ids = (
                flat_ids
                if lm_input_ids is None
                else lm_input_ids.reshape(-1, lm_input_ids.shape[-1])
            )
            mask = flat_mask if lm_attention_mask is None else lm_attention_mask.reshape(ids.shape)
            loss = self.decoder.loss(None, ids, mask, ids.masked_fill(mask == 0, IGNORE_INDEX))
            losses["lm"] = w.lm * loss
        losses["total"] = sum((losses[key] for key in _LOSS_KEYS), self.prior_memory.new_zeros(()))
        return losses

    def _question_blocks(self, readouts: torch.Tensor, questions: QuestionBatch) -> torch.Tensor:
        """Each question's memory block ``(n, R·C)``: its fact's readout, placed among the
        encodings of the other facts it is read with (written with few facts in many slots,
        a readout is its encoding, so the others are encoded rather than written)."""
        asked = readouts[questions.index]
        if questions.others_input_ids is None or questions.position is None:
            return asked
        n, C = asked.shape
        others = self.codec(questions.others_input_ids, questions.others_attention_mask)
        others = others.view(n, -1, C).to(asked.dtype)
        blocks = [
            torch.cat([others[i, :p], asked[i : i + 1], others[i, p:]])
            for i, p in enumerate(questions.position.tolist())
        ]
        return torch.stack(blocks).reshape(n, -1)

    # -- persistence -----------------------------------------------------------------------------

    def _check_full_precision(self, what: str) -> None:
        """A serving copy (`larimar_memory.quantization.serving_model`) holds packed weights
        that neither train nor save: refuse it by name rather than fail deep inside."""
        from .quantization import quantized_layers

        if quantized_layers(self.decoder.lm):
            raise ValueError(
                f"this model is a serving copy with quantized decoder weights and cannot be "
                f"{what}; use the model it was made from (Larimar(model) leaves that one "
                "unchanged), or build the Larimar with decoder_weights='float32'")

    def _full_backbones(self) -> set[str]:
        """Backbones saved whole: trained by the config, or held whole by the loaded checkpoint."""
        full = set(self._stored_backbones)
        if self.config.train_encoder:
            full.add("encoder")
        if self.config.decoder_training == "full":
            full.add("decoder")
        return full

    def _saved_parameters(self) -> dict[str, nn.Parameter]:
        """The trained parameters (tied weights once), in a stable order."""
        full = self._full_backbones()
        lora = self.config.decoder_training == "lora"
        saved = {}
        for name, param in self.named_parameters():  # duplicates (tied weights) come once
            if name.startswith("codec.backbone."):
                keep = "encoder" in full
            elif name.startswith("decoder.lm."):
                keep = "decoder" in full or (lora and "lora_" in name)
            else:
                keep = True  # heads, M0, σ_w
            if keep:
                saved[name] = param
        return saved

    def _load_trained_state(self, path: Path, version: int = FORMAT_VERSION) -> None:
        """Copy saved tensors in after checking names, shapes and values; no partial loads.
        Format-1 names are renamed first (``_FORMAT1_NAMES``)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not path.is_file():
            raise StateFileError(f"{path} is missing; the checkpoint folder is incomplete.")
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise StateFileError(f"{path} is not a readable safetensors file ({exc}).") from exc
        if version == 1:
            tensors = {_format1_name(name): t for name, t in tensors.items()}
        expected = self._saved_parameters()
        missing = sorted(set(expected) - set(tensors))
        unknown = sorted(set(tensors) - set(expected))
        if missing or unknown:
            raise StateFileError(
                f"{path} does not match its config: missing {missing[:5]} ({len(missing)}), "
                f"unexpected {unknown[:5]} ({len(unknown)}). Re-save the model or fix the config."
            )
        for name, param in expected.items():
            if tensors[name].numel() == param.numel() == 1:  # σ_w was saved 0-d before
                tensors[name] = tensors[name].reshape(param.shape)
            if tensors[name].shape != param.shape:
                raise StateFileError(
                    f"{path}: tensor {name!r} has shape {tuple(tensors[name].shape)}, the model "
                    f"expects {tuple(param.shape)}; the weights do not belong to this config."
                )
            if tensors[name].is_floating_point() and not torch.isfinite(tensors[name]).all():
                raise StateFileError(f"{path}: tensor {name!r} holds NaN or Inf; it is corrupted.")
        with torch.no_grad():
            for name, param in expected.items():
                param.copy_(tensors[name].to(dtype=param.dtype, device=param.device))


def kl_to_standard_normal(mean: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Mean over entries of KL(N(mean, σ²) ‖ N(0, 1)) = ½(σ² + mean² − 1) − log σ."""
    var = sigma**2
    return (0.5 * (var + mean.pow(2) - 1.0) - torch.log(sigma)).mean()


def _episodes(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 2:
        return t.unsqueeze(0)
    if t.dim() != 3:
        raise ValueError(f"expected episodes shaped (B, N, T) or (N, T), got {tuple(t.shape)}")
    return t


def _with_lora(lm: nn.Module, config: LarimarConfig) -> nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ImportError(
            "decoder_training='lora' needs peft: pip install 'larimar-memory[train]'"
        ) from exc
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
        fan_in_fan_out=getattr(lm.config, "model_type", "") == "gpt2",  # GPT-2 uses Conv1D
    )
    return get_peft_model(lm, lora)


def _resolve_checkpoint(name_or_dir: str | Path) -> Path | None:
    """A checkpoint folder, or None for the default name while no packaged one exists."""
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    packaged = CHECKPOINTS_DIR / str(name_or_dir)
    if (packaged / CONFIG_FILE).is_file():
        return packaged
    if str(name_or_dir) == DEFAULT_CHECKPOINT:
        return None
    raise ModelNotFoundError(
        f"No Larimar checkpoint at {str(name_or_dir)!r}: pass a folder written by "
        f"LarimarModel.save_pretrained, or {DEFAULT_CHECKPOINT!r} for the packaged one."
    )


def _read_document(folder: Path) -> tuple[LarimarConfig, set[str], int]:
    """The config, the set of backbones stored whole and the format version, after checks.
    A format-1 config is flat; ``LarimarConfig`` converts it."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise StateFileError(f"{folder} has no {CONFIG_FILE}; it is not a Larimar checkpoint.")
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFileError(f"{path} is not valid JSON ({exc}); the file is corrupted.") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise StateFileError(f"{path} is not a {FORMAT_NAME} config file.")
    version = document.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise StateFileError(
            f"{path} has format_version {version!r}; this larimar-memory reads versions 1 to "
            f"{FORMAT_VERSION}. Upgrade larimar-memory to load it."
        )
    fields = document.get("config")
    if not isinstance(fields, dict):
        raise StateFileError(f"{path} has no 'config' object.")
    known = set(LarimarConfig.model_fields) | (_FLAT_CODEC_KEYS if version == 1 else set())
    unknown = sorted(set(fields) - known)
    if unknown:
        logger.warning("Ignoring config keys this version does not know: %s", ", ".join(unknown))
    try:
        config = LarimarConfig(**{k: v for k, v in fields.items() if k not in unknown})
    except ValidationError as exc:
        raise StateFileError(f"{path} holds an invalid config:\n{exc}") from exc
    stored = document.get("stored_backbones", [])
    if not isinstance(stored, list) or not set(stored) <= {"encoder", "decoder"}:
        raise StateFileError(
            f"{path}: stored_backbones must list 'encoder'/'decoder', got {stored!r}"
        )
    return config, set(stored), version


#: format 1 → 2 parameter names (prefix → prefix)
_FORMAT1_NAMES = (
    ("encoder.", "codec."),
    ("decoder.codebook.", "codec.codebook."),
    ("decoder.prefix.", "decoder.conditioning.prefix."),
    ("decoder.prefix_bias", "decoder.conditioning.prefix_bias"),
    ("decoder.shift.", "decoder.conditioning.shift."),
)


def _format1_name(name: str) -> str:
    for old, new in _FORMAT1_NAMES:
        if name.startswith(old):
            return new + name[len(old):]
    return name
