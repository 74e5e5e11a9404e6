"""`tagger predict --engine ray`: a catalogue's shards tagged by Ray Data's batch-inference
pattern, on this machine or on a running cluster.

Each shard is read by its own read task with the same data sources and checks as
`tagger predict` (so a bad row fails alike, naming the shard and row), in chunks; an actor
pool of :class:`ChunkScorer`, each actor holding the tagger once, scores each chunk exactly
as `tagger predict` scores it (same chunk, same batch: the same scores, to the last digit);
this process writes each shard's output, complete or absent, with the input's columns and
row order. A chunk travels as one row of its own block, so that blocks go to whichever
actor is free and are never merged or cut. Ray keeps them in input order
(``preserve_order``) and, when an actor dies, restarts it and retries its chunks: every row
reaches the writer exactly once."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tagger_core.errors import TaggerError

try:
    import pyarrow as pa
    import ray
    import ray.data
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata
except ImportError:  # this module is imported only for a job on Ray
    raise TaggerError('--engine ray needs the ray extra: pip install "tagger[ray]"') from None

from tagger_core.catalogue.batches import TagBatches
from tagger_core.components import FileOptions, RecordWriter, record_fields
from tagger_core.data.io import iter_records, record_writer
from tagger_core.data.shards import Shard
from tagger_core.machine import available_cpus
from tagger_core.tagger import RuleSpec, Tagger
from tagger_core.workflows.predict import (
    PREDICTED,
    PREDICTED_NAME,
    SCORES,
    check_no_clash,
    checked_chunks,
    with_prediction,
)

# The columns of a chunk's row between the readers, the actors and this process: its
# names, its records' own fields (pickled, whatever their types: nested JSON, Parquet
# dates; they come back unchanged), its shard, and whether the shard's rows have labels.
TEXTS = "__tagger_texts"
FIELDS = "__tagger_fields"
SHARD = "__tagger_shard"
LABELLED = "__tagger_labelled"


@dataclass(frozen=True)
class RaySettings:
    """Where Ray runs and how the work is cut: actors (default: as many as the CPUs allow),
    CPUs and GPUs per actor, rows per chunk (one scoring call; `tagger predict`'s is
    2,048), encoder threads per actor (default: its CPUs)."""

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    batch_size: int = 2048
    threads: int | None = None


class ShardFiles(Datasource):
    """One read task per shard, streaming it a chunk at a time through the data sources."""

    def __init__(
        self,
        shards: list[Shard],
        format: str | None,
        options: FileOptions,
        display: bool,
        chunk: int,
    ) -> None:
        self.shards = shards
        self.format = format
        self.options = options
        self.display = display
        self.chunk = chunk

    def estimate_inmemory_data_size(self) -> int:
        return sum(shard.path.stat().st_size for shard in self.shards)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        return [
            ReadTask(
                _reader(index, shard, self.format, self.options, self.display, self.chunk),
                BlockMetadata(
                    num_rows=None,
                    size_bytes=shard.path.stat().st_size,
                    input_files=(str(shard.path),),
                    exec_stats=None,
                ),
            )
            for index, shard in enumerate(self.shards)
        ]


def _reader(
    index: int, shard: Shard, format: str | None, options: FileOptions, display: bool, size: int
) -> Callable[[], Iterator[pa.Table]]:
    def read() -> Iterator[pa.Table]:
        records = iter_records(shard.path, format, options)
        for batch, write_options in checked_chunks(records, options, size):
            for record in batch:
                check_no_clash(record, display)
            fields = [pickle.dumps(record_fields(r, write_options), protocol=5) for r in batch]
            yield pa.table(
                {
                    TEXTS: pa.array([[r.text for r in batch]], pa.list_(pa.string())),
                    FIELDS: pa.array([fields], pa.list_(pa.binary())),
                    SHARD: pa.array([index], pa.int32()),
                    LABELLED: pa.array([write_options.write_labels]),
                }
            )

    return read


class ChunkScorer(TagBatches):
    """The actor: scores each chunk (a row of the block) as one batch, and returns the
    chunk's predictions beside its fields, as lists of one item per name."""

    def __call__(self, chunks: Any) -> Any:
        predicted, names, scores = [], [], []
        for texts in chunks.column(TEXTS).to_pylist():
            tagged = self.tag_arrow(pa.table({self.text_field: pa.array(texts, pa.string())}))
            predicted.append(tagged.column(PREDICTED).combine_chunks())
            scores.append(tagged.column(SCORES).combine_chunks())
            if self.display:
                names.append(tagged.column(PREDICTED_NAME).combine_chunks())
        out = chunks.drop_columns([TEXTS])
        out = out.append_column(PREDICTED, _one_row_each(predicted))
        if self.display:
            out = out.append_column(PREDICTED_NAME, _one_row_each(names))
        return out.append_column(SCORES, _one_row_each(scores))


def _one_row_each(arrays: list[pa.Array]) -> pa.Array:
    """One list per chunk: each chunk's per-name array as one list value."""
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.concat_arrays(arrays))


def start_ray(settings: RaySettings) -> bool:
    """Connect to the cluster at ``settings.address`` or ``RAY_ADDRESS``, or start Ray on
    this machine sized to its CPUs; False when Ray was already running in this process."""
    if ray.is_initialized():
        return False
    address = settings.address or os.environ.get("RAY_ADDRESS")
    quiet: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,  # actors' own output stays in Ray's log files
        "logging_level": logging.WARNING,
    }
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=available_cpus(), **quiet)
    return True


def predict_with_ray(
    tagger: Tagger,
    shards: list[Shard],
    *,
    format: str | None = None,
    output_format: str | None = None,
    options: FileOptions | None = None,
    rule: RuleSpec = None,
    display: bool = False,
    settings: RaySettings | None = None,
    scorer: type[ChunkScorer] = ChunkScorer,
) -> int:
    """Tag ``shards`` (from :func:`~tagger_core.data.shards.plan_outputs`) on Ray with the
    saved ``tagger``; returns the rows written. ``scorer`` is the actor class (a
    :class:`ChunkScorer` subclass may add to it)."""
    if tagger.directory is None:
        raise TaggerError("the Ray engine needs a tagger saved in a directory (save it first)")
    settings = settings or RaySettings()
    options = options or FileOptions(require_labels=False)  # unlabelled names are the norm
    started = start_ray(settings)
    console = [h for h in logging.getLogger("ray.data").handlers if _is_console(h)]
    for handler in console:
        handler.addFilter(_without_user_errors)
    context = ray.data.DataContext.get_current()  # changed for this job, then restored
    block_size, ordered = context.target_max_block_size, context.execution_options.preserve_order
    try:
        context.execution_options.preserve_order = True
        context.target_max_block_size = 1  # never merge chunks into one block: one each
        actors = settings.actors or _default_actors(settings.cpus_per_actor)
        dataset = ray.data.read_datasource(
            ShardFiles(shards, format, options, display, settings.batch_size),
            override_num_blocks=len(shards),
            concurrency=max(1, min(len(shards), actors)),
            num_cpus=0,  # reading is light beside scoring: it never waits for an actor's CPU
        )
        dataset = dataset.map_batches(
            scorer,
            fn_constructor_kwargs={
                "tagger": str(tagger.directory),
                "text_field": "text",
                "rule": rule,
                "display": display,
                "runtime": tagger.runtime,
                "threads": settings.threads or max(1, int(settings.cpus_per_actor)),
                "verify": False,  # this process checked the files when it loaded the tagger
            },
            # A shallow queue per actor: blocks go to whichever actor is free.
            compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2),
            num_cpus=settings.cpus_per_actor,
            num_gpus=settings.gpus_per_actor or None,
            batch_size=None,  # a block is a chunk
            batch_format="pyarrow",
        )
        return _write_shards(dataset, shards, output_format, options, display)
    except Exception as error:
        cause = tagger_error_in(error)
        if cause is not None:
            raise cause from None
        raise
    finally:
        context.target_max_block_size = block_size
        context.execution_options.preserve_order = ordered
        for handler in console:
            handler.removeFilter(_without_user_errors)
        if started:
            ray.shutdown()


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(
        handler, logging.FileHandler
    )


def _without_user_errors(record: logging.LogRecord) -> bool:
    """Keep Ray Data's traceback of a user's error (a bad row) out of the terminal, where
    the error is reported in one line; Ray's log files keep it whole. Ray Data logs some
    of them while handling the exception, without attaching it: hence ``sys.exc_info``."""
    error = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
    return error is None or tagger_error_in(error) is None


def _default_actors(cpus_per_actor: float) -> int:
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(1, int(cpus // cpus_per_actor))


def _write_shards(
    dataset: Any,
    shards: list[Shard],
    output_format: str | None,
    options: FileOptions,
    display: bool,
) -> int:
    """Write the scored chunks, which arrive in input order, shard after shard; each
    shard's file is committed when the next shard starts (or the job ends)."""
    written = 0
    current = -1
    writer: RecordWriter | None = None
    with contextlib.ExitStack() as committing:
        for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            columns = [PREDICTED, *([PREDICTED_NAME] if display else []), SCORES]
            chunks = zip(
                block.column(SHARD).to_pylist(),
                block.column(LABELLED).to_pylist(),
                block.column(FIELDS).to_pylist(),
                *(block.column(name).to_pylist() for name in columns),
                strict=True,
            )
            for index, labelled, fields, predicted, *rest in chunks:
                if index != current:
                    if index != current + 1:  # each shard has rows, and they come in order
                        raise TaggerError(f"rows for {shards[current + 1].path} did not come back")
                    committing.close()  # the previous shard is complete: renamed into place
                    write_options = options.model_copy(update={"write_labels": labelled})
                    writer = committing.enter_context(
                        record_writer(shards[index].output, output_format, write_options)
                    )
                    current = index
                names = rest[0] if display else [None] * len(fields)
                assert writer is not None
                writer.write_rows(
                    [
                        with_prediction(pickle.loads(f), labels, shown, scores)
                        for f, labels, shown, scores in zip(
                            fields, predicted, names, rest[-1], strict=True
                        )
                    ]
                )
                written += len(fields)
    if current != len(shards) - 1:
        raise TaggerError(f"rows for {shards[current + 1].path} did not come back")
    return written


def tagger_error_in(error: BaseException) -> TaggerError | None:
    """The user's error (a bad row, a missing file) inside Ray's wrappers, if that is what
    stopped the job: it is reported as one line, as without Ray."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TaggerError) and not isinstance(current, ray.exceptions.RayError):
            return current
        pending += [getattr(current, "cause", None), current.__cause__, current.__context__]
    return None
