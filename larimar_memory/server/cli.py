"""`larimar serve`: run the HTTP API under uvicorn.

Mounted on the main CLI with ``app.command("serve")(serve)`` (``from larimar_memory.server.cli
import serve``); also runnable alone: ``python -m larimar_memory.server.cli --port 8000``.

The settings travel to uvicorn's workers as JSON in ``$LARIMAR_SERVER_SETTINGS`` (no keys in
it: workers read the keys file and ``$LARIMAR_API_KEYS`` themselves), so ``--workers N`` starts
N processes, each with its own model, sharing one store.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import get_args

import typer

from ..types import DecoderWeights
from .settings import SETTINGS_ENV, ServerSettings

logger = logging.getLogger(__name__)


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 for all."),
    port: int = typer.Option(8000, help="TCP port."),
    store: str | None = typer.Option(
        None, help="SQLite file, or a postgresql:// DSN for several replicas. "
        "Default: $LARIMAR_STORE or the user data folder.",
    ),
    api_keys_file: Path | None = typer.Option(  # noqa: B008 (how typer declares options)
        None, help="JSON or TOML file mapping API keys to tenants (also: $LARIMAR_API_KEYS="
        "key1:tenantA,key2:tenantB).", dir_okay=False,
    ),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Serve without API keys: LOCAL DEVELOPMENT ONLY; every caller "
        "sees every unprefixed namespace.",
    ),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes (each loads a model)."),
    max_concurrency: int = typer.Option(
        8, min=1, help="Core calls running at once per process (the rest queue)."
    ),
    max_body_bytes: int = typer.Option(1_048_576, min=1, help="Larger bodies get 413."),
    cache_mb: float | None = typer.Option(
        None, min=0, help="RAM for cached namespace memories, in MB per process; the least "
        "recently used beyond it are evicted and reloaded from the store (default: 2048).",
    ),
    device: str | None = typer.Option(
        None, help="torch device for encoding and decoding, e.g. cuda (default: CPU)."
    ),
    torch_threads: int | None = typer.Option(
        None, min=1, help="torch threads per process (default: torch's choice)."
    ),
    decoder_weights: str | None = typer.Option(
        None, help="Decoder linear weights for decoding: int8 (the default on a CPU), "
        "float16, float32 (the model as loaded), or onnx-int8 (the memory LM in ONNX "
        "Runtime: faster on one core; exported once to the cache dir)."
    ),
    batch_window_ms: float = typer.Option(
        0.0, min=0, help="Concurrent remembers (recalls) arriving while a batch runs, or within "
        "this many ms, share one embedder pass and one transaction per namespace (one reading "
        "pass)."
    ),
    no_batching: bool = typer.Option(False, "--no-batching",
                                     help="Run every remember and recall alone."),
    log_level: str = typer.Option("info", help="uvicorn/larimar log level."),
    tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Tiny random model (tests)."),
) -> None:
    """Serve remember / recall / ask / forget over HTTP (FastAPI + uvicorn)."""
    import uvicorn

    from .auth import ApiKeyConfigError, resolve_keys

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if decoder_weights is not None and decoder_weights not in get_args(DecoderWeights):
        raise typer.BadParameter(", ".join(get_args(DecoderWeights)),
                                 param_hint="--decoder-weights")
    settings = ServerSettings(
        auth=not no_auth, api_keys_file=api_keys_file, store=store, tiny=tiny,
        max_body_bytes=max_body_bytes, max_concurrency=max_concurrency,
        torch_threads=torch_threads, device=device, cache_mb=cache_mb,
        decoder_weights=decoder_weights,  # type: ignore[arg-type]  # checked above
        batch_window_ms=batch_window_ms,
        micro_batching=not no_batching,
    )
    if settings.auth:
        try:  # fail here, with a readable message, rather than inside a worker
            keys = resolve_keys(None, api_keys_file)
        except ApiKeyConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint="--api-keys-file") from exc
        if not keys:
            raise typer.BadParameter(
                "no API keys: pass --api-keys-file or set LARIMAR_API_KEYS=key:tenant,...; "
                "use --no-auth only for local development", param_hint="--api-keys-file",
            )
        logger.info("auth on: %d API keys for %d tenants", len(keys), len(set(keys.values())))
    else:
        logger.warning("auth OFF (--no-auth): anyone who can reach %s:%d can read and forget "
                       "every fact", host, port)
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run(
        "larimar_memory.server.factory:app_from_env", factory=True, host=host, port=port,
        workers=workers, log_level=log_level.lower(), timeout_graceful_shutdown=10,
    )


def main() -> None:  # pragma: no cover - console entry
    typer.run(serve)


if __name__ == "__main__":  # pragma: no cover
    main()
