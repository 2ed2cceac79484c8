"""Latent → text: a Hugging Face causal LM plus a ``Conditioning``, how a readout ``z`` reaches it.

* ``KVPrefix`` (pooled latents): W_M maps the ``P`` latent tokens to keys/values in every layer
  (Optimus-style), plus an optional shift of every token embedding.
* ``MemoryBlock`` (token codes): each slot is snapped to its nearest decoder tokens and the mixed
  embeddings are fed as a block, ``pre + slots + post``, ahead of the text; with a chat template
  the block is the system turn, so an instruct LM reads it as context.

``z=None`` means plain decoding: exactly the underlying LM, LoRA adapters switched off (they are
trained to read memory, and must not change what the LM says without one). Decoded sequences
start with one start token (the tokenizer's BOS, else EOS) and end with EOS; training targets use
the same framing (``tokenize_targets``), so ``generate(z, prompts=None)`` reconstructs stored text.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast

from .codec import evaluating

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .token_codes import TokenCodebook

IGNORE_INDEX = -100
# transformers 5 renamed the key/value cache argument and output `past_key_values` to `cache`
# (the old name still works but warns); older versions know only the old one
CACHE_ARG = ("cache" if "cache" in getattr(CausalLMOutputWithPast, "__dataclass_fields__", {})
             else "past_key_values")
_MARK = "\u2063MEMORY\u2063"  # placeholder for the memory block in a rendered chat template
_WORD = re.compile(r"[^\W_]+")  # a word, as StoredSpelling compares them
_WORD_END = re.compile(r"[^\W_]+$")


@dataclass
class Prefill:
    """The first step of conditioned generation: input embeddings, the attention mask and
    position ids over everything before them, the cache to extend, and how to embed each
    generated token."""

    embeds: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    cache: DynamicCache
    embed_next: Callable[[torch.Tensor], torch.Tensor]


class Conditioning(nn.Module):
    """How a readout ``z`` reaches the decoder LM. The LM is passed in, never held: the decoder
    owns it (and LoRA may wrap it after the conditioning is built)."""

    #: the readout is read as tokens in the context (a memory block): chat prompts follow it as
    #: the next turn, and ``z`` may hold several rows side by side, ``(n, R·C)``
    in_context: bool = False

    def __init__(self, num_latent_tokens: int, latent_token_dim: int) -> None:
        super().__init__()
        self.num_latent_tokens = num_latent_tokens
        self.latent_token_dim = latent_token_dim

    @property
    def latent_width(self) -> int:
        return self.num_latent_tokens * self.latent_token_dim

    def check(self, z: torch.Tensor, n: int) -> torch.Tensor:
        """``z`` as ``(n, C)`` (``(n, R·C)`` for a conditioning read in context)."""
        z = z.unsqueeze(0) if z.dim() == 1 else z
        width = self.latent_width
        rows_ok = z.dim() == 2 and z.shape[1] % width == 0 and z.shape[1] > 0
        if not rows_ok or z.shape[0] != n or (not self.in_context and z.shape[1] != width):
            raise ValueError(
                f"z must have shape ({n}, {width})"
                + (" or (n, R·that) for R rows" if self.in_context else "")
                + f", got {tuple(z.shape)}"
            )
        return z

    def context(self, readouts: list[torch.Tensor]) -> torch.Tensor:
        """What conditions one answer on several facts' readouts ``(n_i, C)``: ``(1, W)``."""
        raise NotImplementedError

    def logits(
        self, lm: PreTrainedModel, z: torch.Tensor, input_ids: torch.Tensor,
        attention_mask: torch.Tensor, keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(N, T, V)`` over the text tokens, conditioned on ``z`` (checked); with
        ``keep`` (text positions, 1-D) only those, ``(N, len(keep), V)``."""
        raise NotImplementedError

    def prefill(
        self, lm: PreTrainedModel, z: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor
    ) -> Prefill:
        """The first generation step for left-padded ``input_ids`` conditioned on ``z``."""
        raise NotImplementedError

    def readout_tokens(self, z: torch.Tensor) -> list[list[int]] | None:
        """The decoder tokens each row of ``z`` spells, in order, when the readout is text a
        decoder can copy from (token codes); None when it is not (a pooled latent)."""
        return None


class KVPrefix(Conditioning):
    """W_M maps each of the ``P`` latent tokens to keys and values in every layer; an optional
    shift adds a map of the mean latent token to every input embedding. Takes one latent per
    row, so several facts cannot be read at once (``context`` keeps the best fact's first row)."""

    def __init__(
        self,
        lm: PreTrainedModel,
        num_latent_tokens: int,
        latent_token_dim: int,
        embedding_shift: bool = True,
        prefix_init_scale: float = 0.02,
    ) -> None:
        super().__init__(num_latent_tokens, latent_token_dim)
        config = lm.config.get_text_config(decoder=True)
        heads = config.num_attention_heads
        self.num_layers: int = config.num_hidden_layers
        self.num_kv_heads: int = getattr(config, "num_key_value_heads", None) or heads
        self.head_dim: int = getattr(config, "head_dim", None) or config.hidden_size // heads
        width = self.num_layers * 2 * self.num_kv_heads * self.head_dim
        # W_M is shared by the P latent tokens; a per-token bias tells the prefix slots apart.
        # Small init (outputs ~prefix_init_scale for unit inputs): near-zero keys and values take
        # little attention, so an untrained model still speaks fluently.
        self.prefix = nn.Linear(latent_token_dim, width, bias=False)
        nn.init.normal_(self.prefix.weight, std=prefix_init_scale / math.sqrt(latent_token_dim))
        self.prefix_bias = nn.Parameter(torch.zeros(num_latent_tokens, width))
        self.shift: nn.Linear | None = None
        if embedding_shift:  # zero init: no effect until trained, but it receives gradients
            self.shift = nn.Linear(latent_token_dim, config.hidden_size)
            nn.init.zeros_(self.shift.weight)
            nn.init.zeros_(self.shift.bias)

    def cache(self, lm: PreTrainedModel, z: torch.Tensor) -> DynamicCache:
        """Keys/values of the ``P`` prefix tokens in every layer, as a fresh ``DynamicCache``."""
        N, P = z.shape[0], self.num_latent_tokens
        tokens = z.reshape(N, P, self.latent_token_dim).to(self.prefix.weight.dtype)
        kv = self.prefix(tokens) + self.prefix_bias  # (N, P, L·2·H·hd)
        kv = kv.view(N, P, self.num_layers, 2, self.num_kv_heads, self.head_dim)
        kv = kv.permute(2, 3, 0, 4, 1, 5).to(_lm_dtype(lm))  # (L, 2, N, H, P, hd)
        return DynamicCache([(layer[0], layer[1]) for layer in kv], config=lm.config)

    def embed(self, lm: PreTrainedModel, input_ids: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Input embeddings of ``input_ids``, shifted by ``z`` when the shift is on."""
        embeds = lm.get_input_embeddings()(input_ids)  # (N, T, hidden)
        if self.shift is None:
            return embeds
        pooled = z.reshape(z.shape[0], self.num_latent_tokens, -1).mean(dim=1)
        return embeds + self.shift(pooled.to(self.shift.weight.dtype)).unsqueeze(1).to(embeds.dtype)

    def context(self, readouts: list[torch.Tensor]) -> torch.Tensor:
        return readouts[0][:1]

    def logits(
        self, lm: PreTrainedModel, z: torch.Tensor, input_ids: torch.Tensor,
        attention_mask: torch.Tensor, keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return lm_logits(
            lm, keep,
            inputs_embeds=self.embed(lm, input_ids, z),
            attention_mask=_with_prefix(attention_mask, self.num_latent_tokens),
            position_ids=_positions(attention_mask) + self.num_latent_tokens,
            use_cache=True,
            **{CACHE_ARG: self.cache(lm, z)},
        )

    def prefill(
        self, lm: PreTrainedModel, z: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor
    ) -> Prefill:
        return Prefill(
            embeds=self.embed(lm, input_ids, z),
            mask=_with_prefix(mask, self.num_latent_tokens),
            positions=_positions(mask) + self.num_latent_tokens,
            cache=self.cache(lm, z),
            embed_next=lambda token: self.embed(lm, token[:, None], z),
        )


class MemoryBlock(Conditioning):
    """Token-code slots snapped to decoder tokens and read in context as ``pre + slots +
    post`` (the system turn of the chat template when there is one). Any number of rows, so one
    answer can read several facts."""

    in_context = True

    def __init__(self, tokenizer: PreTrainedTokenizerBase, codebook: TokenCodebook,
                 num_latent_tokens: int) -> None:
        super().__init__(num_latent_tokens, codebook.code_dim)
        # Borrowed, not registered: the token-code codec owns the codebook (and saves it under
        # its own name); registering it here too would give its parameters two names.
        object.__setattr__(self, "_codebook", codebook)
        self.pre, self.post = _memory_block_text(tokenizer)

    def block(self, lm: PreTrainedModel, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input embeddings ``(N, L, h)`` and mask ``(N, L)`` of the memory block ``pre + slots +
        post`` (``z`` may hold several rows, ``R·P`` slots, each row's text ending in its EOS).
        Only the slots that hold a token are kept, in order (right-padded to the longest row):
        an empty slot would be masked anyway, taking no attention and no position, so dropping
        it changes nothing but the cost, and a block of k facts is mostly empty slots."""
        slots = z.reshape(z.shape[0], -1, self.latent_token_dim)  # R rows × P slots
        embeds, present = self._slot_embeddings(lm, slots)
        width = int(present.sum(dim=1).max().item()) if present.numel() else 0
        order = torch.sort((~present).to(torch.int8), dim=1, stable=True).indices[:, :width]
        embeds = embeds.gather(1, order.unsqueeze(-1).expand(-1, -1, embeds.shape[-1]))
        embeds, present = embeds.to(_lm_dtype(lm)), present.gather(1, order)
        n, device = z.shape[0], z.device
        pre = torch.tensor(self.pre, dtype=torch.long, device=device).expand(n, -1)
        post = torch.tensor(self.post, dtype=torch.long, device=device).expand(n, -1)
        table = lm.get_input_embeddings()
        block = torch.cat([table(pre), embeds, table(post)], dim=1)
        mask = torch.cat([torch.ones_like(pre), present.long(), torch.ones_like(post)], dim=1)
        return block, mask

    def _slot_embeddings(self, lm: PreTrainedModel, slots: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each slot's mixed embedding and whether it holds a token. Without gradients the
        exact code index finds the slots holding a token first and only those are mixed
        (scoring every empty slot against the vocabulary cost more than the answer)."""
        if torch.is_grad_enabled():
            return self._codebook.soft_embeddings(slots)
        _, present = self._codebook.nearest_tokens(slots)
        hidden = lm.get_input_embeddings().embedding_dim
        embeds = torch.zeros(*present.shape, hidden, dtype=_lm_dtype(lm), device=slots.device)
        if bool(present.any()):
            mixed, _ = self._codebook.soft_embeddings(slots[present].unsqueeze(0))
            embeds[present] = mixed[0].to(embeds.dtype)
        return embeds, present

    def context(self, readouts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(readouts).reshape(1, -1)

    def readout_tokens(self, z: torch.Tensor) -> list[list[int]]:
        slots = z.reshape(z.shape[0], -1, self.latent_token_dim)
        ids, present = self._codebook.nearest_tokens(slots)
        return [[int(t) for t, p in zip(row, keep, strict=True) if p]
                for row, keep in zip(ids.tolist(), present.tolist(), strict=True)]

    def logits(
        self, lm: PreTrainedModel, z: torch.Tensor, input_ids: torch.Tensor,
        attention_mask: torch.Tensor, keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        block, block_mask = self.block(lm, z)
        mask = torch.cat([block_mask, attention_mask], dim=1)
        width = block.shape[1]
        text = torch.arange(input_ids.shape[1], device=input_ids.device) if keep is None else keep
        return lm_logits(
            lm, text + width,  # the block's own positions never need the output head
            inputs_embeds=torch.cat([block, lm.get_input_embeddings()(input_ids)], dim=1),
            attention_mask=mask,
            position_ids=_positions(mask),
        )

    def prefill(
        self, lm: PreTrainedModel, z: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor
    ) -> Prefill:
        block, block_mask = self.block(lm, z.to(input_ids.device))
        full_mask = torch.cat([block_mask, mask], dim=1)
        table = lm.get_input_embeddings()
        return Prefill(
            embeds=torch.cat([block, table(input_ids)], dim=1),
            mask=full_mask,
            positions=_positions(full_mask),
            cache=DynamicCache(config=lm.config),
            embed_next=lambda token: table(token[:, None]),  # the block is in the cache now
        )


class LatentDecoder(nn.Module):
    """A causal LM (owned here) and its ``Conditioning``."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, lm: PreTrainedModel, conditioning: Conditioning
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.lm = lm
        self.conditioning = conditioning
        self.start_token_id = _start_token_id(tokenizer)
        self.stop_token_ids = _stop_token_ids(tokenizer, lm)
        self.pad_token_id = _pad_token_id(tokenizer)
        #: extra keyword arguments of every LM call in ``generate``: a serving copy
        #: (`larimar_memory.quantization.serving_model`) asks for the last position's logits only
        self.step_kwargs: dict[str, object] = {}
        #: the LM plain decoding runs, when it is not ``lm`` with its LoRA adapters off: a
        #: serving copy merges the adapters into ``lm`` and keeps the base weights here
        self.plain_lm: PreTrainedModel | None = None

    def _device(self) -> torch.device:
        return self.lm.get_input_embeddings().weight.device

    @contextlib.contextmanager
    def _running(self, plain: bool) -> Iterator[PreTrainedModel]:
        """The LM to run: ``lm`` for memory-conditioned decoding; without memory, ``plain_lm``
        where there is one, else ``lm`` with its LoRA adapters off while it runs (a no-op for
        an LM without adapters)."""
        disable = getattr(self.lm, "disable_adapter", None)
        if not plain:
            yield self.lm
        elif self.plain_lm is not None:
            yield self.plain_lm
        elif callable(disable):
            with disable():
                yield self.lm
        else:
            yield self.lm

    # -- training --------------------------------------------------------------------------------

    def forward(
        self,
        z: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(N, T, V)`` over the text tokens (the prefix has none); with ``keep``
        (text positions, 1-D) only those, ``(N, len(keep), V)``."""
        if z is None:
            with self._running(plain=True) as lm:
                return lm_logits(lm, keep, input_ids=input_ids, attention_mask=attention_mask)
        z = self.conditioning.check(z, input_ids.shape[0])
        return self.conditioning.logits(self.lm, z, input_ids, attention_mask, keep)

    def loss(
        self,
        z: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        """The mean next-token cross-entropy over ``labels`` that are not -100 (zero if all
        are). The output head runs only on positions that predict a label: with a 262k-token
        vocabulary (Gemma 3) it costs more than the rest of the LM, and a question's prompt or a
        right-padded row needs none."""
        targets = labels[:, 1:]
        predicts = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
        if predicts.numel() == 0:
            return self(z, input_ids, attention_mask).sum() * 0.0
        logits = self(z, input_ids, attention_mask, keep=predicts)
        flat = logits.reshape(-1, logits.shape[-1]).float()
        return F.cross_entropy(flat, targets[:, predicts].reshape(-1), ignore_index=IGNORE_INDEX)

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
            head = self._prompt(prompt, as_chat, after_memory=self.conditioning.in_context)
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
        copy_bias: float = 0.0,
        spell_as_stored: bool = False,
    ) -> list[str]:
        """Greedy (or sampled) continuations, one string per row of ``z`` / per prompt.

        ``copy_bias`` (readouts that spell tokens only): a logit bonus that makes answers copy
        the readout as stored: every readout token gets half of it, and the token that follows
        the one just generated in the readout, inside a word, gets all of it, so a name started
        from memory is finished as stored ("Arsenal", not "Arsalal"). 0 decodes as before.
        ``spell_as_stored`` (readouts that spell tokens only): the hard form of the same rule,
        ``StoredSpelling``: a word begun as a word of the readout goes on only as one does, or
        ends; it is never continued with invented pieces ("oat milk", not "oatmeal").

        One greedy row with a readout that spells tokens is decoded with `ReadoutDrafts`: the
        same answer, in fewer LM calls where it copies the readout.

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
        z = None if z is None else self.conditioning.check(z, n)
        after_memory = z is not None and self.conditioning.in_context
        rows = (
            [self._start()] * n
            if prompts is None
            else [self._prompt(p, chat, after_memory=after_memory) for p in prompts]
        )
        device = self._device()
        input_ids, mask = _pad(rows, self.pad_token_id, left=True, device=device)
        if z is None:
            table = self.lm.get_input_embeddings()
            start = Prefill(
                embeds=table(input_ids), mask=mask, positions=_positions(mask),
                cache=DynamicCache(config=self.lm.config),
                embed_next=lambda token: table(token[:, None]),
            )
        else:
            start = self.conditioning.prefill(self.lm, z, input_ids, mask)
        embeds, full_mask, positions, cache = start.embeds, start.mask, start.positions, start.cache
        stops = torch.tensor(self.stop_token_ids, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        new: list[torch.Tensor] = []
        copy: list[Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]] = []
        spelled = self.conditioning.readout_tokens(z) if z is not None else None
        if spelled is not None:  # a fact's end separates it from the next one read
            ends = set(self.stop_token_ids)
            spelled = [[-1 if t in ends else t for t in row] for row in spelled]
            if copy_bias:
                copy.append(CopyBias(spelled, copy_bias, device, self._starts_word,
                                     stops=self.stop_token_ids))
            facts = [[self.tokenizer.decode(list(fact)) for fact in _split(row, -1)]
                     for row in spelled]
            if spell_as_stored:
                copy.append(StoredSpelling(["\n".join(row) for row in facts],
                                           self._word_pieces(), device))
        # one row, greedy: an answer copied from memory is checked several tokens per LM call
        drafts = (ReadoutDrafts(facts[0], self._continuation, self.stop_token_ids[0])
                  if spelled is not None and n == 1 and not do_sample else None)
        draft: list[int] = []
        with evaluating(self), self._running(plain=z is None) as lm:
            while len(new) < max_new_tokens:
                kwargs = dict(self.step_kwargs)
                if draft and "logits_to_keep" in kwargs:
                    kwargs["logits_to_keep"] = 1 + len(draft)
                out = lm(
                    inputs_embeds=embeds,
                    attention_mask=full_mask,
                    position_ids=positions,
                    use_cache=True,
                    **kwargs,
                    **{CACHE_ARG: cache},
                )
                cache = getattr(out, CACHE_ARG)
                checked = out.logits[:, -1 - len(draft):].float()
                for j in range(checked.shape[1]):  # position j predicts what follows draft[:j]
                    logits = checked[:, j]
                    for rule in copy:
                        logits = rule(logits, new[-1] if new else None)
                    token = _pick(logits, do_sample, temperature)
                    token = torch.where(done, torch.full_like(token, self.pad_token_id), token)
                    new.append(token)
                    done |= torch.isin(token, stops)
                    if (bool(done.all()) or len(new) == max_new_tokens or j == len(draft)
                            or int(token[0]) != draft[j]):
                        break
                if bool(done.all()):
                    break
                rejected = len(draft) - j  # draft tokens after the first the LM did not pick
                if rejected:
                    cache.crop(-rejected)  # (negative: that many from the end)
                    full_mask = full_mask[:, :-rejected]
                draft = (drafts.after(self.tokenizer.decode([int(t[0]) for t in new]))
                         if drafts is not None else [])
                inputs = [new[-1]] + [torch.tensor([t], device=device) for t in draft]
                embeds = torch.cat([start.embed_next(t) for t in inputs], dim=1)
                full_mask = torch.cat([full_mask, full_mask.new_ones(n, len(inputs))], dim=1)
                positions = (positions[:, -1:] - rejected
                             + torch.arange(1, len(inputs) + 1, device=device))
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
            block = self.conditioning if after_memory else None
            if isinstance(block, MemoryBlock) and block.pre:
                # the memory block is the system turn: render it as a placeholder, keep the rest
                text = self.tokenizer.apply_chat_template(
                    [{"role": "system", "content": _MARK}, turn],
                    add_generation_prompt=True, tokenize=False,
                )
                text = text[text.index(_MARK) + len(_MARK):]
                post = self.tokenizer.decode(block.post)
                text = text[len(post):] if text.startswith(post) else text
            else:
                text = self.tokenizer.apply_chat_template(
                    [turn], add_generation_prompt=True, tokenize=False
                )
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._start() + list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def _continuation(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def _starts_word(self, token: int) -> bool:
        return self.tokenizer.decode([token])[:1].isspace()

    def _word_pieces(self) -> WordPieces:
        pieces = getattr(self, "_pieces", None)
        if pieces is None:
            size = max(len(self.tokenizer), self.lm.config.vocab_size)
            pieces = self._pieces = WordPieces(
                lambda t: self.tokenizer.decode([t]) if t < len(self.tokenizer) else "", size)
        return pieces

    def _decode_row(self, row: list[int]) -> str:
        stops = set(self.stop_token_ids)
        end = next((i for i, t in enumerate(row) if t in stops), len(row))
        return self.tokenizer.decode(row[:end], skip_special_tokens=True).strip()


class ReadoutDrafts:
    """Drafts from the readout for the LM to check (prompt-lookup decoding, with the memory as
    the prompt): where the answer so far ends as a stored fact's text does (its longest such
    ending that starts a word), the fact's next tokens, up to ``length``, then stopping at the
    fact's end. One LM call scores them all; a drafted token is kept only where the LM picks
    it itself, so the greedy answer is unchanged, and an answer copied from memory ("Thon
    Hotel Opera") takes one call instead of one per token. Text, not token ids, is matched:
    an answer's first word is cut into other tokens than the same word inside the fact
    ("Port|o" against " Porto")."""

    def __init__(self, facts: list[str], tokenize: Callable[[str], list[int]], stop: int,
                 length: int = 6) -> None:
        self.facts, self.tokenize, self.stop, self.length = facts, tokenize, stop, length

    def after(self, said: str) -> list[int]:
        said = said.lstrip()
        starts = [i for i in range(len(said)) if i == 0 or not said[i - 1].isalnum()]
        for start in starts:  # the longest ending of the answer, from a word on, in a fact
            for fact in self.facts:
                at = fact.find(said[start:])
                if at >= 0:
                    rest = fact[at + len(said) - start:]
                    draft = self.tokenize(rest)[: self.length]
                    return draft + [self.stop] if len(draft) < self.length else draft
        return []


class CopyBias:
    """A copy bias over the readout's tokens (a pointer to the memory, as in copy-augmented
    decoders, but added to the logits with no training): ``bias / 2`` on every token of the
    row's readout, ``bias`` more on each token that follows the previous generated token there
    inside a word (``starts_word`` tokens are not pushed: the bias finishes a name as stored,
    it does not recite the rest of the fact). ``-1`` in a row separates facts read together:
    nothing is pushed across it. The ``stops`` tokens get ``bias / 2`` too, so stopping stays
    the LM's own decision against the readout: without both, an answer read from several
    facts ran on into the next one ("Arjun.My brother's birthday is…")."""

    def __init__(self, spelled: list[list[int]], bias: float, device: torch.device,
                 starts_word: Callable[[int], bool] = lambda token: False,
                 stops: list[int] | None = None) -> None:
        width = max((len(row) for row in spelled), default=0) + 1
        self.ids = torch.full((len(spelled), width), -1, dtype=torch.long, device=device)
        self.inside = torch.zeros((len(spelled), width), dtype=torch.bool, device=device)
        for i, row in enumerate(spelled):
            self.ids[i, : len(row)] = torch.tensor(row, dtype=torch.long, device=device)
            self.inside[i, : len(row)] = torch.tensor([t >= 0 and not starts_word(t)
                                                       for t in row],
                                                      dtype=torch.bool, device=device)
        self.bias = bias
        self.stops = torch.tensor(sorted(set(stops or [])), dtype=torch.long, device=device)

    def __call__(self, logits: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """``logits (N, V)`` with the bonus; ``previous (N,)``: the token generated last."""
        present = self.ids >= 0
        bonus = torch.zeros_like(logits)
        ids = self.ids.clamp(min=0)
        bonus.scatter_reduce_(1, ids, torch.where(present, self.bias / 2, 0.0), reduce="amax")
        bonus[:, self.stops] = self.bias / 2
        if previous is not None:
            follows = torch.zeros_like(present)
            follows[:, 1:] = (self.ids[:, :-1] == previous[:, None]) & self.inside[:, 1:]
            bonus.scatter_add_(1, ids, torch.where(follows, self.bias, 0.0))
        return logits + bonus


class StoredSpelling:
    """Words begun from memory are spelled as stored. While the word being generated is the
    start of a word in the row's readout (letters and digits, any case: an answer's "Oat" for
    the fact's " oat"), a token that continues the word is allowed only if it spells the word on
    as the readout does (its case too); a new word, punctuation and stopping stay free. So this cuts
    invented endings ("oatmeal" for "oat milk", "chessclub", "Arsalal") whatever the token
    boundaries, and never forces the rest of the fact. Where the word is to go on (the LM's
    first choice continues it) but that choice is cut, only the stored continuations are left:
    the LM decides where a word ends, memory how it is spelled ("heirloom", where ending the
    word gave "h%ireloom"). Stateful: one per ``generate`` call, fed each generated token in
    turn."""

    def __init__(self, texts: list[str], pieces: WordPieces, device: torch.device) -> None:
        self.words = [set(_WORD.findall(text)) for text in texts]
        self.pieces = pieces
        self.cut = pieces.mask.to(device)  # what a word begun from memory may not go on with
        self.partial = [""] * len(texts)

    def __call__(self, logits: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """``logits (N, V)`` with invented word endings masked; ``previous (N,)``."""
        if previous is None:
            return logits
        banned = torch.zeros_like(logits, dtype=torch.bool)
        first = logits.argmax(dim=-1).tolist()
        for row, token in enumerate(previous.tolist()):
            said = _WORD_END.search(self.partial[row] + self.pieces.spell(token).lower())
            partial = self.partial[row] = said.group(0) if said else ""
            begun = [w[len(partial):] for w in self.words[row]
                     if partial and w.lower().startswith(partial)]
            if begun:
                allowed = {t for rest in begun for j in range(1, len(rest) + 1)
                           for t in self.pieces.spelled(rest[:j])}
                goes_on = first[row] < self.cut.shape[0] and bool(self.cut[first[row]])
                if goes_on and allowed:  # only the stored continuations are left
                    banned[row] = True
                else:
                    banned[row, : self.cut.shape[0]] = self.cut
                banned[row, sorted(allowed)] = False
        return logits.masked_fill(banned[:, : logits.shape[1]], float("-inf"))


def _split(row: list[int], separator: int) -> Iterator[list[int]]:
    fact: list[int] = []
    for token in row:
        if token == separator:
            yield fact
            fact = []
        else:
            fact.append(token)
    yield fact


class WordPieces:
    """The tokens that continue a word (no leading space, a letter or digit first), by their
    spelling: what ``StoredSpelling`` allows or cuts. Built once per tokenizer."""

    def __init__(self, spell: Callable[[int], str], size: int) -> None:
        self.spell = spell
        self.mask = torch.zeros(size, dtype=torch.bool)
        self.by_text: dict[str, list[int]] = {}
        for token in range(size):
            text = spell(token)
            if text[:1].isalnum():
                self.mask[token] = True
                self.by_text.setdefault(text, []).append(token)

    def spelled(self, text: str) -> list[int]:
        return self.by_text.get(text, [])


def lm_logits(lm: PreTrainedModel, keep: torch.Tensor | None, **inputs: object) -> torch.Tensor:
    """The causal LM's logits, at sequence positions ``keep`` (1-D) only when given: through
    ``logits_to_keep`` where the LM takes it (the head never sees the other positions), else
    cut from the full logits."""
    if keep is None:
        return lm(**inputs).logits
    if takes_logits_to_keep(lm):
        return lm(**inputs, logits_to_keep=keep).logits
    return lm(**inputs).logits[:, keep]


def takes_logits_to_keep(lm: nn.Module) -> bool:
    """Whether the causal LM under any peft wrapper takes ``logits_to_keep``."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return "logits_to_keep" in inspect.signature(base.forward).parameters


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


def _lm_dtype(lm: PreTrainedModel) -> torch.dtype:
    return lm.get_input_embeddings().weight.dtype


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
