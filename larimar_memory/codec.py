"""Latent codecs: text ↔ latent. A latent is ``P`` slots of width ``d``, flat ``C = P·d``; the
memory math is indifferent to how it was made. Two codecs:

* ``PooledCodec`` (here): a trainable BERT-style encoder whose token states are attention-pooled
  into ``P`` learned query slots and projected to ``d``. Reading a latent back to text needs the
  decoder LM. Why several slots and not one vector: a single sentence embedding loses names and
  numbers (DESIGN §2), a handful of token-level slots (ICAE, Ge et al. 2024) keeps enough of the
  surface form for a decoder to reconstruct the text.
* ``TokenCodeCodec`` (``token_codes``): one code of the decoder's own token embedding per slot;
  read back by snapping each slot to its nearest code, no LM.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: how a codec that needs the LM reads rows ``(n, C)``: one string per row
Decode = Callable[[torch.Tensor], list[str]]



@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode for the block, then the mode it had. A serving model is in eval mode already,
    and then nothing is walked: ``train()`` visits every submodule (~27 ms per call for
    SmolLM2 with LoRA, measured in ``ask``)."""
    if not module.training:
        yield
        return
    module.eval()
    try:
        yield
    finally:
        module.train()


class LatentCodec(nn.Module):
    """Text ↔ latent. ``forward(input_ids, attention_mask) -> (N, C)`` on ``tokenize``'s output;
    ``encode`` does both in batches; ``encode_facts`` keeps long texts whole over several rows;
    ``read_facts`` turns readout rows back into text."""

    tokenizer: PreTrainedTokenizerBase

    def __init__(self, num_latent_tokens: int, latent_token_dim: int, max_text_tokens: int):
        super().__init__()
        self.num_latent_tokens = num_latent_tokens
        self.latent_token_dim = latent_token_dim
        #: tokens one latent holds; longer texts are cut (``encode``) or split (``encode_facts``)
        self.max_text_tokens = max_text_tokens

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` ``(N, T)`` of texts cut to what one latent holds."""
        raise NotImplementedError

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Latents ``(N, C)`` of non-empty ``texts``, in eval mode, ``batch_size`` at a time."""
        device = self._device()
        chunks = []
        with evaluating(self):
            for start in range(0, len(texts), batch_size):
                batch = self.tokenize(list(texts[start : start + batch_size]))
                ids = batch["input_ids"].to(device)
                mask = batch["attention_mask"].to(device)
                chunks.append(self(ids, mask))
        return torch.cat(chunks)

    def encode_facts(self, texts: list[str]) -> list[torch.Tensor]:
        """Each text as the rows that keep it whole, ``(n_i, C)``: one per ``max_text_tokens``."""
        raise NotImplementedError

    def read_facts(self, readouts: list[torch.Tensor], decode: Decode) -> list[str]:
        """The text each fact's readout rows ``(n_i, C)`` hold; ``decode`` is the LM's greedy
        reconstruction, for codecs that need it."""
        raise NotImplementedError

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text before truncation (compare with ``max_text_tokens``)."""
        raise NotImplementedError

    def _device(self) -> torch.device:
        return next(self.parameters()).device


class PooledCodec(LatentCodec):
    """A BERT-style backbone, attention pooling into ``P`` learned query slots, a projection to
    ``d``. The backbone is trained or frozen (``train_encoder``); the pooling is always trained."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        backbone: PreTrainedModel,
        num_latent_tokens: int,
        latent_token_dim: int,
        max_text_tokens: int,
    ) -> None:
        super().__init__(num_latent_tokens, latent_token_dim, max_text_tokens)
        self.tokenizer = tokenizer
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        positions = getattr(backbone.config, "max_position_embeddings", None) or max_text_tokens
        self.max_length = min(max_text_tokens, positions)
        # unit-scale queries so the slots attend differently from the start (small ones would all
        # see a near-uniform softmax and begin as identical mean-pools)
        self.queries = nn.Parameter(torch.randn(num_latent_tokens, hidden))
        self.pool = nn.MultiheadAttention(hidden, _pool_heads(backbone), batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.proj = nn.Linear(hidden, latent_token_dim)

    def tokenize(self, texts: list[str]) -> Any:
        """Pad and truncate to ``max_length`` tokens (longer texts keep their beginning)."""
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        ignore = attention_mask == 0  # (N, T)
        ignore[ignore.all(dim=1), 0] = False  # an empty text would otherwise pool to NaN
        queries = self.queries.to(states.dtype).expand(states.shape[0], -1, -1)  # (N, P, h)
        pooled, _ = self.pool(queries, states, states, key_padding_mask=ignore, need_weights=False)
        return self.proj(self.norm(pooled)).flatten(1)  # (N, P·d)

    @torch.no_grad()
    def encode_facts(self, texts: list[str]) -> list[torch.Tensor]:
        split = [self._pieces(text) for text in texts]
        flat = self.encode([piece for pieces in split for piece in pieces])
        return list(torch.split(flat, [len(p) for p in split]))

    def read_facts(self, readouts: list[torch.Tensor], decode: Decode) -> list[str]:
        """A pooled latent has to be decoded by the language model, row by row."""
        return [" ".join(decode(rows)).strip() for rows in readouts]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Encoder tokens per text, [CLS]/[SEP] included."""
        ids = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        return [len(row) for row in ids]

    def _pieces(self, text: str) -> list[str]:
        """A text cut at encoder-token boundaries into pieces one latent takes whole."""
        step = max(1, self.max_text_tokens - 2)  # room for [CLS]/[SEP]
        spans = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = spans["offset_mapping"]
        if len(offsets) <= step:
            return [text]
        cuts = [offsets[i][0] for i in range(step, len(offsets), step)]
        bounds = [0, *cuts, len(text)]
        return [text[a:b].strip() or text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _pool_heads(backbone: PreTrainedModel) -> int:
    """The backbone's own head count when it divides the width, else one head."""
    hidden = backbone.config.hidden_size
    heads = getattr(backbone.config, "num_attention_heads", 1) or 1
    return heads if hidden % heads == 0 else 1
