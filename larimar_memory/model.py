"""``LarimarModel``: encoder + latent-conditioned decoder + prior memory ``M0`` + readout noise,
with the paper's training loss (eq. 1) and symmetric ``save_pretrained`` / ``from_pretrained``.

Only the parts that training changes are saved (the heads, ``M0``, ``σ_w``, and the backbone
weights or LoRA adapters that the config trains); frozen backbones are rebuilt from their names.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from .decoder import IGNORE_INDEX, LatentDecoder
from .encoder import LatentEncoder
from .errors import ModelNotFoundError, StateFileError
from .loading import (
    PACKAGED_DECODER,
    PACKAGED_ENCODER,
    load_decoder_backbone,
    load_encoder_backbone,
)
from .memory import read_memory, write_episode
from .token_codes import TokenCodebook, TokenCodeEncoder

logger = logging.getLogger(__name__)

CONFIG_FILE = "larimar_config.json"
WEIGHTS_FILE = "larimar_weights.safetensors"
FORMAT_NAME = "larimar-memory/model"
FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = "larimar-smol"
CHECKPOINTS_DIR = Path(__file__).parent / "checkpoints"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_LOSS_KEYS = ("recon_memory", "recon_direct", "kl", "lm", "qa")


class LarimarConfig(BaseModel):
    """Architecture and trainable parts of a ``LarimarModel``.

    Latent defaults, P=8 slots × d=384 = C=3072: 384 is MiniLM's own width (the projection loses
    nothing) and 8 token-level slots is the ICAE regime in which short facts decode almost
    exactly, while C stays small enough that a K=512 memory is 6 MB and its pseudoinverse cheap.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latent: Literal["pooled", "token-codes"] = Field(
        "pooled",
        description="'pooled': encoder backbone attention-pooled into P slots, read through a KV "
        "prefix; 'token-codes': one d-wide code per decoder token (P − 1 tokens + EOS), read as "
        "a memory block of snapped token embeddings (no encoder backbone)",
    )
    encoder_name: str = Field(PACKAGED_ENCODER, description="packaged name, HF id or folder")
    decoder_name: str = Field(PACKAGED_DECODER, description="packaged name, HF id or folder")
    num_latent_tokens: int = Field(8, ge=1, le=256, description="P, latent slots per text")
    latent_token_dim: int = Field(384, ge=1, le=16384, description="d, width of one slot")
    memory_slots: int = Field(512, ge=1, le=65536, description="K, rows of the prior memory M0")
    readout_noise_init: float = Field(
        0.1, gt=0, le=10, description="initial σ_w of the readout weights (learned)"
    )
    observation_noise: float = Field(
        0.0, ge=0, le=10, description="ξ, std of noise added to latents written in training"
    )
    max_text_tokens: int = Field(
        128, ge=1, le=8192, description="texts are cut to this many tokens (encoder and targets)"
    )
    train_encoder: bool = Field(True, description="fine-tune the encoder backbone")
    decoder_training: Literal["full", "lora", "frozen"] = Field(
        "lora", description="how the decoder LM is adapted"
    )
    lora_r: int = Field(16, ge=1, le=1024)
    lora_alpha: float = Field(32.0, gt=0, le=4096)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names LoRA adapts; 'all-linear' = every linear layer"
    )
    embedding_shift: bool = Field(True, description="also add a map of z to every token embedding")
    prefix_init_scale: float = Field(
        0.02, ge=0, le=10, description="scale of the initial prefix keys/values (small = fluent)"
    )
    decoder_dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    @model_validator(mode="after")
    def _check_token_codes(self) -> LarimarConfig:
        if self.latent == "token-codes" and self.max_text_tokens > self.num_latent_tokens - 1:
            raise ValueError(
                f"token-code latents hold num_latent_tokens - 1 = {self.num_latent_tokens - 1} "
                f"text tokens (plus EOS); max_text_tokens ({self.max_text_tokens}) must not exceed "
                "that"
            )
        return self

    @property
    def latent_width(self) -> int:
        """C = P·d."""
        return self.num_latent_tokens * self.latent_token_dim


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


class LarimarModel(nn.Module):
    """Text ↔ latent plus the learned prior memory. Build with ``from_config`` (untrained) or
    ``from_pretrained`` (a folder written by ``save_pretrained``, or ``"larimar-smol"``).

    >>> from larimar_memory.testing import tiny_test_model
    >>> model = tiny_test_model()
    >>> z = model.encode(["Paris is in France."])       # (1, C)
    >>> texts = model.decode(z, max_new_tokens=8)         # one string per row
    """

    def __init__(self, config: LarimarConfig, encoder: LatentEncoder, decoder: LatentDecoder):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.decoder = decoder
        K, C = config.memory_slots, config.latent_width
        # std 1/√K puts the first readout weights w̄ near unit scale, the KL prior's
        self.prior_memory = nn.Parameter(torch.randn(K, C) / math.sqrt(K))  # M0
        self.log_sigma_w = nn.Parameter(torch.tensor(math.log(config.readout_noise_init)))
        # backbones whose full weights a loaded checkpoint held: they stay saved even if the
        # config now freezes them, so freezing never silently drops fine-tuned weights
        self._stored_backbones: set[str] = set()
        if isinstance(self.encoder, LatentEncoder):
            self.encoder.backbone.requires_grad_(config.train_encoder)
        if config.decoder_training == "full":
            self.decoder.lm.requires_grad_(True)
        elif config.decoder_training == "frozen":
            self.decoder.lm.requires_grad_(False)
        # "lora": peft already froze the base and left the adapters trainable

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
        if config.latent == "token-codes":
            codebook = TokenCodebook(lm.get_input_embeddings(), config.latent_token_dim)
            decoder = LatentDecoder(
                dec_tok, lm, config.num_latent_tokens, config.latent_token_dim, codebook=codebook
            )
            encoder: LatentEncoder | TokenCodeEncoder = TokenCodeEncoder(
                dec_tok, codebook, config.num_latent_tokens, decoder.stop_token_ids[0]
            )
        else:
            enc_tok, enc_model = encoder_backbone or load_encoder_backbone(config.encoder_name)
            encoder = LatentEncoder(
                enc_tok,
                enc_model,
                config.num_latent_tokens,
                config.latent_token_dim,
                config.max_text_tokens,
            )
            decoder = LatentDecoder(
                dec_tok,
                lm,
                config.num_latent_tokens,
                config.latent_token_dim,
                embedding_shift=config.embedding_shift,
                prefix_init_scale=config.prefix_init_scale,
            )
        if config.decoder_training == "lora":
            decoder.lm = _with_lora(lm, config)
        return cls(config, encoder, decoder)

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | Path = DEFAULT_CHECKPOINT,
        *,
        device: str | torch.device | None = None,
        cache_dir: str | Path | None = None,
    ) -> LarimarModel:
        """Load a folder written by ``save_pretrained``. ``"larimar-smol"`` is the packaged
        checkpoint; while none is shipped it is an untrained model on the packaged backbones."""
        folder = _resolve_checkpoint(name_or_dir)
        if folder is None:
            logger.warning(
                "No trained %r checkpoint is packaged yet; using an UNTRAINED model on the "
                "packaged encoder/decoder (memory-conditioned decoding will not recall facts).",
                DEFAULT_CHECKPOINT,
            )
            model = cls.from_config(LarimarConfig(), cache_dir=cache_dir)
        else:
            config, stored = _read_document(folder)
            model = cls.from_config(config, cache_dir=cache_dir)
            model._stored_backbones = stored
            model._load_trained_state(folder / WEIGHTS_FILE)
        return model.to(device) if device is not None else model

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``CONFIG_FILE`` and ``WEIGHTS_FILE`` (the trained parts only) into a folder."""
        from safetensors.torch import save_file

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
        """Readout noise σ_w (learned through its log)."""
        return self.log_sigma_w.exp()

    # -- inference -------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Latents ``(N, C)`` of ``texts``; each is cut to ``max_text_tokens`` tokens (callers
        that must refuse long texts check ``text_token_counts`` first)."""
        if not texts:
            return torch.zeros(0, self.latent_width, device=self.device, dtype=self.dtype)
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            chunks = []
            for start in range(0, len(texts), batch_size):
                batch = self.encoder.tokenize(list(texts[start : start + batch_size]))
                ids = batch["input_ids"].to(self.device)
                mask = batch["attention_mask"].to(self.device)
                chunks.append(self.encoder(ids, mask))
        finally:
            self.encoder.train(was_training)
        return torch.cat(chunks).to(self.dtype)

    @torch.no_grad()
    def encode_facts(self, texts: list[str]) -> list[torch.Tensor]:
        """Each text as the memory rows that keep it whole, ``(n_i, C)``: one row per
        ``max_text_tokens`` tokens (token codes: decoder tokens; pooled: encoder tokens)."""
        if isinstance(self.encoder, TokenCodeEncoder):
            split = self.encoder.split(list(texts))
            pieces = [piece for text_pieces in split for piece in text_pieces]
            flat = torch.cat([
                self.encoder.encode_pieces(pieces[i : i + 64]) for i in range(0, len(pieces), 64)
            ]).to(self.dtype)
        else:
            split = [self._text_pieces(text) for text in texts]
            flat = self.encode([piece for text_pieces in split for piece in text_pieces])
        return list(torch.split(flat, [len(p) for p in split]))

    @torch.no_grad()
    def read_facts(self, readouts: list[torch.Tensor]) -> list[str]:
        """The texts memory readouts hold, one per fact ``(n_i, C)``. Token codes are read by
        snapping each slot to its nearest code (no language model, a few ms); a pooled latent
        has to be decoded by the language model, row by row."""
        if isinstance(self.encoder, TokenCodeEncoder):
            tokenizer = self.encoder.tokenizer
            return [
                tokenizer.decode(self.encoder.read(rows.to(self.dtype)),
                                 clean_up_tokenization_spaces=False)
                for rows in readouts
            ]
        return [" ".join(self.decode(rows.to(self.dtype))).strip() for rows in readouts]

    def memory_context(self, readouts: list[torch.Tensor]) -> torch.Tensor:
        """What conditions the decoder on several facts' readouts ``(n_i, C)``: token codes
        read them all as one memory block ``(1, R·C)``; a KV prefix takes one latent, so a
        pooled model reads the best fact's first row."""
        if isinstance(self.encoder, TokenCodeEncoder):
            return torch.cat(readouts).reshape(1, -1).to(self.dtype)
        return readouts[0][:1].to(self.dtype)

    def _text_pieces(self, text: str) -> list[str]:
        """A text cut at encoder-token boundaries into pieces the pooled encoder takes whole."""
        tokenizer = self.encoder.tokenizer
        step = max(1, self.config.max_text_tokens - 2)  # room for [CLS]/[SEP]
        spans = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = spans["offset_mapping"]
        if len(offsets) <= step:
            return [text]
        cuts = [offsets[i][0] for i in range(step, len(offsets), step)]
        bounds = [0, *cuts, len(text)]
        return [text[a:b].strip() or text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]

    def text_token_counts(self, texts: list[str]) -> list[int]:
        """Encoder tokens per text before truncation (compare with ``config.max_text_tokens``)."""
        if isinstance(self.encoder, TokenCodeEncoder):
            return self.encoder.count_tokens(list(texts))
        ids = self.encoder.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        return [len(row) for row in ids]

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

    # -- training --------------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Encoder inputs and decoder targets for a flat list of texts, each ``(N, T)``."""
        enc = self.encoder.tokenize(list(texts))
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
            Z = self.encoder(enc_ids.reshape(B * N, -1), enc_mask.reshape(B * N, -1))
            Z = Z.view(B, N, C).to(self.prior_memory.dtype)
            if w.recon_memory or w.kl or asks:
                M = write_episode(Z, self.prior_memory, noise_std=self.config.observation_noise)
                Zr, w_mean = read_memory(Z, M, sigma_w=self.sigma_w)  # (B, N, C), (B, N, K)
                if w.recon_memory:
                    _, loss = self.decoder(Zr.reshape(B * N, C), flat_ids, flat_mask, labels)
                    losses["recon_memory"] = w.recon_memory * loss
                if w.kl:
                    losses["kl"] = w.kl * kl_to_standard_normal(w_mean, self.sigma_w)
                if asks:
                    assert questions is not None
                    rows = Zr.reshape(B * N, C)[questions.index]
                    _, loss = self.decoder(
                        rows, questions.input_ids, questions.attention_mask, questions.labels
                    )
                    losses["qa"] = w.qa * loss
            if w.recon_direct:
                _, loss = self.decoder(Z.reshape(B * N, C), flat_ids, flat_mask, labels)
                losses["recon_direct"] = w.recon_direct * loss
        if w.lm:
            ids = (
                flat_ids
                if lm_input_ids is None
                else lm_input_ids.reshape(-1, lm_input_ids.shape[-1])
            )
            mask = flat_mask if lm_attention_mask is None else lm_attention_mask.reshape(ids.shape)
            _, loss = self.decoder(None, ids, mask, ids.masked_fill(mask == 0, IGNORE_INDEX))
            losses["lm"] = w.lm * loss
        losses["total"] = sum((losses[key] for key in _LOSS_KEYS), self.prior_memory.new_zeros(()))
        return losses

    # -- persistence -----------------------------------------------------------------------------

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
            if name.startswith("encoder.backbone."):
                keep = "encoder" in full
            elif name.startswith("decoder.lm."):
                keep = "decoder" in full or (lora and "lora_" in name)
            else:
                keep = True  # heads, M0, σ_w
            if keep:
                saved[name] = param
        return saved

    def _load_trained_state(self, path: Path) -> None:
        """Copy saved tensors in after checking names, shapes and values; no partial loads."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not path.is_file():
            raise StateFileError(f"{path} is missing; the checkpoint folder is incomplete.")
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise StateFileError(f"{path} is not a readable safetensors file ({exc}).") from exc
        expected = self._saved_parameters()
        missing = sorted(set(expected) - set(tensors))
        unknown = sorted(set(tensors) - set(expected))
        if missing or unknown:
            raise StateFileError(
                f"{path} does not match its config: missing {missing[:5]} ({len(missing)}), "
                f"unexpected {unknown[:5]} ({len(unknown)}). Re-save the model or fix the config."
            )
        for name, param in expected.items():
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


def _read_document(folder: Path) -> tuple[LarimarConfig, set[str]]:
    """The config and the set of backbones stored whole, after format checks."""
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
    unknown = sorted(set(fields) - set(LarimarConfig.model_fields))
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
    return config, set(stored)
