"""Text → latent: a BERT-style backbone whose token states are attention-pooled into ``P`` learned
query slots and projected to width ``d``; the flat latent has ``C = P·d`` entries.

Why several vectors and not one: a single pooled sentence embedding loses names and numbers (see
DESIGN §2), whereas a handful of token-level slots (ICAE, Ge et al. 2024) keeps enough of the
surface form for a decoder to reconstruct the text. The memory math is indifferent to ``C``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase


class LatentEncoder(nn.Module):
    """``forward(input_ids, attention_mask) -> (N, P·d)``: backbone, pooling, projection."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        backbone: PreTrainedModel,
        num_latent_tokens: int,
        latent_token_dim: int,
        max_length: int,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.num_latent_tokens = num_latent_tokens
        self.latent_token_dim = latent_token_dim
        hidden = backbone.config.hidden_size
        positions = getattr(backbone.config, "max_position_embeddings", None) or max_length
        self.max_length = min(max_length, positions)
        # unit-scale queries so the slots attend differently from the start (small ones would all
        # see a near-uniform softmax and begin as identical mean-pools)
        self.queries = nn.Parameter(torch.randn(num_latent_tokens, hidden))
        self.pool = nn.MultiheadAttention(hidden, _pool_heads(backbone), batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.proj = nn.Linear(hidden, latent_token_dim)

    @property
    def latent_width(self) -> int:
        return self.num_latent_tokens * self.latent_token_dim

    def tokenize(self, texts: list[str]) -> BatchEncoding:
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


def _pool_heads(backbone: PreTrainedModel) -> int:
    """The backbone's own head count when it divides the width, else one head."""
    hidden = backbone.config.hidden_size
    heads = getattr(backbone.config, "num_attention_heads", 1) or 1
    return heads if hidden % heads == 0 else 1
