"""Tag records in chunks: read, score and write a chunk at a time, so that memory stays
flat however long the input, and an output file is complete or untouched.

Scoring can run in worker processes (``jobs``): this process then reads, checks and writes
one chunk while a worker scores the next, so a large file costs little more than its
scoring. Each worker loads the tagger once; chunks come back in input order."""

from __future__ import annotations

import gc
import itertools
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tagger_core.components import FileOptions, Row, record_fields
from tagger_core.data.io import iter_records, record_writer
from tagger_core.data.shards import Shard
from tagger_core.errors import DataError, TaggerError
from tagger_core.schemas import Record
from tagger_core.tagger import RuleSpec, Tagger

if TYPE_CHECKING:
    from concurrent.futures import Future

CHUNK = 2048
# The fields predictions add to every output row, beside the input's own fields (its gold
# labels included, which pass through unchanged): the same in every format and on --json.
PREDICTED = "predicted"
PREDICTED_NAME = "predicted_name"  # display names of the predicted labels, with --display
SCORES = "scores"
# Scores are written to 6 decimals: finer digits mean nothing, and a float's shortest form
# costs half as much to write (the largest per-name cost of writing JSON).
SCORE_DECIMALS = 6


@dataclass(frozen=True)
class Decisions:
    """One chunk's predictions as arrays (cheap to send between processes): which labels
    each name gets, and every label's probability as written."""

    chosen: np.ndarray  # n × L booleans
    probabilities: np.ndarray  # n × L, rounded to SCORE_DECIMALS


def decide(tagger: Tagger, texts: list[str], rule: RuleSpec = None) -> Decisions:
    scores = tagger.scores(texts)
    return Decisions(tagger.decide(scores, rule), scores.probabilities.round(SCORE_DECIMALS))


def checked_chunks(
    records: Iterable[Record], options: FileOptions, size: int | None = None
) -> Iterator[tuple[list[Record], FileOptions]]:
    """Chunks of records with the options to write them with, checked before scoring.

    Gold labels pass through where the input has them (seen in the first chunk);
    unlabelled input gets no invented label field, and a later row with labels is refused
    rather than losing them."""
    write_options: FileOptions | None = None
    iterator = iter(records)
    while batch := list(itertools.islice(iterator, size or CHUNK)):
        if write_options is None:
            write_options = options.model_copy(
                update={"write_labels": any(r.labels for r in batch)}
            )
        for record in batch:
            if not record.text.strip():
                raise DataError(
                    "empty text", file=record.file, row=record.row, field=options.text_field
                )
            if record.labels and not write_options.write_labels:
                raise DataError(
                    "has labels although the first rows have none; the output has no label "
                    "field for them: give every row its labels, or none",
                    file=record.file,
                    row=record.row,
                    field=options.label_field,
                )
        yield batch, write_options


def tagged_rows(
    batch: list[Record],
    decisions: Decisions,
    tagger: Tagger,
    options: FileOptions,
    display: bool = False,
) -> list[Row]:
    """Each record's fields with its prediction in fields of its own; nothing of the input
    is replaced (a clash is an error naming the row)."""
    ids = tagger.taxonomy.label_ids
    names = [label.display_name for label in tagger.taxonomy.labels] if display else []
    rows: list[Row] = []
    for record, chosen, probabilities in zip(
        batch, decisions.chosen.tolist(), decisions.probabilities.tolist(), strict=True
    ):
        check_no_clash(record, display)
        rows.append(
            with_prediction(
                record_fields(record, options),
                list(itertools.compress(ids, chosen)),
                list(itertools.compress(names, chosen)) if display else None,
                dict(zip(ids, probabilities, strict=True)),
            )
        )
    return rows


def check_no_clash(record: Record, display: bool) -> None:
    """Refuse a record that already has a field the prediction adds (it would be lost)."""
    if not record.metadata:
        return
    added = {PREDICTED, SCORES, *([PREDICTED_NAME] if display else [])}
    # a table writes each score as its own 'scores:LABEL' column
    clashes = sorted(key for key in record.metadata if key in added or key.startswith(f"{SCORES}:"))
    if clashes:
        clash = clashes[0]
        raise DataError(
            f"the input already has a '{clash}' field; predictions would overwrite it",
            file=record.file,
            row=record.row,
            field=clash,
        )


def with_prediction(
    fields: Row, labels: list[str], display_names: list[str] | None, scores: dict[str, float]
) -> Row:
    """An output row: the input's fields, then the labels (their display names with
    --display) and every label's score, in the same order in every format."""
    fields[PREDICTED] = labels
    if display_names is not None:
        fields[PREDICTED_NAME] = display_names
    fields[SCORES] = scores
    return fields


def tagged_chunks(
    tagger: Tagger,
    records: Iterable[Record],
    *,
    options: FileOptions,
    rule: RuleSpec = None,
    display: bool = False,
    progress: Callable[[int], Any] | None = None,
    jobs: int = 0,
) -> Iterator[tuple[list[Row], FileOptions]]:
    """(output rows, the options to write them with) a chunk at a time, in input order;
    ``jobs`` worker processes score (0: this process does)."""
    chunks = checked_chunks(records, options)
    for batch, write_options, decisions in scored(tagger, chunks, rule, jobs):
        rows = tagged_rows(batch, decisions, tagger, write_options, display)
        if progress is not None:
            progress(len(batch))
        yield rows, write_options


def scored(
    tagger: Tagger,
    chunks: Iterable[tuple[list[Record], FileOptions]],
    rule: RuleSpec,
    jobs: int,
) -> Iterator[tuple[list[Record], FileOptions, Decisions]]:
    """Each chunk with its decisions, in input order; with ``jobs`` workers, at most
    2 × jobs chunks wait for theirs, so memory stays bounded however fast reading is."""
    if jobs <= 0:
        for batch, write_options in chunks:
            yield batch, write_options, decide(tagger, [r.text for r in batch], rule)
        return
    with ScoringPool(tagger, rule, jobs) as pool:
        pending: deque[tuple[list[Record], FileOptions, Future[Decisions]]] = deque()
        for batch, write_options in chunks:
            pending.append((batch, write_options, pool.submit([r.text for r in batch])))
            if len(pending) > 2 * jobs:  # bounded: reading never runs far ahead
                done, done_options, future = pending.popleft()
                yield done, done_options, pool.result(future)
        while pending:
            done, done_options, future = pending.popleft()
            yield done, done_options, pool.result(future)


class ScoringPool:
    """Worker processes that each load the tagger from its directory once and score
    chunks of texts. Workers ignore Ctrl-C: this process stops them once the chunk in
    hand is done."""

    def __init__(self, tagger: Tagger, rule: RuleSpec, jobs: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if tagger.directory is None:
            raise TaggerError(
                "scoring in worker processes needs a tagger loaded from a directory "
                "(save it first, or use 0 jobs)"
            )
        self.interrupted = False
        self.previous_handler: Any = None
        self.executor = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),  # fork is unsafe with threads
            initializer=_start_worker,
            initargs=(str(tagger.directory), rule, tagger.runtime),
        )

    def submit(self, texts: list[str]) -> Future[Decisions]:
        self._raise_if_interrupted()
        return self.executor.submit(_score_in_worker, texts)

    def result(self, future: Future[Decisions]) -> Decisions:
        from concurrent.futures import TimeoutError as Pending
        from concurrent.futures.process import BrokenProcessPool

        try:
            while True:
                self._raise_if_interrupted()
                try:
                    return future.result(timeout=0.1)
                except Pending:
                    continue
        except BrokenProcessPool:
            raise TaggerError(
                "a scoring worker process stopped unexpectedly (killed, or out of memory?); "
                "--jobs 0 scores in this process"
            ) from None

    # Ctrl-C while the pool runs is noted and raised between chunks (within a tenth of a
    # second), never inside the executor's locks and queues: raised there, it can leave a
    # lock held and hang the process at exit.
    def _note_interrupt(self, signum: int, frame: object) -> None:
        self.interrupted = True

    def _raise_if_interrupted(self) -> None:
        if self.interrupted:
            raise KeyboardInterrupt

    def __enter__(self) -> ScoringPool:
        if threading.current_thread() is threading.main_thread():
            self.previous_handler = signal.signal(signal.SIGINT, self._note_interrupt)
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            # Stopped early (an error, Ctrl-C), the queued chunks are dropped and the workers
            # finish the chunk in hand: killing one mid-reply would leave the executor
            # waiting for the rest of it forever.
            self.executor.shutdown(wait=True, cancel_futures=error is not None)
        finally:
            if self.previous_handler is not None:
                signal.signal(signal.SIGINT, self.previous_handler)


_worker: tuple[Tagger, RuleSpec] | TaggerError | None = None


def _start_worker(directory: str, rule: RuleSpec, runtime: str | None) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # the parent checked the files (unless told not to) just before
        _worker = (Tagger.load(directory, verify=False, runtime=runtime), rule)
    except TaggerError as error:  # raised with the first chunk, as one line in the parent
        _worker = error
    settle_heap()


def settle_heap() -> None:
    """Move what is loaded so far (modules, the tagger) out of the garbage collector's
    sight: streaming allocates a few objects per name, and each full collection would
    otherwise walk the whole heap (about a quarter of a large file's time). Called by
    the command and by each worker once the tagger is loaded."""
    gc.collect()
    gc.freeze()


def _score_in_worker(texts: list[str]) -> Decisions:
    if isinstance(_worker, TaggerError):
        raise _worker
    assert _worker is not None, "worker not started"
    tagger, rule = _worker
    return decide(tagger, texts, rule)


def predict_to_file(
    tagger: Tagger,
    records: Iterable[Record],
    output: Path,
    *,
    format: str | None = None,
    options: FileOptions | None = None,
    rule: RuleSpec = None,
    display: bool = False,
    progress: Callable[[int], Any] | None = None,
    jobs: int = 0,
) -> int:
    """Tag ``records`` into ``output`` chunk by chunk; returns the rows written."""
    chunks = tagged_chunks(
        tagger,
        records,
        options=options or FileOptions(),
        rule=rule,
        display=display,
        progress=progress,
        jobs=jobs,
    )
    first = next(chunks, None)
    if first is None:
        return 0
    written = 0
    with record_writer(output, format, first[1]) as writer:
        for rows, _ in itertools.chain([first], chunks):
            writer.write_rows(rows)
            written += len(rows)
    return written


def predict_shards(
    tagger: Tagger,
    shards: Iterable[Shard],
    *,
    format: str | None = None,
    output_format: str | None = None,
    options: FileOptions | None = None,
    rule: RuleSpec = None,
    display: bool = False,
    progress: Callable[[int], Any] | None = None,
    jobs: int = 0,
) -> int:
    """Tag each shard into its own output file, one after the other in this process (the
    single-process counterpart of the Ray engine); returns the rows written. A shard's
    output is complete or absent: an error stops at that shard, the ones before it kept."""
    options = options or FileOptions(require_labels=False)  # unlabelled names are the norm
    written = 0
    for shard in shards:
        written += predict_to_file(
            tagger,
            iter_records(shard.path, format, options),
            shard.output,
            format=output_format,
            options=options,
            rule=rule,
            display=display,
            progress=progress,
            jobs=jobs,
        )
    return written
