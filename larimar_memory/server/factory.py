"""Building what the server serves: the store from a path or URL (`open_store`), the
`Larimar`, and the app from the environment (the entry point uvicorn imports, also in each
worker process)."""

from __future__ import annotations

import logging
import os

from ..service import Larimar, LarimarSettings
from ..store import open_store
from .settings import SETTINGS_ENV, ServerSettings

logger = logging.getLogger(__name__)


def build_larimar(settings: ServerSettings) -> Larimar:
    """The `Larimar` a server opened by itself serves; the caller closes ``memory.store``
    (Larimar does not own a store it was handed)."""
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    overrides: dict[str, object] = {} if settings.cache_mb is None else {
        "cache_bytes": int(settings.cache_mb * 1024**2)}
    if settings.decoder_weights is not None:
        overrides["decoder_weights"] = settings.decoder_weights
    store = open_store(settings.store)
    try:
        if settings.tiny:
            from ..testing import tiny_larimar

            logger.warning("serving the TINY RANDOM model: for tests and benchmarks only")
            memory: Larimar = tiny_larimar(store, **overrides)
        else:
            memory = Larimar(store=store, device=settings.device,
                             settings=LarimarSettings(**overrides))
    except BaseException:
        store.close()
        raise
    return memory


def settings_from_env() -> ServerSettings:
    raw = os.environ.get(SETTINGS_ENV)
    return ServerSettings.model_validate_json(raw) if raw else ServerSettings()


def app_from_env():  # type: ignore[no-untyped-def]  # -> FastAPI; uvicorn --factory target
    """``uvicorn --factory larimar_memory.server.factory:app_from_env``: settings from
    ``$LARIMAR_SERVER_SETTINGS`` (JSON), keys from the file it names and ``$LARIMAR_API_KEYS``."""
    from .app import create_app

    return create_app(None, settings_from_env())
