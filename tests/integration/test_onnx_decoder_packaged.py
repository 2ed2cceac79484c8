"""``decoder_weights="onnx-int8"`` on the packaged models: the memory LM exported and quantized
once (`larimar_memory.onnx_decoder`), then `ask` answers from memory through it, and plain
questions through PyTorch's int8 copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from larimar_memory import loading
from larimar_memory.errors import ModelNotFoundError

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.integration

FACTS = ["I have a greyhound called Bolt.", "My vet is Dr Kowalczyk.",
         "My hotel in Oslo is the Thon Hotel Opera.", "I work for a company called Pellucid Labs."]


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory):
    try:
        loading.packaged_encoder_path()
        loading.packaged_decoder_gguf()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))
    from larimar_memory import Larimar, LarimarSettings

    folder = Path(tmp_path_factory.mktemp("onnx"))
    lar = Larimar(store=str(folder / "s.sqlite3"),
                  settings=LarimarSettings(decoder_weights="onnx-int8"))
    lar.remember(FACTS)
    with pytest.MonkeyPatch.context() as patch:  # the export goes to a folder of its own
        patch.setenv(loading.CACHE_DIR_ENV, str(folder / "cache"))
        lar.ask("What's my dog's name?")  # the first decode exports
    yield lar
    lar.close()


def test_the_decoder_runs_in_onnx_runtime(memory) -> None:
    from larimar_memory.onnx_decoder import OnnxCausalLM

    decoder = memory._parts.decoding.decoder
    assert isinstance(decoder.lm, OnnxCausalLM)
    assert not isinstance(decoder.plain_lm, OnnxCausalLM)  # plain decoding stays in PyTorch


@pytest.mark.parametrize(("question", "needle"), [
    ("What's my dog's name?", "Bolt"),
    ("Who is our vet?", "Kowalczyk"),
    ("Which hotel am I staying at in Oslo?", "Thon Hotel Opera"),
    ("Which company do I work for?", "Pellucid Labs"),
])
def test_answers_from_memory(memory, question, needle) -> None:
    result = memory.ask(question)
    assert result.route == "memory" and needle in result.answer, result


def test_a_general_question_is_answered_without_memory(memory) -> None:
    result = memory.ask("What is the capital of France?")
    assert result.route == "plain" and "Paris" in result.answer, result
