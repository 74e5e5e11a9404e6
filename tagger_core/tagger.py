"""A tagger is taxonomy + encoder + decision rule, trained together and saved as one folder.

The folder holds ``manifest.json`` (versions, taxonomy snapshot, component parameters,
data fingerprints, validation metrics) and ``encoder/`` (whatever the encoder saves), so
``Tagger.load(path).predict(texts)`` needs nothing else.
"""

from __future__ import annotations

import glob
import json
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from tagger_core.components import DecisionRule, Encoder, Normalizer
from tagger_core.errors import DataError, ModelError, TaggerError, validation_problem
from tagger_core.evaluation.metrics import Evaluation, evaluate_matrices
from tagger_core.files import check_parent, exchange, sha256_of, usual_mode
from tagger_core.registry import (
    default_encoder_name,
    default_rule_name,
    make_encoder,
    make_normalizer,
    make_rule,
    resolve_taxonomy,
)
from tagger_core.schemas import ComponentSpec, DataFile, Prediction, Record, Taxonomy
from tagger_core.scores import Scores
from tagger_core.taxonomy import label_matrix

log = logging.getLogger("tagger")

MANIFEST = "manifest.json"
ENCODER_DIR = "encoder"
FORMAT = "tagger-model/1"
_LIBRARIES = ("tagger", "numpy", "scikit-learn", "pydantic", "pluggy", "torch", "transformers")


class TrainingInfo(BaseModel):
    seed: int = 0
    train: list[DataFile] = Field(default_factory=list)
    valid: list[DataFile] = Field(default_factory=list)
    train_rows: int = 0
    valid_rows: int = 0
    validation_metrics: dict[str, Any] | None = None
    # How training chose the decision rule (objective, candidates, gain over the default
    # and its bootstrap support); None where the rule was given or not chosen.
    rule_choice: dict[str, Any] | None = None
    # Encoders that combine members (an ensemble): each member's own rule, fitted like the
    # tagger's on the member's validation scores, and its validation figures.
    members: dict[str, dict[str, Any]] | None = None


class Manifest(BaseModel):
    format: str = FORMAT
    created: str
    versions: dict[str, str]
    taxonomy: Taxonomy
    encoder: ComponentSpec
    rule: ComponentSpec
    normalizers: list[ComponentSpec] = Field(default_factory=list)
    training: TrainingInfo
    # SHA-256 of every file the tagger wrote (path relative to the tagger folder): loading
    # refuses a changed or missing one. Empty in taggers saved before this was recorded.
    files: dict[str, str] = Field(default_factory=dict)
    # Fast-path copies of the encoder written by `tagger export`, by format ("onnx"): the
    # file, its SHA-256, the quantisation and what the export check measured.
    exports: dict[str, dict[str, Any]] = Field(default_factory=dict)


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


NormalizerSpec = str | tuple[str, dict[str, Any]] | Normalizer[Any]
RuleSpec = DecisionRule[Any] | str | None
# Chooses the rule on validation scores and truth, starting from the tagger's own: the
# rule to keep, and a record of the choice for the manifest.
RuleChooser = Callable[
    [Scores, np.ndarray, Taxonomy, DecisionRule[Any]], tuple[DecisionRule[Any], dict[str, Any]]
]


def _normalizer(spec: NormalizerSpec) -> Normalizer[Any]:
    if isinstance(spec, Normalizer):
        return spec
    if isinstance(spec, str):
        return make_normalizer(spec)
    return make_normalizer(*spec)


def file_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file below ``directory`` but the manifest, by relative path."""
    return {
        path.relative_to(directory).as_posix(): sha256_of(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.relative_to(directory).as_posix() != MANIFEST
    }


def _saved_files(path: Path) -> set[str] | None:
    """The files the manifest of the tagger at ``path`` lists; None when it lists none."""
    try:
        files = json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return set(files) if isinstance(files, dict) and files else None


def leftover_folders(path: Path, kind: str) -> list[Path]:
    """The hidden ``.NAME.XXXXXXXX.partial`` (``kind`` "partial") or ``….old`` folders
    :meth:`Tagger.save` makes beside ``path``, oldest name first: exactly its own
    (``mkdtemp``'s eight characters), never those of a tagger whose name starts with
    NAME and a dot."""
    shape = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.{kind}")
    return sorted(
        child
        for child in path.parent.glob(f".{glob.escape(path.name)}.*.{kind}")
        if shape.fullmatch(child.name) and child.is_dir()
    )


def check_tagger_target(path: Path, force: bool) -> None:
    """Refuse, before any training, a folder that cannot take a saved tagger: an existing
    one without ``force``, anything that is not a tagger folder, a tagger folder holding
    files the tagger did not write (they would be deleted), an unwritable parent."""
    if path.exists():
        if not force:
            raise TaggerError(f"{path} already exists; use --force to replace it")
        if not path.is_dir() or (any(path.iterdir()) and not (path / MANIFEST).is_file()):
            raise TaggerError(f"{path} exists and is not a tagger directory; not replacing it")
        saved = _saved_files(path)
        if saved is None and (path / MANIFEST).is_file():
            raise TaggerError(
                f"{path} holds a {MANIFEST} that lists no tagger files (not a tagger "
                "directory); not replacing it"
            )
        if saved is not None:
            present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
            foreign = sorted(present - saved - {MANIFEST})
            if foreign:
                raise TaggerError(
                    f"{path} holds files the tagger did not write ({', '.join(foreign[:3])}"
                    f"{', …' if len(foreign) > 3 else ''}); move them out before replacing it"
                )
    check_parent(path)


def verify_files(path: Path, files: dict[str, str]) -> None:
    """Refuse a tagger whose files differ from what was saved: one line naming the file."""
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise ModelError("missing: the tagger was saved with this file", file=file)
        if sha256_of(file) != expected:
            raise ModelError(
                "changed since the tagger was saved (SHA-256 differs); retrain or restore it "
                "(--no-verify skips this check)",
                file=file,
            )


class Tagger:
    def __init__(
        self,
        taxonomy: Taxonomy,
        encoder: Encoder[Any],
        rule: DecisionRule[Any],
        normalizers: Sequence[Normalizer[Any]] = (),
    ) -> None:
        self.taxonomy = taxonomy
        self.encoder = encoder
        self.rule = rule
        self.normalizers = list(normalizers)
        self.training = TrainingInfo()
        self.exports: dict[str, dict[str, Any]] = {}
        # Where the tagger was loaded from or last saved: worker processes load it there,
        # with the same runtime.
        self.directory: Path | None = None
        self.runtime: str | None = None

    @classmethod
    def create(
        cls,
        taxonomy: str | Path | Taxonomy,
        encoder: str | None = None,
        encoder_params: dict[str, Any] | None = None,
        rule: str | None = None,
        rule_params: dict[str, Any] | None = None,
        normalizers: Sequence[NormalizerSpec] = (),
    ) -> Tagger:
        """An untrained tagger from plugin names; the encoder and rule default to those that
        declare themselves the default (the rule by taxonomy mode).

        ``normalizers`` are names, ``(name, params)`` pairs or instances, applied in order.
        """
        if not isinstance(taxonomy, Taxonomy):
            taxonomy = resolve_taxonomy(taxonomy)
        return cls(
            taxonomy,
            make_encoder(encoder or default_encoder_name(), encoder_params),
            make_rule(rule or default_rule_name(taxonomy.mode), rule_params),
            [_normalizer(spec) for spec in normalizers],
        )

    def normalize(self, texts: Sequence[str]) -> list[str]:
        """Texts as the encoder sees them, at training and at prediction alike."""
        out = list(texts)
        for normalizer in self.normalizers:
            out = [normalizer.normalize(text) for text in out]
        return out

    # -- training -----------------------------------------------------------------------

    def train(
        self,
        train: Sequence[Record],
        valid: Sequence[Record] | None = None,
        *,
        seed: int = 0,
        train_files: Sequence[DataFile] = (),
        valid_files: Sequence[DataFile] = (),
        choose_rule: RuleChooser | None = None,
        objective: str | None = None,
    ) -> Tagger:
        """Fit the encoder on ``train``; with ``valid``, fit the rule (or let
        ``choose_rule`` replace it) and measure on the validation rows. ``objective``, the
        figure the run is judged on, is passed to the encoder (:meth:`Encoder.aim_at`) so
        that its own validation (early stopping, member weights) can measure it."""
        if not 0 <= seed < 2**32:  # what numpy's and scikit-learn's generators take
            raise TaggerError(f"seed {seed}: give a whole number from 0 to 2**32 - 1")
        if not train and self.encoder.needs_examples:
            raise DataError(f"no training records (encoder '{self.encoder.name}' needs some)")
        targets = label_matrix(train, self.taxonomy)
        valid_pair = None
        if valid:
            valid_pair = (
                self.normalize([r.text for r in valid]),
                label_matrix(valid, self.taxonomy),
            )
        if train:
            self._warn_unseen_labels(targets)
        texts = self.normalize([r.text for r in train])
        self.encoder.aim_at(objective)  # None too: an earlier training's aim is not kept
        self.encoder.fit(texts, targets, self.taxonomy, valid=valid_pair, seed=seed)
        self.exports = {}  # exported copies were of the encoder before this training
        self.training = TrainingInfo(
            seed=seed,
            train=list(train_files),
            valid=list(valid_files),
            train_rows=len(train),
            valid_rows=len(valid or ()),
        )
        if valid_pair is not None:
            scores, parts = self._scores_and_members(valid_pair[0])
            initial = make_rule(self.rule.name, self.rule.params_dict())
            if choose_rule is not None:
                self.rule, self.training.rule_choice = choose_rule(
                    scores, valid_pair[1], self.taxonomy, self.rule
                )
            elif self.rule.fittable:  # e.g. per-label thresholds, fitted on validation scores
                self.rule.fit(scores, valid_pair[1], self.taxonomy)
            self.record_validation(scores, valid_pair[1])
            if parts:
                self.training.members = self._fit_member_rules(
                    parts, valid_pair[1], initial, choose_rule
                )
        elif self.rule.fittable:
            log.info("no validation data: rule '%s' is not fitted", self.rule.name)
        return self

    def _fit_member_rules(
        self,
        parts: dict[str, Scores],
        truth: np.ndarray,
        initial: DecisionRule[Any],
        choose_rule: RuleChooser | None,
    ) -> dict[str, dict[str, Any]]:
        """Each member's own rule, fitted or chosen on that member's validation scores as
        the tagger's was on its own (``initial``: the tagger's rule before training), so
        that each member is measured as the tagger it would be alone."""
        out = {}
        for name, scores in parts.items():
            rule = make_rule(initial.name, initial.params_dict())
            if choose_rule is not None:
                rule, _ = choose_rule(scores, truth, self.taxonomy, rule)
            elif rule.fittable:
                rule.fit(scores, truth, self.taxonomy)
            figures = self.evaluate_scores(scores, truth, rule)
            out[name] = {
                "rule": {"name": rule.name, "params": rule.params_dict()},
                "validation_metrics": {
                    k: getattr(figures, k) for k in ("exact_match", "micro_f1", "macro_f1")
                },
            }
        return out

    def member_rule(self, name: str) -> DecisionRule[Any]:
        """The rule a member was measured with at training (the default rule where the
        tagger was trained without validation rows)."""
        spec = (self.training.members or {}).get(name)
        if spec is None:
            return make_rule(default_rule_name(self.taxonomy.mode))
        return make_rule(spec["rule"]["name"], spec["rule"]["params"])

    def evaluate_members(self, records: Sequence[Record]) -> dict[str, Evaluation]:
        """Each member of a combining encoder measured alone on labelled ``records``, with
        its own rule; empty for an encoder without members."""
        if not self.encoder.members():
            return {}
        _, truth, parts = self.score_records_and_members(records)
        return self.evaluate_member_scores(parts, truth)

    def evaluate_member_scores(
        self, parts: dict[str, Scores], truth: np.ndarray
    ) -> dict[str, Evaluation]:
        """Each member's figures from its scores (as :meth:`score_records_and_members`
        gives them), with the member's own rule."""
        return {
            name: self.evaluate_scores(scores, truth, self.member_rule(name))
            for name, scores in parts.items()
        }

    def record_validation(self, scores: Scores, truth: np.ndarray) -> None:
        """Measure the current rule on validation scores, for the manifest."""
        evaluation = self.evaluate_scores(scores, truth)
        # The confusion view is (L+1)² numbers: `tagger evaluate` gives it, not the manifest.
        self.training.validation_metrics = evaluation.model_dump(mode="json", exclude={"confusion"})

    def _warn_unseen_labels(self, targets: np.ndarray) -> None:
        counts = targets.sum(axis=0)
        missing = [
            label.id
            for label, count in zip(self.taxonomy.labels, counts, strict=True)
            if count == 0
        ]
        if missing:
            log.warning(
                "%d taxonomy label(s) have no training example and will rarely be predicted: %s",
                len(missing),
                ", ".join(missing),
            )

    # -- prediction -----------------------------------------------------------------------

    def scores(self, texts: Sequence[str]) -> Scores:
        """The encoder's scores for raw texts (normalised first)."""
        return self._scores(self.normalize(texts))

    def _scores(self, texts: list[str]) -> Scores:
        return self._checked(self.encoder.logits(texts), len(texts), self.encoder.name)

    def _checked(self, logits: Any, rows: int, encoder: str) -> Scores:
        logits = np.asarray(logits)
        expected = (rows, len(self.taxonomy.labels))
        if logits.shape != expected:
            raise TaggerError(
                f"encoder '{encoder}' returned scores of shape {logits.shape}, expected {expected}"
            )
        return Scores(logits, self.taxonomy.mode)

    def _scores_and_members(self, texts: list[str]) -> tuple[Scores, dict[str, Scores]]:
        """The scores of normalised ``texts``, and each member's where the encoder combines
        members (empty otherwise); each member scores the texts once."""
        members = self.encoder.members()
        if not members:
            return self._scores(texts), {}
        parts = {
            name: self._checked(member.logits(texts), len(texts), name)
            for name, member in members.items()
        }
        combined = self.encoder.combine([part.logits for part in parts.values()])
        return self._checked(combined, len(texts), self.encoder.name), parts

    def set_threads(self, threads: int | None) -> None:
        """Give the encoder (and its members) ``threads`` CPU threads where it takes them:
        a server or a catalogue job sizes each copy of the tagger to its share of CPUs."""
        if threads is None:
            return
        for encoder in [self.encoder, *self.encoder.members().values()]:
            if "threads" in type(encoder.params).model_fields:
                encoder.params = encoder.params.model_copy(update={"threads": threads})

    def rule_for(self, rule: RuleSpec = None) -> DecisionRule[Any]:
        """The saved rule, or a per-call override given as an instance or a plugin name."""
        if rule is None:
            return self.rule
        return make_rule(rule) if isinstance(rule, str) else rule

    def decide(self, scores: Scores, rule: RuleSpec = None) -> np.ndarray:
        return self.rule_for(rule).decisions(scores, self.taxonomy)

    def predict(self, texts: Sequence[str], rule: RuleSpec = None) -> list[Prediction]:
        """Labels and per-label probabilities for each text, in input order."""
        if not texts:
            return []
        scores = self.scores(texts)
        chosen = self.decide(scores, rule)
        ids = self.taxonomy.label_ids
        return [
            Prediction(
                text=text,
                labels=[label for label, on in zip(ids, row, strict=True) if on],
                scores=dict(zip(ids, probs, strict=True)),
            )
            for text, row, probs in zip(
                texts, chosen.tolist(), scores.probabilities.tolist(), strict=True
            )
        ]

    def score_records(self, records: Sequence[Record]) -> tuple[Scores, np.ndarray]:
        """Scores and the 0/1 truth matrix of labelled ``records`` (for evaluation)."""
        scores, truth, _ = self.score_records_and_members(records, members=False)
        return scores, truth

    def score_records_and_members(
        self, records: Sequence[Record], *, members: bool = True
    ) -> tuple[Scores, np.ndarray, dict[str, Scores]]:
        """As :meth:`score_records`, with each member's scores where the encoder combines
        members (each member scores once)."""
        if not records:
            raise DataError("no records to evaluate")
        truth = label_matrix(records, self.taxonomy)
        texts = self.normalize([r.text for r in records])
        if not members:
            return self._scores(texts), truth, {}
        scores, parts = self._scores_and_members(texts)
        return scores, truth, parts

    def evaluate_scores(
        self, scores: Scores, truth: np.ndarray, rule: RuleSpec = None
    ) -> Evaluation:
        """Every figure of the rule's decisions on scored, labelled rows."""
        active = self.rule_for(rule)
        return evaluate_matrices(
            truth,
            self.decide(scores, active),
            self.taxonomy,
            scores=scores.probabilities,
            thresholds=active.label_thresholds(self.taxonomy),
        )

    def evaluate(self, records: Sequence[Record], rule: RuleSpec = None) -> Evaluation:
        scores, truth = self.score_records(records)
        return self.evaluate_scores(scores, truth, rule)

    # -- persistence ----------------------------------------------------------------------

    def manifest(self) -> Manifest:
        return Manifest(
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            versions=library_versions(),
            taxonomy=self.taxonomy,
            encoder=ComponentSpec(name=self.encoder.name, params=self.encoder.params_dict()),
            rule=ComponentSpec(name=self.rule.name, params=self.rule.params_dict()),
            normalizers=[
                ComponentSpec(name=n.name, params=n.params_dict()) for n in self.normalizers
            ],
            training=self.training,
            exports=self.exports,
        )

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write into a temporary sibling folder, then rename: never half-written."""
        path = Path(path)
        check_tagger_target(path, force)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        )
        try:
            staging.chmod(usual_mode(0o777))  # mkdtemp makes it private (0700)
            (staging / ENCODER_DIR).mkdir()
            self.encoder.save(staging / ENCODER_DIR)
            manifest = self.manifest().model_copy(update={"files": file_digests(staging)})
            (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
            publish(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.directory = path
        return path

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True, runtime: str | None = None) -> Tagger:
        """The tagger saved at ``path``; with ``verify`` (the default) every file is first
        checked against the SHA-256 its manifest records. ``runtime`` ("torch", "onnx")
        overrides the encoder's choice (by default its ONNX export where there is one)."""
        path = Path(path)
        manifest = read_manifest(path)
        if verify:
            verify_files(path, manifest.files)
        params = dict(manifest.encoder.params)
        chosen = runtime and runtime_param(manifest.encoder.name, runtime, manifest.exports)
        if chosen:
            params["runtime"] = chosen
        encoder = make_encoder(manifest.encoder.name, params)
        try:
            encoder.load(path / ENCODER_DIR, manifest.taxonomy)
        except TaggerError:
            raise
        except Exception as exc:
            raise ModelError(
                f"cannot load encoder '{manifest.encoder.name}': {type(exc).__name__}: {exc}",
                file=path / ENCODER_DIR,
            ) from None
        tagger = cls(
            manifest.taxonomy,
            encoder,
            make_rule(manifest.rule.name, manifest.rule.params),
            [make_normalizer(spec.name, spec.params) for spec in manifest.normalizers],
        )
        tagger.training = manifest.training
        tagger.exports = manifest.exports
        tagger.directory = path
        tagger.runtime = runtime
        return tagger


def read_manifest(path: Path) -> Manifest:
    """The manifest of the tagger folder ``path``, checked; any problem is one line naming
    the folder or the manifest (what :meth:`Tagger.load` reads first)."""
    if not path.exists():
        backups = [old / "tagger" for old in leftover_folders(path, "old")]
        backups = [backup for backup in backups if backup.is_dir()]
        hint = f"; an interrupted save left the previous one in {backups[-1]}" if backups else ""
        raise ModelError(f"tagger directory does not exist{hint}", file=path)
    manifest_path = path / MANIFEST
    if not path.is_dir() or not manifest_path.is_file():
        raise ModelError(f"not a tagger directory (no {MANIFEST})", file=path)
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest = Manifest.model_validate(raw)
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"corrupt manifest: malformed JSON at line {exc.lineno}: {exc.msg}",
            file=manifest_path,
        ) from None
    except ValidationError as exc:
        field, message = validation_problem(exc)
        raise ModelError(f"corrupt manifest: {message}", file=manifest_path, field=field) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read manifest: {exc}", file=manifest_path) from None
    if manifest.format != FORMAT:
        raise ModelError(f"unsupported tagger format '{manifest.format}'", file=manifest_path)
    return manifest


def runtime_param(encoder: str, runtime: str, exports: dict[str, Any]) -> str | None:
    """``runtime`` checked against what the encoder takes and the tagger holds; None for
    an encoder with a single runtime (itself: "torch" and "auto" name it too)."""
    from tagger_core.registry import encoders

    if "runtime" not in encoders().get(encoder).Params.model_fields:
        if runtime == "onnx":
            raise TaggerError(f"encoder '{encoder}' has a single runtime; it has no ONNX export")
        return None
    if runtime not in ("auto", "torch") and runtime not in exports:
        raise TaggerError(
            f"the tagger has no {runtime} export; run `tagger export TAGGER --{runtime}` first"
        )
    return runtime


def publish(staging: Path, path: Path) -> None:
    """Put the complete tagger folder ``staging`` at ``path``, replacing what is there in
    one atomic swap where the system can (else two renames, the old tagger kept in
    ``.NAME.*.old`` until the new one is in place)."""
    if path.exists() and exchange(staging, path):
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the old tagger
    elif path.exists():  # no atomic swap here: a kill between the renames leaves
        retired = Path(  # the old tagger in .NAME.*.old, restored by the next save
            tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
        )
        path.rename(retired / "tagger")
        staging.rename(path)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(path)
