"""Tiny random models for fast tests: no files, no network, well under a second to build.

The backbones are seeded, so a name like ``tiny-random:gpt2`` (see ``loading``) rebuilds the same
weights every time; that lets saved tiny checkpoints with a frozen backbone load again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .model import LarimarModel

TinyDecoder = Literal["gpt2", "llama"]
_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
# A chat template so tests can reach the chat path of ``LatentDecoder.generate``.
_CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def byte_level_tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerBase:
    """A byte-level tokenizer (256 byte tokens + 4 specials, no merges): encodes any text and
    decodes it back exactly, built in code."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(_SPECIALS + alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=256,
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def tiny_encoder_backbone(
    kind: str = "bert", seed: int = 0
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """A 2-layer, 32-wide random BERT with the byte-level tokenizer."""
    from transformers import BertConfig, BertModel

    if kind != "bert":
        raise ValueError(f"unknown tiny encoder {kind!r}; the only one is 'bert'")
    tokenizer = byte_level_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    return tokenizer, model.eval()


def tiny_decoder_backbone(
    kind: str = "gpt2", seed: int = 0
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """A 2-layer, 64-wide random GPT-2 or Llama (grouped-query attention) causal LM; the Llama
    tokenizer carries a chat template."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    tokenizer = byte_level_tokenizer(_CHAT_TEMPLATE if kind == "llama" else None)
    ids: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "gpt2":
            config = GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, **ids)
            model: PreTrainedModel = GPT2LMHeadModel(config)
        elif kind == "llama":
            config = LlamaConfig(
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=256,
                **ids,
            )
            model = LlamaForCausalLM(config)
        else:
            raise ValueError(f"unknown tiny decoder {kind!r}; choose 'gpt2' or 'llama'")
    return tokenizer, model.eval()


def tiny_test_model(decoder: TinyDecoder = "gpt2", seed: int = 0, **overrides: Any) -> LarimarModel:
    """A complete ``LarimarModel`` on tiny random backbones (P=2, d=16, C=32, K=8), every part
    trainable unless overridden. Builds in well under a second."""
    from .model import LarimarConfig, LarimarModel

    fields: dict[str, Any] = {
        "encoder_name": "tiny-random:bert",
        "decoder_name": f"tiny-random:{decoder}",
        "num_latent_tokens": 2,
        "latent_token_dim": 16,
        "memory_slots": 8,
        "max_text_tokens": 48,
        "train_encoder": True,
        "decoder_training": "full",
    }
    fields.update(overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LarimarModel.from_config(LarimarConfig(**fields))


class HashingEmbedder:
    """A deterministic bag-of-words sentence embedder for tests: texts sharing words get a high
    cosine, unrelated texts a low one. No model, no files."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def encode(self, sentences: list[str], **_: Any) -> Any:
        import hashlib
        import re

        import numpy as np

        out = np.zeros((len(sentences), self.dim), dtype=np.float32)
        for row, sentence in enumerate(sentences):
            for word in re.findall(r"\w+", sentence.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
        return out


def tiny_larimar(
    store: Any = None,
    *,
    decoder: TinyDecoder = "gpt2",
    model_overrides: dict[str, Any] | None = None,
    **settings: Any,
) -> Any:
    """A complete ``Larimar`` on a tiny random model (16 slots unless overridden), a hashing
    embedder and a SQLite store at ``store`` (a path, or a ``MemoryStore``). For tests of code
    that wraps ``Larimar``."""
    from .scope import SentenceEmbedder
    from .service import Larimar, LarimarSettings

    settings.setdefault("max_new_tokens", 4)
    return Larimar(
        tiny_test_model(decoder, **{"memory_slots": 16, **(model_overrides or {})}),
        store=store,
        embedder=SentenceEmbedder(model=HashingEmbedder()),
        settings=LarimarSettings(**settings),
    )


class ProtocolOnly:
    """A backend that forwards the members of `MemoryBackend` to ``inner`` and nothing else
    (``model``, ``embedder``, ``settings``… raise AttributeError): integrations tested on it
    are shown to work on any backend, a remote client included."""

    def __init__(self, inner: Any) -> None:
        from .protocol import protocol_members

        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_members", frozenset(protocol_members()))

    def __getattr__(self, name: str) -> Any:
        if name not in self._members:
            raise AttributeError(f"{name!r} is not a member of MemoryBackend")
        return getattr(self._inner, name)
