"""Multi-process training on the CPU: 2 processes over gloo with each strategy a GPU run uses
(DDP, FSDP, DeepSpeed ZeRO-2 where DeepSpeed is installed). Each trains the tiny recipe for 20
steps (the loss falls), saves a checkpoint, is resumed from it to step 24, and its exported model
loads. The runs go through the command line, as users start them: Lightning relaunches that
command once per process."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from larimar_memory.model import LarimarModel  # noqa: E402

pytestmark = pytest.mark.integration

STRATEGIES = [
    "ddp",
    "fsdp",
    pytest.param(
        "deepspeed_stage_2",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("deepspeed") is None,
            reason="DeepSpeed is not installed (optional; docs/training.md)",
        ),
    ),
]


def _train(root: Path, out: Path, strategy: str, steps: int) -> None:
    facts = [{"prompt": f"City {i} lies in", "target_new": f"Country {i % 7}"} for i in range(96)]
    (root / "facts-train.json").write_text(json.dumps(facts))
    command = [
        sys.executable, "-m", "larimar_memory.training", "tiny",
        f"output_dir={out}", f"data.root={root}",
        "data.sources=[{kind: facts, path: facts-train.json, answers: new}]",
        "data.heldout_chunks=0", "eval.ppl_file=null", "trainer.limit_val_batches=0",
        "trainer.accelerator=cpu", "trainer.devices=2", f"trainer.strategy={strategy}",
        f"trainer.max_steps={steps}", "trainer.log_every_n_steps=1",
        "checkpoint.every_n_steps=10",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_cpu_processes_train_checkpoint_and_resume(strategy: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(tmp_path, out, strategy, steps=20)
    rows = json.loads((out / "metrics.json").read_text())["train"]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert rows[-1]["recon_memory"] < 0.8 * rows[0]["recon_memory"]
    last = out / "checkpoints" / "last.ckpt"  # a folder of shards under DeepSpeed
    assert last.exists() and (out / "checkpoints" / "step-20.ckpt").exists()

    _train(tmp_path, out, strategy, steps=24)
    resumed = json.loads((out / "metrics.json").read_text())
    assert [r["step"] for r in resumed["train"]] == list(range(1, 25))  # continued, not restarted
    assert resumed["train"][:20] == rows
    if last.is_file():
        assert torch.load(last, weights_only=False)["global_step"] == 24
    model = LarimarModel.from_pretrained(out / "model")
    assert model.config.latent == "pooled"
