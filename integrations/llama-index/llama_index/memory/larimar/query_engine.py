"""`LarimarQueryEngine`: questions answered by Larimar's memory-conditioned decoder.

Each query goes through the scope detector (`Larimar.ask`): in scope, the answer is decoded
conditioned on the memory readout and the response cites the memory as a source node; out of
scope, the decoder answers plainly and the response has no sources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_index.core.base.response.schema import RESPONSE_TYPE, Response
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.schema import QueryBundle

from ._client import LarimarLike, check_larimar, default_larimar
from ._convert import to_response


class LarimarQueryEngine(CustomQueryEngine):
    """Answers from Larimar episodic memory, routed by its scope detector.

    Setup:
        ``pip install -e integrations/llama-index`` (with ``larimar-memory``)
    Instantiate:
        ``engine = LarimarQueryEngine(larimar=Larimar(store="facts.sqlite3"))``
    Use:
        ``response = engine.query("What is Alice's favourite colour?")``;
        ``response.metadata["route"]`` is ``"memory"`` or ``"plain"``, and
        ``response.source_nodes`` holds the memory readout when it is ``"memory"``.
        As an agent tool: ``QueryEngineTool.from_defaults(engine, name=..., description=...)``.
    """

    namespace: str | None = Field(
        default=None, description="Larimar namespace to answer from; None: the Larimar's own."
    )
    readout_sources: bool = Field(
        default=True,
        description=(
            "Source node text is the decoded memory readout (one more decoding per in-scope "
            "query). False: the addressed fact's stored text, with no extra decoding."
        ),
    )

    _larimar: LarimarLike = PrivateAttr()

    def __init__(self, larimar: LarimarLike, **data: Any) -> None:
        super().__init__(**data)
        self._larimar = check_larimar(larimar, type(self).__name__)

    @classmethod
    def from_defaults(
        cls, larimar: LarimarLike | None = None, *, store: str | Path | None = None, **data: Any
    ) -> LarimarQueryEngine:
        """An engine on ``larimar``, or on a `Larimar` with the packaged models at ``store``."""
        return cls(larimar=default_larimar(larimar, store), **data)

    @property
    def larimar(self) -> LarimarLike:
        return self._larimar

    def custom_query(self, query_str: str) -> Response:
        answer = self._larimar.ask(query_str, namespace=self.namespace)
        recall = None
        if answer.route == "memory" and self.readout_sources:
            recall = self._larimar.recall(query_str, namespace=self.namespace)
        return to_response(answer, recall)

    async def acustom_query(self, query_str: str) -> Response:
        # The core runs each call in a worker thread: the event loop stays free while decoding.
        answer = await self._larimar.aask(query_str, namespace=self.namespace)
        recall = None
        if answer.route == "memory" and self.readout_sources:
            recall = await self._larimar.arecall(query_str, namespace=self.namespace)
        return to_response(answer, recall)

    # BaseQueryEngine's hooks, for callers that use them directly instead of (a)query.
    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return self.custom_query(query_bundle.query_str)

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        return await self.acustom_query(query_bundle.query_str)
