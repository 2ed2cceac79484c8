"""Training configuration: one pydantic model per section of a recipe YAML.

A recipe is a YAML file under ``training/configs/``; command-line overrides such as
``trainer.max_steps=10`` are applied to the raw mapping before validation, so a typo in a key or
a value out of range fails early with the field's path in the message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import LarimarError

CONFIG_DIR = Path(__file__).parent / "configs"
DATA_ENV = "LARIMAR_DATA"


class TrainingConfigError(LarimarError, ValueError):
    """A recipe file, a recipe name or an override is invalid; the message says which and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


class TextSource(_Section):
    """Plain text (WikiText style): paragraphs are cut into chunks of ``data.chunk_tokens``."""

    kind: Literal["text"] = "text"
    path: str = Field(description="file, relative to the data root unless absolute")
    allow_validation_split: bool = Field(
        False,
        description="train on a WikiText validation file (valid.txt, wiki.valid.*): offline the "
        "only WikiText-2 text besides test, which no benchmark here reports; test files are "
        "always refused, and the file may not also be eval.ppl_file",
    )


class FactsSource(_Section):
    """A JSON/JSONL knowledge-editing file; each record becomes one or two fact sentences."""

    kind: Literal["facts"] = "facts"
    path: str = Field(description="file, relative to the data root unless absolute")
    answers: Literal["new", "true", "both"] = Field(
        "both", description="answer(s) appended to the prompt: counterfactual, original, or both"
    )
    questions: bool = Field(
        False, description="also ask each fact's paraphrase prompts (the QA loss term)"
    )


class ProfilesSource(_Section):
    """Made-up people's everyday facts with questions (`larimar_memory.training.profiles`):
    what an agent's memory holds, said in the first person, the third person or as a turn."""

    kind: Literal["profiles"] = "profiles"
    count: int = Field(2000, ge=1, description="profiles (people), each a group of facts")
    seed: int = 0
    facts_per_profile: tuple[int, int] = Field((3, 8), description="facts per profile, range")
    persons: tuple[Literal["first", "third", "turn"], ...] = ("first", "third", "turn")
    family_share: float = Field(0.0, ge=0, le=1, description="share of profiles drawn from one "
                                "family of easily confused relations (profiles.FAMILIES)")
    made_up_share: float = Field(0.0, ge=0, le=1, description="share of names, brands and places "
                                 "that are made-up words, copied only from memory")

    @model_validator(mode="after")
    def _check_range(self) -> ProfilesSource:
        lo, hi = self.facts_per_profile
        if not 1 <= lo <= hi:
            raise ValueError(f"facts_per_profile must be 1 <= lo <= hi, got {lo}, {hi}")
        return self


class HFSource(_Section):
    """A Hugging Face ``datasets`` split (needs the optional ``datasets`` package and a hub)."""

    kind: Literal["hf"] = "hf"
    name: str = Field(description="dataset id, e.g. 'wikitext'")
    subset: str | None = Field(None, description="configuration, e.g. 'wikitext-103-raw-v1'")
    split: str = "train"
    text_field: str = "text"


Source = Annotated[
    TextSource | FactsSource | ProfilesSource | HFSource, Field(discriminator="kind")
]


class DataConfig(_Section):
    """Where the text comes from and how it is cut into chunks and episodes."""

    root: str | None = Field(
        None, description=f"data root; default ${DATA_ENV} or ../shared/data from the project root"
    )
    sources: list[Source] = Field(min_length=1)
    chunk_tokens: int = Field(64, ge=4, le=1024, description="max decoder tokens per chunk")
    min_chunk_tokens: int = Field(4, ge=1, description="shorter chunks are dropped")
    episode_size: int = Field(16, ge=1, description="chunks written to memory together (N)")
    batch_size: int = Field(1, ge=1, description="episodes per device per step (B)")
    max_chunks: int | None = Field(None, ge=1, description="cap on training chunks (smoke runs)")
    heldout_chunks: int = Field(64, ge=0, description="chunks held out for validation")
    num_workers: int = Field(0, ge=0)
    shuffle: bool = True

    @model_validator(mode="after")
    def _check_lengths(self) -> DataConfig:
        if self.min_chunk_tokens > self.chunk_tokens:
            raise ValueError(
                f"data.min_chunk_tokens ({self.min_chunk_tokens}) must be <= data.chunk_tokens "
                f"({self.chunk_tokens})"
            )
        return self

    def resolve_root(self) -> Path:
        """The data root: ``data.root``, else ``$LARIMAR_DATA``, else ``../shared/data``."""
        if self.root:
            return Path(self.root).expanduser()
        if os.environ.get(DATA_ENV):
            return Path(os.environ[DATA_ENV]).expanduser()
        project_root = Path(__file__).resolve().parents[2]
        candidate = project_root.parent / "shared" / "data"
        return candidate if candidate.is_dir() else Path.cwd().parent / "shared" / "data"

    def resolve(self, path: str) -> Path:
        """A source path: absolute as given, otherwise under the data root."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.resolve_root() / p


# --------------------------------------------------------------------------------------------
# model, loss, optimiser
# --------------------------------------------------------------------------------------------


class ModelSection(_Section):
    """How the LarimarModel is built: from a LarimarConfig or from a saved folder.

    Tiny random test backbones are ordinary configs (``codec: {kind: pooled, encoder_name:
    tiny-random:bert}``). For ``init: pretrained``, ``config`` holds only the switches
    ``train_encoder`` and ``decoder_training`` (``LarimarModel.set_trainable``).
    """

    init: Literal["config", "pretrained"] = Field(
        "config",
        description="'config': LarimarModel.from_config(LarimarConfig(**config)); 'pretrained':"
        " LarimarModel.from_pretrained(path), config then sets the trainable-part switches",
    )
    path: str | None = Field(None, description="folder of save_pretrained (init: pretrained)")
    config: dict[str, Any] = Field(
        default_factory=dict, description="LarimarConfig fields (validated by LarimarConfig)"
    )

    @model_validator(mode="after")
    def _check_path(self) -> ModelSection:
        if self.init == "pretrained" and not self.path:
            raise ValueError("model.path is required when model.init is 'pretrained'")
        return self


class BetaSchedule(_Section):
    """KL weight β over training. 'cyclical' is Optimus/Larimar's zero-then-linear cycle: each
    of ``cycles`` periods holds β at 0 for ``ratio_zero`` of the period, ramps linearly to
    ``max`` over ``ratio_increase`` and stays there (avoids KL vanishing early)."""

    kind: Literal["constant", "cyclical"] = "cyclical"
    max: float = Field(0.01, ge=0.0, description="β after the ramp (0: KL term off)")
    cycles: int = Field(10, ge=1)
    ratio_zero: float = Field(0.5, ge=0.0, le=1.0)
    ratio_increase: float = Field(0.25, gt=0.0, le=1.0)
    total_steps: int | None = Field(None, ge=1, description="default: trainer.max_steps")

    @model_validator(mode="after")
    def _check_ratios(self) -> BetaSchedule:
        if self.ratio_zero + self.ratio_increase > 1.0:
            raise ValueError(
                f"loss.kl.ratio_zero + ratio_increase must be <= 1, got "
                f"{self.ratio_zero} + {self.ratio_increase}"
            )
        return self

    def value(self, step: int, default_total: int) -> float:
        """β at optimiser step ``step``."""
        if self.kind == "constant" or self.max == 0.0:
            return self.max
        total = self.total_steps or default_total
        period = total / self.cycles
        if step >= total or period <= 0:
            return self.max
        pos = (step % period) / period
        if pos < self.ratio_zero:
            return 0.0
        return self.max * min(1.0, (pos - self.ratio_zero) / self.ratio_increase)


class LossConfig(_Section):
    """Weights of the terms of eq. 1 (names as in ``LossWeights``); 0 switches a term off.

    The model's terms are means (per target token, per readout-weight entry), not the paper's
    per-sequence sums, so a paper weight w on a sum over T tokens and K slots maps to about
    w·K/T here for the KL term.
    """

    recon_memory: float = Field(1.0, ge=0.0, description="decode the episode from the readout")
    recon_direct: float = Field(1.0, ge=0.0, description="α: decode from e(X), no memory")
    lm: float = Field(1.0, ge=0.0, description="language-model loss with no memory")
    qa: float = Field(0.0, ge=0.0, description="answer paraphrased questions from the readout")
    chat_share: float = Field(
        0.5, ge=0.0, le=1.0, description="share of QA questions asked as chat turns"
    )
    qa_facts: tuple[int, int] = Field(
        (1, 1), description="facts in each QA memory block, drawn per batch from this range: "
        "the asked fact among others (its own profile's first), as `ask` reads k facts"
    )
    kl: BetaSchedule = Field(default_factory=BetaSchedule, description="β schedule")

    @model_validator(mode="after")
    def _check_some_term(self) -> LossConfig:
        lo, hi = self.qa_facts
        if not 1 <= lo <= hi:
            raise ValueError(f"loss.qa_facts must be 1 <= lo <= hi, got {lo}, {hi}")
        if self.recon_memory == self.recon_direct == self.lm == self.qa == 0.0 and (
            self.kl.max == 0.0
        ):
            raise ValueError("every loss weight is 0: switch on at least one term")
        return self


class OptimConfig(_Section):
    """AdamW over the trainable parameters, with an optional warm-up and decay."""

    lr: float = Field(5e-5, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    warmup_steps: int = Field(0, ge=0)
    scheduler: Literal["constant", "linear", "cosine"] = "linear"
    grad_clip: float | None = Field(None, gt=0.0, description="gradient-norm clip")


# --------------------------------------------------------------------------------------------
# trainer, checkpoints, validation
# --------------------------------------------------------------------------------------------

Strategy = Literal["auto", "ddp", "deepspeed_stage_2", "deepspeed_stage_2_offload", "fsdp"]
Precision = Literal["32", "32-true", "bf16-mixed", "bf16-true", "16-mixed"]


class TrainerConfig(_Section):
    """Arguments of ``lightning.Trainer`` that recipes set."""

    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | str | list[int] = "auto"
    num_nodes: int = Field(1, ge=1)
    strategy: Strategy = "auto"
    precision: Precision = "32"
    accumulate_grad_batches: int = Field(1, ge=1)
    max_steps: int = Field(ge=1, description="optimiser steps")
    log_every_n_steps: int = Field(10, ge=1)
    val_every_n_steps: int | None = Field(
        None, ge=1, description="validation interval in optimiser steps; null: only at the end"
    )
    limit_val_batches: int = Field(4, ge=0, description="held-out / WikiText batches per check")
    progress_bar: bool = True
    deterministic: bool = False
    cpu_threads: int | None = Field(
        None, ge=1, description="torch CPU threads for the run (1 is fastest for tiny models "
        "on a busy machine); null: torch's default"
    )

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class CheckpointConfig(_Section):
    """Periodic Lightning checkpoints and resuming."""

    every_n_steps: int | None = Field(1000, ge=1, description="null: only the final one")
    keep: int = Field(3, ge=-1, description="newest checkpoints kept (-1: all)")
    resume: str | None = Field(
        "last",
        description="'last': continue from output_dir/checkpoints/last.ckpt when it exists; "
        "a path: continue from that checkpoint; null: always start fresh",
    )
    save_frozen: bool = Field(
        True,
        description="store frozen weights in checkpoints; false keeps only trainable ones "
        "(small checkpoints; the frozen base must then be rebuilt identically on resume)",
    )


class EvalConfig(_Section):
    """Periodic validation: exact reconstruction from memory and no-memory perplexity."""

    recon_episodes: int = Field(2, ge=0, description="held-out episodes greedily decoded")
    max_new_tokens: int | None = Field(None, ge=1, description="default: data.chunk_tokens")
    ppl_file: str | None = Field(
        "wikitext/wikitext-2/valid.txt", description="no-memory perplexity text; null: skip"
    )
    ppl_max_chunks: int = Field(64, ge=1)


class TrainConfig(_Section):
    """A whole training recipe."""

    name: str
    seed: int = 0
    output_dir: str | None = Field(None, description="default: runs/<name> under the cwd")
    model: ModelSection
    data: DataConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _check_ppl_not_trained_on(self) -> TrainConfig:
        ppl = self.eval.ppl_file
        for source in self.data.sources:
            if isinstance(source, TextSource) and ppl and (
                self.data.resolve(source.path) == self.data.resolve(ppl)
            ):
                raise ValueError(
                    f"eval.ppl_file {ppl} is also a training source: its perplexity would be "
                    "measured on training text; set eval.ppl_file to another file or null"
                )
        return self

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir or Path("runs") / self.name).expanduser()


# --------------------------------------------------------------------------------------------
# loading and overrides
# --------------------------------------------------------------------------------------------


def available_recipes() -> list[str]:
    """Names of the packaged recipes (``configs/<name>.yaml``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A packaged recipe name (``larimar-1.3b``) or a path to a YAML file."""
    p = Path(name_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise TrainingConfigError(f"recipe file {p} does not exist")
        return p
    candidate = CONFIG_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise TrainingConfigError(
            f"unknown recipe {str(name_or_path)!r}; packaged recipes: "
            f"{', '.join(available_recipes())}; or give a path to a YAML file"
        )
    return candidate


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML; list items by index)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise TrainingConfigError(f"override {item!r} is not of the form key.path=value")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise TrainingConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        parts = key.strip().split(".")
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: i + 1]), create=True)
        _assign(node, parts[-1], value, key)
    return raw


def _child(node: Any, part: str, path: str, create: bool) -> Any:
    if isinstance(node, list):
        idx = _index(node, part, path)
        return node[idx]
    if not isinstance(node, dict):
        raise TrainingConfigError(f"override path {path!r} goes through a non-mapping value")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def _assign(node: Any, part: str, value: Any, key: str) -> None:
    if isinstance(node, list):
        node[_index(node, part, key)] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise TrainingConfigError(f"override {key!r} goes through a non-mapping value")


def _index(node: list[Any], part: str, path: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise TrainingConfigError(
            f"override path {path!r}: {part!r} is not an index of a list of {len(node)} items"
        )
    return int(part)


def load_config(
    name_or_path: str | os.PathLike[str], overrides: list[str] | None = None
) -> TrainConfig:
    """Read a recipe, apply overrides, validate; errors name the field and what to do."""
    path = recipe_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TrainingConfigError(f"recipe {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise TrainingConfigError(f"recipe {path} must be a mapping at the top level")
    raw = apply_overrides(raw, list(overrides or []))
    return validate_config(raw, source=str(path))


def validate_config(raw: dict[str, Any], source: str = "<dict>") -> TrainConfig:
    """Validate a raw mapping into a TrainConfig with a readable error."""
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {loc}: {err['msg']}{shown}")
        message = f"invalid training config {source}:\n" + "\n".join(lines)
        raise TrainingConfigError(message) from exc
