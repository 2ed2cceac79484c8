"""A LangGraph agent whose long-term memory is `LarimarStore`: it remembers across threads and
forgets on request.

Run (offline):
    .venv/bin/python examples/langgraph_store.py          # the packaged Larimar models
    .venv/bin/python examples/langgraph_store.py --tiny   # a tiny random Larimar, in seconds

``create_agent(model, tools, store=LarimarStore(...))`` hands the store to the tools
(``langgraph.config.get_store()``). Three tools use it: ``save_memory`` (a ``put`` under the
user's namespace), ``search_memory`` (a top-k ``search`` by query) and ``delete_memory`` (a
``delete``, i.e. Larimar's exact forgetting). The agent talks to one user in two threads: what it
saved in thread 1 is found in thread 2, and once deleted it is gone.

No LLM API is reachable here, so a scripted chat model plays the LLM (it calls the tools by
fixed rules); the agent loop, the store and the memory are real. Swap it for any tool-calling
chat model (``init_chat_model("openai:gpt-5-mini")``) to run the same agent against an LLM.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_larimar import LarimarStore
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_config, get_store

# --tiny: a tiny random model with token-code latents, like the packaged larimar-smol, so the
# text read back from memory is the fact itself.
TOKEN_CODES = {"latent": "token-codes", "num_latent_tokens": 48, "max_text_tokens": 47}


def _namespace() -> tuple[str, ...]:
    return ("memories", str(get_config()["configurable"].get("user_id", "anonymous")))


@tool
def save_memory(fact: str) -> str:
    """Save one fact about the user to long-term memory."""
    key = uuid.uuid4().hex[:8]
    get_store().put(_namespace(), key, {"content": fact})
    return f"Saved memory {key}: {fact}"


@tool
def search_memory(query: str) -> str:
    """Search long-term memory; returns the best matching facts with their ids."""
    items = get_store().search(_namespace(), query=query, limit=2)
    return "\n".join(f"{i.key}: {i.value['content']} (score {i.score:.2f})" for i in items) or (
        "Nothing in memory."
    )


@tool
def delete_memory(memory_id: str) -> str:
    """Delete a memory by its id (exact forgetting)."""
    get_store().delete(_namespace(), memory_id)
    return f"Deleted memory {memory_id}"


class ScriptedModel(BaseChatModel):
    """Fixed rules instead of an LLM: "remember X" → save; "forget …" → search, then delete the
    best hit; a question → search; after a tool ran, answer with its result."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    @staticmethod
    def _call(name: str, args: dict[str, Any]) -> AIMessage:
        call_id = f"call-{uuid.uuid4().hex[:6]}"
        return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        human = next(m for m in reversed(messages) if isinstance(m, HumanMessage))
        text = str(human.content)
        if isinstance(last, ToolMessage):
            result = str(last.content)
            if last.name == "search_memory" and text.lower().startswith("forget"):
                found = re.match(r"(\w+):", result)
                if found:
                    return self._call("delete_memory", {"memory_id": found.group(1)})
            return AIMessage(result)
        if match := re.match(r"(?i)remember (?:that )?(.+)", text):
            fact = match.group(1).strip()
            return self._call("save_memory", {"fact": fact[:1].upper() + fact[1:]})
        if match := re.match(r"(?i)forget (?:about )?(.+)", text):
            return self._call("search_memory", {"query": match.group(1)})
        return self._call("search_memory", {"query": text})


def build_larimar(tiny: bool, path: Path) -> Any:
    if tiny:
        from larimar_memory.testing import tiny_larimar

        return tiny_larimar(path, model_overrides=TOKEN_CODES)
    from larimar_memory.service import Larimar

    return Larimar(store=path)


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random Larimar (fast)")
    args = parser.parse_args(argv)
    replies: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        larimar = build_larimar(args.tiny, Path(tmp) / "facts.sqlite3")
        store = LarimarStore(larimar, index={"fields": ["content"]}, relevant_only=True)
        agent = create_agent(
            ScriptedModel(), tools=[save_memory, search_memory, delete_memory], store=store,
            checkpointer=InMemorySaver(),
        )
        turns = [
            ("thread-1", "Remember that my favourite colour is green."),
            ("thread-2", "What is my favourite colour?"),  # another thread: found in the store
            ("thread-2", "Forget my favourite colour."),
            ("thread-3", "What is my favourite colour?"),  # gone
        ]
        for thread, text in turns:
            config: Any = {"configurable": {"thread_id": thread, "user_id": "alice"}}
            result = agent.invoke({"messages": [{"role": "user", "content": text}]}, config)
            reply = str(result["messages"][-1].content)
            replies.append(reply)
            print(f"[{thread}] user: {text}\n[{thread}] agent: {reply}")
        print("namespaces:", store.list_namespaces())
        if hasattr(larimar, "close"):
            larimar.close()
    return replies


if __name__ == "__main__":
    main()
