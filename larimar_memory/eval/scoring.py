"""Decoder-side measurements: target log-probabilities given a readout, greedy or sampled answers,
and no-memory perplexity.

Framing: every sequence is ``[start] prompt target`` as raw text (``chat=False``), which is how
facts are written and how memory conditioning is trained; ``z=None`` is the plain decoder.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from ..decoder import IGNORE_INDEX

if TYPE_CHECKING:
    from ..model import LarimarModel


@dataclass(frozen=True)
class TargetScore:
    """Log-probability of one target continuation and its teacher-forced token accuracy."""

    logprob: float  # sum over the target's tokens
    tokens: int
    correct: int  # tokens that are the argmax given the gold prefix

    @property
    def probability(self) -> float:
        """Geometric mean of the token probabilities, ``exp(mean log p)`` (ROME's choice)."""
        return math.exp(self.logprob / self.tokens) if self.tokens else 0.0


def context_window(model: LarimarModel) -> int:
    """Positions the decoder LM accepts (its ``max_position_embeddings`` / ``n_positions``)."""
    config = model.decoder.lm.config.get_text_config(decoder=True)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return 2048


def fit_prompt(model: LarimarModel, prompt: str, reserve: int) -> str:
    """``prompt`` without its oldest tokens if needed, so that it, the latent prefix, the start
    token and ``reserve`` new tokens fit the decoder's window."""
    tok = model.decoder.tokenizer
    room = context_window(model) - model.num_latent_tokens - reserve - 2
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    if len(ids) <= room:
        return prompt
    return str(tok.decode(ids[len(ids) - max(room, 1):], skip_special_tokens=True))


Conditioning = torch.Tensor | Sequence[torch.Tensor | None] | None
"""What conditions each row: ``None`` (the plain decoder), a tensor ``(N, W)`` (row ``i``
conditions row ``i``), or one context per row, each ``(1, W_i)`` or ``None`` (that row plain):
``model.memory_context`` of a query's readouts, as `Larimar.ask` builds it. Rows of different
widths (facts of several memory rows) run in separate forwards."""


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _batches(n: int, size: int, z: Conditioning) -> Iterator[slice]:
    """Consecutive rows in batches of at most ``size`` whose contexts have the same width
    (``None`` rows apart from conditioned ones)."""
    if z is None or isinstance(z, torch.Tensor):
        yield from _chunks(n, size)
        return
    widths = [0 if row is None else row.numel() for row in z]
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and stop - start < size and widths[stop] == widths[start]:
            stop += 1
        yield slice(start, stop)
        start = stop


def _take(model: LarimarModel, z: Conditioning, part: slice) -> torch.Tensor | None:
    if z is None:
        return None
    if isinstance(z, torch.Tensor):
        rows = z[part]
    else:
        picked = list(z[part])
        if picked[0] is None:  # _batches keeps None rows together
            return None
        rows = torch.stack([row.reshape(-1) for row in picked])  # type: ignore[union-attr]
    return rows.to(device=model.device, dtype=model.dtype)


def _rows(z: Conditioning) -> int | None:
    return None if z is None else (z.shape[0] if isinstance(z, torch.Tensor) else len(z))


def repeat_each(z: Conditioning, times: int) -> Conditioning:
    """Each row's conditioning ``times`` times in a row (scoring several targets per prompt)."""
    if z is None:
        return None
    if isinstance(z, torch.Tensor):
        return z.repeat_interleave(times, dim=0)
    return [row for row in z for _ in range(times)]


def take_rows(z: Conditioning, rows: Sequence[int]) -> Conditioning:
    """The conditioning of ``rows`` only."""
    if z is None:
        return None
    if isinstance(z, torch.Tensor):
        return z[list(rows)]
    return [z[i] for i in rows]


def _start_ids(model: LarimarModel) -> list[int]:
    start = model.decoder.start_token_id
    return [] if start is None else [start]


def _right_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


@torch.no_grad()
def score_targets(
    model: LarimarModel,
    prompts: Sequence[str],
    targets: Sequence[str],
    z: Conditioning = None,
    batch_size: int = 16,
    desc: str | None = None,
) -> list[TargetScore]:
    """Score ``target`` after ``prompt`` for each row, conditioned on row ``i`` of ``z`` (see
    `Conditioning`; ``None``: the plain decoder). A space separates prompt and target."""
    if len(prompts) != len(targets) or (z is not None and _rows(z) != len(prompts)):
        raise ValueError("prompts, targets and z must have the same number of rows")
    tok = model.decoder.tokenizer
    start = _start_ids(model)
    room = context_window(model) - model.num_latent_tokens - len(start)
    rows, spans = [], []
    for prompt, target in zip(prompts, targets, strict=True):
        p_ids = list(tok(prompt.rstrip(), add_special_tokens=False)["input_ids"])
        t_ids = list(tok(" " + target.strip(), add_special_tokens=False)["input_ids"])[:room - 1]
        p_ids = p_ids[max(0, len(p_ids) + len(t_ids) - room):]  # drop the oldest prompt tokens
        ids = start + p_ids + t_ids
        begin = max(1, len(start) + len(p_ids))  # the first token has no prediction
        rows.append(ids)
        spans.append((begin, len(ids)))
    device = model.device
    was_training = model.training
    model.eval()
    out: list[TargetScore] = []
    try:
        batches = list(_batches(len(rows), batch_size, z))
        for part in tqdm(batches, desc=desc or "scoring", leave=False, disable=len(batches) < 4):
            ids, mask = _right_pad(rows[part], model.decoder.pad_token_id)
            zb = _take(model, z, part)
            logits = model.decoder(zb, ids.to(device), mask.to(device))
            for i, (begin, end) in enumerate(spans[part]):
                if end <= begin:
                    out.append(TargetScore(0.0, 0, 0))
                    continue
                logp = torch.log_softmax(logits[i, begin - 1 : end - 1].float(), dim=-1)
                gold = ids[i, begin:end].to(device)
                lp = logp.gather(1, gold[:, None]).sum().item()
                correct = int((logp.argmax(dim=-1) == gold).sum())
                out.append(TargetScore(lp, end - begin, correct))
    finally:
        model.train(was_training)
    return out


def generate(
    model: LarimarModel,
    prompts: Sequence[str] | None,
    z: Conditioning = None,
    max_new_tokens: int = 12,
    batch_size: int = 16,
    desc: str | None = None,
    **kwargs: Any,
) -> list[str]:
    """Continuations of ``prompts`` (``None``: decode from the context alone), batched; ``z``
    as in `score_targets`."""
    n = len(prompts) if prompts is not None else (_rows(z) or 0)
    if prompts is not None:
        prompts = [fit_prompt(model, p, max_new_tokens) for p in prompts]
    texts: list[str] = []
    batches = list(_batches(n, batch_size, z))
    for part in tqdm(batches, desc=desc or "decoding", leave=False, disable=len(batches) < 4):
        zb = _take(model, z, part)
        pb = None if prompts is None else list(prompts[part])
        texts += model.decode(zb, pb, max_new_tokens=max_new_tokens, chat=False, **kwargs)
    return texts


def answer_prefix(model: LarimarModel, generation: str, answer: str) -> str:
    """The generation cut to as many decoder tokens as the answer has: greedy decoding keeps
    talking after the answer, and EM/F1 should judge the answer span only."""
    tok = model.decoder.tokenizer
    n = len(tok(" " + answer.strip(), add_special_tokens=False)["input_ids"])
    ids = tok(" " + generation.strip(), add_special_tokens=False)["input_ids"][:n]
    return str(tok.decode(ids, skip_special_tokens=True)).strip()


def answer_tokens(model: LarimarModel, answers: Sequence[str]) -> int:
    """Decoder tokens of the longest answer (a generation budget)."""
    tok = model.decoder.tokenizer
    return max(len(tok(" " + a.strip(), add_special_tokens=False)["input_ids"]) for a in answers)


@torch.no_grad()
def lm_nll(
    model: LarimarModel,
    texts: Sequence[str],
    max_tokens: int = 256,
    batch_size: int = 8,
    base: bool = False,
) -> tuple[float, int]:
    """Summed next-token NLL and token count of ``texts`` under the no-memory decoder
    (``base=True``: the plain LM without Larimar's adaptation). Framing: ``[start] text [eos]``."""
    nll, count = 0.0, 0
    max_tokens = min(max_tokens, context_window(model) - 2)  # room for start and EOS
    with _decoder_lm(model, base) as forward:
        for part in tqdm(list(_chunks(len(texts), batch_size)), desc="perplexity", leave=False):
            ids, mask = model.decoder.tokenize_targets(list(texts[part]), max_tokens)
            ids, mask = ids.to(model.device), mask.to(model.device)
            logits = forward(ids, mask)
            labels = ids.masked_fill(mask == 0, IGNORE_INDEX)[:, 1:]
            flat = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
            nll += torch.nn.functional.cross_entropy(
                flat, labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
            ).item()
            count += int((labels != IGNORE_INDEX).sum())
    return nll, count


@contextlib.contextmanager
def _decoder_lm(model: LarimarModel, base: bool) -> Iterator[Any]:
    """A forward ``(ids, mask) -> logits`` of the no-memory decoder, or of the base LM. They
    differ only for a fully trained decoder (LoRA is off without memory, a frozen one is the
    base), whose base is reloaded by name."""
    was_training = model.training
    model.eval()
    changed = model.config.decoder_training == "full" or "decoder" in getattr(
        model, "_stored_backbones", set())
    try:
        if not base or not changed:
            yield lambda ids, mask: model.decoder(None, ids, mask)
        else:
            from ..loading import load_decoder_backbone

            _, plain = load_decoder_backbone(model.config.decoder_name)
            plain = plain.to(model.device).eval()
            yield lambda ids, mask: plain(input_ids=ids, attention_mask=mask).logits
    finally:
        model.train(was_training)
