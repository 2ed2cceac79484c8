"""Micro-batching of concurrent calls: remembers share one embedder pass and one transaction
per namespace, recalls one embedder pass and one reading pass.

Requests that arrive while a batch runs, or within ``window_s`` of the first one, wait in a
queue; the collector hands them to a batch function together (in a worker thread):
`Larimar.remember_many`, which embeds every key in one pass and writes each namespace in one
store transaction, or `Larimar.recall_many`. Each caller awaits its own future: it gets its own
result, or its own exception (mapped to its own HTTP error), exactly as if it had called alone.
Request ids stay idempotent: ``remember_many`` applies the calls in arrival order and sees the
earlier ones.

One batch runs at a time; the next collects while it runs, so under load batches grow by
themselves, and with the default ``window_s`` of 0 a lone request waits for nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)


class MicroBatcher:
    """An asyncio collector in front of a blocking ``run_batch(list[call]) -> list[result |
    Exception]``, which ``call_in_thread`` runs off the event loop."""

    def __init__(
        self,
        run_batch: Callable[[list[Any]], list[Any]],
        call_in_thread: Callable[..., Awaitable[Any]],
        *,
        window_s: float = 0.0,
        max_batch: int = 64,
    ) -> None:
        if window_s < 0 or max_batch < 1:
            raise ValueError(f"window_s must be >= 0 and max_batch >= 1, got {window_s}, "
                             f"{max_batch}")
        self._run_batch = run_batch
        self._call = call_in_thread
        self.window_s = window_s
        self.max_batch = max_batch
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # how many batches ran, and how many calls they held (for tests/metrics)
        self.calls = 0

    async def submit(self, call: Any) -> Any:
        """The call's result, or its exception raised here."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((call, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            if self.window_s:
                await asyncio.sleep(self.window_s)  # let callers arriving now join this batch
            batch, self._pending = (self._pending[: self.max_batch],
                                    self._pending[self.max_batch :])
            live = [(call, future) for call, future in batch if not future.done()]
            if not live:
                continue
            self.batches += 1
            self.calls += len(live)
            try:
                results = await self._call(self._run_batch, [call for call, _ in live])
            except asyncio.CancelledError:
                for _, future in live:
                    future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - the batch as a whole failed: tell each
                logger.warning("a batch of %d calls failed: %r", len(live), exc)
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(live, results, strict=True):
                if future.done():  # the caller went away
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
