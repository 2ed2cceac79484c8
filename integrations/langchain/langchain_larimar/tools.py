"""Memory tools an agent calls: ``remember``, ``recall``, ``forget``, and `LarimarToolkit`.

Each tool is a `StructuredTool` with a pydantic argument schema, a sync and an async body (the
async one awaits the core's ``a*`` methods), and the same namespace rule as the other
components, read from the config LangChain injects. Failures the model can act on (nothing to
forget, empty text) come back as the tool's answer, not as an exception that ends the run.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, BaseToolkit, StructuredTool, ToolException
from larimar_memory.conversation import statement_metadata
from larimar_memory.errors import FactNotFoundError, LarimarError
from larimar_memory.scoping import Scope
from larimar_memory.types import Fact, RecallResult, RememberResult
from pydantic import BaseModel, Field
from typing_extensions import Unpack

from ._client import RecallBinding
from ._convert import ContextSource, hit_text

REMEMBER_DESCRIPTION = (
    "Store one fact in long-term memory, e.g. a fact the user states about themselves or asks "
    "you to remember. Pass one self-contained sentence ('Alice lives in Lisbon.'); a new fact "
    "with the same subject ('Alice lives in Porto.') replaces the old one."
)
RECALL_DESCRIPTION = (
    "Look up long-term memory for what is stored about a question or topic "
    "('Where does Alice live?'). Returns the best-matching stored facts with their ids, or "
    "says nothing relevant is stored."
)
FORGET_DESCRIPTION = (
    "Delete a fact from long-term memory when the user asks you to forget something. Pass the "
    "fact's id, its exact text, or a short description of it ('where Alice lives'). The fact "
    "is removed only when it is clearly the one meant; otherwise nothing is removed and the "
    "candidates are listed with their ids: ask the user, or forget one by id. Set everything "
    "to true for 'forget everything about X'."
)


class RememberInput(BaseModel):
    """Arguments of the ``remember`` tool."""

    fact: str = Field(description="one self-contained fact, e.g. 'Alice lives in Lisbon.'")
    corrects: bool = Field(
        False, description="true when the fact updates one stored before (the user moved, "
        "changed job, a date moved): the old fact about the same thing is replaced"
    )


class RecallInput(BaseModel):
    """Arguments of the ``recall`` tool."""

    query: str = Field(
        description="the question or topic to look up, e.g. 'Where does Alice live?'"
    )


class ForgetInput(BaseModel):
    """Arguments of the ``forget`` tool."""

    fact: str = Field(
        description="the fact's id, its exact text, or a short description ('where Alice lives')"
    )
    everything: bool = Field(
        False, description="true to forget every stored fact about the description ('forget "
        "everything about my sister'); false removes only the one fact clearly meant"
    )


class _Memory(RecallBinding):
    """What the tool bodies share: the binding (memory, namespace, k, context source) and the
    formatting of results."""

    @staticmethod
    def remembered(fact: str, result: RememberResult) -> str:
        ids = ", ".join(result.ids)
        if result.duplicate_request:
            return f"Already remembered (id {ids})."
        outcome = result.outcomes[0] if result.outcomes else None
        if outcome is not None and outcome.status == "duplicate":
            return f"Already stored: {fact} (id {ids}); nothing new was written."
        text = f"Remembered: {fact} (id {ids})."
        if result.replaced:
            text += " It replaces: " + "; ".join(f.text for f in result.replaced) + "."
        return text

    def recalled(self, result: RecallResult) -> str:
        score = f"scope score {result.scope.score:.2f}, threshold {result.scope.threshold:.2f}"
        if not result.scope.relevant or not result.hits:
            return f"Nothing relevant is stored in memory ({score})."
        lines = [
            f"- {hit_text(hit, self.context_source)} (id {hit.fact.id}; score {hit.score:.2f})"
            for hit in result.hits
        ]
        return f"From memory ({score}):\n" + "\n".join(lines)

    @staticmethod
    def forgotten(facts: list[Fact]) -> str:
        return "Forgot: " + "; ".join(f"{f.text} (id {f.id})" for f in facts) + "."


def _tool_error(exc: LarimarError) -> ToolException:
    return ToolException(str(exc))


def create_remember_tool(
    larimar: Any = None, *, namespace: str | None = None, name: str = "remember",
    **scope: Unpack[Scope],
) -> StructuredTool:
    """The ``remember`` tool: one-shot write of a fact (``Larimar.remember``); ``user_id`` /
    ``agent_id`` / ``run_id`` scope it (as they do the other tools)."""
    memory = _Memory(larimar=larimar, namespace=namespace, **scope)

    def remember(fact: str, config: RunnableConfig, corrects: bool = False) -> str:
        # The speaker and slot conversation.observe gives a stated fact, so a correction
        # through the tool or the middleware replaces the other's fact instead of keeping both.
        try:
            result = memory.client.remember(
                fact, metadata=statement_metadata(fact, corrects=corrects),
                namespace=memory.namespace_for(config),
            )
        except LarimarError as exc:
            raise _tool_error(exc) from exc
        return memory.remembered(fact, result)

    async def aremember(fact: str, config: RunnableConfig, corrects: bool = False) -> str:
        try:
            result = await memory.client.aremember(
                fact, metadata=statement_metadata(fact, corrects=corrects),
                namespace=memory.namespace_for(config),
            )
        except LarimarError as exc:
            raise _tool_error(exc) from exc
        return memory.remembered(fact, result)

    return StructuredTool.from_function(
        func=remember, coroutine=aremember, name=name, description=REMEMBER_DESCRIPTION,
        args_schema=RememberInput, handle_tool_error=True,
    )


def create_recall_tool(
    larimar: Any = None,
    *,
    namespace: str | None = None,
    context_source: ContextSource = "decoded",
    k: int = 3,
    name: str = "recall",
    **scope: Unpack[Scope],
) -> StructuredTool:
    """The ``recall`` tool: the ``k`` facts a query addresses, best first, when the scope
    detector says the query is about stored facts (``recall(k=k)``). See `ContextSource`."""
    memory = _Memory(larimar=larimar, namespace=namespace, context_source=context_source, k=k,
                     **scope)

    def recall(query: str, config: RunnableConfig) -> str:
        try:
            result = memory.client.recall(query, **memory.recall_kwargs(config))
        except LarimarError as exc:
            raise _tool_error(exc) from exc
        return memory.recalled(result)

    async def arecall(query: str, config: RunnableConfig) -> str:
        try:
            result = await memory.client.arecall(query, **memory.recall_kwargs(config))
        except LarimarError as exc:
            raise _tool_error(exc) from exc
        return memory.recalled(result)

    return StructuredTool.from_function(
        func=recall, coroutine=arecall, name=name, description=RECALL_DESCRIPTION,
        args_schema=RecallInput, handle_tool_error=True,
    )


def create_forget_tool(
    larimar: Any = None, *, namespace: str | None = None, name: str = "forget",
    **scope: Unpack[Scope],
) -> StructuredTool:
    """The ``forget`` tool: exact removal by id or exact text (``Larimar.forget``), else of the
    fact a description points to (``Larimar.forget_matching``)."""
    memory = _Memory(larimar=larimar, namespace=namespace, **scope)

    def forget(fact: str, config: RunnableConfig, everything: bool = False) -> str:
        ns = memory.namespace_for(config)
        try:
            if everything:
                return memory.client.forget_about(fact, namespace=ns).describe()
            try:
                return memory.forgotten(memory.client.forget(fact, namespace=ns))
            except FactNotFoundError:
                return memory.client.forget_matching(fact, namespace=ns).describe()
        except LarimarError as exc:
            raise _tool_error(exc) from exc

    async def aforget(fact: str, config: RunnableConfig, everything: bool = False) -> str:
        ns = memory.namespace_for(config)
        try:
            if everything:
                return (await memory.client.aforget_about(fact, namespace=ns)).describe()
            try:
                return memory.forgotten(await memory.client.aforget(fact, namespace=ns))
            except FactNotFoundError:
                return (await memory.client.aforget_matching(fact, namespace=ns)).describe()
        except LarimarError as exc:
            raise _tool_error(exc) from exc

    return StructuredTool.from_function(
        func=forget, coroutine=aforget, name=name, description=FORGET_DESCRIPTION,
        args_schema=ForgetInput, handle_tool_error=True,
    )


class LarimarToolkit(RecallBinding, BaseToolkit):
    """The ``remember``, ``recall`` and ``forget`` tools on one Larimar, for an agent.

    Setup:
        ``pip install langchain-larimar``

    Instantiate:
        .. code-block:: python

            from langchain_larimar import LarimarToolkit
            from larimar_memory.service import Larimar

            toolkit = LarimarToolkit()  # the shared embedded Larimar(), created on first use
            toolkit = LarimarToolkit(larimar=Larimar(store="facts.sqlite3"), namespace="alice")

    Use:
        .. code-block:: python

            from langchain.agents import create_agent

            remember, recall, forget = toolkit.get_tools()
            remember.invoke({"fact": "Alice lives in Lisbon."})
            recall.invoke({"query": "Where does Alice live?"})
            forget.invoke({"fact": "where Alice lives"})
            agent = create_agent(llm, tools=toolkit.get_tools())

    Without ``namespace`` the tools follow the package's namespace rule per call (a ``user_id``
    in the runtime context or config, else the thread id, else the Larimar's default), so they
    read and write the same memory as `LarimarMiddleware` in the same agent.
    """

    def get_tools(self) -> list[BaseTool]:
        """``[remember, recall, forget]``."""
        return [
            create_remember_tool(self.larimar, namespace=self.namespace, **self.scope),
            create_recall_tool(
                self.larimar, namespace=self.namespace, context_source=self.context_source,
                k=self.k, **self.scope,
            ),
            create_forget_tool(self.larimar, namespace=self.namespace, **self.scope),
        ]
