"""`larimar mcp`: the memory as a Model Context Protocol server, for agent hosts (desktop
assistants, IDE agents, the OpenAI Agents SDK, LangChain's MCP adapters).

Setup:
    ``pip install 'larimar-memory[mcp,models]'`` (memory in this process) or
    ``pip install 'larimar-memory[mcp,client]'`` (memory on a ``larimar serve``; no torch)
Instantiate:
    ``server = create_mcp_server(Larimar(store="facts.sqlite3"), namespace="user:alice")``,
    any `MemoryBackend` works: ``create_mcp_server(LarimarClient(url, api_key))``
Use:
    ``server.run("stdio")`` / ``server.run("streamable-http", port=8765)``, or the command
    ``larimar mcp [--url URL] [--transport streamable-http]``; docs/mcp.md shows host configs.

Tools: ``remember``, ``recall``, ``forget``, ``list`` (each takes an optional ``namespace``,
default the server's, and mem0's optional ``user_id`` / ``agent_id`` / ``run_id``, which scope
the call as in `Larimar`; a server for one user is ``create_mcp_server(ScopedMemory(memory,
user_id="alice"))``). Resources: every fact of the server's namespace is
``larimar://facts/{namespace}/{fact_id}`` (both percent-encoded, JSON of the `Fact`); the
template reads facts of any namespace; ``larimar://namespaces`` lists the namespaces. A bad call
(missing or mistyped argument, unknown fact, text the memory cannot take) is an MCP tool error
(``isError``) whose text names the problem; the server keeps running.
"""

from __future__ import annotations

import builtins
import functools
import json
from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import Resource as MCPResource
from pydantic import Field

from . import __version__
from .contract import MAX_K
from .errors import LarimarError
from .protocol import MemoryBackend
from .scoping import given_ids
from .types import Fact, RecallResult, RememberResult

__all__ = ["FACT_URI", "NAMESPACES_URI", "create_mcp_server", "fact_uri"]

FACT_URI = "larimar://facts/{namespace}/{fact_id}"
NAMESPACES_URI = "larimar://namespaces"
MAX_LISTED = 1000
"""Most facts `list_resources` shows (the template reads any fact)."""
INSTRUCTIONS = (
    "Long-term episodic memory. Call `remember` with each fact the user states about themselves "
    "or the world they care about (one sentence per fact), `recall` before answering questions "
    "that may depend on what was said earlier, `forget` when the user asks to forget something "
    "(a fact id from recall/list, or its exact text), and `list` to see what is stored."
)


# module level: the SDK evaluates the tools' annotations by name
Namespace = Annotated[
    str | None, Field(description="memory namespace (user or session); default the server's")
]
Filter = Annotated[
    dict[str, Any] | None, Field(description="metadata filter: {\"speaker\": \"Ana\"} (equality), "
                                 "{\"n\": {\"$gte\": 2}} ($eq $ne $gt $gte $lt $lte $in $nin), "
                                 "nested objects, $and $or $not")
]

UserId = Annotated[str | None, Field(description="only this user's facts (stored with new ones)")]
AgentId = Annotated[str | None, Field(description="only this agent's facts")]
RunId = Annotated[str | None, Field(description="only this run's facts")]


def fact_uri(fact: Fact) -> str:
    """The resource URI of a fact: namespace and id percent-encoded (either may hold '/')."""
    return FACT_URI.format(namespace=quote(fact.namespace, safe=""),
                           fact_id=quote(fact.id, safe=""))


class _LarimarMCP(MCPServer):
    """`MCPServer` whose resource list is the memory's facts, read when a host asks."""

    def __init__(self, memory: MemoryBackend, namespace: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.memory, self.namespace = memory, namespace

    async def list_resources(self) -> builtins.list[MCPResource]:
        facts = await _call(self.memory.list, namespace=self.namespace, limit=MAX_LISTED)
        return [*await super().list_resources(), *(
            MCPResource(uri=fact_uri(f), name=f.text[:80], description=f.text,
                        mime_type="application/json")
            for f in facts
        )]


async def _call(fn: Any, *args: Any, error: type[Exception] = ToolError, **kwargs: Any) -> Any:
    """A blocking memory call in a worker thread; a library error becomes ``error`` (an MCP
    tool or resource error naming the problem), so a bad call never crashes the server."""
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
    except LarimarError as exc:
        raise error(f"{type(exc).__name__}: {exc}") from exc


def create_mcp_server(memory: MemoryBackend, *, namespace: str | None = None,
                      name: str = "larimar-memory") -> MCPServer:
    """An MCP server over ``memory`` (a `Larimar`, a `LarimarClient`, any `MemoryBackend`);
    tools default to ``namespace`` (None: the memory's own)."""
    server = _LarimarMCP(memory, namespace, name=name, version=__version__,
                         instructions=INSTRUCTIONS, log_level="WARNING")

    def ns(given: str | None) -> str | None:
        return namespace if given is None else given

    @server.tool()
    async def remember(
        text: Annotated[str | builtins.list[str], Field(
            description="a fact, one sentence (or a list of facts)")],
        metadata: Annotated[dict[str, Any] | None, Field(
            description="JSON object kept with the fact (e.g. {\"source\": \"chat\"})")] = None,
        key: Annotated[str | None, Field(
            description="text that addresses the fact; a later fact with the same key from "
            "the same owner replaces it (e.g. \"Alice's address\")")] = None,
        namespace: Namespace = None,
        user_id: UserId = None, agent_id: AgentId = None, run_id: RunId = None,
    ) -> RememberResult:
        """Store facts in long-term memory, written in one shot; one outcome per fact
        ('written', 'replaced' or 'duplicate') with its id."""
        return await _call(memory.remember, text, key=key, metadata=metadata,
                           namespace=ns(namespace),
                           **given_ids(dict(user_id=user_id, agent_id=agent_id, run_id=run_id)))

    @server.tool()
    async def recall(
        query: Annotated[str, Field(description="what to look for, e.g. a question")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="how many facts, best first")] = 3,
        filter: Filter = None,
        namespace: Namespace = None,
        user_id: UserId = None, agent_id: AgentId = None, run_id: RunId = None,
    ) -> RecallResult:
        """The k stored facts that best match the query, best first, each with its score and
        the text read back from the memory; `scope.relevant` says whether they are worth
        using (and whether Larimar's own decoder answers from them)."""
        return await _call(memory.recall, query, k=k, filter=filter, namespace=ns(namespace),
                           **given_ids(dict(user_id=user_id, agent_id=agent_id, run_id=run_id)))

    @server.tool()
    async def forget(
        fact: Annotated[str, Field(description="a fact id (from recall or list), or the "
                                   "fact's exact text")],
        namespace: Namespace = None,
        user_id: UserId = None, agent_id: AgentId = None, run_id: RunId = None,
    ) -> builtins.list[Fact]:
        """Forget a fact exactly: its memory update is undone and its text deleted."""
        return await _call(memory.forget, fact, namespace=ns(namespace),
                           **given_ids(dict(user_id=user_id, agent_id=agent_id, run_id=run_id)))

    @server.tool(name="list")
    async def list_facts(
        limit: Annotated[int, Field(ge=1, le=MAX_LISTED, description="most facts")] = 100,
        offset: Annotated[int, Field(ge=0, description="facts to skip (paging)")] = 0,
        filter: Filter = None,
        namespace: Namespace = None,
        user_id: UserId = None, agent_id: AgentId = None, run_id: RunId = None,
    ) -> builtins.list[Fact]:
        """Stored facts, oldest first."""
        return await _call(memory.list, namespace=ns(namespace), filter=filter, limit=limit,
                           offset=offset,
                           **given_ids(dict(user_id=user_id, agent_id=agent_id, run_id=run_id)))

    @server.resource(FACT_URI, mime_type="application/json")
    async def fact(namespace: str, fact_id: str) -> str:
        """One stored fact (JSON): text, id, key, metadata, when it was written."""
        found = await _call(memory.get, fact_id, namespace=namespace, error=ResourceError)
        return str(found.model_dump_json())

    @server.resource(NAMESPACES_URI, mime_type="application/json")
    async def namespaces() -> str:
        """The namespaces that hold facts (JSON list)."""
        return json.dumps(await _call(memory.namespaces, error=ResourceError))

    return server
