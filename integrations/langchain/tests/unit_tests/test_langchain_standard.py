"""LangChain's standard unit tests (langchain-tests) for `ChatLarimar` and the three tools."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ChatModelUnitTests, ToolsUnitTests

from langchain_larimar import (
    ChatLarimar,
    create_forget_tool,
    create_recall_tool,
    create_remember_tool,
)


class TestChatLarimarStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatLarimar]:
        return ChatLarimar

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # No larimar=: the model must build without loading anything (the embedded Larimar()
        # is only created on first use), and these tests never call it.
        return {"namespace": "standard-tests"}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # An embedded model has no API key, timeout or retries; unknown arguments are refused
        # (extra="forbid") rather than silently ignored, so leave those out.
        params = super().standard_chat_model_params
        for name in ("api_key", "timeout", "max_retries"):
            params.pop(name, None)
        return params


class TestRememberToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self) -> BaseTool:
        return create_remember_tool()

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"fact": "Alice lives in Lisbon."}


class TestRecallToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self) -> BaseTool:
        return create_recall_tool()

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"query": "Where does Alice live?"}


class TestForgetToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self) -> BaseTool:
        return create_forget_tool()

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"fact": "where Alice lives"}
