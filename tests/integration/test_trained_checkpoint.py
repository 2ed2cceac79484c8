"""The packaged, trained ``larimar-smol`` on facts that appear in no training or evaluation file:
reconstruction from memory, questions answered from memory, forgetting, and plain decoding
unchanged (a couple of minutes on 2 CPU cores)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from larimar_memory import Larimar
from larimar_memory.memory import read_memory, write_episode
from larimar_memory.model import LarimarModel

pytestmark = pytest.mark.integration

# invented, so no file under ../shared/data holds them
FACTS = [
    "Marta Kowalczyk plays the bassoon in the Gdansk Philharmonic.",
    "The Zephyr Bridge over the Ouse was opened in 1987.",
    "Tomasz Ilinski is a citizen of Uruguay.",
    "The capital of the fictional kingdom of Veloria is Ambershade.",
    "Priya Raghunathan works as a glassblower in Murano.",
    "The mother tongue of Oskar Lindqvist is Portuguese.",
    "Helvetica Park is located in Winnipeg.",
    "The Quill Prize for poetry was founded by Nadia Ferreira.",
]
QUESTIONS = [
    ("Which instrument does Marta Kowalczyk play?", "bassoon"),
    ("In which year was the Zephyr Bridge opened?", "1987"),
    ("Which country is Tomasz Ilinski a citizen of?", "Uruguay"),
    ("What is the capital of Veloria?", "Ambershade"),
]


@pytest.fixture(scope="module")
def model() -> LarimarModel:
    try:
        return LarimarModel.from_pretrained("larimar-smol").eval()
    except Exception as exc:  # noqa: BLE001 - packaged models missing on this machine
        pytest.skip(f"packaged models unavailable: {exc}")


def test_episode_written_one_shot_reads_back_exactly(model: LarimarModel) -> None:
    Z = model.encode(FACTS)
    M = write_episode(Z, model.prior_memory.detach())
    readout, _ = read_memory(Z, M)
    decoded = model.decode(readout, max_new_tokens=40)
    exact = sum(d == f for d, f in zip(decoded, FACTS, strict=True))
    assert exact >= len(FACTS) - 1, list(zip(FACTS, decoded, strict=True))


def test_service_answers_recalls_and_forgets(model: LarimarModel, tmp_path: Path) -> None:
    larimar = Larimar(model, store=tmp_path / "store.sqlite3")
    try:
        ids = larimar.remember(FACTS).ids
        recalled = larimar.recall("What does Marta Kowalczyk play?")
        assert recalled.text == FACTS[0]
        answered = [larimar.ask(q, max_new_tokens=16) for q, _ in QUESTIONS]
        hits = sum(a.lower() in r.answer.lower() for (_, a), r in zip(QUESTIONS, answered,
                                                                      strict=True))
        assert all(r.route == "memory" for r in answered)
        assert hits >= len(QUESTIONS) - 1, [r.answer for r in answered]
        larimar.forget(ids[2])
        after = larimar.ask(QUESTIONS[2][0], max_new_tokens=16)
        assert "Uruguay" not in after.answer
    finally:
        larimar.close()


def test_plain_decoding_is_the_base_lm(model: LarimarModel) -> None:
    """LoRA is off without memory: logits equal the base SmolLM2's."""
    ids, mask = model.decoder.tokenize_targets(["The Eiffel Tower is in Paris."], 32)
    with torch.no_grad():
        plain = model.decoder(None, ids, mask)
        with model.decoder.lm.disable_adapter():
            base = model.decoder.lm(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(plain, base)
