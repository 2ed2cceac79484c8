"""`LarimarMemoryBlock`: Larimar episodic memory as a block of LlamaIndex's `Memory`.

`Memory` keeps recent messages in a FIFO queue; when the queue passes its token limit, the
oldest messages are flushed to every block's ``aput``. This block writes them one-shot into
Larimar (user messages through `larimar_memory.conversation.observe`, which also honours
"forget …" requests), and its ``aget`` recalls, for the latest user message, the stored facts the
scope detector finds in scope.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.memory.memory import BaseMemoryBlock

from larimar_memory.conversation import extract_facts, fact_key, observe, parse_forget_request
from larimar_memory.errors import FactNotFoundError, LarimarError
from larimar_memory.scope import split_sentences
from larimar_memory.types import RecallResult

from ._client import LarimarLike, check_larimar, default_larimar
from ._convert import latest_user_text

logger = logging.getLogger(__name__)


class LarimarMemoryBlock(BaseMemoryBlock[str]):
    """Long-term memory for a LlamaIndex `Memory`, kept in Larimar.

    Setup:
        ``pip install -e integrations/llama-index`` (with ``larimar-memory``)
    Instantiate:
        ``block = LarimarMemoryBlock(larimar=Larimar(store="facts.sqlite3"))``
        ``memory = Memory.from_defaults(session_id="alice", memory_blocks=[block])``
    Use:
        ``FunctionAgent(..., ).run("What is my sister called?", memory=memory)``; facts from
        messages flushed out of the short-term queue live in namespace ``"alice"``.
    """

    name: str = Field(default="larimar_memory", description="Name of the block in the prompt.")
    description: str | None = Field(
        default="Facts recalled from Larimar episodic memory for the latest user message.",
        description="What the block holds.",
    )
    namespace: str | None = Field(
        default=None,
        description=(
            "Larimar namespace for every session. None: one namespace per Memory session_id "
            "(Memory passes it to blocks), or the Larimar's own namespace when none is given."
        ),
    )
    use_readout: bool = Field(
        default=False,
        description=(
            "Return the decoded memory readout instead of the addressed fact's stored text. "
            "Off by default: the stored text is exact, the readout is the decoder's rendering."
        ),
    )
    assistant_facts: bool = Field(
        default=False,
        description=(
            "Also write the statements of flushed assistant messages. Off by default: they mostly "
            "repeat the user or the memory itself, and would overwrite the user's own wording."
        ),
    )
    eager_forget: bool = Field(
        default=True,
        description=(
            "Apply 'forget …' requests of the latest user message as soon as it is read, not only "
            "when the message is flushed, so a forgotten fact never reaches the prompt again."
        ),
    )

    _larimar: LarimarLike = PrivateAttr()
    # (namespace, sentence, ids of the namespace's facts) -> recall: Memory.aget runs several
    # times per agent step; any change to the namespace's facts changes the key.
    _cache: dict[tuple[str | None, str, tuple[str, ...]], RecallResult] = PrivateAttr(
        default_factory=dict
    )
    # (namespace, sentence) of forget requests applied early and not yet flushed: the flush
    # skips them, so one request never forgets twice (the second time, a different fact).
    _forgot_early: set[tuple[str | None, str]] = PrivateAttr(default_factory=set)

    def __init__(self, larimar: LarimarLike, **data: Any) -> None:
        super().__init__(**data)
        self._larimar = check_larimar(larimar, type(self).__name__)

    @classmethod
    def from_defaults(
        cls, larimar: LarimarLike | None = None, *, store: str | Path | None = None, **data: Any
    ) -> LarimarMemoryBlock:
        """A block on ``larimar``, or on a `Larimar` with the packaged models at ``store``."""
        return cls(larimar=default_larimar(larimar, store), **data)

    @property
    def larimar(self) -> LarimarLike:
        return self._larimar

    def namespace_for(self, session_id: str | None) -> str | None:
        """The Larimar namespace of a session (None: the Larimar's default namespace)."""
        return self.namespace if self.namespace is not None else session_id

    # -- reading -------------------------------------------------------------------------------

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        """The stored facts in scope for the latest user message, one per line ("" if none)."""
        query = latest_user_text(messages)
        if not query:
            return ""
        namespace = self.namespace_for(block_kwargs.get("session_id"))
        sentences = split_sentences(query) or [query]
        if self.eager_forget:
            await asyncio.to_thread(self._forget_requested, sentences, namespace)
        lines: list[str] = []
        for sentence in sentences:
            if parse_forget_request(sentence) is not None:
                continue
            result = await self._recall(sentence, namespace)
            if not result.scope.in_scope or result.fact is None:
                continue
            line = result.text if self.use_readout else result.fact.text
            if line and line not in lines:
                lines.append(line)
        return "\n".join(f"- {line}" for line in lines)

    async def _recall(self, sentence: str, namespace: str | None) -> RecallResult:
        facts = await asyncio.to_thread(self._larimar.list, namespace=namespace)
        key = (namespace, sentence, tuple(sorted(f.id for f in facts)))
        if key not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = await self._larimar.arecall(
                sentence, namespace=namespace, decode=self.use_readout
            )
        return self._cache[key]

    def _forget_requested(self, sentences: list[str], namespace: str | None) -> None:
        for sentence in sentences:
            target = parse_forget_request(sentence)
            if target is None or (namespace, sentence) in self._forgot_early:
                continue
            try:
                forgotten = self._larimar.forget_matching(target, namespace=namespace)
            except FactNotFoundError:
                continue  # not stored (yet): the flush applies the request again
            self._forgot_early.add((namespace, sentence))
            logger.info("forgot %d fact(s) on request %r", len(forgotten), sentence)

    # -- writing -------------------------------------------------------------------------------

    async def _aput(self, messages: list[ChatMessage]) -> None:
        """Write flushed messages in order (order matters: a later "forget" undoes an earlier
        statement). ``Memory`` puts the session id into each message's additional_kwargs."""
        for message in messages:
            text = (message.content or "").strip()
            if not text:
                continue
            namespace = self.namespace_for(message.additional_kwargs.get("session_id"))
            if message.role == MessageRole.USER:
                await asyncio.to_thread(self._observe, text, namespace)
            elif message.role == MessageRole.ASSISTANT and self.assistant_facts:
                await asyncio.to_thread(self._remember_each, extract_facts(text), namespace)

    def _observe(self, text: str, namespace: str | None) -> None:
        sentences = split_sentences(text)
        done = {s for s in sentences if (namespace, s) in self._forgot_early}
        if done:
            self._forgot_early -= {(namespace, s) for s in done}
            # one sentence a line: split_sentences always splits at line breaks
            text = "\n".join(s for s in sentences if s not in done)
            if not text.strip():
                return
        try:
            turn = observe(self._larimar, text, namespace=namespace)  # type: ignore[arg-type]
        except LarimarError as exc:
            # One unstorable sentence (e.g. too long) must not lose the message's other facts,
            # nor break the conversation: write the facts one by one instead.
            logger.warning("writing a message in one batch failed (%s); writing facts singly", exc)
            self._remember_each(extract_facts(text), namespace)
            return
        logger.debug(
            "observed message: %d written, %d forgotten", len(turn.remembered), len(turn.forgotten)
        )

    def _remember_each(self, facts: list[str], namespace: str | None) -> None:
        for fact in facts:
            try:
                # the key observe would give it, so a later correction replaces it
                self._larimar.remember(fact, key=fact_key(fact), namespace=namespace)
            except LarimarError as exc:
                logger.warning("skipped fact %r: %s", fact[:80], exc)
