"""Third-party noise kept out of normal output: transformers' weight-loading progress bars and
its info logs, and the deprecation warnings transformers, peft and accelerate raise about their
own internals while a model loads. None of it is something a user of larimar can act on.

`quiet_loading` wraps model and embedder loading. ``LARIMAR_VERBOSE=1`` (what ``larimar
--verbose`` sets, inherited by server workers) shows everything again.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

VERBOSE_ENV = "LARIMAR_VERBOSE"
_NOISY = r"(transformers|peft|accelerate|sentence_transformers|torch)(\.|$)"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No progress bars, info logs or FutureWarning/DeprecationWarning from the libraries that
    load models, for the duration (unless `verbose`)."""
    if verbose():
        yield
        return
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category, module=_NOISY)
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
