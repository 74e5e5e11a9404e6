"""Tag a batch of names inside someone else's data pipeline: the callable class that Ray
Data's ``map_batches`` (one instance per actor) or Spark's ``mapInPandas`` (one per
executor's Python worker) calls on each batch, with the tagger loaded once per instance.

Batches are Arrow tables, pandas data frames or dicts of NumPy arrays (Ray's default);
each comes back with every input column and, added, ``predicted`` (a list of label ids per
row), ``predicted_name`` (with ``display``) and ``scores`` (one float per label, as a
struct column: the same columns a Parquet output of `tagger predict` has)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tagger_core.errors import DataError, TaggerError
from tagger_core.tagger import RuleSpec, Tagger
from tagger_core.workflows.predict import PREDICTED, PREDICTED_NAME, SCORES, Decisions, decide


class TagBatches:
    """``TagBatches(tagger_dir)(batch)`` → ``batch`` with the tagger's predictions.

    ``threads`` sizes the encoder to the CPUs the actor was given (torch and ONNX Runtime
    would otherwise start one thread per core of the machine in every actor)."""

    def __init__(
        self,
        tagger: str | Path,
        *,
        text_field: str = "text",
        rule: RuleSpec = None,
        display: bool = False,
        runtime: str | None = None,
        threads: int | None = None,
        verify: bool = True,
    ) -> None:
        self.tagger = Tagger.load(tagger, verify=verify, runtime=runtime)
        self.tagger.set_threads(threads)
        self.text_field = text_field
        self.rule = rule
        self.display = display
        taxonomy = self.tagger.taxonomy
        self.ids = np.array(taxonomy.label_ids, dtype=object)
        self.names = np.array([label.display_name for label in taxonomy.labels], dtype=object)

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, dict):  # Ray's default batch format: columns of NumPy arrays
            return self.tag_arrow(_arrow().table(batch))
        if type(batch).__module__.startswith("pandas"):
            return self.tag_pandas(batch)
        return self.tag_arrow(batch)

    def decisions(self, texts: list[Any]) -> Decisions:
        for row, text in enumerate(texts, start=1):
            if not isinstance(text, str) or not text.strip():
                problem = "empty text" if isinstance(text, str) or text is None else "not text"
                raise DataError(f"{problem} (row {row} of the batch)", field=self.text_field)
        return decide(self.tagger, texts, self.rule)

    def added_columns(self) -> list[str]:
        return [PREDICTED, *([PREDICTED_NAME] if self.display else []), SCORES]

    def _check_columns(self, columns: list[str]) -> None:
        if self.text_field not in columns:
            raise DataError(
                f"the batch has no '{self.text_field}' column (it has: {', '.join(columns)})",
                field=self.text_field,
            )
        clash = [name for name in self.added_columns() if name in columns]
        if clash:
            raise DataError(
                f"the batch already has a '{clash[0]}' column; predictions would overwrite it",
                field=clash[0],
            )

    def tag_arrow(self, table: Any) -> Any:
        pa = _arrow()
        self._check_columns(table.column_names)
        decisions = self.decisions(table.column(self.text_field).to_pylist())
        chosen = decisions.chosen.astype(bool)
        offsets = pa.array(np.concatenate([[0], np.cumsum(chosen.sum(axis=1))]), pa.int32())
        columns = np.nonzero(chosen)[1]
        table = table.append_column(
            PREDICTED, pa.ListArray.from_arrays(offsets, pa.array(self.ids[columns], pa.string()))
        )
        if self.display:
            names = pa.array(self.names[columns], pa.string())
            table = table.append_column(PREDICTED_NAME, pa.ListArray.from_arrays(offsets, names))
        scores = pa.StructArray.from_arrays(
            [pa.array(column) for column in decisions.probabilities.T], names=list(self.ids)
        )
        return table.append_column(SCORES, scores)

    def tag_pandas(self, frame: Any) -> Any:
        self._check_columns([str(c) for c in frame.columns])
        decisions = self.decisions(frame[self.text_field].tolist())
        chosen = decisions.chosen.astype(bool).tolist()
        ids = list(self.ids)
        added: dict[str, list[Any]] = {
            PREDICTED: [[i for i, c in zip(ids, row, strict=True) if c] for row in chosen]
        }
        if self.display:
            names = list(self.names)
            added[PREDICTED_NAME] = [
                [n for n, c in zip(names, row, strict=True) if c] for row in chosen
            ]
        added[SCORES] = [
            dict(zip(ids, row, strict=True)) for row in decisions.probabilities.tolist()
        ]
        return frame.assign(**added)


def _arrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise TaggerError(
            'Arrow and NumPy batches need pyarrow: pip install "tagger[ray]"'
        ) from None
    return pyarrow
