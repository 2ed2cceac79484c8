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


# --- servers and fresh interpreters, for tests of the remote paths ----------------------------

MODEL_STACK = ("torch", "transformers", "sentence_transformers", "scipy", "safetensors")
"""Top-level packages the HTTP client and the integrations must not import in remote mode."""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout: float = 60.0, proc: Any = None) -> None:
    """Wait until ``url``/healthz answers 200; ``proc`` (a Popen) must not exit meanwhile."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before becoming healthy")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not healthy after {timeout} s")


class ThreadedServer:
    """uvicorn serving an app object (``create_app(tiny_larimar(...), settings)``) in a
    background thread of this process, on a free loopback port: ``with ThreadedServer(app) as
    s: LarimarClient(s.url, ...)``."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.memory: Any = None

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        wait_healthy(self.url, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def modules_imported_by(code: str, timeout: float = 120.0) -> list[str]:
    """Run ``code`` in a fresh interpreter and return the `MODEL_STACK` packages it left in
    ``sys.modules`` (what a remote-mode test asserts is empty). ``code`` failing raises."""
    import json
    import subprocess
    import sys

    probe = (f"{code}\nimport json, sys\nprint(json.dumps(sorted("
             f"set(m.split('.')[0] for m in sys.modules) & {set(MODEL_STACK)!r})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"the probe failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1]))
