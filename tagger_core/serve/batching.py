"""Micro-batching: texts from requests that arrive together are scored in one call.

A forward pass streams every weight of the model whatever the number of names, so 64
clients sending one name each should cost one pass, not 64. One thread per tagger takes
everything queued (and what keeps arriving, each request within ``wait`` seconds of the
last, up to ``max_batch`` texts) and scores it as one batch; the encoder sorts the batch by
length as it always does. Requests get their own
rows back through futures, so the event loop never blocks on scoring.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

_STOP = object()
# A batch keeps gathering while requests keep coming, each within ``wait`` of the last, for
# at most this many waits: under load a whole round of clients joins one batch (their
# requests arrive spread over the time the server takes to answer the previous round),
# while a lone request waits only ``wait``.
MAX_WAITS = 10


class Rows(Protocol):
    """What scoring a batch returns: anything whose rows can be cut back out per request."""

    def rows(self, start: int, end: int) -> Rows: ...


R = TypeVar("R", bound=Rows)


@dataclass
class _Job(Generic[R]):
    texts: list[str]
    future: Future[R] = field(default_factory=Future)


class MicroBatcher(Generic[R]):
    """Scores lists of texts in shared batches on one thread."""

    def __init__(
        self, score: Callable[[list[str]], R], *, wait: float, max_batch: int, name: str = ""
    ) -> None:
        self.score = score
        self.wait = wait
        self.max_batch = max_batch
        self.jobs: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.closed = False
        self._closing = threading.Lock()  # no job is queued behind the stop
        self.carried: _Job[R] | None = None
        self.batches = 0  # how many scoring calls were made, and for how many texts
        self.texts = 0
        self.thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self.thread.start()

    def submit(self, texts: list[str]) -> Future[R]:
        job: _Job[R] = _Job(list(texts))
        with self._closing:
            if self.closed:
                job.future.set_exception(RuntimeError("the server is shutting down"))
            else:
                self.jobs.put(job)
        return job.future

    async def scores(self, texts: list[str]) -> R:
        return await asyncio.wrap_future(self.submit(texts))

    def close(self) -> None:
        """Score what is queued, then stop the thread; later submissions fail at once."""
        with self._closing:
            if self.closed:
                return
            self.closed = True
            self.jobs.put(_STOP)
        self.thread.join()

    def _next(self, timeout: float | None) -> object:
        if self.carried is not None:
            job, self.carried = self.carried, None
            return job
        try:
            return self.jobs.get(block=timeout is None or timeout > 0, timeout=timeout)
        except queue.Empty:
            return None

    def _gather(self, first: _Job[R]) -> tuple[list[_Job[R]], bool]:
        """``first`` and the jobs that join it: all that is queued, then whatever arrives
        within the wait, while the batch has room. Returns the jobs and whether to stop."""
        batch, size = [first], len(first.texts)
        began = time.monotonic()
        cap = began + MAX_WAITS * self.wait
        deadline = began + self.wait
        while size < self.max_batch:
            job = self._next(max(min(deadline, cap) - time.monotonic(), 0.0))
            if job is None:
                break
            if job is _STOP:
                return batch, True
            assert isinstance(job, _Job)
            if size + len(job.texts) > self.max_batch:
                self.carried = job  # scored first in the next batch
                break
            batch.append(job)
            size += len(job.texts)
            deadline = time.monotonic() + self.wait  # they are still coming: wait on
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping or self.carried is not None:
            first = self._next(None)
            if first is _STOP:
                stopping = True
                continue
            assert isinstance(first, _Job)
            batch, stopping = self._gather(first)
            self._score(batch)
        while True:  # anything queued after the stop is refused, never left waiting
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, _Job):
                job.future.set_exception(RuntimeError("the server is shutting down"))

    def _score(self, batch: list[_Job[R]]) -> None:
        jobs = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        texts = [text for job in jobs for text in job.texts]
        try:
            scores = self.score(texts)
            self.batches += 1
            self.texts += len(texts)
            start = 0
            for job in jobs:
                end = start + len(job.texts)
                job.future.set_result(scores.rows(start, end))  # type: ignore[arg-type]
                start = end
        except BaseException as error:  # every waiting request gets the error, not a hang,
            for job in jobs:  # and the thread lives on for the next batch
                if not job.future.done():
                    job.future.set_exception(error)
