"""`ServerSettings`: everything `create_app` needs besides the `Larimar` it serves.

Kept free of FastAPI so the CLI, the app factory and the tests can build settings without
importing the web stack. Secrets (API keys) come from a file or the environment; the settings
object only carries their location, so serialising it (the CLI hands it to uvicorn workers
through an environment variable) never writes a key.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..contract import MAX_LIST_LIMIT
from ..types import DecoderWeights

SETTINGS_ENV = "LARIMAR_SERVER_SETTINGS"
"""Environment variable holding `ServerSettings` as JSON, read by `factory.app_from_env`."""


class ServerSettings(BaseModel):
    """How the HTTP server behaves: auth, limits, which store and model to open."""

    model_config = ConfigDict(extra="forbid")

    auth: bool = Field(
        True,
        description="require an API key; False (the explicit --no-auth flag) is for local "
        "development only: every caller then sees the store's namespaces unprefixed",
    )
    api_keys: dict[str, str] = Field(
        default_factory=dict, description="API key -> tenant, besides the file and env keys"
    )
    api_keys_file: Path | None = Field(
        None, description="JSON or TOML file mapping API keys to tenants (see server.auth)"
    )
    store: str | None = Field(
        None,
        description="SQLite file path, or a postgresql:// DSN; None = the default SQLite store",
    )
    tiny: bool = Field(
        False, description="serve a tiny random model (tests and benchmarks of the server only)"
    )
    max_body_bytes: int = Field(
        1_048_576, gt=0, description="larger request bodies get 413 before any parsing"
    )
    max_concurrency: int = Field(
        8, gt=0, le=1024,
        description="core calls running at once in worker threads; more wait their turn "
        "(the model is CPU-bound, so many more threads than cores only add contention)",
    )
    cache_mb: float | None = Field(
        None, ge=0,
        description="in-process namespace memories beyond this many MB (per process) are "
        "evicted, least recently used first (`LarimarSettings.cache_bytes`); None: its default",
    )
    device: str | None = Field(
        None, description="torch device for the model (e.g. 'cuda', 'cuda:1'); None = CPU"
    )
    decoder_weights: DecoderWeights | None = Field(
        None, description="how the decoder's linear weights are stored for decoding "
        "(`LarimarSettings.decoder_weights`); None: its default, int8 on a CPU"
    )
    torch_threads: int | None = Field(
        None, gt=0, description="torch intra-op threads; None leaves torch's default"
    )
    batch_window_ms: float = Field(
        0.0, ge=0, le=1000,
        description="concurrent remembers (recalls) arriving while a batch runs, or within this "
        "many ms of the first, are embedded in one pass and written in one transaction per "
        "namespace (read in one pass); 0, the default, adds no wait: measured on 2 cores, a "
        "2 ms window cost a lone caller 3 ms and 4 callers 10-20 % of their throughput",
    )
    max_batch: int = Field(
        64, gt=0, le=4096, description="most remember calls written in one batch"
    )
    micro_batching: bool = Field(True, description="False: every remember runs on its own")
    metrics_auth: bool = Field(
        False, description="require an API key for /metrics (scrapers usually have none)"
    )
    max_list_limit: int = Field(MAX_LIST_LIMIT, gt=0, le=MAX_LIST_LIMIT,
                                description="largest page of GET .../facts")
