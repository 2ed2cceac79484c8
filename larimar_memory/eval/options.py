"""Options shared by every experiment (the CLI's flags); light to import (pydantic only)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

RESULTS_DIR = Path("docs/results")


class EvalOptions(BaseModel):
    """Options shared by every experiment."""

    model_config = ConfigDict(extra="forbid")

    data: Path | None = Field(None, description="main data file; None = the experiment default")
    limit: int | None = Field(None, ge=1, description="records (or edits) to use; None = default")
    out_dir: Path = Field(RESULTS_DIR, description="where JSON and PNG files go")
    seed: int = 0
    block_rows: int = Field(
        512, ge=1, le=65536,
        description="K per block of the service's BlockMemory (LarimarSettings.block_rows)",
    )
    paper_slots: int = Field(
        512, ge=1, le=65536,
        description="K, rows of the paper's single EpisodicMemory where an experiment uses one "
        "(paper: 512)",
    )
    sample: int | None = Field(
        None, ge=1, description="cap on facts decoded per evaluation point in sweeps"
    )
    sweep: list[float] | None = Field(
        None, description="the experiment's sweep values (batch sizes, n_fact, σ_w, N, ...)"
    )
    batch_size: int = Field(16, ge=1, description="rows per decoder forward")
    max_new_tokens: int = Field(12, ge=1, le=512, description="tokens generated per answer")
