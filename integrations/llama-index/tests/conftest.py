"""Fixtures: a tiny Larimar (random tiny model + hashing embedder, < 1 s) and a scripted
function-calling LLM, so agent runs are real `FunctionAgent` workflows with no LLM API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM

from larimar_memory.testing import tiny_larimar

# A tiny model with token-code latents, like the packaged larimar-smol (47 tokens per memory
# row): a recalled hit's text, read back from the memory rows, is then the fact itself.
TOKEN_CODES = {"latent": "token-codes", "num_latent_tokens": 48, "max_text_tokens": 47}


@pytest.fixture
def larimar(tmp_path):
    memory = tiny_larimar(tmp_path / "store.sqlite3", model_overrides=TOKEN_CODES)
    yield memory
    memory.close()


class ScriptedLLM:
    """Plays a list of tool calls, one per user turn: a turn ending in a user message gets the
    next scripted call; a turn ending in a tool result gets that result back as the answer."""

    def __init__(self, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self.calls = list(calls)
        self.seen: list[list[ChatMessage]] = []  # what the agent sent, per LLM call

    def __call__(self, messages: Sequence[ChatMessage], **_: Any) -> ChatMessage:
        self.seen.append(list(messages))
        last = messages[-1]
        if last.role == MessageRole.TOOL or not self.calls:
            return ChatMessage(role=MessageRole.ASSISTANT, content=last.content or "ok")
        name, kwargs = self.calls.pop(0)
        call = ToolCallBlock(tool_call_id=f"call-{len(self.seen)}", tool_name=name,
                             tool_kwargs=kwargs)
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])


@pytest.fixture
def scripted_llm() -> Callable[[list[tuple[str, dict[str, Any]]]], tuple[Any, ScriptedLLM]]:
    def make(calls: list[tuple[str, dict[str, Any]]]) -> tuple[Any, ScriptedLLM]:
        script = ScriptedLLM(calls)
        return MockFunctionCallingLLM(response_generator=script), script

    return make
