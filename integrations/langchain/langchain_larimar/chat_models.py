"""`ChatLarimar`: Larimar's memory-conditioned decoder as a LangChain chat model.

It answers the latest human message with `Larimar.ask`: decoding conditioned on the memory
readout when the scope detector says the message is about stored facts; otherwise plain
decoding for a general question, and "I don't have that in memory" for a question about the
user (route ``unknown``: nothing is invented). It is a small memory decoder, not a general
assistant: earlier turns and system messages do not reach it, and it cannot call tools.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from larimar_memory.conversation import TurnResult, observe
from larimar_memory.types import AskResult
from pydantic import ConfigDict, Field, field_validator, model_validator

from ._client import LarimarBinding
from ._convert import last_human_text

DEFAULT_MODEL = "larimar-smol"
PROVIDER = "larimar"
_PIECES = re.compile(r"\s*\S+|\s+")  # words with their leading whitespace: "a b" -> "a", " b"
_CALL_KWARGS = {"namespace", "max_tokens"}  # no per-call model: one Larimar, one checkpoint


def _truncate_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """``text`` cut before the first stop sequence, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop or [] if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class ChatLarimar(LarimarBinding, BaseChatModel):
    """Chat model whose replies are Larimar's answers: `Larimar.ask` on the latest human message.

    When the scope detector says the message is about stored facts the answer is decoded
    conditioned on the memory readout (``route="memory"``), otherwise by the plain decoder
    (``route="plain"``), or, for a question about the user that memory has nothing on, with
    "I don't have that in memory" (``route="unknown"``); the route, the scope score and the
    addressed fact are in
    ``response_metadata``. With ``observe_user_messages=True`` the latest human message is first
    applied to the memory (stated facts written, "forget …" requests honoured; no LLM call).

    Limits, honestly: only the latest human message is answered (earlier turns and system
    messages are not seen), decoding is greedy (``temperature`` may only be 0 or None), there is
    no tool calling, and streaming splits the finished answer into word chunks because the core
    has no token streaming yet. Memory-conditioned answers are only as good as the checkpoint
    (the packaged ``larimar-smol`` is a 135M-parameter decoder).

    Setup:
        ``pip install langchain-larimar``

    Instantiate:
        .. code-block:: python

            from langchain_larimar import ChatLarimar
            from larimar_memory.service import Larimar

            llm = ChatLarimar()  # the shared embedded Larimar(), created on first use
            llm = ChatLarimar(larimar=Larimar(store="facts.sqlite3"), namespace="alice",
                              max_tokens=32, observe_user_messages=True)

    Use:
        .. code-block:: python

            llm.invoke("My favourite colour is green.")
            reply = llm.invoke("What is my favourite colour?")
            reply.response_metadata["route"], reply.response_metadata["scope_score"]
            for chunk in llm.stream("What is my favourite colour?"):
                print(chunk.content, end="")
            await llm.ainvoke("What is my favourite colour?", namespace="bob")  # per call
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True, extra="forbid")

    model_name: str = Field(
        default=DEFAULT_MODEL,
        alias="model",
        description="checkpoint name reported in traces; the Larimar decides the real model",
    )
    max_tokens: int | None = Field(
        default=None, gt=0, le=1024, description="answer length; None: the Larimar's setting"
    )
    stop: list[str] | None = Field(default=None, description="answers are cut before these")
    temperature: float | None = Field(
        default=None, description="decoding is greedy: only None or 0 is accepted"
    )
    streaming: bool = Field(default=False, description="invoke() goes through _stream")
    observe_user_messages: bool = Field(
        default=False,
        description="apply the latest human message to the memory before answering",
    )

    @field_validator("temperature")
    @classmethod
    def _check_temperature(cls, value: float | None) -> float | None:
        if value not in (None, 0):
            raise ValueError(
                f"ChatLarimar decodes greedily, so temperature must be 0 or None, got {value}; "
                "sampling is not exposed by larimar-memory yet"
            )
        return value

    @model_validator(mode="after")
    def _check_model_name(self) -> ChatLarimar:
        if self.larimar is None and self.model_name != DEFAULT_MODEL:
            raise ValueError(
                f"ChatLarimar without larimar= uses the embedded Larimar() on the packaged "
                f"{DEFAULT_MODEL!r} checkpoint, but got model={self.model_name!r}; pass "
                f"larimar=Larimar({self.model_name!r}) to use another checkpoint"
            )
        return self

    @property
    def _llm_type(self) -> str:
        return "larimar-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "namespace": self.namespace,
            "max_tokens": self.max_tokens,
            "observe_user_messages": self.observe_user_messages,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
            ls_temperature=0.0,
        )
        max_tokens = kwargs.get("max_tokens") or self.max_tokens
        if max_tokens:
            params["ls_max_tokens"] = max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # -- conversion ------------------------------------------------------------------------------

    def _prepare(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> tuple[str, dict]:
        unknown = set(kwargs) - _CALL_KWARGS
        if unknown:
            raise TypeError(
                f"ChatLarimar got unsupported call arguments {sorted(unknown)}; it takes "
                f"{sorted(_CALL_KWARGS)} (no tool calling, sampling or per-call model)"
            )
        question = last_human_text(messages)
        if question is None or not question.strip():
            raise ValueError(
                f"ChatLarimar answers the latest human message, but none with text was among "
                f"the {len(messages)} messages; end the conversation with a user turn"
            )
        options: dict[str, Any] = {"namespace": kwargs.get("namespace", self.namespace)}
        max_tokens = kwargs.get("max_tokens") or self.max_tokens
        if max_tokens:
            options["max_new_tokens"] = max_tokens
        return question, options

    def _metadata(self, answer: AskResult, turn: TurnResult | None, stopped: bool) -> dict:
        metadata: dict[str, Any] = {
            "model_name": self.model_name,
            "model_provider": PROVIDER,
            "finish_reason": "stop_sequence" if stopped else "stop",
            "route": answer.route,
            "scope_score": answer.scope.score,
            "in_scope": answer.scope.in_scope,
            "scope_threshold": answer.scope.threshold,
            "fact_id": answer.fact.id if answer.fact is not None else None,
        }
        if turn is not None:
            metadata["remembered"] = list(turn.remembered)
            metadata["forgotten"] = [fact.id for fact in turn.forgotten]
        return metadata

    def _message(self, answer: AskResult, turn: TurnResult | None, stop: list[str] | None):
        text, stopped = _truncate_at_stop(answer.answer, stop or self.stop)
        return AIMessage(content=text, response_metadata=self._metadata(answer, turn, stopped))

    # -- generation ------------------------------------------------------------------------------

    def _answer(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> tuple[AskResult, TurnResult | None]:
        question, options = self._prepare(messages, kwargs)
        turn = None
        if self.observe_user_messages:
            turn = observe(self.client, question, namespace=options["namespace"])
        return self.client.ask(question, **options), turn

    async def _aanswer(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> tuple[AskResult, TurnResult | None]:
        question, options = self._prepare(messages, kwargs)
        turn = None
        if self.observe_user_messages:
            # The core's turn parser is synchronous; keep it off the event loop.
            turn = await asyncio.to_thread(
                observe, self.client, question, namespace=options["namespace"]
            )
        return await self.client.aask(question, **options), turn

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._message(*self._answer(messages, kwargs), stop)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._message(*await self._aanswer(messages, kwargs), stop)
        return ChatResult(generations=[ChatGeneration(message=message)])

    @staticmethod
    def _chunks(message: AIMessage) -> Iterator[ChatGenerationChunk]:
        """The finished answer as word chunks, then a last chunk carrying the metadata (the
        core decodes the whole answer before returning; there is no token streaming yet)."""
        for piece in _PIECES.findall(str(message.content)):
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="", response_metadata=message.response_metadata, chunk_position="last"
            )
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._message(*self._answer(messages, kwargs), stop)
        for chunk in self._chunks(message):
            if run_manager and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        message = self._message(*await self._aanswer(messages, kwargs), stop)
        for chunk in self._chunks(message):
            if run_manager and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
