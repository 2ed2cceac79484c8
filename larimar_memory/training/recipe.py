"""The training recipe, read top to bottom: ``setup`` → ``train`` → ``export`` → ``cleanup``,
and :func:`train`, the one call behind ``larimar train RECIPE [key=value ...]``.

Everything a run needs comes from one validated ``TrainConfig``; the output folder holds
``config.yaml`` (what ran), ``checkpoints/`` (periodic + ``last.ckpt`` for resuming), ``logs/``
(CSV), and at the end ``model/`` (``LarimarModel.save_pretrained``), ``metrics.json`` and
``metrics.png``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from pydantic import ValidationError
from torch.utils.data import DataLoader

from ..model import LarimarConfig, LarimarModel
from .config import ModelSection, TrainConfig, TrainingConfigError, load_config
from .data import (
    ChunkDataset,
    EpisodeCollator,
    TextCollator,
    TrainingDataError,
    build_chunks,
    read_ppl_chunks,
)
from .metrics import MetricsHistory, plot_metrics, write_metrics
from .module import LarimarLightningModule, upgrade_checkpoint
from .strategies import resolve_strategy

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
#: Lightning warnings about what this recipe does on purpose (frozen parts in eval mode, resuming
#: into a folder that already holds checkpoints, short tiny-model epochs)
_EXPECTED_WARNINGS = (
    r"Found \d+ module\(s\) in eval mode",
    r"Checkpoint directory .* exists and is not empty",
    r"The number of training batches .* is smaller than the logging interval",
    # a resumed epoch re-draws its episodes (shuffled chunks); the step count carries on
    r"You're resuming from a checkpoint that ended before the epoch ended",
)


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------


def model_config(section: ModelSection) -> LarimarConfig:
    """The validated ``LarimarConfig`` of a recipe (cheap: builds no network)."""
    try:
        return LarimarConfig(**section.config)
    except ValidationError as exc:
        raise TrainingConfigError(f"invalid model.config: {exc}") from exc


#: switches that may differ from a saved model's config when continuing training from it
_RESUMABLE_SWITCHES = frozenset({"train_encoder", "decoder_training"})


def build_model(section: ModelSection) -> LarimarModel:
    """A ``LarimarModel`` as the recipe asks: ``from_config`` or ``from_pretrained``; for a
    pretrained model, ``model.config`` may switch trainable parts (not change the architecture)."""
    if section.init == "config":
        return LarimarModel.from_config(model_config(section))
    model = LarimarModel.from_pretrained(str(section.path))
    other = set(section.config) - _RESUMABLE_SWITCHES
    if other:
        raise TrainingConfigError(
            f"model.config keys {sorted(other)} cannot change a pretrained model; only "
            f"{sorted(_RESUMABLE_SWITCHES)} can (use model.init: config for a new architecture)"
        )
    try:
        model.set_trainable(
            train_encoder=section.config.get("train_encoder"),
            decoder_training=section.config.get("decoder_training"),
        )
    except ValueError as exc:
        raise TrainingConfigError(f"model.config on a pretrained model: {exc}") from exc
    return model


# --------------------------------------------------------------------------------------------
# the recipe
# --------------------------------------------------------------------------------------------


class TrainingRecipe:
    """One training run of a ``TrainConfig``."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out_dir = cfg.resolved_output_dir()
        self.ckpt_dir = self.out_dir / CHECKPOINT_DIR
        self.model: LarimarModel | None = None
        self.module: LarimarLightningModule | None = None
        self.trainer: pl.Trainer | None = None
        self.history = MetricsHistory(every=cfg.trainer.log_every_n_steps)
        self.train_loader: DataLoader[Any] | None = None
        self.val_loaders: list[DataLoader[Any]] = []
        self._started = 0.0
        self._threads = torch.get_num_threads()

    # ------------------------------------------------------------------------------ setup

    def setup(self) -> None:
        """Seed, build the model, the data and the Trainer."""
        cfg = self.cfg
        if cfg.trainer.cpu_threads:
            torch.set_num_threads(cfg.trainer.cpu_threads)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.yaml").write_text(
            yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
        )
        self.model = build_model(cfg.model)
        self._setup_data()
        self.module = LarimarLightningModule(
            self.model,
            loss=cfg.loss,
            optim=cfg.optim,
            max_steps=cfg.trainer.max_steps,
            evaluation=cfg.eval,
            save_frozen=cfg.checkpoint.save_frozen,
            max_new_tokens=cfg.eval.max_new_tokens or cfg.data.chunk_tokens,
        )
        self.trainer = self._build_trainer()

    def _setup_data(self) -> None:
        cfg, d, model = self.cfg, self.cfg.data, self.model
        assert model is not None
        if d.chunk_tokens > model.config.max_text_tokens:
            raise TrainingConfigError(
                f"data.chunk_tokens ({d.chunk_tokens}) exceeds the model's max_text_tokens "
                f"({model.config.max_text_tokens}): chunks would be cut; lower one or raise the "
                "other"
            )
        dec_tok = model.decoder.tokenizer
        split = build_chunks(d, dec_tok, seed=cfg.seed)
        collate = EpisodeCollator(
            model.tokenize, d.episode_size,
            questions=split.questions if cfg.loss.qa else None,
            tokenize_answers=model.decoder.tokenize_answers,
            chat_share=cfg.loss.chat_share, max_question_tokens=d.chunk_tokens, seed=cfg.seed,
            neighbours=split.neighbours, facts_per_question=cfg.loss.qa_facts,
        )
        per_step = d.episode_size * d.batch_size
        loader_kw: dict[str, Any] = {"num_workers": d.num_workers}
        if d.num_workers > 0:
            loader_kw["persistent_workers"] = True
            # the collators call the model's tokenizers: fork shares them instead of pickling
            # the whole model into each worker (spawn/forkserver would)
            if "fork" in multiprocessing.get_all_start_methods():
                loader_kw["multiprocessing_context"] = "fork"
        self.train_loader = DataLoader(
            ChunkDataset(split.train), batch_size=per_step, shuffle=d.shuffle, drop_last=True,
            collate_fn=collate, **loader_kw,
        )
        self.val_loaders = []
        if len(split.heldout) >= d.episode_size:
            self.val_loaders.append(DataLoader(  # one episode per batch
                ChunkDataset(split.heldout), batch_size=d.episode_size, shuffle=False,
                drop_last=True, collate_fn=collate, **loader_kw,
            ))
        if cfg.eval.ppl_file:
            path = d.resolve(cfg.eval.ppl_file)
            try:
                chunks = read_ppl_chunks(path, dec_tok, d.chunk_tokens, cfg.eval.ppl_max_chunks)
            except TrainingDataError as exc:
                logger.warning("skipping no-memory perplexity: %s", exc)
            else:
                self.val_loaders.append(DataLoader(
                    ChunkDataset(chunks), batch_size=per_step, shuffle=False,
                    collate_fn=TextCollator(model.decoder.tokenize_targets, d.chunk_tokens),
                    **loader_kw,
                ))

    def _build_trainer(self) -> pl.Trainer:
        t, c = self.cfg.trainer, self.cfg.checkpoint
        loss = self.cfg.loss
        find_unused = 0.0 in (loss.recon_memory, loss.recon_direct, loss.lm, loss.kl.max)
        callbacks: list[pl.Callback] = [
            ModelCheckpoint(
                dirpath=self.ckpt_dir,
                filename="step-{step}",
                every_n_train_steps=c.every_n_steps or t.max_steps,
                save_last=True,
                save_top_k=c.keep,
                monitor="step",
                mode="max",
                auto_insert_metric_name=False,
            ),
            self.history,
        ]
        if t.progress_bar:
            callbacks.append(TQDMProgressBar(refresh_rate=1))
        every = min(t.val_every_n_steps or t.max_steps, t.max_steps)
        has_val = bool(self.val_loaders) and t.limit_val_batches > 0
        return pl.Trainer(
            accelerator=t.accelerator,
            devices=t.devices,
            num_nodes=t.num_nodes,
            strategy=resolve_strategy(t.strategy, find_unused, t.accelerator, t.devices),
            precision=t.precision,  # type: ignore[arg-type]
            accumulate_grad_batches=t.accumulate_grad_batches,
            max_steps=t.max_steps,
            max_epochs=-1,
            log_every_n_steps=t.log_every_n_steps,
            val_check_interval=every * t.accumulate_grad_batches,
            check_val_every_n_epoch=None,
            limit_val_batches=t.limit_val_batches if has_val else 0,
            num_sanity_val_steps=0,
            gradient_clip_val=self.cfg.optim.grad_clip,
            enable_progress_bar=t.progress_bar,
            enable_model_summary=False,
            deterministic=t.deterministic,
            callbacks=callbacks,
            logger=CSVLogger(self.out_dir, name="logs"),
            default_root_dir=self.out_dir,
        )

    # ------------------------------------------------------------------------------ train

    def resume_path(self) -> Path | None:
        """The checkpoint to continue from, if any (see ``checkpoint.resume``)."""
        resume = self.cfg.checkpoint.resume
        if not resume:
            return None
        if resume == "last":
            last = self.ckpt_dir / LAST_CHECKPOINT
            return last if last.exists() else None
        path = Path(resume).expanduser()
        if not path.exists():
            raise TrainingConfigError(f"checkpoint.resume={resume}: no such checkpoint")
        return path

    def train(self) -> None:
        """Fit until ``trainer.max_steps`` (continuing a saved run when one is found)."""
        assert self.trainer is not None and self.module is not None
        ckpt = self.resume_path()
        if ckpt is not None:
            logger.info("resuming from %s", ckpt)
        self._started = time.monotonic()
        with warnings.catch_warnings():
            for message in _EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            self._fit(ckpt)

    def _fit(self, ckpt: Path | None) -> None:
        assert self.trainer is not None and self.module is not None
        self.trainer.fit(
            self.module,
            train_dataloaders=self.train_loader,
            val_dataloaders=self.val_loaders or None,
            ckpt_path=str(ckpt) if ckpt else None,
        )
        last_val = self.history.val[-1]["step"] if self.history.val else None
        if self.val_loaders and self.cfg.trainer.limit_val_batches > 0 and (
            last_val != self.trainer.global_step
        ):
            self.trainer.validate(self.module, dataloaders=self.val_loaders, verbose=False)
            self.history.on_validation_end(self.trainer, self.module)

    # ----------------------------------------------------------------------------- export

    def export(self) -> Path:
        """Save the trained model, ``metrics.json`` and ``metrics.png``; returns the run folder."""
        assert self.trainer is not None
        if self.trainer.is_global_zero:
            model_dir = self.out_dir / MODEL_DIR
            if self.cfg.trainer.strategy == "fsdp":
                export_checkpoint(self.cfg, self.ckpt_dir / LAST_CHECKPOINT, model_dir)
            else:
                assert self.model is not None
                self.model.save_pretrained(model_dir)
            extra = {
                "recipe": self.cfg.name,
                "steps": self.trainer.global_step,
                "seconds": round(time.monotonic() - self._started, 1),
                "model_dir": str(model_dir),
            }
            write_metrics(self.history, self.out_dir, extra)
            plot_metrics(self.history, self.out_dir, f"{self.cfg.name} — {extra['steps']} steps")
            summary = self.history.summary()
            first = summary.get("train_first", {}).get("total")
            last = summary.get("train_last", {}).get("total")
            logger.info(
                "trained %s for %d steps in %.0fs: total loss %s → %s; validation %s; "
                "model saved to %s",
                self.cfg.name, extra["steps"], extra["seconds"], _fmt(first), _fmt(last),
                summary.get("val_last", {}), model_dir,
            )
        self.trainer.strategy.barrier()
        return self.out_dir

    def cleanup(self) -> None:
        """Drop references so a caller can run another recipe in the same process."""
        torch.set_num_threads(self._threads)
        self.trainer = None
        self.module = None
        self.train_loader = None
        self.val_loaders = []


def export_checkpoint(cfg: TrainConfig, ckpt: Path, out_dir: Path) -> Path:
    """Rebuild the recipe's model, load a Lightning checkpoint and ``save_pretrained`` it
    (the way out of sharded FSDP training, or of any saved step)."""
    if ckpt.is_dir():
        raise TrainingConfigError(
            f"{ckpt} is a DeepSpeed checkpoint folder; merge it into one file first: python -c "
            f"\"from lightning.pytorch.utilities.deepspeed import "
            f"convert_zero_checkpoint_to_fp32_state_dict as c; c('{ckpt}', 'merged.ckpt')\" "
            f"and pass checkpoint.resume=merged.ckpt"
        )
    model = build_model(cfg.model)
    state = upgrade_checkpoint(torch.load(ckpt, map_location="cpu", weights_only=False))
    state = state["state_dict"]
    state = {k.removeprefix("model."): v for k, v in state.items()}
    model.load_state_dict(state, strict=cfg.checkpoint.save_frozen)
    model.save_pretrained(out_dir)
    return out_dir


def export_run(cfg: TrainConfig, out_dir: Path) -> Path:
    """``export_checkpoint`` of a run's ``checkpoint.resume`` (default: its last checkpoint)."""
    resume = cfg.checkpoint.resume or "last"
    ckpt = (
        cfg.resolved_output_dir() / CHECKPOINT_DIR / LAST_CHECKPOINT
        if resume == "last" else Path(resume).expanduser()
    )
    if not ckpt.is_file():
        raise TrainingConfigError(f"no checkpoint to export at {ckpt}; train the recipe first")
    return export_checkpoint(cfg, ckpt, Path(out_dir))


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def train(config_path_or_name: str | os.PathLike[str], overrides: list[str] | None = None) -> Path:
    """Run a recipe (packaged name such as ``tiny`` or ``larimar-1.3b``, or a YAML path) with
    ``key.path=value`` overrides; returns the run folder (``model/``, ``metrics.json``,
    ``metrics.png``, ``checkpoints/``).

    Rerunning the same command resumes from ``checkpoints/last.ckpt``; a run that already
    reached ``trainer.max_steps`` goes straight to export.
    """
    recipe = TrainingRecipe(load_config(config_path_or_name, overrides or []))
    try:
        recipe.setup()
        recipe.train()
        return recipe.export()
    finally:
        recipe.cleanup()
