"""LangChain's standard integration tests (langchain-tests): `ChatLarimar` on the real packaged
models (answers are checked for shape, the standard suite's contract), and the three tools
(`ToolsIntegrationTests`) and the top-k retriever (`RetrieversIntegrationTests`) on a tiny
Larimar, which they really call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    RetrieversIntegrationTests,
    ToolsIntegrationTests,
)
from larimar_memory.errors import ModelNotFoundError
from larimar_memory.service import Larimar, LarimarSettings

from langchain_larimar import (
    ChatLarimar,
    LarimarRetriever,
    create_forget_tool,
    create_recall_tool,
    create_remember_tool,
)

FACTS = [
    "My favourite colour is green.",
    "My favourite colour used to be blue.",
    "My sister is called Ana.",
    "My favourite food is pasta.",
]

# A tiny model with token-code latents, like the packaged larimar-smol (47 tokens per memory
# row): a recalled hit's text, read back from the memory rows, is then the fact itself.
TOKEN_CODES = {"latent": "token-codes", "num_latent_tokens": 48, "max_text_tokens": 47}


@pytest.mark.integration
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


@pytest.fixture(scope="module")
def stocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Larimar]:
    """A tiny Larimar holding a few facts about favourites."""
    from larimar_memory.testing import tiny_larimar

    larimar = tiny_larimar(tmp_path_factory.mktemp("tools") / "facts.sqlite3",
                           model_overrides=TOKEN_CODES)
    larimar.remember(FACTS)
    yield larimar
    larimar.close()


class _OnTinyLarimar:
    larimar: Larimar | None = None

    @pytest.fixture(autouse=True)
    def _larimar(self, request: pytest.FixtureRequest, stocked: Larimar) -> None:
        request.cls.larimar = stocked


class TestRememberToolIntegration(_OnTinyLarimar, ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> BaseTool:
        return create_remember_tool(self.larimar, namespace="standard-remember")

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"fact": "Alice lives in Lisbon."}


class TestRecallToolIntegration(_OnTinyLarimar, ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> BaseTool:
        return create_recall_tool(self.larimar, k=2)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"query": "What is my favourite colour?"}


class TestForgetToolIntegration(_OnTinyLarimar, ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> BaseTool:
        return create_forget_tool(self.larimar, namespace="standard-forget")

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"fact": "where Alice lives"}  # nothing stored there: an answer, not an error


class TestLarimarRetrieverIntegration(_OnTinyLarimar, RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[LarimarRetriever]:
        return LarimarRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"larimar": self.larimar, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "What is my favourite colour?"
