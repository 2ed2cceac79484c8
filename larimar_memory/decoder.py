"""Latent → text: any Hugging Face causal LM conditioned on a readout ``z`` in one of two ways.

* KV prefix (pooled latents): W_M maps the ``P`` latent tokens to keys/values in every layer
  (Optimus-style), plus an optional shift of every token embedding.
* Token codes (``codebook`` given): each slot is snapped to its nearest decoder tokens and the
  mixed embeddings are fed as a memory block, ``pre + slots + post``, ahead of the text; with a
  chat template the block is the system turn, so an instruct LM reads it as context.

``z=None`` means plain decoding: exactly the underlying LM, LoRA adapters switched off (they are
trained to read memory, and must not change what the LM says without one). Decoded sequences
start with one start token (the tokenizer's BOS, else EOS) and end with EOS; training targets use
the same framing (``tokenize_targets``), so ``generate(z, prompts=None)`` reconstructs stored text.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .token_codes import TokenCodebook

IGNORE_INDEX = -100
_MARK = "\u2063MEMORY\u2063"  # placeholder for the memory block in a rendered chat template


class LatentDecoder(nn.Module):
    """A causal LM plus its conditioning: W_M and the shift, or a token codebook."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        lm: PreTrainedModel,
        num_latent_tokens: int,
        latent_token_dim: int,
        embedding_shift: bool = True,
        prefix_init_scale: float = 0.02,
        codebook: TokenCodebook | None = None,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.lm = lm
        self.num_latent_tokens = num_latent_tokens
        self.latent_token_dim = latent_token_dim
        config = lm.config.get_text_config(decoder=True)
        heads = config.num_attention_heads
        self.num_layers: int = config.num_hidden_layers
        self.num_kv_heads: int = getattr(config, "num_key_value_heads", None) or heads
        self.head_dim: int = getattr(config, "head_dim", None) or config.hidden_size // heads
        self.codebook = codebook
        self.prefix: nn.Linear | None = None
        self.shift: nn.Linear | None = None
        if codebook is None:
            width = self.num_layers * 2 * self.num_kv_heads * self.head_dim
            # W_M is shared by the P latent tokens; a per-token bias tells the prefix slots
            # apart. Small init (outputs ~prefix_init_scale for unit inputs): near-zero keys and
            # values take little attention, so an untrained model still speaks fluently.
            self.prefix = nn.Linear(latent_token_dim, width, bias=False)
            nn.init.normal_(self.prefix.weight, std=prefix_init_scale / math.sqrt(latent_token_dim))
            self.prefix_bias = nn.Parameter(torch.zeros(num_latent_tokens, width))
            # zero init: no effect until trained, but it still receives gradients
            if embedding_shift:
                self.shift = nn.Linear(latent_token_dim, config.hidden_size)
                nn.init.zeros_(self.shift.weight)
                nn.init.zeros_(self.shift.bias)
        self._block_pre, self._block_post = _memory_block_text(tokenizer)
        self.start_token_id = _start_token_id(tokenizer)
        self.stop_token_ids = _stop_token_ids(tokenizer, lm)
        self.pad_token_id = _pad_token_id(tokenizer)

    # -- conditioning ----------------------------------------------------------------------------

    def prefix_cache(self, z: torch.Tensor) -> DynamicCache:
        """Keys/values of the ``P`` prefix tokens in every layer, as a fresh ``DynamicCache``."""
        if self.prefix is None:
            raise RuntimeError("a token-code decoder has no KV prefix; it reads a memory block")
        N, P = z.shape[0], self.num_latent_tokens
        tokens = z.reshape(N, P, self.latent_token_dim).to(self.prefix.weight.dtype)
        kv = self.prefix(tokens) + self.prefix_bias  # (N, P, L·2·H·hd)
        kv = kv.view(N, P, self.num_layers, 2, self.num_kv_heads, self.head_dim)
        kv = kv.permute(2, 3, 0, 4, 1, 5).to(self._lm_dtype())  # (L, 2, N, H, P, hd)
        return DynamicCache([(layer[0], layer[1]) for layer in kv], config=self.lm.config)

    def memory_block(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token-code mode: input embeddings ``(N, L, h)`` and mask ``(N, L)`` of the memory
        block ``pre + slots + post`` (``z`` may hold several rows, ``R·P`` slots, each row's
        text ending in its EOS); empty slots are masked out, and slots after the last one
        holding a token in any row are dropped."""
        assert self.codebook is not None
        slots = z.reshape(z.shape[0], -1, self.latent_token_dim)  # R rows × P slots
        embeds, present = self.codebook.soft_embeddings(slots)
        used = int(present.any(dim=0).nonzero().max().item()) + 1 if bool(present.any()) else 0
        embeds, present = embeds[:, :used].to(self._lm_dtype()), present[:, :used]
        n, device = z.shape[0], z.device
        pre = torch.tensor(self._block_pre, dtype=torch.long, device=device).expand(n, -1)
        post = torch.tensor(self._block_post, dtype=torch.long, device=device).expand(n, -1)
        table = self.lm.get_input_embeddings()
        block = torch.cat([table(pre), embeds, table(post)], dim=1)
        mask = torch.cat([torch.ones_like(pre), present.long(), torch.ones_like(post)], dim=1)
        return block, mask

    def _lm_dtype(self) -> torch.dtype:
        return self.lm.get_input_embeddings().weight.dtype

    def _device(self) -> torch.device:
        return self.lm.get_input_embeddings().weight.device

    @contextlib.contextmanager
    def _plain(self, plain: bool) -> Iterator[None]:
        """LoRA adapters off while decoding without memory (a no-op for other decoders)."""
        disable = getattr(self.lm, "disable_adapter", None)
        if plain and callable(disable):
            with disable():
                yield
        else:
            yield

    def _embed(self, input_ids: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        embeds = self.lm.get_input_embeddings()(input_ids)  # (N, T, hidden)
        if z is None or self.shift is None:
            return embeds
        pooled = z.reshape(z.shape[0], self.num_latent_tokens, -1).mean(dim=1)
        return embeds + self.shift(pooled.to(self.shift.weight.dtype)).unsqueeze(1).to(embeds.dtype)

    def _check_z(self, z: torch.Tensor, n: int) -> torch.Tensor:
        z = z.unsqueeze(0) if z.dim() == 1 else z
        width = self.num_latent_tokens * self.latent_token_dim
        # a memory block reads any number of rows (several facts, or a long one): R·C wide
        rows_ok = z.dim() == 2 and z.shape[1] % width == 0 and z.shape[1] > 0
        if not rows_ok or z.shape[0] != n or (self.codebook is None and z.shape[1] != width):
            raise ValueError(
                f"z must have shape ({n}, {width})"
                + (" or (n, R·that) for R rows" if self.codebook is not None else "")
                + f", got {tuple(z.shape)}"
            )
        return z

    # -- training --------------------------------------------------------------------------------

    def forward(
        self,
        z: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(N, T, V)`` over the text tokens (the prefix has none) and, with ``labels``,
        the mean next-token cross-entropy over labels that are not -100."""
        if z is None:
            with self._plain(True):
                logits = self.lm(input_ids=input_ids, attention_mask=attention_mask).logits
        elif self.codebook is not None:
            z = self._check_z(z, input_ids.shape[0])
            block, block_mask = self.memory_block(z)
            mask = torch.cat([block_mask, attention_mask], dim=1)
            logits = self.lm(
                inputs_embeds=torch.cat([block, self._embed(input_ids, None)], dim=1),
                attention_mask=mask,
                position_ids=_positions(mask),
            ).logits[:, block.shape[1]:]
        else:
            z = self._check_z(z, input_ids.shape[0])
            logits = self.lm(
                inputs_embeds=self._embed(input_ids, z),
                attention_mask=_with_prefix(attention_mask, self.num_latent_tokens),
                position_ids=_positions(attention_mask) + self.num_latent_tokens,
                past_key_values=self.prefix_cache(z),
                use_cache=True,
            ).logits
        return logits, None if labels is None else causal_lm_loss(logits, labels)

    def tokenize_targets(
        self, texts: list[str], max_length: int, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[start] text [eos]`` right-padded to the longest, text cut to ``max_length`` tokens;
        returns ``(input_ids, attention_mask)``."""
        body = self.tokenizer(
            texts, add_special_tokens=False, truncation=True, max_length=max_length
        )
        eos = self.stop_token_ids[:1]
        rows = [self._start() + ids + eos for ids in body["input_ids"]]
        return _pad(rows, self.pad_token_id, left=False, device=device)

    def tokenize_answers(
        self, prompts: list[str], answers: list[str], chat: list[bool], max_length: int,
        device: torch.device | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Question-answering targets: each prompt framed as ``generate`` frames it (a chat turn
        after the memory block when ``chat[i]``, else raw text after the start token), then the
        answer and EOS; ``(input_ids, attention_mask, labels)`` right-padded, with labels -100
        everywhere but the answer and EOS. Prompts keep their last ``max_length`` tokens."""
        rows, labels = [], []
        eos = self.stop_token_ids[:1]
        for prompt, answer, as_chat in zip(prompts, answers, chat, strict=True):
            head = self._prompt(prompt, as_chat, after_memory=self.codebook is not None)
            head = head[-max_length:]
            text = answer.strip() if as_chat else " " + answer.strip()
            tail = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])[:max_length]
            rows.append(head + tail + eos)
            labels.append([IGNORE_INDEX] * len(head) + tail + eos)
        ids, mask = _pad(rows, self.pad_token_id, left=False, device=device)
        target, _ = _pad(labels, IGNORE_INDEX, left=False, device=device)
        return ids, mask, target

    # -- inference -------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor | None,
        prompts: list[str] | None = None,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        temperature: float = 1.0,
        chat: bool | None = None,
    ) -> list[str]:
        """Greedy (or sampled) continuations, one string per row of ``z`` / per prompt.

        ``prompts=None`` decodes from the start token alone: the reconstruction of the stored text.
        A prompt is continued as raw text (what memory conditioning is trained on), except that
        when the tokenizer has a chat template and the prompt ends with '?' (or ``chat=True``), it
        is wrapped as a user turn so an instruct decoder answers it; ``chat=False`` never wraps.
        """
        if prompts is not None:
            n = len(prompts)
        elif z is not None:
            n = 1 if z.dim() == 1 else z.shape[0]
        else:
            raise ValueError("generate needs a readout z, prompts, or both")
        z = None if z is None else self._check_z(z, n)
        block_mode = z is not None and self.codebook is not None
        rows = (
            [self._start()] * n
            if prompts is None
            else [self._prompt(p, chat, after_memory=block_mode) for p in prompts]
        )
        device = self._device()
        input_ids, mask = _pad(rows, self.pad_token_id, left=True, device=device)
        cache = DynamicCache(config=self.lm.config)
        if block_mode:
            assert z is not None
            block, block_mask = self.memory_block(z.to(device))
            embeds = torch.cat([block, self._embed(input_ids, None)], dim=1)
            full_mask = torch.cat([block_mask, mask], dim=1)
            positions = _positions(full_mask)
            step_z = None  # the block is in the cache after the first step
        else:
            prefix = 0 if z is None else self.num_latent_tokens
            if z is not None:
                cache = self.prefix_cache(z)
            embeds = self._embed(input_ids, z)
            full_mask = _with_prefix(mask, prefix)
            positions = _positions(mask) + prefix
            step_z = z
        stops = torch.tensor(self.stop_token_ids, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        new: list[torch.Tensor] = []
        was_training = self.training
        self.eval()
        try:
            with self._plain(z is None):
                for _ in range(max_new_tokens):
                    out = self.lm(
                        inputs_embeds=embeds,
                        attention_mask=full_mask,
                        position_ids=positions,
                        past_key_values=cache,
                        use_cache=True,
                    )
                    cache = out.past_key_values
                    token = _pick(out.logits[:, -1].float(), do_sample, temperature)
                    token = torch.where(done, torch.full_like(token, self.pad_token_id), token)
                    new.append(token)
                    done |= torch.isin(token, stops)
                    if bool(done.all()):
                        break
                    embeds = self._embed(token[:, None], step_z)
                    full_mask = torch.cat([full_mask, full_mask.new_ones(n, 1)], dim=1)
                    positions = positions[:, -1:] + 1
        finally:
            self.train(was_training)
        if not new:
            return [""] * n
        return [self._decode_row(row) for row in torch.stack(new, dim=1).tolist()]

    def _start(self) -> list[int]:
        return [] if self.start_token_id is None else [self.start_token_id]

    def _prompt(self, prompt: str, chat: bool | None, after_memory: bool = False) -> list[int]:
        has_template = getattr(self.tokenizer, "chat_template", None) is not None
        use_chat = has_template and (chat if chat is not None else prompt.rstrip().endswith("?"))
        if use_chat:
            turn = {"role": "user", "content": prompt}
            if after_memory and self._block_pre:
                # the memory block is the system turn: render it as a placeholder, keep the rest
                text = self.tokenizer.apply_chat_template(
                    [{"role": "system", "content": _MARK}, turn],
                    add_generation_prompt=True, tokenize=False,
                )
                text = text[text.index(_MARK) + len(_MARK):]
                post = self.tokenizer.decode(self._block_post)
                text = text[len(post):] if text.startswith(post) else text
            else:
                text = self.tokenizer.apply_chat_template(
                    [turn], add_generation_prompt=True, tokenize=False
                )
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._start() + list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def _decode_row(self, row: list[int]) -> str:
        stops = set(self.stop_token_ids)
        end = next((i for i, t in enumerate(row) if t in stops), len(row))
        return self.tokenizer.decode(row[:end], skip_special_tokens=True).strip()


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy; labels equal to -100 are ignored (zero if all are)."""
    targets = labels[:, 1:].reshape(-1)
    if not bool((targets != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    return F.cross_entropy(flat, targets, ignore_index=IGNORE_INDEX)


def _memory_block_text(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """Token ids before and after the memory slots: the system turn of the chat template when
    the tokenizer has one that takes a system message, else nothing before and a newline after."""
    if getattr(tokenizer, "chat_template", None) is not None:
        try:
            text = str(tokenizer.apply_chat_template(
                [{"role": "system", "content": _MARK}], tokenize=False
            ))
        except Exception:  # templates that refuse a system turn raise their own errors
            text = ""
        if _MARK in text:
            pre, post = text.split(_MARK, 1)
            encode = tokenizer(pre, add_special_tokens=False)["input_ids"]
            return list(encode), list(tokenizer(post, add_special_tokens=False)["input_ids"])
    return [], list(tokenizer("\n", add_special_tokens=False)["input_ids"])


def _with_prefix(mask: torch.Tensor, prefix: int) -> torch.Tensor:
    if prefix == 0:
        return mask
    return torch.cat([mask.new_ones(mask.shape[0], prefix), mask], dim=1)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding: 0, 1, … from each row's first real token."""
    return (mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def _pick(logits: torch.Tensor, do_sample: bool, temperature: float) -> torch.Tensor:
    if not do_sample:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
    return torch.multinomial(probs, 1).squeeze(1)


def _pad(
    rows: list[list[int]], pad_id: int, left: bool, device: torch.device | None
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span] = torch.tensor(row, dtype=torch.long)
            mask[i, span] = 1
    return ids.to(device), mask.to(device)


def _start_token_id(tokenizer: PreTrainedTokenizerBase) -> int | None:
    if tokenizer.bos_token_id is not None:
        return int(tokenizer.bos_token_id)
    return None if tokenizer.eos_token_id is None else int(tokenizer.eos_token_id)


def _stop_token_ids(tokenizer: PreTrainedTokenizerBase, lm: PreTrainedModel) -> list[int]:
    """EOS first (it ends training targets), then any extra ones the generation config names."""
    ids: list[int] = [] if tokenizer.eos_token_id is None else [int(tokenizer.eos_token_id)]
    extra = getattr(getattr(lm, "generation_config", None), "eos_token_id", None)
    for token in extra if isinstance(extra, list) else [extra]:
        if token is not None and int(token) not in ids:
            ids.append(int(token))
    if not ids:
        raise ValueError("the decoder tokenizer has no EOS token; set tokenizer.eos_token")
    return ids


def _pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    for token in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if token is not None:
            return int(token)
    return 0
