"""Dynamic batching: requests wait a few milliseconds for company, then one batched call serves them all.

    batcher = DynamicBatcher(handler.predict_batch, max_batch=16, max_wait_ms=10, threads=2)
    result = await batcher.submit(item)          # from any request; the model runs in one thread only
    batcher.close()

One worker thread owns the model: it takes the first waiting item, then keeps taking items until it has
`max_batch` of them or `max_wait_ms` have passed since the first one arrived, and calls
`predict_batch(items)` once. A batch that fails is run again one item at a time, so a bad item fails only
its own request. The queue is bounded (`max_queue`): past it `submit` raises `Busy` at once instead of
holding more requests in memory; an item that waited over `max_queue_s` gets `Busy` instead of a
prediction (its client has likely given up: serving it would only delay the requests behind it, and
an overloaded server would then spend all its time on answers nobody reads). An item whose future was
cancelled is skipped. `max_batch=1` is no batching: each request runs alone, in arrival order.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import torch

__all__ = ["DynamicBatcher", "Busy"]

_STOP = object()


class Busy(RuntimeError):
    """The queue of waiting requests is full."""


class DynamicBatcher:
    def __init__(
        self,
        predict_batch: Callable[[list], Sequence],
        max_batch: int = 16,
        max_wait_ms: float = 10.0,
        threads: int | None = None,
        max_queue: int = 1024,
        max_queue_s: float = 30.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {max_wait_ms}")
        self.predict_batch, self.max_batch, self.max_wait = predict_batch, int(max_batch), max_wait_ms / 1000
        self.threads, self.max_queue_s = threads, max_queue_s
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.batches = self.items = 0  # served so far, for /health
        self._thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        """Start the worker thread (again, after `close`); does nothing while it runs."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="quickfit-serve-batcher", daemon=True)
            self._thread.start()

    def submit_future(self, item: Any) -> Future:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the batcher is closed: start() it first")
        fut: Future = Future()
        try:
            self._queue.put_nowait((item, fut, time.monotonic()))
        except queue.Full:
            raise Busy(f"the server is busy: {self._queue.maxsize} requests are waiting; try again shortly") from None
        return fut

    async def submit(self, item: Any) -> Any:
        """The prediction for `item`, from the next batch it fits in (its own exception if it failed)."""
        return await asyncio.wrap_future(self.submit_future(item))

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker once the requests already queued are served."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        if self.threads:  # intra-op threads of this process: the model's batch is the only heavy work here
            torch.set_num_threads(self.threads)
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            stop = False
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            now = time.monotonic()
            for _, fut, t in batch:
                if now - t > self.max_queue_s and fut.set_running_or_notify_cancel():
                    why = f"the request waited {now - t:.0f} s for the model (the limit is {self.max_queue_s:g} s)"
                    fut.set_exception(Busy(why + ": the server is overloaded; try again later"))
            fresh = [(item, fut) for item, fut, t in batch if now - t <= self.max_queue_s]
            self._serve([b for b in fresh if b[1].set_running_or_notify_cancel()])
            if stop:
                return

    def _serve(self, batch: list) -> None:
        if not batch:
            return
        try:
            results = list(self.predict_batch([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"predict_batch returned {len(results)} results for {len(batch)} items")
        except BaseException as e:
            if len(batch) == 1:
                batch[0][1].set_exception(e)
                return
            for one in batch:  # find the item that failed; the others still get their answer
                self._serve([one])
            return
        for (_, fut), r in zip(batch, results):
            fut.set_result(r)
        self.batches += 1
        self.items += len(batch)
