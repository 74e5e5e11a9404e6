"""`tagger export`: a fast-path copy of a tagger's encoder (ONNX, int8 or not), checked on
labelled names against the encoder it replaces before it is kept.

The export is written into a copy of the tagger folder, loaded from there and scored; only
a copy whose decisions match closely enough replaces the tagger, in one atomic swap, with
the file's SHA-256 in the manifest. A refused export leaves the tagger as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tagger_core.errors import TaggerError
from tagger_core.evaluation.metrics import quick_figures
from tagger_core.files import exclusive, sha256_of
from tagger_core.schemas import Record
from tagger_core.tagger import (
    ENCODER_DIR,
    MANIFEST,
    Tagger,
    file_digests,
    publish,
    read_manifest,
)

MAX_CHANGED_SHARE = 0.01  # of the checked names whose label set may change
MAX_MICRO_F1_DROP = 0.005


@dataclass(frozen=True)
class ExportCheck:
    """The exported encoder against the original on the same labelled names."""

    rows: int
    changed: int  # names whose label set differs
    micro_f1_before: float
    micro_f1_after: float
    exact_match_before: float
    exact_match_after: float
    max_score_change: float  # the largest change of any probability

    @property
    def changed_share(self) -> float:
        return self.changed / self.rows if self.rows else 0.0

    def problem(self) -> str | None:
        """Why the export should not replace the encoder, or None."""
        drop = self.micro_f1_before - self.micro_f1_after
        if self.changed_share > MAX_CHANGED_SHARE:
            return (
                f"it changes the labels of {self.changed_share:.1%} of {self.rows} names "
                f"(more than {MAX_CHANGED_SHARE:.0%}); micro F1 {self.micro_f1_before:.3f} → "
                f"{self.micro_f1_after:.3f}"
            )
        if drop > MAX_MICRO_F1_DROP:
            return (
                f"micro F1 falls by {100 * drop:.1f} points (more than "
                f"{100 * MAX_MICRO_F1_DROP:.1f}) on {self.rows} names"
            )
        return None


def check_exportable(encoder: str) -> None:
    """Refuse, before any work, an encoder (by name) that has no ONNX export."""
    from tagger_core.components import Encoder
    from tagger_core.registry import encoders

    if encoders().get(encoder).export_onnx is Encoder.export_onnx:
        raise TaggerError(f"encoder '{encoder}' cannot be exported to ONNX")


def compare(before: Tagger, after: Tagger, records: list[Record]) -> ExportCheck:
    scores, truth = before.score_records(records)
    new_scores, _ = after.score_records(records)
    old_labels, new_labels = before.decide(scores), after.decide(new_scores)
    old, new = quick_figures(truth, old_labels), quick_figures(truth, new_labels)
    change = np.abs(scores.probabilities - new_scores.probabilities)
    return ExportCheck(
        rows=len(records),
        changed=int((old_labels != new_labels).any(axis=1).sum()),
        micro_f1_before=old["micro_f1"],
        micro_f1_after=new["micro_f1"],
        exact_match_before=old["exact_match"],
        exact_match_after=new["exact_match"],
        max_score_change=float(change.max()) if change.size else 0.0,
    )


def export_onnx(
    path: Path,
    records: list[Record],
    *,
    quantize: str,
    force: bool = False,
    verify: bool = True,
) -> tuple[ExportCheck, dict[str, Any]]:
    """Export the tagger at ``path`` to ONNX, check it on ``records`` and, unless the check
    fails (``force`` keeps it anyway), put it in the tagger; returns the check and the
    manifest's record of the export."""
    if not records:
        raise TaggerError("no labelled names to check the export on")
    with exclusive(path):
        check_exportable(read_manifest(path).encoder.name)
        original = Tagger.load(path, verify=verify, runtime="torch")
        staging = Path(
            tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        )
        try:
            copy = staging / "tagger"
            shutil.copytree(path, copy)
            onnx_dir = copy / ENCODER_DIR / "onnx"
            if onnx_dir.exists():
                shutil.rmtree(onnx_dir)  # an earlier export: replaced, never mixed
            exported = original.encoder.export_onnx(copy / ENCODER_DIR, quantize=quantize)
            relative = exported.relative_to(copy).as_posix()
            record: dict[str, Any] = {
                "file": relative,
                "sha256": sha256_of(exported),
                "bytes": exported.stat().st_size,
                "quantize": quantize,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            _write_manifest(copy, {"onnx": record})
            fast = Tagger.load(copy, verify=False, runtime="onnx")  # digests just written
            check = compare(original, fast, records)
            record["check"] = {**asdict(check), "changed_share": check.changed_share}
            problem = check.problem()
            if problem is not None and not force:
                hint = "; --quantize none changes less" if quantize != "none" else ""
                raise TaggerError(
                    f"the {quantize if quantize != 'none' else 'fp32'} ONNX export was not "
                    f"saved: {problem} (--force keeps it{hint})"
                )
            _write_manifest(copy, {"onnx": record})
            publish(copy, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return check, record


def _write_manifest(folder: Path, exports: dict[str, Any]) -> None:
    """The manifest with the export's files added: the other files keep the digests the
    tagger was saved with, and files it never listed stay unlisted (an export must not
    sign what someone put or changed in the folder). A tagger saved before digests were
    recorded gets every file's."""
    manifest = read_manifest(folder)
    onnx = folder / ENCODER_DIR / "onnx"
    prefix = onnx.relative_to(folder).as_posix() + "/"
    if manifest.files:
        kept = {
            name: digest for name, digest in manifest.files.items() if not name.startswith(prefix)
        }
        written = {prefix + name: digest for name, digest in file_digests(onnx).items()}
        files = {**kept, **written}
    else:
        files = file_digests(folder)
    manifest = manifest.model_copy(update={"files": files, "exports": exports})
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
