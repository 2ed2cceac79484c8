"""`LarimarRetriever`: Larimar's top-k recall as a LangChain retriever (one `Document` per hit)."""

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
from pydantic import Field

from ._client import RecallBinding
from ._convert import recall_documents


class LarimarRetriever(RecallBinding, BaseRetriever):
    """Retriever over Larimar episodic memory: the ``k`` facts a query addresses, best first.

    Each `Document` is one `RecallHit`: ``page_content`` is the fact read back from the memory
    (``context_source="decoded"``, the default; exact for the packaged model) or the fact log's
    copy (``"stored"``); ``id`` is the fact id; metadata carries ``score`` (how well the query
    matched the fact's key), ``rank``, ``fact_id``, ``fact_text``, ``memory_text``,
    ``fact_metadata``, ``created_at``, ``namespace`` and the query's scope decision
    (``scope_score``, ``in_scope``, ``relevant``, ``scope_threshold``, ``route``). A query whose
    memory the scope decision does not call relevant (`ScopeInfo.relevant`) gets no documents
    unless ``include_out_of_scope=True``; ``filter``
    keeps only facts whose metadata passes it (the core's filters, e.g. ``{"n": {"$gte": 2}}``).

    Setup:
        ``pip install langchain-larimar``

    Instantiate:
        .. code-block:: python

            from langchain_larimar import LarimarRetriever
            from larimar_memory.service import Larimar

            retriever = LarimarRetriever(larimar=Larimar(store="facts.sqlite3"), k=4)

    Use:
        .. code-block:: python

            from langchain_core.tools import create_retriever_tool

            docs = retriever.invoke("Where does Alice live?")          # up to 4 documents
            docs = retriever.invoke("Where does Alice live?", k=1)     # per call
            docs[0].metadata["fact_text"], docs[0].metadata["score"]
            tool = create_retriever_tool(retriever, "memory", "Look up long-term memory.")
    """

    include_out_of_scope: bool = Field(
        default=False, description="also return documents when the query is out of scope"
    )
    filter: dict[str, Any] | None = Field(
        default=None, description="metadata filter (larimar_memory.filters): equality, "
        "$eq $ne $gt $gte $lt $lte $in $nin, nested objects, $and $or $not"
    )

    # The namespace depends on the run's config, which BaseRetriever does not hand to
    # _get_relevant_documents: resolve it here and pass it down as a keyword.
    def invoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        config = ensure_config(config)
        kwargs.setdefault("namespace", self.namespace_for(config))
        return super().invoke(input, config, **kwargs)

    async def ainvoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        config = ensure_config(config)
        kwargs.setdefault("namespace", self.namespace_for(config))
        return await super().ainvoke(input, config, **kwargs)

    def _recall_kwargs(self, namespace: str | None, k: int | None) -> dict[str, Any]:
        return {
            "k": self.k if k is None else k,
            "namespace": namespace,
            "decode": self.needs_decoding,
            "filter": self.filter,
        }

    def _documents(self, recall: RecallResult) -> list[Document]:
        if not (recall.scope.relevant or self.include_out_of_scope):
            return []
        return recall_documents(recall, self.context_source)

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        namespace: str | None = None,
        k: int | None = None,
    ) -> list[Document]:
        return self._documents(self.client.recall(query, **self._recall_kwargs(namespace, k)))

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        namespace: str | None = None,
        k: int | None = None,
    ) -> list[Document]:
        recall = await self.client.arecall(query, **self._recall_kwargs(namespace, k))
        return self._documents(recall)
