"""Token-code latents: each of the ``P`` slots holds a ``d``-wide code of one decoder token.

Why: a pooled sentence latent from a separate encoder has to be *learned* into something a
decoder can spell back, which takes GPU-weeks (DESIGN §2). Codes of the decoder's own token
embeddings are decodable from the start: even a random 64-wide projection of SmolLM2's 576-wide
embeddings keeps every token its own nearest neighbour, so training only has to teach the decoder
to read its memory, not a new language. The memory math is unchanged (``C = P·d``), and a noisy
readout is cleaned by snapping each slot to its nearest codes.

``TokenCodebook`` maps token ids → codes (the encode side) and codes → soft input embeddings of
the decoder (what ``decoder.MemoryBlock`` feeds it); ``TokenCodeCodec`` is the latent codec
built on it, and owns it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .codec import Decode, LatentCodec

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class CodeIndex:
    """Exact nearest code of a slot, without scoring the whole vocabulary.

    The codes are projected on their top ``dims`` principal axes and held in a k-d tree. For a
    slot ``z`` the tree gives the ``candidates`` codes nearest in the projection; let ``a`` be
    the one nearest to ``z`` in full and ``r`` that distance. A projection onto orthonormal axes
    never lengthens a distance, so a code outside the candidates lies at least as far from ``z``
    as the last candidate does in the projection; when that is more than ``r``, ``a`` is the
    nearest code of all. A readout holding what was written sits ~0.02 from its code, and its
    8th candidate ~0.2 away in 4 dimensions, so nearly every slot is answered (~4 µs against
    ~100 µs for scoring 49k codes). A slot it cannot certify, or a near tie that float rounding
    could decide either way, is left to the caller's full search: the answer is always the
    search's."""

    def __init__(self, codes: np.ndarray, dims: int = 4, candidates: int = 8) -> None:
        from scipy.spatial import cKDTree

        self.codes = codes  # (V, d) float64
        self.sq_norms = (codes**2).sum(axis=1)
        self.center = codes.mean(axis=0)
        axes = np.linalg.svd(codes - self.center, full_matrices=False)[2]
        self.axes = axes[: min(dims, codes.shape[1])].T  # (d, dims), orthonormal columns
        self.tree = cKDTree((codes - self.center) @ self.axes)
        self.candidates = min(candidates, codes.shape[0])

    def nearest(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For slots ``(n, d)`` (float64): the nearest code's index, the slot's score for it
        (``2 z·c − ‖c‖²``, positive for a token) and whether the index answered the slot."""
        n = slots.shape[0]
        if n == 0 or self.candidates < 2:
            return np.zeros(n, np.int64), np.zeros(n), np.zeros(n, bool)
        projected, cand = self.tree.query((slots - self.center) @ self.axes, k=self.candidates)
        sq = ((slots[:, None, :] - self.codes[cand]) ** 2).sum(axis=-1)  # (n, m) full distances²
        order = np.argsort(sq, axis=1)[:, :2]
        rows = np.arange(n)
        best_sq, second_sq = sq[rows, order[:, 0]], sq[rows, order[:, 1]]
        index = cand[rows, order[:, 0]]
        z_sq = (slots**2).sum(axis=1)
        score = z_sq - best_sq  # = 2 z·c − ‖c‖²
        tolerance = 1e-5 * (1.0 + z_sq + self.sq_norms[index])
        answered = ((projected[:, -1] ** 2 > best_sq + tolerance)
                    & (second_sq - best_sq > tolerance) & (np.abs(score) > tolerance))
        return index.astype(np.int64), score, answered


class TokenCodebook(nn.Module):
    """``code(v) = (e_v − μ)·A`` for every decoder token ``v``; ``A`` (h × d) is learned,
    initialised orthonormal and scaled so that code entries have unit RMS. The embedding table
    is the decoder LM's own: borrowed, not registered here (the LM owns and saves it)."""

    def __init__(self, embeddings: nn.Embedding, code_dim: int, top_k: int = 8) -> None:
        super().__init__()
        weight = embeddings.weight.detach().float()
        hidden = weight.shape[1]
        if code_dim > hidden:
            raise ValueError(f"code_dim ({code_dim}) cannot exceed the embedding width ({hidden})")
        generator = torch.Generator().manual_seed(0)
        basis, _ = torch.linalg.qr(torch.randn(hidden, code_dim, generator=generator))
        center = weight.mean(dim=0)
        rms = ((weight - center) @ basis).pow(2).mean().sqrt().clamp_min(1e-8)
        self.register_buffer("center", center, persistent=False)
        self.proj = nn.Parameter(basis / rms)
        # softmax temperature over candidate tokens; exact codes sit ~d apart in logit space
        self.log_temperature = nn.Parameter(torch.tensor(math.log(4.0)))
        self.top_k = top_k
        object.__setattr__(self, "_embeddings", embeddings)  # borrowed from the decoder LM

    @property
    def code_dim(self) -> int:
        return int(self.proj.shape[1])

    def codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Codes ``(…, d)`` of token ids ``(…)``: rows of the embedding table itself, as in
        `vocabulary_codes` (an LM that scales its embeddings in the forward, as Gemma does by
        √h, must not scale a token's code away from its own vocabulary code)."""
        return self._project(F.embedding(ids, self._embeddings.weight))

    def _project(self, embeds: torch.Tensor) -> torch.Tensor:
        """Codes of embedding-table rows: centred, then projected."""
        embeds = embeds.to(self.proj.dtype)
        return (embeds - self.center.to(embeds.dtype)) @ self.proj

    def vocabulary_codes(self) -> torch.Tensor:
        """Codes ``(V, d)`` of the whole vocabulary, without autograd, cached until the
        projection changes: computing them is a (V × h)·(h × d) product, ~2 GFLOP for SmolLM2
        (11 for Gemma 3), far more than snapping a readout to them."""
        return self._cached()[0]

    @torch.no_grad()
    def _cached(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The vocabulary's codes and their squared norms, until the projection changes."""
        stamp = self._stamp()
        cached = getattr(self, "_codes_cache", None)
        if cached is None or cached[0] != stamp:
            codes = self._project(self._embeddings.weight)
            cached = (stamp, codes, codes.pow(2).sum(dim=1))
            object.__setattr__(self, "_codes_cache", cached)  # a cache, not module state
        return cached[1], cached[2]

    def _stamp(self) -> tuple[int, int, torch.dtype]:
        """What the caches are valid for: this projection, unchanged."""
        return (self.proj.data_ptr(), self.proj._version, self.proj.dtype)

    def soft_embeddings(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots ``(N, P, d)`` → decoder input embeddings ``(N, P, h)`` and a mask ``(N, P)`` of
        slots that hold a token (an all-zero slot is empty: it is nearer to zero than to any
        code). Each embedding mixes the ``top_k`` nearest tokens' embeddings by a softmax over
        −‖slot − code‖²/τ, so gradients reach the slots and a noisy readout snaps to tokens.

        The candidates are found without autograd and only their scores are recomputed with
        it: the same values and gradients (top-k passes gradients to the chosen scores only),
        without a dense ``(N, P, V)`` score tensor and its gradient (3.6 GB a step for Gemma's
        262k tokens)."""
        index = self._candidates(slots)  # (N, P, k)
        codes = self.codes(index)  # (N, P, k, d)
        top = 2.0 * (codes @ slots.to(codes.dtype).unsqueeze(-1)).squeeze(-1) - codes.pow(2).sum(-1)
        present = top[..., 0] > 0
        weights = torch.softmax(top / self.log_temperature.exp(), dim=-1)
        embeds = self._embeddings(index)  # (N, P, k, h)
        mixed = (weights.unsqueeze(-1).to(embeds.dtype) * embeds).sum(dim=-2)
        return mixed, present

    @torch.no_grad()
    def _candidates(self, slots: torch.Tensor, rows: int = 256) -> torch.Tensor:
        """The ``top_k`` best-scoring token ids of each slot ``(N, P, k)``, best first, scored a
        few hundred slots at a time. A token's score is −‖z − c‖² + ‖z‖² = 2 z·c − ‖c‖² (the
        −‖z‖² term is the same for every token, and an empty slot, z = 0, scores 0), so a
        positive best score means a token."""
        book, _ = self._cached()
        flat = slots.reshape(-1, slots.shape[-1]).to(book.dtype)
        k = min(self.top_k, book.shape[0])
        index = torch.cat([self._scores(part).topk(k, dim=-1).indices
                           for part in flat.split(rows)])
        return index.reshape(*slots.shape[:-1], k)

    def _scores(self, flat: torch.Tensor) -> torch.Tensor:
        """``(n, V)``: every token's score for slots ``(n, d)``, 2 z·c − ‖c‖², one fused product."""
        book, norms = self._cached()
        return torch.addmm(norms, flat.to(book.dtype), book.T, beta=-1.0, alpha=2.0)

    @torch.no_grad()
    def nearest_tokens(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The nearest token id of each slot ``(N, P)`` and the mask of non-empty slots (the
        best of `_scores`; an empty slot's id is meaningless). A slot shorter than half the
        shortest code is empty without a search: its score for a code c is
        2 z·c − ‖c‖² ≤ ‖c‖(2‖z‖ − ‖c‖) ≤ 0 (a memory block of k facts is mostly empty slots,
        all zeros). An exact index answers most other slots in microseconds (`CodeIndex`);
        the rest are scored against the whole vocabulary in one fused product."""
        book, norms = self._cached()
        flat = slots.reshape(-1, slots.shape[-1]).to(book.dtype)
        short = 4.0 * flat.pow(2).sum(dim=1) < norms.min() * (1.0 - 1e-4)  # margin: rounding
        index, best, answered = self._index().nearest(flat.detach().cpu().double().numpy())
        index = torch.from_numpy(index).to(flat.device)
        best = torch.from_numpy(best).to(device=flat.device, dtype=book.dtype)
        best[short] = 0.0
        search = ~torch.from_numpy(answered).to(flat.device) & ~short
        if bool(search.any()):
            best[search], index[search] = self._scores(flat[search]).max(dim=-1)
        return index.reshape(slots.shape[:-1]), (best > 0).reshape(slots.shape[:-1])

    def _index(self) -> CodeIndex:
        """The exact nearest-code index of the cached codes (built in ~0.1 s, once)."""
        stamp = self._stamp()
        cached = getattr(self, "_index_cache", None)
        if cached is None or cached[0] != stamp:
            cached = (stamp, CodeIndex(self._cached()[0].detach().cpu().double().numpy()))
            object.__setattr__(self, "_index_cache", cached)  # a cache, not module state
        return cached[1]


class TokenCodeCodec(LatentCodec):
    """``forward(input_ids, attention_mask) -> (N, P·d)``: the text in the decoder's tokens, one
    code per token, then EOS's code, zero slots after it. A latent holds ``P − 1`` tokens. The
    only trained parameters are the codebook's; this codec owns it, the decoder's
    ``MemoryBlock`` borrows it."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        codebook: TokenCodebook,
        num_latent_tokens: int,
        eos_token_id: int,
    ) -> None:
        super().__init__(num_latent_tokens, codebook.code_dim, num_latent_tokens - 1)
        self.tokenizer = tokenizer
        self.codebook = codebook
        self.eos_token_id = eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Decoder token ids of each text (cut to ``P − 1``) plus EOS, right-padded."""
        body = self.tokenizer(
            list(texts), add_special_tokens=False, truncation=True, max_length=self.max_text_tokens
        )["input_ids"]
        return self._with_eos(body)

    def _with_eos(self, pieces: list[list[int]]) -> dict[str, torch.Tensor]:
        """Token-id pieces, each followed by EOS, right-padded into ids and a mask."""
        rows = [list(piece) + [self.eos_token_id] for piece in pieces]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def split(self, texts: list[str]) -> list[list[list[int]]]:
        """Each text's token ids cut into pieces of at most ``P − 1`` tokens: one memory row
        each, so a fact of any length is kept whole over several rows."""
        body = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        step = self.max_text_tokens
        return [[list(ids[i : i + step]) for i in range(0, max(len(ids), 1), step)]
                for ids in body]

    def encode_pieces(self, pieces: list[list[int]]) -> torch.Tensor:
        """Latents ``(N, C)`` of token-id pieces (each at most ``P − 1`` ids), EOS appended."""
        batch = self._with_eos(pieces)
        device = self.codebook.proj.device
        return self(batch["input_ids"].to(device), batch["attention_mask"].to(device))

    @torch.no_grad()
    def encode_facts(self, texts: list[str]) -> list[torch.Tensor]:
        """Rows of ``P − 1`` decoder tokens each (plus EOS)."""
        split = self.split(list(texts))
        pieces = [piece for text_pieces in split for piece in text_pieces]
        flat = torch.cat(
            [self.encode_pieces(pieces[i : i + 64]) for i in range(0, len(pieces), 64)]
        )
        return list(torch.split(flat, [len(p) for p in split]))

    def read_facts(self, readouts: list[torch.Tensor], decode: Decode) -> list[str]:
        """Each slot snapped to its nearest code: no language model. All facts' slots are
        scored against the vocabulary in one product (a few ms for k facts together)."""
        if not readouts:
            return []
        per_row = self.read_rows(torch.cat(readouts))
        texts, start = [], 0
        for rows in readouts:
            ids = [t for row in per_row[start: start + rows.shape[0]] for t in row]
            texts.append(self.tokenizer.decode(ids, clean_up_tokenization_spaces=False))
            start += rows.shape[0]
        return texts

    def read(self, rows: torch.Tensor) -> list[int]:
        """The token ids a fact's readout rows ``(n, C)`` hold, in order."""
        return [t for row in self.read_rows(rows) for t in row]

    def read_rows(self, rows: torch.Tensor) -> list[list[int]]:
        """The token ids each readout row ``(n, C)`` holds: each slot snapped to its nearest
        code, read up to the row's EOS (or first empty slot)."""
        slots = rows.reshape(rows.shape[0], self.num_latent_tokens, -1)
        filled = slots.abs().amax(dim=-1) > 0  # all-zero slots are empty: skip their scores
        ids = torch.full(filled.shape, self.eos_token_id, dtype=torch.long)
        if bool(filled.any()):
            nearest, present = self.codebook.nearest_tokens(slots[filled][None])
            ids[filled] = torch.where(present[0], nearest[0], self.eos_token_id).cpu()
        out = []
        for row in ids.tolist():
            end = row.index(self.eos_token_id) if self.eos_token_id in row else len(row)
            out.append(row[:end])
        return out

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text before truncation, EOS not counted (compare with ``P − 1``)."""
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(row) for row in ids]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        if t > self.num_latent_tokens:
            raise ValueError(f"{t} tokens do not fit in {self.num_latent_tokens} latent slots")
        keep = attention_mask.unsqueeze(-1).to(self.codebook.proj.dtype)
        codes = self.codebook.codes(input_ids) * keep  # (N, T, d), zero where padded
        return F.pad(codes, (0, 0, 0, self.num_latent_tokens - t)).flatten(1)
