"""Writes the reference outputs that ``test_model_reference.py`` compares against.

Run once with the code whose behaviour is to be kept (these files were written by commit
9ec6205, before the model was split into a latent codec and a conditioning):

    PYTHONPATH=. python tests/unit/data/make_model_reference.py [--smol]

It saves three tiny checkpoints (pooled + KV prefix on GPT-2 and on Llama with LoRA, token codes
on Llama with LoRA) and, for each and for the packaged ``larimar-smol``, the outputs of fixed
inputs: latents, fact rows, logits with and without memory, greedy decodes, facts read back,
and the training losses. One torch thread, as the tests run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent / "model_reference"
TEXTS = [
    "Paris is the capital of France.",
    "The Zephyr Bridge opened in 1987.",
    "Marta plays the bassoon.",
    "",
]
LONG = "word " * 40 + "and the long fact ends here."
PROMPTS = ["Where is Paris?", "The bridge opened in"]
TINY = {
    "pooled-gpt2": ("gpt2", {"train_encoder": False, "decoder_training": "frozen"}),
    "pooled-llama-lora": ("llama", {"decoder_training": "lora", "max_text_tokens": 24}),
    "codes-llama-lora": ("llama", {
        "latent": "token-codes", "num_latent_tokens": 16, "latent_token_dim": 16,
        "max_text_tokens": 15, "decoder_training": "lora", "train_encoder": False,
    }),
}


def outputs(model, texts=TEXTS, long=LONG, prompts=PROMPTS) -> dict:
    model.eval()
    out: dict = {}
    with torch.no_grad():
        z = model.encode(texts)
        facts = model.encode_facts([*texts[:3], long])
        out["z"] = z
        out["facts"] = torch.cat(facts)
        out["fact_rows"] = [len(f) for f in facts]
        out["counts"] = model.text_token_counts([*texts, long])
        ids, mask = model.decoder.tokenize_targets(texts, model.config.max_text_tokens)
        out["logits_memory"] = model.decoder(z, ids, mask)
        out["logits_plain"] = model.decoder(None, ids, mask)
        out["decoded"] = model.decode(z, max_new_tokens=8)
        out["decoded_plain"] = model.decode(None, prompts, max_new_tokens=6)
        context = model.memory_context(facts[:2])
        out["context"] = context
        out["answered"] = model.decode(context.expand(1, -1), prompts[:1], max_new_tokens=6)
        out["read"] = model.read_facts(facts)
        torch.manual_seed(0)
        losses = model.training_losses(**model.tokenize(texts[:3]))
        out["losses"] = {k: v.detach() for k, v in losses.items()}
    return out


def digest(value):
    """Tensors as their SHA-256 (bit identity), shape and first values; the rest as they are."""
    import hashlib

    if isinstance(value, dict):
        return {k: digest(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        return {
            "sha256": hashlib.sha256(t.numpy().tobytes()).hexdigest(),
            "shape": list(t.shape),
            "head": t.flatten()[:16].tolist(),
        }
    return value


def main() -> None:
    from larimar_memory.model import LarimarModel
    from larimar_memory.testing import tiny_test_model

    torch.set_num_threads(1)
    HERE.mkdir(parents=True, exist_ok=True)
    reference = {}
    for name, (decoder, overrides) in TINY.items():
        model = tiny_test_model(decoder, seed=7, **overrides)
        if overrides.get("decoder_training") == "lora":  # LoRA B starts at zero: give it values
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(1)
                for pname, p in model.named_parameters():
                    if "lora_B" in pname:
                        p.normal_(std=0.05)
        model.save_pretrained(HERE / name)
        loaded = LarimarModel.from_pretrained(HERE / name)
        reference[name] = digest(outputs(loaded))
    if "--smol" in sys.argv:
        smol = LarimarModel.from_pretrained("larimar-smol")
        reference["larimar-smol"] = digest(outputs(
            smol,
            prompts=["Which instrument does Marta play?", "The Zephyr Bridge opened in"],
        ))
    (HERE / "reference.json").write_text(json.dumps(reference, indent=1, ensure_ascii=True) + "\n")
    for name, out in reference.items():
        print(name, out["decoded"], out["answered"], out["losses"]["total"]["head"])


if __name__ == "__main__":
    main()
