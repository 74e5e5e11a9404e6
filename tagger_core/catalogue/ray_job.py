"""`tagger predict --engine ray`: a catalogue's shards tagged by Ray Data's batch-inference
pattern, on this machine or on a running cluster.

Each shard is read by its own read task with the same data sources and checks as
`tagger predict` (so a bad row fails alike, naming the shard and row); an actor pool of
:class:`TagBatches`, each actor holding the tagger once, scores the rows; this process
writes each shard's output, complete or absent, with the input's columns and row order.
Ray keeps the blocks in input order (``preserve_order``) and, when an actor dies, restarts
it and retries its batches: every row reaches the writer exactly once."""

from __future__ import annotations

import contextlib
import itertools
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
from tagger_core.tagger import RuleSpec, Tagger
from tagger_core.workflows.predict import (
    PREDICTED,
    PREDICTED_NAME,
    SCORES,
    check_no_clash,
    checked_chunks,
    with_prediction,
)

# Columns that travel with each row between the readers, the actors and this process. The
# input's own fields travel pickled, whatever their types (nested JSON, Parquet dates), and
# come back unchanged; only the name is handed to the tagger.
TEXT = "__tagger_text"
FIELDS = "__tagger_fields"
SHARD = "__tagger_shard"
LABELLED = "__tagger_labelled"


@dataclass(frozen=True)
class RaySettings:
    """Where Ray runs and how the work is cut: actors (default: as many as the CPUs allow),
    CPUs and GPUs per actor, rows per scoring call, encoder threads per actor (default:
    its CPUs)."""

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    batch_size: int = 2048
    threads: int | None = None


class ShardFiles(Datasource):
    """One read task per shard, streaming it a chunk at a time through the data sources."""

    def __init__(
        self, shards: list[Shard], format: str | None, options: FileOptions, display: bool
    ) -> None:
        self.shards = shards
        self.format = format
        self.options = options
        self.display = display

    def estimate_inmemory_data_size(self) -> int:
        return sum(shard.path.stat().st_size for shard in self.shards)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        return [
            ReadTask(
                _reader(index, shard, self.format, self.options, self.display),
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
    index: int, shard: Shard, format: str | None, options: FileOptions, display: bool
) -> Callable[[], Iterator[pa.Table]]:
    def read() -> Iterator[pa.Table]:
        records = iter_records(shard.path, format, options)
        for batch, write_options in checked_chunks(records, options):
            for record in batch:
                check_no_clash(record, display)
            fields = [pickle.dumps(record_fields(r, write_options), protocol=5) for r in batch]
            yield pa.table(
                {
                    TEXT: pa.array([r.text for r in batch], pa.string()),
                    FIELDS: pa.array(fields, pa.binary()),
                    SHARD: pa.array(np.full(len(batch), index, dtype=np.int32)),
                    LABELLED: pa.array(np.full(len(batch), write_options.write_labels)),
                }
            )

    return read


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
        ray.init(num_cpus=_local_cpus(), **quiet)
    return True


def _local_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
    scorer: type[TagBatches] = TagBatches,
) -> int:
    """Tag ``shards`` (from :func:`~tagger_core.data.shards.plan_outputs`) on Ray with the
    saved ``tagger``; returns the rows written. ``scorer`` is the actor class (a
    :class:`TagBatches` subclass may add to it)."""
    if tagger.directory is None:
        raise TaggerError("the Ray engine needs a tagger saved in a directory (save it first)")
    settings = settings or RaySettings()
    options = options or FileOptions(require_labels=False)  # unlabelled names are the norm
    started = start_ray(settings)
    console = [h for h in logging.getLogger("ray.data").handlers if _is_console(h)]
    for handler in console:
        handler.addFilter(_without_user_errors)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        actors = settings.actors or _default_actors(settings.cpus_per_actor)
        dataset = ray.data.read_datasource(
            ShardFiles(shards, format, options, display),
            override_num_blocks=len(shards),
            concurrency=max(1, min(len(shards), actors)),
            num_cpus=0,  # reading is light beside scoring: it never waits for an actor's CPU
        )
        dataset = dataset.map_batches(
            scorer,
            fn_constructor_kwargs={
                "tagger": str(tagger.directory),
                "text_field": TEXT,
                "rule": rule,
                "display": display,
                "runtime": tagger.runtime,
                "threads": settings.threads or max(1, int(settings.cpus_per_actor)),
                "verify": False,  # this process checked the files when it loaded the tagger
            },
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=settings.cpus_per_actor,
            num_gpus=settings.gpus_per_actor or None,
            batch_size=settings.batch_size,
            batch_format="pyarrow",
        )
        return _write_shards(dataset, shards, output_format, options, display)
    except Exception as error:
        cause = tagger_error_in(error)
        if cause is not None:
            raise cause from None
        raise
    finally:
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
    """Write the scored blocks, which arrive in input order, shard after shard; each
    shard's file is committed when the next shard starts (or the job ends)."""
    written = 0
    current = -1
    writer: RecordWriter | None = None
    with contextlib.ExitStack() as committing:
        for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            indexes = block.column(SHARD).to_numpy()
            labelled = block.column(LABELLED).to_pylist()
            fields = block.column(FIELDS).to_pylist()
            predicted = block.column(PREDICTED).to_pylist()
            names = block.column(PREDICTED_NAME).to_pylist() if display else None
            scores = block.column(SCORES).to_pylist()
            starts = [0, *(np.flatnonzero(np.diff(indexes)) + 1).tolist(), len(indexes)]
            for start, end in itertools.pairwise(starts):
                index = int(indexes[start])
                if index != current:
                    if index != current + 1:  # each shard has rows, and they come in order
                        raise TaggerError(f"rows for {shards[current + 1].path} did not come back")
                    committing.close()  # the previous shard is complete: renamed into place
                    write_options = options.model_copy(update={"write_labels": labelled[start]})
                    writer = committing.enter_context(
                        record_writer(shards[index].output, output_format, write_options)
                    )
                    current = index
                assert writer is not None
                writer.write_rows(
                    [
                        with_prediction(
                            pickle.loads(fields[i]),
                            predicted[i],
                            names[i] if names is not None else None,
                            scores[i],
                        )
                        for i in range(start, end)
                    ]
                )
                written += end - start
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
