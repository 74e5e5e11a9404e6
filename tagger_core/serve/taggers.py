"""The served taggers: loaded once in the background; small requests scored through a
micro-batcher, large ones (and all, with batching off) on a thread each; the saved rule
decides once per scoring call."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tagger_core.errors import TaggerError
from tagger_core.schemas import ComponentSpec
from tagger_core.scores import Scores
from tagger_core.serve.batching import MicroBatcher
from tagger_core.serve.bodies import ApiError, TaggerInfo
from tagger_core.serve.settings import ServeSettings
from tagger_core.tagger import Tagger

log = logging.getLogger("tagger.serve")


@dataclass(frozen=True)
class Scored:
    """A batch's scores with the saved rule's decisions and the rounded probabilities,
    computed once per batch on the scoring thread, not once per request."""

    scores: Scores
    chosen: np.ndarray
    probabilities: np.ndarray

    def rows(self, start: int, end: int) -> Scored:
        part = np.arange(start, end)
        return Scored(self.scores.subset(part), self.chosen[part], self.probabilities[part])


class ServedTagger:
    """A loaded tagger and the way its requests are scored."""

    def __init__(
        self, name: str, tagger: Tagger, settings: ServeSettings, call: float = 1.0
    ) -> None:
        self.name = name
        self.tagger = tagger
        # Waiting for company pays only when a call costs much more than its names: a
        # batch waits at most half what scoring one name takes (``call`` seconds), so a
        # TF-IDF tagger hardly waits and a BERT one waits the full --batch-wait-ms.
        self.wait = min(settings.batch_wait_ms / 1000, call / 2)
        self.alone_from = settings.alone_from
        self.batcher = (
            MicroBatcher(
                self.score,
                wait=self.wait,
                max_batch=settings.max_batch,
                name=name,
            )
            if settings.batching
            else None
        )
        self.display = {label.id: label.display_name for label in tagger.taxonomy.labels}
        self.info = TaggerInfo(
            name=name,
            taxonomy=tagger.taxonomy,
            encoder=ComponentSpec(name=tagger.encoder.name, params=tagger.encoder.params_dict()),
            rule=ComponentSpec(name=tagger.rule.name, params=tagger.rule.params_dict()),
            validation_metrics=tagger.training.validation_metrics,
            train_rows=tagger.training.train_rows,
            valid_rows=tagger.training.valid_rows,
        )

    def score(self, texts: list[str]) -> Scored:
        scores = self.tagger.scores(texts)
        chosen = self.tagger.decide(scores)
        return Scored(scores, chosen, scores.probabilities.round(6))

    async def scores(self, texts: list[str]) -> Scored:
        # A request of --alone-from texts or more gains little from company, and on the
        # batcher's one thread it would hold up the small requests queued behind it and
        # keep the process to one scoring call at a time, however idle the CPU (uvicorn's
        # workers share one socket: a few keep-alive clients often all land on one worker).
        if self.batcher is not None and len(texts) < self.alone_from:
            return await self.batcher.scores(texts)
        return await asyncio.to_thread(self.score, texts)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


def timed(function: Callable[[list[str]], object], texts: list[str]) -> float:
    began = time.perf_counter()
    function(texts)
    return time.perf_counter() - began


class Served:
    """The server's taggers, loaded in a thread after start so that /healthz answers at
    once and /readyz says when every tagger is in."""

    def __init__(self, settings: ServeSettings, on_failure: Callable[[str], None]) -> None:
        self.settings = settings
        self.on_failure = on_failure
        self.taggers: dict[str, ServedTagger] = {}
        self.failure: str | None = None
        self.ready = threading.Event()
        self.closing = False

    def load(self) -> None:
        try:
            for name, path in self.settings.taggers.items():
                if self.closing:
                    return
                tagger = Tagger.load(
                    path, verify=self.settings.verify, runtime=self.settings.runtime
                )
                tagger.set_threads(self.settings.threads)
                call = min(timed(tagger.scores, ["warm-up"]) for _ in range(3))
                # a new dict, not an insertion: requests iterate the one they read
                self.taggers = {
                    **self.taggers,
                    name: ServedTagger(name, tagger, self.settings, call),
                }
                log.info("tagger '%s' loaded from %s", name, path)
        except TaggerError as error:
            self.failure = str(error)
            self.on_failure(self.failure)
            return
        except Exception as error:  # reported in one line; the server stops
            self.failure = f"cannot load a tagger: {type(error).__name__}: {error}"
            log.exception("loading failed")
            self.on_failure(self.failure)
            return
        self.ready.set()

    def get(self, name: str) -> ServedTagger:
        if name in self.taggers:
            return self.taggers[name]
        if name in self.settings.taggers:
            raise ApiError(503, f"tagger '{name}' is still loading; see /readyz")
        known = ", ".join(sorted(self.settings.taggers)) or "none"
        raise ApiError(404, f"no tagger '{name}' here (served: {known})", "name")

    def close(self) -> None:
        self.closing = True
        for served in self.taggers.values():
            served.close()
