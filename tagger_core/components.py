"""Base classes for what plugins provide: data sources, encoders, decision rules and
normalizers.

Each component has a ``name`` (what users type), a one-line ``description`` and a pydantic
params model, so that parameters from the CLI or a manifest are validated the same way.
The params model is the class's type argument (``class MyRule(DecisionRule[MyParams])``),
which also types ``self.params``. Abstract methods are enforced: a subclass that misses
one cannot be instantiated.
"""

from __future__ import annotations

import datetime
import decimal
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from tagger_core.errors import PluginError, validation_problem
from tagger_core.schemas import Mode, Record, Taxonomy
from tagger_core.scores import Scores


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class ParamInfo:
    """One ``-p KEY=VALUE`` a component takes, for `tagger plugins --options`."""

    name: str
    type: str
    default: Any
    help: str


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


class Component(ABC, Generic[P]):
    name: ClassVar[str]
    kind: ClassVar[str] = "component"
    description: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    params: P

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Params" in cls.__dict__:
            return
        for base in cls.__dict__.get("__orig_bases__", ()):
            for arg in get_args(base):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    cls.Params = arg
                    return

    def __init__(self, **params: Any) -> None:
        try:
            self.params = cast(P, self.Params(**params))
        except ValidationError as exc:
            field_name, message = validation_problem(exc)
            where = f"parameter '{field_name}': " if field_name else ""
            raise PluginError(f"{self.kind} '{self.name}': {where}{message}") from None

    def params_dict(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")

    @classmethod
    def options(cls) -> list[ParamInfo]:
        """Every parameter with its type, default and help, read from the params model."""
        defaults = cls.Params().model_dump(mode="json") if _constructible(cls.Params) else {}
        return [
            ParamInfo(
                name=name,
                type=_type_name(info.annotation),
                default=defaults.get(name, info.get_default(call_default_factory=True)),
                help=info.description or "",
            )
            for name, info in cls.Params.model_fields.items()
        ]


def _constructible(model: type[BaseModel]) -> bool:
    try:
        model()
    except ValidationError:
        return False
    return True


class FileOptions(BaseModel):
    """Where texts and labels are in a tabular or JSON file, for reading and writing."""

    model_config = ConfigDict(extra="forbid")

    text_field: str = "text"
    label_field: str = "label"
    # Splits a string of labels. Unset: "|" in table cells (CSV, TSV, Excel); in JSON a
    # label string is an error, as labels there are lists, unless a separator is named.
    label_sep: str | None = None
    require_labels: bool = True
    source: str | None = None
    sheet: str | None = None
    write_labels: bool = True  # False: written files get no label field (unlabelled input)


Row = dict[str, object]  # one output row: a record's fields (and a prediction's)


def json_default(value: object) -> object:
    """What a JSON writer makes of the cell values JSON has no type for (the ``default``
    of ``json.dumps`` and orjson): dates and times as ISO 8601 (spreadsheets and Parquet
    hold them), decimals as their exact digits, bytes as text."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    raise TypeError(f"a {type(value).__name__} value has no JSON form")


def record_fields(record: Record, options: FileOptions) -> Row:
    """A record as the fields a writer writes: id, text, labels (unless
    ``options.write_labels`` is off), then its other fields as they were read."""
    fields: Row = {}
    if record.id is not None:
        fields["id"] = record.id
    fields[options.text_field] = record.text
    if options.write_labels:
        fields[options.label_field] = list(record.labels)
    fields.update(record.metadata)
    return fields


class RecordWriter:
    """Takes rows in chunks, for outputs larger than memory. This default keeps them and
    writes the whole file through :meth:`DataSource.write` when closed; data sources that
    can append (JSON Lines, CSV, …) return their own, which implement :meth:`write_rows`.

    A row is a record's fields (:func:`record_fields`) with anything added, such as a
    prediction: writing rows rather than records lets `tagger predict` add its fields
    without building a record per name."""

    def __init__(self, source: DataSource[Any], path: Path, options: FileOptions) -> None:
        self.source, self.path, self.options = source, path, options
        self.records: list[Record] = []

    def write(self, records: Sequence[Record]) -> None:
        self.write_rows([record_fields(record, self.options) for record in records])

    def write_rows(self, rows: Sequence[Row]) -> None:
        self.records.extend(self._record(row) for row in rows)

    def close(self) -> None:
        self.source.write(self.path, self.records, self.options)

    def _record(self, row: Row) -> Record:
        """The inverse of :func:`record_fields`, for data sources that write records."""
        text, labels = self.options.text_field, self.options.label_field
        identity = row.get("id")
        return Record(
            text=str(row.get(text, "")),
            labels=tuple(cast(list[str], row.get(labels) or [])),
            id=identity,  # type: ignore[arg-type]
            metadata={k: v for k, v in row.items() if k not in ("id", text, labels)},
        )


class DataSource(Component[P]):
    """Reads records from and writes records to one file format."""

    kind: ClassVar[str] = "data source"
    suffixes: ClassVar[tuple[str, ...]] = ()
    # False for formats that only hold names to tag: refused as an output before any work.
    writable: ClassVar[bool] = True

    @abstractmethod
    def read(self, path: Path, options: FileOptions) -> list[Record]:
        """All records of ``path``; raise :class:`DataError` naming the row and field."""

    @abstractmethod
    def write(self, path: Path, records: list[Record], options: FileOptions) -> None:
        """Write text, labels and metadata (e.g. scores) of ``records`` to ``path``."""

    def iter_read(self, path: Path, options: FileOptions) -> Iterator[Record]:
        """The records of ``path`` one at a time, so that `tagger predict` works in bounded
        memory; the default reads the whole file with :meth:`read`."""
        yield from self.read(path, options)

    def open_writer(self, path: Path, options: FileOptions) -> RecordWriter:
        """A writer for records given in chunks (see :class:`RecordWriter`)."""
        return RecordWriter(self, path, options)


def check_weights(
    array: np.ndarray, file: Path, shape: tuple[int, ...], dtype: type = np.float32
) -> np.ndarray:
    """An encoder's saved array as loaded, refused with one line naming ``file`` unless it
    has the ``shape`` and ``dtype`` that were saved and only finite values."""
    from tagger_core.errors import ModelError

    if array.dtype != np.dtype(dtype):
        raise ModelError(f"holds {array.dtype} values, expected {np.dtype(dtype)}", file=file)
    if array.shape != shape:
        raise ModelError(f"has shape {array.shape}, expected {shape}", file=file)
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ModelError(f"holds {bad} non-finite value(s) (NaN or infinity)", file=file)
    return array


@dataclass(frozen=True)
class ParamRange:
    """Where `tagger tune` searches one encoder parameter: a float or int range (``log``:
    sampled on a log scale) or a list of ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        ranged = self.low is not None and self.high is not None
        if ranged == bool(self.choices) or (ranged and self.low > self.high):  # type: ignore[operator]
            raise PluginError("a parameter range is low ≤ high, or a list of choices")
        if ranged and self.log and self.low <= 0:  # type: ignore[operator]
            raise PluginError("a parameter range searched on a log scale needs low > 0")


class Encoder(Component[P]):
    """A trainable map from texts to an n × L matrix of logits. Knows no thresholds."""

    kind: ClassVar[str] = "encoder"
    # The encoder `tagger train` uses when none is named (exactly one plugin may claim it).
    default: ClassVar[bool] = False
    # The parameter that names a pretrained model (folder or hub id), which --model sets.
    model_param: ClassVar[str | None] = None
    # True when logits() already keeps every CPU busy (torch, BLAS): `tagger predict` then
    # scores in its own process, as a worker process would add memory, not speed.
    uses_all_cpus: ClassVar[bool] = False
    # True when fit() learns from the validation rows itself (early stopping, fitted
    # weights): `tagger cv` and `tagger tune` then hold some out of each training part even
    # where the decision rule needs none (a single-label taxonomy's argmax).
    learns_from_validation: ClassVar[bool] = False
    # False when fit() can start from the taxonomy alone, with no labelled rows (zero-shot
    # from label names and descriptions): `tagger train` then takes no --train file.
    needs_examples: ClassVar[bool] = True
    # The figure training is judged on, where it told the encoder (aim_at).
    objective: str | None = None

    def aim_at(self, objective: str | None) -> None:
        """Called before :meth:`fit` with the figure training is judged on (`tagger train
        --objective`, one of ``OBJECTIVES``; None: none was named). An encoder that
        measures itself on the validation rows while fitting (early stopping, member
        weights) should measure this figure where its user named no other. The default
        keeps it in ``objective``."""
        self.objective = objective

    @abstractmethod
    def fit(
        self,
        texts: list[str],
        targets: np.ndarray,
        taxonomy: Taxonomy,
        *,
        valid: tuple[list[str], np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        """Train on ``targets`` (n × L, 0/1); ``valid`` may drive early stopping. With
        ``needs_examples`` off, ``texts`` may be empty."""

    @abstractmethod
    def logits(self, texts: list[str]) -> np.ndarray:
        """Raw scores, n × L in taxonomy label order."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the trained state into an existing empty ``directory``."""

    @abstractmethod
    def load(self, directory: Path, taxonomy: Taxonomy) -> None:
        """Restore the state written by :meth:`save`."""

    def is_primary(self) -> bool:
        """False in the helper processes of a distributed run (e.g. torchrun): every
        process trains, only the primary one prints, saves and reports."""
        return True

    @classmethod
    def search_space(cls, params: dict[str, Any]) -> dict[str, ParamRange]:
        """The parameters `tagger tune` searches by default, given the fixed ``params``
        (an ensemble's depend on its members); none by default."""
        return {}

    @classmethod
    def with_values(cls, params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """``params`` with a trial's ``values`` (keys as :meth:`search_space` names them)."""
        return {**params, **values}

    def export_onnx(self, directory: Path, *, quantize: str) -> Path:
        """Write an ONNX model of the trained encoder below ``directory`` (the folder it
        saved itself in) and return the file, for `tagger export --onnx`; ``quantize`` is
        "none" or "int8". An encoder that can use it takes a ``runtime`` parameter
        (``auto``: the ONNX model where there is one). None can by default."""
        raise PluginError(f"encoder '{self.name}' cannot be exported to ONNX")

    def members(self) -> dict[str, Encoder[Any]]:
        """The trained encoders whose scores this one combines, by name (an ensemble's),
        so that training and `tagger evaluate` can measure each alone; none by default.
        An encoder that has members also implements :meth:`combine`."""
        return {}

    def combination(self) -> str:
        """How a trained encoder with members weighs them, in one line for `tagger
        evaluate` and each `tagger cv` fold ('' for an encoder without members)."""
        return ""

    def combine(self, member_logits: list[np.ndarray]) -> np.ndarray:
        """This encoder's logits from its members' (in :meth:`members` order): where the
        core needs both, each member scores the texts once."""
        raise NotImplementedError(f"encoder '{self.name}' has no members to combine")


@dataclass(frozen=True)
class RuleSearch:
    """What `tagger optimize` (and the tuner) asks each rule for its candidates."""

    taxonomy: Taxonomy
    objective: str
    thresholds: tuple[float, ...]  # the global probability thresholds to try
    max_k: int = 5
    # Fixed parameters the user gave for one rule's candidates: rule name → params.
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fixed(self, rule: str) -> dict[str, Any]:
        return dict(self.params.get(rule, {}))


FitParams = Callable[[Scores, np.ndarray], dict[str, Any]]


@dataclass(frozen=True)
class RuleChoice:
    """One candidate a rule offers: its parameters, or how to fit them on validation
    scores (``fit`` returns the params; a fittable rule without ``fit`` uses its own
    :meth:`DecisionRule.fit`). For a wrapper rule, ``params=None`` means "not applied"."""

    description: str
    params: dict[str, Any] | None = field(default_factory=dict)
    fit: FitParams | None = None


class DecisionRule(Component[P]):
    """Turns scores into label sets; may be fitted on validation scores. Knows no text.

    A fitted rule keeps what it learned in its params, so the manifest restores it.
    """

    kind: ClassVar[str] = "decision rule"
    # Taxonomy modes for which this rule is the default (one rule per mode).
    default_for: ClassVar[tuple[Mode, ...]] = ()
    # A wrapper post-processes the decisions of another rule, given as param ``inner``.
    wraps: ClassVar[bool] = False

    @property
    def fittable(self) -> bool:
        """Whether :meth:`fit` learns anything from validation scores."""
        return False

    def fit(self, scores: Scores, targets: np.ndarray, taxonomy: Taxonomy) -> None:
        """Learn from validation scores; the default rule has nothing to learn."""
        return None

    @abstractmethod
    def decide(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        """A boolean n × L matrix of chosen labels."""

    def decisions(self, scores: Scores, taxonomy: Taxonomy) -> np.ndarray:
        """What the core uses: :meth:`decide` as booleans, with the ancestors that a nested
        taxonomy implies added (so no rule has to know about hierarchies)."""
        from tagger_core.taxonomy import with_ancestors

        return with_ancestors(np.asarray(self.decide(scores, taxonomy), dtype=bool), taxonomy)

    def label_thresholds(self, taxonomy: Taxonomy) -> dict[str, float] | None:
        """The threshold each label is held to, for rules that have one (reports)."""
        return None

    def fit_report(self) -> list[dict[str, Any]]:
        """Per label, what the last :meth:`fit` chose and why (empty: nothing to say)."""
        return []

    def describe(self) -> str:
        """One line for reports: the name and the parameters that differ from defaults."""
        shown = self.changed_params()
        return self.name + (f" ({', '.join(shown)})" if shown else "")

    def changed_params(self, *skip: str) -> list[str]:
        """'key value' for each parameter that differs from its default."""
        defaults = self.Params().model_dump(mode="json") if _constructible(self.Params) else {}
        return [
            f"{key} {value}"
            for key, value in self.params_dict().items()
            if key not in skip and defaults.get(key, object()) != value
        ]

    @classmethod
    def search_space(cls, search: RuleSearch) -> Sequence[RuleChoice]:
        """The candidates `tagger optimize` tries for this rule (none by default)."""
        return ()


class Normalizer(Component[P]):
    """A text clean-up chosen at training, saved in the tagger and applied identically at
    prediction, so that the encoder sees the same kind of text both times."""

    kind: ClassVar[str] = "normalizer"

    @abstractmethod
    def normalize(self, text: str) -> str:
        """The normalised form of one text."""
