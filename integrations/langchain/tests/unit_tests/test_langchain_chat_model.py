"""`ChatLarimar` on the tiny Larimar: routes, metadata, observing, streaming, async, errors."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from pydantic import ValidationError

from langchain_larimar import ChatLarimar
from langchain_larimar.chat_models import _truncate_at_stop


def test_routes_and_metadata(larimar, texts) -> None:
    llm = ChatLarimar(larimar=larimar, max_tokens=4)
    unknown = llm.invoke(texts.question)  # about the user, nothing stored
    assert isinstance(unknown, AIMessage)
    assert unknown.response_metadata["route"] == "unknown"
    assert unknown.response_metadata["fact_id"] is None

    fact_id = larimar.remember(texts.fact).ids[0]
    reply = llm.invoke([SystemMessage("ignored"), HumanMessage(texts.question)])
    meta = reply.response_metadata
    assert meta["route"] == "memory" and meta["in_scope"] is True
    assert meta["fact_id"] == fact_id and meta["scope_score"] >= meta["scope_threshold"]
    assert meta["model_name"] == "larimar-smol" and meta["model_provider"] == "larimar"
    # the same answer the core gives
    assert reply.content == larimar.ask(texts.question, max_new_tokens=4).answer
    assert llm.invoke(texts.unrelated).response_metadata["route"] == "plain"


def test_observe_user_messages(larimar, texts) -> None:
    llm = ChatLarimar(larimar=larimar, observe_user_messages=True)
    reply = llm.invoke(texts.fact)
    assert [f.text for f in larimar.list()] == [texts.fact]
    assert reply.response_metadata["remembered"] == [larimar.list()[0].id]
    assert llm.invoke(texts.question).response_metadata["route"] == "memory"
    forgot = llm.invoke(f"Please forget {texts.description}.")
    assert len(forgot.response_metadata["forgotten"]) == 1 and larimar.list() == []


def test_namespace_field_and_per_call(larimar, texts) -> None:
    larimar.remember(texts.fact, namespace="alice")
    assert ChatLarimar(larimar=larimar).invoke(texts.question).response_metadata["route"] == (
        "unknown"
    )
    llm = ChatLarimar(larimar=larimar, namespace="alice")
    assert llm.invoke(texts.question).response_metadata["route"] == "memory"
    assert llm.invoke(texts.question, namespace="bob").response_metadata["route"] == "unknown"


def test_stream_chunks_the_answer_and_ends_with_metadata(larimar, texts) -> None:
    larimar.remember(texts.fact)
    llm = ChatLarimar(larimar=larimar, max_tokens=4)
    chunks = list(llm.stream(texts.question))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert chunks[-1].chunk_position == "last"
    assert chunks[-1].response_metadata["route"] == "memory"
    assert "".join(c.text for c in chunks) == llm.invoke(texts.question).content
    streaming = ChatLarimar(larimar=larimar, max_tokens=4, streaming=True)
    assert streaming.invoke(texts.question).response_metadata["route"] == "memory"


@pytest.mark.asyncio
async def test_async_invoke_and_stream(larimar, texts) -> None:
    llm = ChatLarimar(larimar=larimar, max_tokens=4, observe_user_messages=True)
    await llm.ainvoke(texts.fact)
    assert [f.text for f in larimar.list()] == [texts.fact]
    reply = await llm.ainvoke(texts.question)
    assert reply.response_metadata["route"] == "memory"
    chunks = [c async for c in llm.astream(texts.question)]
    assert chunks[-1].response_metadata["route"] == "memory"
    assert "".join(c.text for c in chunks) == reply.content


def test_stop_sequences() -> None:
    assert _truncate_at_stop("Green. Blue. Red.", [". B", "Red"]) == ("Green", True)
    assert _truncate_at_stop("Green", ["x", ""]) == ("Green", False)
    assert _truncate_at_stop("Green", None) == ("Green", False)


def test_argument_errors(larimar) -> None:
    with pytest.raises(ValidationError, match="temperature must be 0 or None"):
        ChatLarimar(larimar=larimar, temperature=0.7)
    with pytest.raises(ValidationError, match="extra"):
        ChatLarimar(larimar=larimar, api_key="secret")
    with pytest.raises(ValidationError, match="pass larimar=Larimar"):
        ChatLarimar(model="other-checkpoint")
    assert ChatLarimar(larimar=larimar, model="my-checkpoint", temperature=0).model_name == (
        "my-checkpoint"
    )
    llm = ChatLarimar(larimar=larimar)
    with pytest.raises(ValueError, match="latest human message"):
        llm.invoke([SystemMessage("only a system message")])
    with pytest.raises(TypeError, match="unsupported call arguments"):
        llm.invoke("hi", tools=[])


def test_ls_params(larimar) -> None:
    llm = ChatLarimar(larimar=larimar, max_tokens=8, stop=["\n"])
    params = llm._get_ls_params()
    assert params["ls_provider"] == "larimar" and params["ls_model_name"] == "larimar-smol"
    assert params["ls_max_tokens"] == 8 and params["ls_stop"] == ["\n"]
    assert llm._get_ls_params(model="x")["ls_model_name"] == "x"


def test_a_question_about_the_user_with_nothing_stored_is_not_answered_by_invention(
    larimar, texts
) -> None:
    """Route ``unknown`` the same in process and over HTTP: the fixed answer, no fact."""
    from larimar_memory.routing import UNKNOWN_ANSWER
    from larimar_memory.server import ServerSettings, create_app
    from larimar_memory.server.client import LarimarClient
    from larimar_memory.testing import ThreadedServer

    larimar.remember(texts.other_fact)
    with ThreadedServer(create_app(larimar, ServerSettings(auth=False))) as server:
        for memory in (larimar, LarimarClient(server.url)):
            llm = ChatLarimar(larimar=memory, max_tokens=4)
            reply = llm.invoke(texts.unstored)
            meta = reply.response_metadata
            assert meta["route"] == "unknown" and meta["in_scope"] is False
            assert reply.content == UNKNOWN_ANSWER and meta["fact_id"] is None
            assert llm.invoke(texts.unrelated).response_metadata["route"] == "plain"
            assert llm.invoke(texts.other_question).response_metadata["route"] == "memory"
