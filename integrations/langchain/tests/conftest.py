"""Fixtures for langchain-larimar: a tiny Larimar per test (one tiny model per session) and a
scripted chat model that can drive `create_agent` with tool calls."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from larimar_memory.service import Larimar
from larimar_memory.testing import tiny_larimar
from pydantic import Field

# A tiny model with token-code latents, like the packaged larimar-smol (47 tokens per memory
# row): a recalled hit's text, read back from the memory rows, is then the fact itself.
TOKEN_CODES = {"latent": "token-codes", "num_latent_tokens": 48, "max_text_tokens": 47}


@dataclass(frozen=True)
class Texts:
    """Facts and questions the tiny Larimar's hashing embedder scores clearly: cosine 0.8 in
    scope, below 0.2 out of scope, against the 0.56 threshold."""

    fact: str = "My favourite colour is green."
    question: str = "What is my favourite colour?"
    description: str = "my favourite colour"
    other_fact: str = "My sister is called Ana."
    other_question: str = "What is my sister called?"
    unrelated: str = "Tell me a joke about cats."
    # about the user, nothing like it stored next to other_fact (`question` shares "what is my"
    # with it: cosine 0.4 under the hashing embedder, too close to tell)
    unstored: str = "Where do I live these days?"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: uses the real packaged models (slower)")


@pytest.fixture(scope="session")
def tiny_seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Larimar]:
    """Built once: the tiny model and embedder that every test's Larimar shares."""
    seed = tiny_larimar(tmp_path_factory.mktemp("seed") / "seed.sqlite3",
                        model_overrides=TOKEN_CODES)
    yield seed
    seed.close()


@pytest.fixture
def larimar(tiny_seed: Larimar, tmp_path: Any) -> Iterator[Larimar]:
    """A fresh tiny Larimar with its own SQLite fact log."""
    memory = Larimar(
        tiny_seed.model,
        store=tmp_path / "store.sqlite3",
        embedder=tiny_seed.embedder,
        settings=tiny_seed.settings,
    )
    yield memory
    memory.close()


class ScriptedChatModel(GenericFakeChatModel):
    """`GenericFakeChatModel` that `create_agent` can bind tools to, and that records the
    messages of every call. Its replies (text or tool calls) are scripted in ``messages``."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


    @staticmethod
    def tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
        return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])


@pytest.fixture
def texts() -> Texts:
    return Texts()


@pytest.fixture
def scripted() -> type[ScriptedChatModel]:
    """The scripted chat model class (test modules cannot import this conftest by name)."""
    return ScriptedChatModel
