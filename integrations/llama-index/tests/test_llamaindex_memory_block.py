"""LarimarMemoryBlock inside LlamaIndex's Memory: flushed messages become facts, recalled
per session, scope-gated, and "forget …" requests are honoured."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.memory import Memory
from llama_index.core.storage.chat_store.sql import MessageStatus
from llama_index.memory.larimar import LarimarMemoryBlock

# llama-index-workflows inspects agents with inspect.getmembers, tripping pydantic's
# deprecation warnings for attributes it never uses: upstream noise.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")

SISTER = "My sister is called Ana."
CITY = "I live in Lisbon."

# A tiny model with token-code latents, like the packaged larimar-smol (47 tokens per memory
# row): a recalled hit's text, read back from the memory rows, is then the fact itself.
TOKEN_CODES = {"latent": "token-codes", "num_latent_tokens": 48, "max_text_tokens": 47}


def words(text: str) -> list[str]:
    return text.split()  # a deterministic tokenizer: token counts are word counts


def make_memory(block: LarimarMemoryBlock, session_id: str = "alice") -> Memory:
    # 30 words of history at most (0.7 x 43): a few turns, then the oldest are flushed.
    return Memory.from_defaults(
        session_id=session_id, token_limit=43, token_flush_size=10, tokenizer_fn=words,
        memory_blocks=[block],
    )


async def chat(memory: Memory, *turns: str) -> None:
    for turn in turns:
        await memory.aput(ChatMessage(role="user", content=turn))
        await memory.aput(ChatMessage(role="assistant", content="Noted, thank you for telling me."))


def block_text(messages: list[ChatMessage]) -> str:
    system = [m for m in messages if m.role == "system"]
    return system[0].content if system else ""


def sister_facts(larimar) -> set[str]:
    return {f.text for f in larimar.list(namespace="alice") if "sister" in f.text}


FILLER = ("The weather was mild today.", "We talked about films for a while.",
          "Dinner was pasta again tonight.", "The train was late this morning.")


async def test_flushed_facts_are_written_and_recalled(larimar):
    memory = make_memory(LarimarMemoryBlock(larimar))
    await chat(memory, SISTER, CITY, *FILLER)
    # Both statements left the short-term queue and now live in the session's namespace.
    active = " ".join(m.content or "" for m in await memory.aget_all(status=MessageStatus.ACTIVE))
    assert SISTER not in active and CITY not in active
    assert {f.text for f in larimar.list(namespace="alice")} >= {SISTER, CITY}
    assert larimar.list() == []  # nothing in the Larimar's default namespace

    await memory.aput(ChatMessage(role="user", content="What is my sister called?"))
    text = block_text(await memory.aget())
    assert "<larimar_memory>" in text and SISTER in text
    assert CITY not in text  # only what the latest message is about


async def test_out_of_scope_message_gets_no_memory(larimar):
    memory = make_memory(LarimarMemoryBlock(larimar))
    await chat(memory, SISTER, *FILLER)
    await memory.aput(ChatMessage(role="user", content="Which planet has the most moons?"))
    messages = await memory.aget()
    assert "larimar_memory" not in block_text(messages)
    block = memory.memory_blocks[0]
    assert await block.aget(messages, session_id="alice") == ""


async def test_sessions_are_separate_namespaces(larimar):
    block = LarimarMemoryBlock(larimar)
    await chat(make_memory(block, "alice"), SISTER, *FILLER)
    bob = make_memory(block, "bob")
    await bob.aput(ChatMessage(role="user", content="What is my sister called?"))
    assert SISTER not in block_text(await bob.aget())
    assert larimar.list(namespace="bob") == []


async def test_fixed_namespace_overrides_sessions(larimar):
    block = LarimarMemoryBlock(larimar, namespace="shared")
    await chat(make_memory(block, "alice"), SISTER, *FILLER)
    assert SISTER in {f.text for f in larimar.list(namespace="shared")}
    assert larimar.list(namespace="alice") == []


async def test_forget_request_applies_at_once_and_only_once(larimar):
    memory = make_memory(LarimarMemoryBlock(larimar))
    await chat(memory, SISTER, *FILLER)
    nickname = "My sister is called Ana by her friends."  # near SISTER, but not a correction
    larimar.remember(nickname, namespace="alice")
    request = "Please forget that my sister is called Ana."
    await memory.aput(ChatMessage(role="user", content=request))
    assert "<larimar_memory>" not in block_text(await memory.aget())
    # Applied as soon as it was read, before the request left the short-term queue.
    assert sister_facts(larimar) == {nickname}
    await memory.aget()  # read again, then flush the request: it must not apply a second time
    await chat(memory, *FILLER, *FILLER)
    assert sister_facts(larimar) == {nickname}
    # ...which would have forgotten the nickname, the nearest fact left:
    [gone] = larimar.forget_matching("my sister is called Ana", namespace="alice",
                                     margin=0).forgotten
    assert gone.text == nickname


async def test_forget_request_is_honoured_when_flushed(larimar):
    memory = make_memory(LarimarMemoryBlock(larimar, eager=False))
    await chat(memory, SISTER, *FILLER)
    assert SISTER in {f.text for f in larimar.list(namespace="alice")}
    await chat(memory, "Please forget that my sister is called Ana.", *FILLER)
    assert SISTER not in {f.text for f in larimar.list(namespace="alice")}


async def test_assistant_statements_are_written_only_when_asked(larimar):
    block = LarimarMemoryBlock(larimar, assistant_facts=True)
    await block.aput([ChatMessage(role="assistant", content="Your flight leaves at nine.")],
                     session_id="s")
    assert [f.text for f in larimar.list(namespace="s")] == ["Your flight leaves at nine."]
    await LarimarMemoryBlock(larimar).aput(
        [ChatMessage(role="assistant", content="Your train leaves at ten.")], session_id="t"
    )
    assert larimar.list(namespace="t") == []


async def test_an_unstorable_sentence_does_not_lose_the_others(larimar):
    # over max_fact_tokens (each repeat is at least 4 tokens), under max_text_chars
    repeats = larimar.limits().max_fact_tokens // 2
    too_long = "My grandmother's house " + "is very far away " * repeats + "from here."
    await LarimarMemoryBlock(larimar).aput(
        [ChatMessage(role="user", content=f"{too_long} {SISTER}")], session_id="s"
    )
    assert [f.text for f in larimar.list(namespace="s")] == [SISTER]


async def test_lines_are_the_top_k_hits_read_from_memory(larimar):
    larimar.remember([SISTER, "My sister lives in Rome."], namespace="s")
    question = [ChatMessage(role="user", content="What is my sister called?")]
    hits = larimar.recall("What is my sister called?", k=2, namespace="s").hits
    got = await LarimarMemoryBlock(larimar, k=2).aget(question, session_id="s")
    assert got.splitlines() == [f"- {h.text}" for h in hits]
    stored = await LarimarMemoryBlock(larimar, k=1, context_source="stored").aget(
        question, session_id="s")
    assert stored == f"- {hits[0].fact.text}"


async def test_eager_writes_survive_a_new_process(tmp_path):
    """A short session: each user turn is written when the block reads it (eager mode), not
    when Memory flushes it; a new Larimar over the same SQLite file recalls the facts."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "facts.sqlite3"
    script = textwrap.dedent(f"""
        import asyncio
        from llama_index.core.base.llms.types import ChatMessage
        from llama_index.core.memory import Memory
        from llama_index.memory.larimar import LarimarMemoryBlock
        from larimar_memory.testing import tiny_larimar

        async def main():
            larimar = tiny_larimar({str(path)!r}, model_overrides={TOKEN_CODES!r})
            memory = Memory.from_defaults(session_id="alice", token_limit=4000,
                                          memory_blocks=[LarimarMemoryBlock(larimar)])
            for turn in ({SISTER!r}, {CITY!r}):
                await memory.aput(ChatMessage(role="user", content=turn))
                await memory.aget()  # what an agent does before calling the LLM
                await memory.aput(ChatMessage(role="assistant", content="Noted."))
            larimar.close()  # the process ends before Memory ever flushed a message

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    from larimar_memory.testing import tiny_larimar

    again = tiny_larimar(path, model_overrides=TOKEN_CODES)
    try:
        assert {f.text for f in again.list(namespace="alice")} == {SISTER, CITY}
        recall = again.recall("What is my sister called?", k=1, namespace="alice")
        assert recall.hits[0].fact.text == SISTER
    finally:
        again.close()


def test_rejects_an_object_without_the_larimar_interface():
    with pytest.raises(TypeError, match="LarimarMemoryBlock needs a Larimar"):
        LarimarMemoryBlock(larimar=42)


async def test_function_agent_sees_recalled_facts(larimar, scripted_llm):
    """A real FunctionAgent run with Memory: early turns are flushed into Larimar, and the LLM's
    input for a later question carries the recalled fact."""
    from llama_index.core.agent.workflow import FunctionAgent

    llm, script = scripted_llm([])  # no tool calls: the LLM just answers
    agent = FunctionAgent(tools=[], llm=llm, system_prompt="Be brief.")
    memory = make_memory(LarimarMemoryBlock(larimar))
    for turn in (SISTER, *FILLER):
        await agent.run(turn, memory=memory)
    assert SISTER in {f.text for f in larimar.list(namespace="alice")}
    await agent.run("What is my sister called?", memory=memory)
    # The agent's system prompt, then Memory's system message with the block.
    system = [m.content or "" for m in script.seen[-1] if m.role == "system"]
    assert system[0] == "Be brief."
    assert "<larimar_memory>" in system[1] and SISTER in system[1]
