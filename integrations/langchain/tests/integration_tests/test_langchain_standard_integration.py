"""LangChain's standard integration tests (langchain-tests) for `ChatLarimar` on the real
packaged models. Answers are checked for shape (the standard suite's contract)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from larimar_memory.errors import ModelNotFoundError
from larimar_memory.service import Larimar, LarimarSettings

from langchain_larimar import ChatLarimar

pytestmark = pytest.mark.integration


class TestChatLarimarStandardIntegration(ChatModelIntegrationTests):
    larimar: Larimar | None = None

    @pytest.fixture(autouse=True, scope="class")
    def _real_larimar(
        self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[None]:
        """One Larimar on the packaged models for the whole class (loading takes ~30 s)."""
        try:
            larimar = Larimar(
                store=tmp_path_factory.mktemp("standard") / "facts.sqlite3",
                settings=LarimarSettings(max_new_tokens=8),
            )
        except ModelNotFoundError as exc:
            pytest.skip(f"packaged models not installed: {exc}")
        request.cls.larimar = larimar
        yield
        larimar.close()

    @property
    def chat_model_class(self) -> type[ChatLarimar]:
        return ChatLarimar

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"larimar": self.larimar}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # No API key, timeout or retries for an embedded model; short answers keep CPU decoding
        # quick (the suite only checks their shape).
        params = super().standard_chat_model_params
        for name in ("api_key", "timeout", "max_retries"):
            params.pop(name, None)
        params["max_tokens"] = 8
        return params

    @property
    def returns_usage_metadata(self) -> bool:
        return False  # the core reports no token counts

    @property
    def supports_model_override(self) -> bool:
        return False  # one Larimar, one checkpoint
