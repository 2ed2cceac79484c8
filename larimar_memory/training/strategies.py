"""``trainer.strategy`` → a Lightning strategy, with the CPU paths that prove the multi-process
code without a GPU (2 CPU processes over gloo; see docs/training.md, "Multi-process training").

Lightning refuses FSDP and DeepSpeed on CPU, though torch's FSDP and DeepSpeed's own CPU
accelerator run there. The CPU classes below are Lightning's stock strategies with only the
CUDA-only checks and device arguments changed, so what runs on CPU is the code a GPU run uses.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from .config import TrainingConfigError


def resolve_strategy(
    name: str, find_unused: bool, accelerator: str = "auto", devices: Any = "auto"
) -> Any:
    """A Lightning strategy (or its name); errors name the fix."""
    if name.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise TrainingConfigError(
            f"trainer.strategy={name} needs DeepSpeed: pip install --no-build-isolation "
            "deepspeed, with a constraint that pins the installed torch (-c FILE holding "
            "torch==<its version>) so pip never swaps in a CUDA build; see docs/training.md"
        )
    if name == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=find_unused)
    if not on_cpu(accelerator):
        return name
    if name == "fsdp":
        return cpu_fsdp_strategy()
    if name == "deepspeed_stage_2":
        return cpu_deepspeed_strategy(_cpu_processes(devices, name))
    if name == "deepspeed_stage_2_offload":
        raise TrainingConfigError(
            "trainer.strategy=deepspeed_stage_2_offload moves the optimizer from the GPU to the "
            "CPU; on a CPU run it means nothing: use trainer.strategy=deepspeed_stage_2"
        )
    return name


def on_cpu(accelerator: str) -> bool:
    """True when Lightning will put the run on CPU processes."""
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def _cpu_processes(devices: Any, name: str) -> int:
    if isinstance(devices, int) and devices >= 1:
        return devices
    if isinstance(devices, str) and devices.isdigit() and int(devices) >= 1:
        return int(devices)
    raise TrainingConfigError(
        f"trainer.strategy={name} on CPU needs trainer.devices as a number of processes "
        f"(e.g. trainer.devices=2), got {devices!r}"
    )


def cpu_fsdp_strategy() -> Any:
    """Lightning's ``FSDPStrategy`` on CPU processes. Three changes, none in torch's FSDP:
    Lightning refuses ``accelerator='cpu'`` by checking the strategy's exact type (a subclass
    passes); it wraps the model with ``device_id=None`` on CPU, which torch reads as "find an
    accelerator" (``device_id=cpu`` is accepted); and its full state dict offloads to CPU, which
    on tensors already there crashes the process at the first checkpoint (segfault in torch
    2.13's state-dict clone), so the copy is taken in place."""
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    class CPUFSDPStrategy(FSDPStrategy):
        def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
            if not any(isinstance(m, FSDP) for m in model.modules()):
                model = FSDP(
                    module=model, cpu_offload=self.cpu_offload,
                    mixed_precision=self.mixed_precision_config,
                    sharding_strategy=self.sharding_strategy, device_id=self.root_device,
                    **self.kwargs,
                )
            return super()._setup_model(model)  # already wrapped: the rest of Lightning's setup

        def lightning_module_state_dict(self) -> dict[str, Any]:
            if self._state_dict_type != "full":
                return super().lightning_module_state_dict()
            assert self.model is not None
            config = FullStateDictConfig(offload_to_cpu=False, rank0_only=True)
            with FSDP.state_dict_type(self.model, StateDictType.FULL_STATE_DICT, config):
                return self.model.state_dict()

    return CPUFSDPStrategy()


def cpu_deepspeed_strategy(processes: int) -> Any:
    """Lightning's ``DeepSpeedStrategy`` (ZeRO stage 2) on ``processes`` CPU processes, over
    DeepSpeed's CPU accelerator (gloo). Lightning checks for a CUDA accelerator in
    ``setup_environment`` (skipped: DDP's own set-up runs) and wants device indices equal to
    the local ranks (given as ``cpu:0``, ``cpu:1``, …). The first run JIT-compiles DeepSpeed's
    shared-memory communication op (minutes; cached in ``~/.cache/torch_extensions``)."""
    from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy

    class CPUDeepSpeedStrategy(DeepSpeedStrategy):
        def setup_environment(self) -> None:
            DDPStrategy.setup_environment(self)

    devices = [torch.device("cpu", i) for i in range(processes)]
    return CPUDeepSpeedStrategy(stage=2, parallel_devices=devices)
