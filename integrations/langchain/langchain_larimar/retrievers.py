"""`LarimarRetriever`: Larimar's recall as a LangChain retriever (one `Document` per query)."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, ensure_config
from larimar_memory.types import RecallResult
from pydantic import ConfigDict, Field, field_validator

from ._client import LarimarLike, check_larimar, default_larimar
from ._convert import ContextSource, recall_document
from ._namespace import resolve_namespace


class LarimarRetriever(BaseRetriever):
    """Retriever over Larimar episodic memory: the memory readout for a query as a `Document`.

    Larimar reads one readout per query (a near-one-hot mix of memory slots), so the result is
    at most one document: ``page_content`` is the decoded readout (``context_source="decoded"``,
    the default) or the fact-log text of the addressed slot (``"stored"``); metadata carries
    ``scope_score``, ``in_scope``, ``scope_threshold``, ``route`` ('memory'|'plain'),
    ``fact_id``, ``fact_text`` (the stored text), ``decoded_text``, ``weight`` and
    ``namespace``. Queries the scope detector calls out of scope return no documents unless
    ``include_out_of_scope=True``. Decoded readouts are only as faithful as the checkpoint;
    ``context_source="stored"`` gives the exact text.

    Setup:
        ``pip install langchain-larimar``

    Instantiate:
        .. code-block:: python

            from langchain_larimar import LarimarRetriever
            from larimar_memory.service import Larimar

            retriever = LarimarRetriever(larimar=Larimar(store="facts.sqlite3"))

    Use:
        .. code-block:: python

            from langchain_core.tools import create_retriever_tool

            docs = retriever.invoke("Where does Alice live?")
            docs[0].metadata["fact_text"], docs[0].metadata["scope_score"]
            tool = create_retriever_tool(retriever, "memory", "Look up long-term memory.")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    larimar: Any = Field(
        default=None,
        exclude=True,
        description="a larimar_memory Larimar or a client with its interface; None: the shared "
        "embedded Larimar(), created on first use",
    )
    namespace: str | None = Field(default=None, description="None: resolved per call")
    context_source: ContextSource = Field(
        default="decoded", description="page_content: the decoded readout or the stored text"
    )
    include_out_of_scope: bool = Field(
        default=False, description="also return a document when the query is out of scope"
    )

    @field_validator("larimar")
    @classmethod
    def _check_larimar(cls, value: Any) -> Any:
        return check_larimar(value, cls.__name__)

    @property
    def client(self) -> LarimarLike:
        return self.larimar if self.larimar is not None else default_larimar()

    # The namespace depends on the run's config, which BaseRetriever does not hand to
    # _get_relevant_documents: resolve it here and pass it down as a keyword.
    def invoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        config = ensure_config(config)
        kwargs.setdefault("namespace", resolve_namespace(self.namespace, config))
        return super().invoke(input, config, **kwargs)

    async def ainvoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        config = ensure_config(config)
        kwargs.setdefault("namespace", resolve_namespace(self.namespace, config))
        return await super().ainvoke(input, config, **kwargs)

    def _documents(self, recall: RecallResult, namespace: str | None) -> list[Document]:
        if not (recall.scope.in_scope or self.include_out_of_scope):
            return []
        return [recall_document(recall, self.context_source, namespace)]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        namespace: str | None = None,
    ) -> list[Document]:
        return self._documents(self.client.recall(query, namespace=namespace), namespace)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        namespace: str | None = None,
    ) -> list[Document]:
        return self._documents(await self.client.arecall(query, namespace=namespace), namespace)
