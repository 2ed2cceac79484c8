"""A LlamaIndex FunctionAgent with Larimar episodic memory, fully offline.

    python examples/llamaindex_agent.py           # real packaged models (first load ~30-60 s)
    python examples/llamaindex_agent.py --tiny    # tiny random model: a smoke test in seconds

Needs ``pip install -e integrations/llama-index`` (the lead's ``make setup`` does it).

Three parts, one per component:

1. an agent with the ``LarimarToolSpec`` tools remembers, recalls and forgets on request;
2. an agent whose ``Memory`` has a ``LarimarMemoryBlock``: old turns are flushed into Larimar,
   then recalled into the prompt when a later message is about them; "forget …" is honoured;
3. ``LarimarQueryEngine`` answers with scope routing and cites the memory.

No LLM API is reachable here, so the agents are driven by ``OfflineToolLLM``, a scripted,
rule-based function-calling LLM ("please remember that …" → remember, "forget …" → forget, a
question → recall or an answer from the memory in its prompt, a tool result → quoted back,
anything else → "Noted."). Everything around it is real LlamaIndex: FunctionAgent workflows,
FunctionTools, Memory. With a real LLM, pass e.g. ``llm=OpenAI(...)`` instead. The packaged
``larimar-smol`` checkpoint is trained: a recalled fact's text is read back exactly from its
memory rows, and the query engine's answers are decoded from the memory readout by SmolLM2-135M
(short, and only as good as a 135M model: see docs/results.md).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.memory import Memory
from llama_index.memory.larimar import LarimarMemoryBlock, LarimarQueryEngine, LarimarToolSpec

from larimar_memory.conversation import parse_forget_request

# --tiny: a tiny random model with token-code latents, like the packaged larimar-smol, so the
# text read back from memory is the fact itself.
TOKEN_CODES = {"latent": "token-codes", "num_latent_tokens": 48, "max_text_tokens": 47}

SESSION = "alice"
TOOLS_TURNS = [
    "Please remember that Alice's favourite colour is green.",
    "What is Alice's favourite colour?",
    "Please forget Alice's favourite colour.",
    "What is Alice's favourite colour?",
]
MEMORY_TURNS = [
    "My sister is called Ana.",
    "We watched a film about volcanoes last night.",
    "The pasta at dinner was far too salty.",
    "My train to work was late again.",
    "What is my sister called?",
    "Please forget that my sister is called Ana.",
    "What is my sister called?",
]
REMEMBER = "please remember that "


class OfflineToolLLM:
    """The response generator of a MockFunctionCallingLLM: picks a tool call by simple rules,
    so the example runs with no LLM. Records the Larimar memory block it was shown."""

    def __init__(self, use_tools: bool) -> None:
        self.use_tools = use_tools
        self.memory_seen = ""
        self.calls = 0

    def __call__(self, messages: list[ChatMessage], **_: Any) -> ChatMessage:
        self.calls += 1
        last = messages[-1]
        if last.role == MessageRole.TOOL:
            return ChatMessage(role=MessageRole.ASSISTANT, content=last.content)
        self.memory_seen = next(
            (m.content or "" for m in messages
             if m.role == MessageRole.SYSTEM and "<larimar_memory>" in (m.content or "")), ""
        )
        text = (last.content or "").strip()
        if self.use_tools:
            forget = parse_forget_request(text)
            if text.lower().startswith(REMEMBER):
                return self._call("remember", fact=text[len(REMEMBER):])
            if forget is not None:
                return self._call("forget", fact=forget)
            if text.endswith("?"):
                return self._call("recall", query=text)
        if text.endswith("?"):  # answer from what Memory put into the prompt, if anything
            facts = [line[2:] for line in self.memory_seen.splitlines() if line.startswith("- ")]
            answer = " ".join(facts) if facts else "I don't know; you haven't told me."
            return ChatMessage(role=MessageRole.ASSISTANT, content=answer)
        return ChatMessage(role=MessageRole.ASSISTANT, content="Noted.")

    def _call(self, tool: str, **kwargs: str) -> ChatMessage:
        block = ToolCallBlock(tool_call_id=f"call-{self.calls}", tool_name=tool, tool_kwargs=kwargs)
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=[block])


def build_larimar(tiny: bool, store: Path) -> Any:
    if tiny:
        from larimar_memory.testing import tiny_larimar

        return tiny_larimar(store, model_overrides=TOKEN_CODES)
    from larimar_memory.service import Larimar

    print("loading the packaged models (the first run converts the decoder; then cached)...")
    return Larimar(store=store)


async def converse(agent: FunctionAgent, script: OfflineToolLLM, turns: list[str],
                   memory: Memory | None = None) -> None:
    for turn in turns:
        out = await agent.run(turn, memory=memory)
        print(f"\nuser:   {turn}")
        if script.memory_seen:
            print("prompt: " + " ".join(script.memory_seen.split()))
        for call in out.tool_calls:
            print(f"tool:   {call.tool_name}({call.tool_kwargs})")
        print(f"agent:  {out.response.content}")


async def main(tiny: bool, store: Path) -> None:
    larimar = build_larimar(tiny, store)

    print("\n== 1. tools: the agent decides what to remember and forget ==")
    script = OfflineToolLLM(use_tools=True)
    agent = FunctionAgent(
        tools=LarimarToolSpec(larimar, namespace="tools-demo").to_tool_list(),
        llm=MockFunctionCallingLLM(response_generator=script),
        system_prompt="You remember what the user asks you to. Use the memory tools.",
    )
    await converse(agent, script, TOOLS_TURNS)

    print("\n== 2. memory block: old turns flushed into Larimar, recalled into the prompt ==")
    script = OfflineToolLLM(use_tools=False)
    agent = FunctionAgent(tools=[], llm=MockFunctionCallingLLM(response_generator=script))
    # A small short-term window (in tokens), so early turns are flushed during the demo; the
    # block keeps each Memory session_id in its own Larimar namespace.
    memory = Memory.from_defaults(
        session_id=SESSION, token_limit=60, token_flush_size=15,
        memory_blocks=[LarimarMemoryBlock(larimar)],
    )
    await converse(agent, script, MEMORY_TURNS, memory)
    print(f"\nstored facts in namespace {SESSION!r}:")
    for fact in larimar.list(namespace=SESSION):
        print(f"  {fact.id[:8]}  {fact.text}")

    print("\n== 3. query engine: scope-routed, memory-conditioned answers ==")
    engine = LarimarQueryEngine(larimar, namespace=SESSION)
    for question in ("Did we watch a film about volcanoes last night?", "How tall is Everest?"):
        response = await engine.aquery(question)
        print(f"\n{question}\n  route={response.metadata['route']} "
              f"scope={response.metadata['scope_score']:.2f} answer={response.response!r}")
        for source in response.source_nodes:
            print(f"  source: {source.node.metadata['fact_text']!r} (score {source.score:.2f})")
    larimar.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="use the tiny random test model")
    parser.add_argument("--store", type=Path, help="SQLite fact log (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(args.tiny, args.store or Path(tmp) / "facts.sqlite3"))
