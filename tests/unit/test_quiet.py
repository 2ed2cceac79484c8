"""Normal output carries no third-party noise; LARIMAR_VERBOSE=1 (``larimar --verbose``)
shows it again."""

from __future__ import annotations

import warnings

import pytest
from transformers.utils import logging as hf_logging

from larimar_memory.quiet import VERBOSE_ENV, quiet_loading


def _library_warning() -> None:
    warnings.warn_explicit("`x` is deprecated", FutureWarning, "modeling_utils.py", 1,
                           module="transformers.modeling_utils")


def test_loading_is_quiet_unless_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    assert hf_logging.is_progress_bar_enabled()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_loading():
            assert not hf_logging.is_progress_bar_enabled()
            _library_warning()
            warnings.warn("ours stays visible", UserWarning, stacklevel=1)
        assert hf_logging.is_progress_bar_enabled()  # restored
        _library_warning()  # outside: as before
    assert [str(w.message) for w in seen] == ["ours stays visible", "`x` is deprecated"]

    monkeypatch.setenv(VERBOSE_ENV, "1")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_loading():
            assert hf_logging.is_progress_bar_enabled()
            _library_warning()
    assert len(seen) == 1


def test_decoding_raises_no_deprecation_warning(larimar) -> None:
    larimar.remember("Alice lives in Lisbon.")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        larimar.ask("Where does Alice live?")
        larimar.recall("Where does Alice live?", k=1)
    assert [str(w.message) for w in seen if issubclass(w.category, FutureWarning)] == []
