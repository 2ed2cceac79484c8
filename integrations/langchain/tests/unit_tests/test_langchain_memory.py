"""`LarimarMemory` as an LCEL step and as conversation memory, on the tiny Larimar."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

import langchain_larimar._client as client_module
from langchain_larimar import ChatLarimar, LarimarMemory, LarimarToolkit

PROMPT = ChatPromptTemplate.from_template("Known facts: {context}\nQuestion: {question}")


def test_context_is_the_top_fact_in_scope_and_empty_out_of_scope(larimar, texts) -> None:
    memory = LarimarMemory(larimar=larimar, k=1)
    assert memory.invoke(texts.question) == ""  # nothing stored yet
    larimar.remember([texts.fact, texts.other_fact])
    assert memory.invoke(texts.question) == texts.fact
    assert memory.invoke(texts.other_question) == texts.other_fact
    assert memory.invoke(texts.unrelated) == ""


def test_context_sources_and_top_k(larimar, texts) -> None:
    larimar.remember([texts.fact, texts.other_fact])
    hits = larimar.recall(texts.question, k=2).hits
    decoded = LarimarMemory(larimar=larimar, k=2).invoke(texts.question)
    assert decoded.splitlines() == [h.text for h in hits]  # read back from the memory
    stored = LarimarMemory(larimar=larimar, k=2, context_source="stored").invoke(texts.question)
    assert stored.splitlines() == [h.fact.text for h in hits]
    both = LarimarMemory(larimar=larimar, k=1, context_source="both").invoke(texts.question)
    assert both.splitlines()[0] == f"Stored fact: {texts.fact}"


def test_inputs_mapping_messages_and_errors(larimar, texts) -> None:
    larimar.remember(texts.fact)
    memory = LarimarMemory(larimar=larimar, input_key="q", k=1)
    assert memory.invoke({"q": texts.question}) == texts.fact
    assert memory.invoke(HumanMessage(texts.question)) == texts.fact
    assert memory.invoke([HumanMessage(texts.question), AIMessage("hmm")]) == texts.fact
    assert memory.invoke("   ") == ""
    with pytest.raises(KeyError, match="input_key"):
        memory.invoke({"question": texts.question})
    with pytest.raises(TypeError, match="takes a string"):
        memory.invoke(42)


def test_lcel_chain(larimar, texts) -> None:
    larimar.remember(texts.fact)
    chain = (
        {"context": LarimarMemory(larimar=larimar, k=1), "question": RunnablePassthrough()}
        | PROMPT
        | ParrotFakeChatModel()
    )
    assert chain.invoke(texts.question).content == (
        f"Known facts: {texts.fact}\nQuestion: {texts.question}"
    )
    assert chain.invoke(texts.unrelated).content == f"Known facts: \nQuestion: {texts.unrelated}"


@pytest.mark.asyncio
async def test_lcel_chain_async(larimar, texts) -> None:
    memory = LarimarMemory(larimar=larimar)
    await memory.aobserve(texts.fact)
    chain = {"context": memory, "question": RunnablePassthrough()} | PROMPT | ParrotFakeChatModel()
    reply = await chain.ainvoke(texts.question)
    assert texts.fact in reply.content
    assert await memory.ainvoke({"question": texts.unrelated}) == ""
    assert await memory.aload_memory_variables({"question": texts.question}) == {
        "context": texts.fact
    }


def test_observe_writes_facts_and_forgets_on_request(larimar, texts) -> None:
    memory = LarimarMemory(larimar=larimar)
    turn = memory.observe(f"Hi! {texts.fact} {texts.question}")
    assert len(turn.remembered) == 1 and turn.questions == [texts.question]
    assert [f.text for f in larimar.list()] == [texts.fact]
    assert memory.invoke(texts.question) == texts.fact

    turn = memory.observe(HumanMessage(f"Please forget {texts.description}."))
    assert [f.text for f in turn.forgotten] == [texts.fact]
    assert larimar.list() == []
    assert memory.invoke(texts.question) == ""


def test_save_context_and_load_memory_variables(larimar, texts) -> None:
    memory = LarimarMemory(larimar=larimar, memory_key="memory", k=1)
    memory.save_context({"question": texts.fact}, {"output": "The sky is green too."})
    assert [f.text for f in larimar.list()] == [texts.fact]  # the assistant's text is not a fact
    assert memory.load_memory_variables({"question": texts.question}) == {"memory": texts.fact}
    assert memory.clear() == 1 and larimar.list() == []


def test_namespace_from_config(larimar, texts) -> None:
    memory = LarimarMemory(larimar=larimar)
    alice = {"configurable": {"user_id": "alice", "thread_id": "t1"}}
    memory.observe(texts.fact, config=alice)
    assert [f.text for f in larimar.list(namespace="user:alice")] == [texts.fact]
    assert larimar.list() == []
    assert memory.invoke(texts.question, config=alice) == texts.fact
    assert memory.invoke(texts.question, config={"configurable": {"thread_id": "t1"}}) == ""
    fixed = LarimarMemory(larimar=larimar, namespace="user:alice")
    assert fixed.invoke(texts.question, config={"configurable": {"user_id": "bob"}}) == texts.fact


def test_rejects_an_object_without_the_larimar_interface() -> None:
    with pytest.raises(TypeError, match="MemoryBackend"):
        LarimarMemory(larimar=object())


def test_embedded_default_is_lazy_and_shared(monkeypatch, larimar, texts) -> None:
    import larimar_memory.service as service

    built: list[Any] = []

    class CountingLarimar(service.Larimar):
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            built.append(larimar)
            return larimar  # not a CountingLarimar, so __init__ is skipped

    monkeypatch.setattr(service, "Larimar", CountingLarimar)
    monkeypatch.setattr(client_module, "_default", None)
    memory, chat, toolkit = LarimarMemory(), ChatLarimar(), LarimarToolkit()
    recall = toolkit.get_tools()[1]
    assert built == []  # building components loads no model
    larimar.remember(texts.fact)
    assert memory.invoke(texts.question) == texts.fact
    assert texts.fact in recall.invoke({"query": texts.question})
    assert chat.invoke(texts.question).response_metadata["route"] == "memory"
    assert built == [larimar]  # one embedded Larimar, shared
