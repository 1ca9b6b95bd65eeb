"""Triton-style dynamic batching: concurrent requests for one model version are joined
into one onnxruntime call.

A request waits at most `max_delay_s` for its batch to fill up to `max_batch` rows; while
one batch runs (in a worker thread, onnxruntime releases the GIL) the next one fills, so
throughput grows with load. A request that comes alone after a batch that was alone
does not wait: one client at a time gains nothing from the delay. A batch that the
model's recent cost per row says runs in under `INLINE_BELOW_S` runs on the event
loop's own thread: handing a batch to a worker thread and its answer back costs more
CPU than such a run. The estimate is per row, so a large request (or a full batch)
after many small ones still goes to a worker thread and never stalls the loop. Each
`MicroBatcher` belongs to exactly one model version (one session), so a batch never
mixes versions. `max_batch=1` disables batching.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

RunFn = Callable[[dict[str, np.ndarray]], list[np.ndarray]]
INLINE_BELOW_S = 0.0005


@dataclass(slots=True)
class _Pending:
    feeds: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future
    enqueued: float


class BatchObserver:
    """Receives what metrics need; the default does nothing."""

    def batch_done(self, rows: int, requests: int, queue_s: list[float], compute_s: float,
                   ok: bool) -> None:
        pass


class MicroBatcher:
    def __init__(self, run: RunFn, *, max_batch: int, max_delay_s: float, executor: Executor,
                 observer: BatchObserver | None = None) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self._executor = executor
        self._observer = observer or BatchObserver()
        self._queue: deque[_Pending] = deque()
        self._rows = 0
        self._filled = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self.queue_delay_ewma = 0.0  # seconds, for /health
        # seconds per row; a model's first batches run in a worker thread (whatever their
        # size, the estimate is too high to run inline until runs are timed)
        self.run_per_row_s = INLINE_BELOW_S
        self._last_batch_requests = 0  # 0 until the first batch: that one waits

    async def infer(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs of the model for `feeds` (rows along the first dimension)."""
        loop = asyncio.get_running_loop()
        rows = next(iter(feeds.values())).shape[0]
        item = _Pending(feeds, rows, loop.create_future(), time.perf_counter())
        self._queue.append(item)
        self._rows += rows
        if self._rows >= self.max_batch:
            self._filled.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await item.future

    async def _drain(self) -> None:
        while self._queue:
            alone = len(self._queue) == 1 and self._last_batch_requests == 1
            if self._rows < self.max_batch and self.max_delay_s > 0 and not alone:
                wait = self._queue[0].enqueued + self.max_delay_s - time.perf_counter()
                if wait > 0:
                    self._filled.clear()
                    try:
                        await asyncio.wait_for(self._filled.wait(), wait)
                    except TimeoutError:
                        pass
            batch, rows = self._take()
            self._last_batch_requests = len(batch)
            await self._execute(batch, rows)

    def _timed_run(self, feeds: dict[str, np.ndarray], rows: int) -> list[np.ndarray]:
        start = time.perf_counter()
        try:
            return self._run(feeds)
        finally:
            per_row = (time.perf_counter() - start) / max(1, rows)
            self.run_per_row_s += 0.1 * (per_row - self.run_per_row_s)

    def _take(self) -> tuple[list[_Pending], int]:
        """The next batch from the queue, and its rows."""
        batch = [self._queue.popleft()]
        rows = batch[0].rows
        while self._queue and rows + self._queue[0].rows <= self.max_batch:
            item = self._queue.popleft()
            rows += item.rows
            batch.append(item)
        self._rows -= rows
        return batch, rows

    async def _execute(self, batch: list[_Pending], rows: int) -> None:
        start = time.perf_counter()
        queue_s = [start - item.enqueued for item in batch]
        self.queue_delay_ewma += 0.1 * (max(queue_s) - self.queue_delay_ewma)
        if len(batch) == 1:
            feeds = batch[0].feeds
        else:
            feeds = {name: np.concatenate([item.feeds[name] for item in batch])
                     for name in batch[0].feeds}
        try:
            if self.run_per_row_s * rows < INLINE_BELOW_S:
                outputs = self._timed_run(feeds, rows)
            else:
                loop = asyncio.get_running_loop()
                outputs = await loop.run_in_executor(self._executor, self._timed_run, feeds,
                                                     rows)
        except Exception as e:  # noqa: BLE001 - every waiter gets the failure
            if len(batch) > 1:  # one request's bad input (say an id out of range) must not
                for item in batch:  # fail the others: each runs alone and gets its own answer
                    await self._execute([item], item.rows)
                return
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(e)
            self._observer.batch_done(rows, len(batch), queue_s, time.perf_counter() - start,
                                      ok=False)
            return
        offset = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result([out[offset:offset + item.rows] for out in outputs])
            offset += item.rows
        self._observer.batch_done(rows, len(batch), queue_s, time.perf_counter() - start,
                                  ok=True)
