"""Checkpoints keep loading as they were saved: tiny checkpoints saved by the code before the
model was composed of a codec and a conditioning (format 1, commit 9ec6205), and the packaged
``larimar-smol``, give the same latents, logits, decodes and losses on fixed inputs as that code
did (``data/make_model_reference.py`` wrote the reference: each tensor's shape, first 16
values and SHA-256; the values are compared within float tolerance, since CPUs with other
vector instructions round differently and the SHA-256 holds only on the CPU that wrote it). The
``larimar-smol`` entry was rewritten when the packaged weights were retrained for
conversation (recipe ``larimar-smol-chat``): same code, new weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from larimar_memory.model import LarimarModel

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "model_reference" / "reference.json").read_text())
sys.path.insert(0, str(DATA))
from make_model_reference import digest, outputs  # noqa: E402

sys.path.remove(str(DATA))


def _compare(got: dict, want: dict, where: str = "") -> None:
    assert set(got) == set(want), where
    for key, value in want.items():
        path = f"{where}{key}"
        if isinstance(value, dict) and "sha256" in value:
            assert got[key]["shape"] == value["shape"], path
            # not the SHA-256: CPUs with other vector instructions (AVX2 against AVX-512)
            # round differently, so bits match only on the kind of CPU that wrote the reference
            torch.testing.assert_close(torch.tensor(got[key]["head"]),
                                       torch.tensor(value["head"]), rtol=1e-4, atol=1e-5,
                                       msg=path)
        elif isinstance(value, dict):
            _compare(got[key], value, path + ".")
        else:
            assert got[key] == value, path


@pytest.mark.parametrize("name", ["pooled-gpt2", "pooled-llama-lora", "codes-llama-lora"])
def test_format1_tiny_checkpoints_give_identical_outputs(name: str) -> None:
    model = LarimarModel.from_pretrained(DATA / "model_reference" / name)
    _compare(digest(outputs(model)), REFERENCE[name])


@pytest.mark.parametrize("name", ["pooled-llama-lora", "codes-llama-lora"])
def test_resaved_checkpoints_give_identical_outputs(name: str, tmp_path: Path) -> None:
    LarimarModel.from_pretrained(DATA / "model_reference" / name).save_pretrained(tmp_path)
    _compare(digest(outputs(LarimarModel.from_pretrained(tmp_path))), REFERENCE[name])


def test_larimar_smol_gives_identical_outputs() -> None:
    try:
        model = LarimarModel.from_pretrained("larimar-smol")
    except Exception as exc:  # noqa: BLE001 - packaged models missing on this machine
        pytest.skip(f"packaged models unavailable: {exc}")
    got = digest(outputs(
        model, prompts=["Which instrument does Marta play?", "The Zephyr Bridge opened in"]
    ))
    _compare(got, REFERENCE["larimar-smol"])
    assert model.config.latent == "token-codes" and model.config.max_text_tokens == 47
    torch.testing.assert_close(model.sigma_w, model.log_sigma_w.exp())
