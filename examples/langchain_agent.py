"""A LangChain agent that remembers and forgets during a conversation, with Larimar memory.

Run (offline):
    .venv/bin/python examples/langchain_agent.py          # the real packaged Larimar models
    .venv/bin/python examples/langchain_agent.py --tiny   # a tiny random Larimar, in seconds

No LLM API is reachable here, so a small *scripted* chat model plays the agent's LLM: by a few
fixed rules it calls the Larimar tools (``remember``, ``recall``, ``forget``), answers from a
tool's result, or answers from the memory that `LarimarMiddleware` put in its system message.
Everything else is the real thing: ``langchain.agents.create_agent``'s loop, the middleware
(the fact recalled for the user's message injected before each model call; stated facts and
"forget …" requests applied at the end of each turn, no LLM call) and the tools writing to,
reading from and forgetting in Larimar's episodic memory. Swap the scripted model for any
tool-calling chat model (e.g. ``init_chat_model("openai:gpt-5-mini")``) to run the same agent
against a real LLM.

With the real models (the trained, packaged ``larimar-smol``), loading takes a few seconds
(~30 s the first time: the packaged GGUF decoder is converted once and cached). The agent is
shown each recalled fact's text read back from its memory rows (``context_source="decoded"``,
the default: token codes snapped to the decoder's vocabulary, exact for ``larimar-smol``, no
language model run); ``context_source="stored"`` shows the fact log's copy. With ``--tiny`` the
scope detector uses a bag-of-words hashing embedder, so only questions sharing words with a fact
are in scope.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_larimar import LarimarMiddleware, LarimarToolkit
from langchain_larimar.middleware import DEFAULT_CONTEXT_TEMPLATE
from langgraph.checkpoint.memory import InMemorySaver

# --tiny: a tiny random model with token-code latents, like the packaged larimar-smol, so the
# text read back from memory is the fact itself.
TOKEN_CODES = {"latent": "token-codes", "num_latent_tokens": 48, "max_text_tokens": 47}

SYSTEM_PROMPT = "You are a helpful assistant with a long-term memory. Use the memory tools."

CONVERSATION = [
    "Hi! Please remember that my favourite colour is green.",  # the model calls `remember`
    "My sister is called Ana.",  # no tool call: the middleware stores it at the end of the turn
    "What is my sister called?",  # the middleware puts the recalled fact in the system message
    "Check your memory: what is my favourite colour?",  # the model calls `recall`
    "Please forget my favourite colour.",  # the model calls `forget`
    "What is my favourite colour?",  # nothing recalled any more
    "What is the capital of Peru?",  # out of scope: no memory in the prompt
]
MEMORY_HEADER = DEFAULT_CONTEXT_TEMPLATE.split("{context}")[0]


class ScriptedAgentModel(BaseChatModel):
    """A stand-in for an LLM: fixed rules instead of a model, so the example runs offline.

    * after a tool ran, it answers with the tool's result;
    * "remember (that) X" → ``remember(fact=X)``; "forget X" → ``forget(fact=X)``;
    * "check your memory: Q" → ``recall(query=Q)``;
    * another question → answers from the memory the middleware put in the system message;
    * anything else → a short acknowledgement.
    """

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted-agent-model"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedAgentModel:
        return self  # the rules below know the three tools by name

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls += 1
        return ChatResult(generations=[ChatGeneration(message=self._decide(messages))])

    def _decide(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(f"[{last.name} tool] {last.content}")
        text = last.text if isinstance(last, HumanMessage) else ""
        call_id = f"call_{self.calls}"
        if match := re.search(r"remember (?:that )?(.+?)[.!]*$", text, re.IGNORECASE):
            fact = match.group(1)
            return _tool_call("remember", {"fact": fact[0].upper() + fact[1:] + "."}, call_id)
        if match := re.search(r"forget (?:that )?(.+?)[.!]*$", text, re.IGNORECASE):
            return _tool_call("forget", {"fact": match.group(1)}, call_id)
        if match := re.search(r"check your memory: (.+)$", text, re.IGNORECASE):
            return _tool_call("recall", {"query": match.group(1)}, call_id)
        if text.rstrip().endswith("?"):
            system = messages[0].text if isinstance(messages[0], SystemMessage) else ""
            if MEMORY_HEADER in system:
                return AIMessage(f"[memory in my prompt] {system.split(MEMORY_HEADER)[1]}")
            return AIMessage("I don't know; nothing in my memory is about that.")
        return AIMessage("Thanks, noted.")


def _tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


def build_larimar(tiny: bool, store: Path) -> Any:
    if tiny:
        from larimar_memory.testing import tiny_larimar

        return tiny_larimar(store, model_overrides=TOKEN_CODES)
    from larimar_memory.service import Larimar, LarimarSettings

    return Larimar(store=store, settings=LarimarSettings(max_new_tokens=8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="tiny random Larimar (a smoke test in seconds)")
    parser.add_argument("--store", type=Path, help="SQLite fact log (default: a temp dir)")
    args = parser.parse_args()

    store = args.store or Path(tempfile.mkdtemp()) / "facts.sqlite3"
    print(f"Loading {'the tiny' if args.tiny else 'the packaged'} Larimar (facts in {store}) …")
    larimar = build_larimar(args.tiny, store)

    agent = create_agent(
        ScriptedAgentModel(),
        tools=LarimarToolkit(larimar=larimar).get_tools(),
        middleware=[LarimarMiddleware(larimar)],
        system_prompt=SYSTEM_PROMPT,
        checkpointer=InMemorySaver(),
    )
    # Memory is per user: the tools and the middleware both use namespace "user:demo".
    config = {"configurable": {"thread_id": "demo-thread", "user_id": "demo"}}
    for text in CONVERSATION:
        print(f"\nuser:  {text}")
        result = agent.invoke({"messages": [{"role": "user", "content": text}]}, config)
        print(f"agent: {result['messages'][-1].text}")
        stored = [fact.text for fact in larimar.list(namespace="user:demo")]
        print(f"       memory now holds: {stored}")


if __name__ == "__main__":
    main()
