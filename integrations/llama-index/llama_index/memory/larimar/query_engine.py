"""`LarimarQueryEngine`: questions answered by Larimar's memory-conditioned decoder.

Each query goes through the scope detector (`Larimar.ask`): in scope, the answer is decoded
conditioned on the memory readouts and the response cites the ``k`` recalled facts as source
nodes (one per `RecallHit`, best first); out of scope, a general question is answered by the
plain decoder and a question about the user with "I don't have that in memory" (route
``unknown``, `larimar_memory.routing`). Sources come with every answer whose memory the scope
decision calls relevant (`ScopeInfo.relevant`): a question about the user that is near one of
their facts, but under the decoding point, gets the honest answer and the facts as sources.
"""

from __future__ import annotations

from llama_index.core.base.response.schema import RESPONSE_TYPE, Response
from llama_index.core.bridge.pydantic import Field
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.schema import QueryBundle

from ._client import LarimarBinding
from ._convert import to_response
from ._filters import larimar_filter


class LarimarQueryEngine(LarimarBinding, CustomQueryEngine):
    """Answers from Larimar episodic memory, routed by its scope detector.

    Setup:
        ``pip install -e integrations/llama-index`` (with ``larimar-memory``)
    Instantiate:
        ``engine = LarimarQueryEngine(larimar=Larimar(store="facts.sqlite3"), k=3)``
    Use:
        ``response = engine.query("What is Alice's favourite colour?")``;
        ``response.metadata["route"]`` is ``"memory"``, ``"plain"`` or ``"unknown"`` (a
        question about the user that memory has nothing on: nothing is invented), and
        ``response.source_nodes`` holds one node per recalled fact (up to ``k``, best first,
        scored by the hit's score) when ``response.metadata["relevant"]``.
        As an agent tool: ``QueryEngineTool.from_defaults(engine, name=..., description=...)``.

    ``k`` is how many facts the response cites; ``answer_k`` how many `ask` recalls for the
    decoder, which reads those in scope (None: the memory's ``LarimarSettings.ask_k``, 3 by
    default: the packaged checkpoint is trained on memory blocks of 1-5 facts).
    """

    answer_k: int | None = Field(
        default=None, ge=1, le=64,
        description="Facts the decoder conditions its answer on (None: the memory's ask_k).")

    def custom_query(self, query_str: str) -> Response:
        answer = self._larimar.ask(query_str, k=self.answer_k, namespace=self.namespace,
                                   filter=larimar_filter(self.filters))
        recall = None
        if answer.scope.relevant:
            recall = self._larimar.recall(query_str, **self.recall_kwargs())
        return to_response(answer, recall, self.context_source)

    async def acustom_query(self, query_str: str) -> Response:
        # The core runs each call in a worker thread: the event loop stays free while decoding.
        answer = await self._larimar.aask(query_str, k=self.answer_k,
                                          namespace=self.namespace,
                                          filter=larimar_filter(self.filters))
        recall = None
        if answer.scope.relevant:
            recall = await self._larimar.arecall(query_str, **self.recall_kwargs())
        return to_response(answer, recall, self.context_source)

    # BaseQueryEngine's hooks, for callers that use them directly instead of (a)query.
    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return self.custom_query(query_bundle.query_str)

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return await self.acustom_query(query_bundle.query_str)
