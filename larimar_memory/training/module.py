"""The LightningModule: eq. 1 through ``LarimarModel.training_losses``, β annealing, AdamW.

The model owns the math (memory write/read, observation noise ξ, learnable σ_w, KL) and what
trains (``LarimarModel.trainable_parameters``); this module only schedules β, builds the
optimiser, logs every term and validates.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning.pytorch as pl
import torch

from ..decoder import IGNORE_INDEX
from ..memory import read_memory, write_episode
from ..model import LarimarModel, LossWeights
from .config import EvalConfig, LossConfig, OptimConfig

logger = logging.getLogger(__name__)


class LarimarLightningModule(pl.LightningModule):
    """Trains a ``LarimarModel`` on batches of episodes shaped (B, N, T)."""

    def __init__(
        self,
        model: LarimarModel,
        loss: LossConfig,
        optim: OptimConfig,
        max_steps: int,
        evaluation: EvalConfig | None = None,
        save_frozen: bool = True,
        max_new_tokens: int = 64,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss_cfg = loss
        self.optim_cfg = optim
        self.max_steps = max_steps
        self.eval_cfg = evaluation or EvalConfig()
        self.save_frozen = save_frozen
        self.max_new_tokens = max_new_tokens
        # frozen weights may be left out of checkpoints; they come from the base model instead
        self.strict_loading = save_frozen
        self._val: dict[str, torch.Tensor] = {}

    def on_fit_start(self) -> None:
        self.train_mode()

    def train_mode(self) -> None:
        """The model's ``train_mode``: frozen backbones stay in eval mode."""
        self.model.train_mode()

    # ---------------------------------------------------------------------------------- loss

    def beta(self, step: int | None = None) -> float:
        """β of the KL term at ``step`` (default: the current optimiser step)."""
        return self.loss_cfg.kl.value(self.global_step if step is None else step, self.max_steps)

    def loss_weights(self, beta: float) -> LossWeights:
        """The model's LossWeights at KL weight ``beta``."""
        c = self.loss_cfg
        return LossWeights(
            recon_memory=c.recon_memory, recon_direct=c.recon_direct, kl=beta, lm=c.lm, qa=c.qa
        )

    def losses(self, batch: dict[str, Any], beta: float) -> dict[str, torch.Tensor]:
        """Every term of eq. 1 on a batch of episodes."""
        return self.model.training_losses(
            batch["enc_input_ids"],
            batch["enc_attention_mask"],
            batch["dec_input_ids"],
            batch["dec_attention_mask"],
            weights=self.loss_weights(beta),
            questions=batch.get("questions"),
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        beta = self.beta()
        losses = self.losses(batch, beta)
        batch_size = batch["enc_input_ids"].shape[0]
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in losses.items() if k != "total"},
            on_step=True, batch_size=batch_size,
        )
        self.log("train/total", losses["total"].detach(), on_step=True, prog_bar=True,
                 batch_size=batch_size)
        self.log("train/beta", beta, on_step=True, batch_size=batch_size)
        return losses["total"]

    # ---------------------------------------------------------------------------- validation

    def on_validation_epoch_start(self) -> None:
        zero = torch.zeros((), device=self.device, dtype=torch.float64)
        self._val = {k: zero.clone() for k in ("exact", "exact_direct", "chunks", "nll", "tokens")}

    def validation_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if "enc_input_ids" in batch:
            self._validate_episodes(batch, batch_idx)
        else:
            self._validate_lm(batch)

    def _validate_episodes(self, batch: dict[str, Any], batch_idx: int) -> None:
        batch_size = batch["enc_input_ids"].shape[0]
        losses = self.losses(batch, self.loss_cfg.kl.max)
        self.log_dict(
            {f"val/{k}": v for k, v in losses.items()},
            on_epoch=True, sync_dist=True, batch_size=batch_size, add_dataloader_idx=False,
        )
        if batch_idx >= self.eval_cfg.recon_episodes:
            return
        for b, episode in enumerate(batch["texts"]):
            from_memory, direct = self.reconstruct(
                batch["enc_input_ids"][b], batch["enc_attention_mask"][b]
            )
            self._val["exact"] += sum(map(_same, from_memory, episode))
            self._val["exact_direct"] += sum(map(_same, direct, episode))
            self._val["chunks"] += len(episode)

    @torch.no_grad()
    def reconstruct(
        self, enc_input_ids: torch.Tensor, enc_attention_mask: torch.Tensor
    ) -> tuple[list[str], list[str]]:
        """Greedy decodes of one episode (N, T): from its memory readout (write the episode
        one-shot with ``M0`` as prior, read each latent back without σ_w noise) and directly
        from its encodings."""
        model = self.model
        Z = model.codec(enc_input_ids, enc_attention_mask).to(model.dtype)  # (N, C)
        M = write_episode(Z, model.prior_memory)  # (K, C)
        Zr, _ = read_memory(Z, M)  # (N, C)
        return (
            model.decode(Zr, max_new_tokens=self.max_new_tokens),
            model.decode(Z, max_new_tokens=self.max_new_tokens),
        )

    def _validate_lm(self, batch: dict[str, Any]) -> None:
        ids, mask = batch["lm_input_ids"], batch["lm_attention_mask"]
        labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
        loss = self.model.decoder.loss(None, ids, mask, labels)  # mean over target tokens
        tokens = (labels[:, 1:] != IGNORE_INDEX).sum()
        self._val["nll"] += loss.detach().double() * tokens
        self._val["tokens"] += tokens

    def on_validation_epoch_end(self) -> None:
        reduce = self.trainer.strategy.reduce
        totals = {k: reduce(v, reduce_op="sum") for k, v in self._val.items()}
        # summed over processes already; sync_dist averages equal values (and keeps Lightning
        # from warning that epoch-level values are not synced)
        if totals["chunks"] > 0:
            self.log("val/recon_exact", (totals["exact"] / totals["chunks"]).float(),
                     sync_dist=True)
            self.log("val/recon_exact_direct",
                     (totals["exact_direct"] / totals["chunks"]).float(), sync_dist=True)
        if totals["tokens"] > 0:
            ppl = math.exp(min(50.0, (totals["nll"] / totals["tokens"]).item()))
            self.log("val/ppl_no_memory", ppl, sync_dist=True)

    # ----------------------------------------------------------------------------- optimiser

    def configure_optimizers(self) -> Any:
        c = self.optim_cfg
        params = self.model.trainable_parameters()
        if not params:
            raise ValueError(
                "the model has no trainable parameters; check model.config codec.train_encoder /"
                " decoder_training"
            )
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]  # biases, norms, σ_w
        groups = [{"params": decay, "weight_decay": c.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        if self._offloads_optimizer():
            from deepspeed.ops.adam import DeepSpeedCPUAdam  # ZeRO-Offload refuses torch's

            opt: torch.optim.Optimizer = DeepSpeedCPUAdam(
                groups, lr=c.lr, betas=c.betas, eps=c.eps, adamw_mode=True
            )
        else:
            opt = torch.optim.AdamW(groups, lr=c.lr, betas=c.betas, eps=c.eps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(c, self.max_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Lightning's clipping, except under FSDP, where Lightning cannot clip by norm: each
        process holds a shard of the gradients, and only the wrapper knows the global norm."""
        from torch.distributed.fsdp import FullyShardedDataParallel

        wrapper = self.trainer.strategy.model
        if gradient_clip_val and isinstance(wrapper, FullyShardedDataParallel):
            wrapper.clip_grad_norm_(gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def _offloads_optimizer(self) -> bool:
        """True under DeepSpeed ZeRO with the optimizer offloaded to CPU."""
        strategy = self._trainer.strategy if self._trainer is not None else None
        config = getattr(strategy, "config", None)
        if not isinstance(config, dict):
            return False
        return bool(config.get("zero_optimization", {}).get("offload_optimizer"))

    # ---------------------------------------------------------------------------- checkpoint

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        upgrade_checkpoint(checkpoint)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.save_frozen:
            return
        state = checkpoint.get("state_dict", {})
        for name, param in self.model.named_parameters(remove_duplicate=False):
            if not param.requires_grad:
                state.pop(f"model.{name}", None)


def upgrade_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A Lightning checkpoint from before σ_w became a one-element parameter (FSDP shards no
    0-d ones), in place: σ_w and its Adam moments reshaped from 0-d to (1,). The only 0-d
    tensors of an optimizer state that are not a ``step`` count belong to σ_w."""
    state = checkpoint.get("state_dict", {})
    key = "model.log_sigma_w"
    if key in state and state[key].dim() == 0:
        state[key] = state[key].reshape(1)
        for optimizer in checkpoint.get("optimizer_states", []):
            for param_state in optimizer.get("state", {}).values():
                for name, value in param_state.items():
                    if name != "step" and isinstance(value, torch.Tensor) and value.dim() == 0:
                        param_state[name] = value.reshape(1)
    return checkpoint


def _same(decoded: str, original: str) -> bool:
    return decoded.strip() == original.strip()


def _lr_lambda(c: OptimConfig, max_steps: int) -> Any:
    def factor(step: int) -> float:
        if c.warmup_steps and step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        if c.scheduler == "constant":
            return 1.0
        span = max(1, max_steps - c.warmup_steps)
        progress = min(1.0, (step - c.warmup_steps) / span)
        if c.scheduler == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
