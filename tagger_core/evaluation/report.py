"""What `tagger evaluate` writes besides the figures: the error listing, the reference
notebook's logits dump, plots (PNG) and the self-contained HTML report.

matplotlib is imported inside the plotting functions, with the Agg backend, so that the
CLI starts without it.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from tagger_core.evaluation.metrics import NONE_LABEL, Evaluation
from tagger_core.evaluation.sweep import SweepPoint, best_point
from tagger_core.files import atomic_path, write_text
from tagger_core.schemas import Record, Taxonomy
from tagger_core.scores import ScoreSpace

# -- error listing ---------------------------------------------------------------------------


class ErrorRow(BaseModel):
    """One row whose predicted label set differs from the true one."""

    index: int  # 1-based position in the evaluated data
    file: str | None = None
    row: int | None = None
    text: str
    true: list[str]
    predicted: list[str]
    missing: list[str]
    extra: list[str]
    true_scores: dict[str, float]
    predicted_scores: dict[str, float]
    # How wrong, and how confidently: the sum of p over wrongly added labels and of 1 - p
    # over missed ones (two confident mistakes weigh about 2).
    severity: float


def error_rows(
    records: Sequence[Record],
    truth: np.ndarray,
    pred: np.ndarray,
    probabilities: np.ndarray,
    taxonomy: Taxonomy,
) -> list[ErrorRow]:
    """Every wrong row, most confidently wrong first."""
    ids = taxonomy.label_ids
    truth = np.asarray(truth, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    out = []
    for i in (int(i) for i in np.flatnonzero((truth != pred).any(axis=1))):
        p = probabilities[i]
        missing = np.flatnonzero(truth[i] & ~pred[i])
        extra = np.flatnonzero(pred[i] & ~truth[i])
        severity = sum(float(p[j]) for j in extra) + sum(1.0 - float(p[j]) for j in missing)
        record = records[i]
        out.append(
            ErrorRow(
                index=i + 1,
                file=record.file,
                row=record.row,
                text=record.text,
                true=[ids[j] for j in np.flatnonzero(truth[i])],
                predicted=[ids[j] for j in np.flatnonzero(pred[i])],
                missing=[ids[j] for j in missing],
                extra=[ids[j] for j in extra],
                true_scores={ids[j]: round(float(p[j]), 4) for j in np.flatnonzero(truth[i])},
                predicted_scores={ids[j]: round(float(p[j]), 4) for j in np.flatnonzero(pred[i])},
                severity=round(severity, 4),
            )
        )
    out.sort(key=lambda e: -e.severity)
    return out


def _scores_cell(scores: dict[str, float]) -> str:
    return "|".join(f"{label}={value:.3f}" for label, value in scores.items())


def write_errors_csv(path: Path, errors: Sequence[ErrorRow]) -> None:
    columns = [
        "index",
        "file",
        "row",
        "text",
        "true",
        "predicted",
        "missing",
        "extra",
        "true_scores",
        "predicted_scores",
        "severity",
    ]
    with (
        atomic_path(path) as temporary,
        open(temporary, "w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(columns)
        for e in errors:
            writer.writerow(
                [
                    e.index,
                    e.file or "",
                    e.row if e.row is not None else "",
                    e.text,
                    "|".join(e.true),
                    "|".join(e.predicted),
                    "|".join(e.missing),
                    "|".join(e.extra),
                    _scores_cell(e.true_scores),
                    _scores_cell(e.predicted_scores),
                    f"{e.severity:.4f}",
                ]
            )


def write_dump(path: Path, logits: np.ndarray, truth: np.ndarray) -> None:
    """The reference notebook's format: ``[{"logits": [...], "labels": [1.0, 0.0, ...]}]``,
    one item per input row, in input order and taxonomy label order."""
    items = [
        {"logits": [float(v) for v in row], "labels": [float(v) for v in labels]}
        for row, labels in zip(np.asarray(logits), np.asarray(truth), strict=True)
    ]
    write_text(path, json.dumps(items))


def write_results_tsv(path: Path, evaluation: Evaluation) -> None:
    """Annif-style per-label table: support, TP, FP, FN, P, R, F1 (+ AUCs, threshold)."""

    def number(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}"

    with (
        atomic_path(path) as temporary,
        open(temporary, "w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(
            [
                "label",
                "support",
                "tp",
                "fp",
                "fn",
                "precision",
                "recall",
                "f1",
                "roc_auc",
                "pr_auc",
                "threshold",
            ]
        )
        for m in evaluation.per_label:
            writer.writerow(
                [
                    m.label,
                    m.support,
                    m.tp,
                    m.fp,
                    m.fn,
                    number(m.precision),
                    number(m.recall),
                    number(m.f1),
                    number(m.roc_auc),
                    number(m.pr_auc),
                    number(m.threshold),
                ]
            )


# -- plots -----------------------------------------------------------------------------------

_COLORS = {
    "micro_f1": "#1f77b4",
    "macro_f1": "#9467bd",
    "exact_match": "#2ca02c",
    "micro_precision": "#ff7f0e",
    "micro_recall": "#d62728",
    "lenient_a": "#8c564b",
    "lenient_b": "#e377c2",
}
_LABELS = {
    "micro_f1": "micro F1",
    "macro_f1": "macro F1",
    "exact_match": "exact match",
    "micro_precision": "micro precision",
    "micro_recall": "micro recall",
    "lenient_a": "lenient A",
    "lenient_b": "lenient B",
}


_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
)
_cjk: list[str | None] = []


def _pyplot() -> Any:
    import warnings

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if not _cjk:
        from matplotlib import font_manager

        installed = {font.name for font in font_manager.fontManager.ttflist}
        _cjk.append(next((name for name in _CJK_FONTS if name in installed), None))
        if _cjk[0] is not None:
            plt.rcParams["font.sans-serif"] = [_cjk[0], "DejaVu Sans"]
        plt.rcParams["axes.unicode_minus"] = False
        # Without a CJK font, Chinese label ids draw as boxes: say so once, not per glyph.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
    return plt


def _plot_name(taxonomy: Taxonomy, label_id: str) -> str:
    """A label's name in plots: with its display name only where a CJK font can draw it."""
    _pyplot()
    return _display(taxonomy, label_id) if _cjk[0] is not None else label_id


def _png(fig: Any) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def plot_sweep(
    sweep: Sequence[SweepPoint],
    space: str = "probability",
    current: Evaluation | None = None,
    title: str = "Threshold sweep",
) -> bytes:
    """Metrics against a global threshold (top) and label counts (bottom), as PNG bytes.

    Dashed lines show what the tagger's own decision rule achieves, for comparison.
    """
    plt = _pyplot()
    x = [p.threshold for p in sweep]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    for key in ("micro_f1", "macro_f1", "exact_match", "micro_precision", "micro_recall"):
        top.plot(x, [getattr(p, key) for p in sweep], label=_LABELS[key], color=_COLORS[key])
        if current is not None and key in ("micro_f1", "exact_match"):
            top.axhline(
                current.figure(key),
                color=_COLORS[key],
                linestyle="--",
                linewidth=1,
                alpha=0.8,
                label=f"{_LABELS[key]}, tagger's rule",
            )
    best = best_point(sweep, "micro_f1", "logit" if space == "logit" else "probability")
    top.axvline(best.threshold, color="#888", linestyle=":", linewidth=1)
    top.annotate(
        f"best micro F1 {best.micro_f1:.3f} at {best.threshold:g}",
        xy=(best.threshold, 1.0),
        xytext=(4, -10),
        textcoords="offset points",
        fontsize=8,
        color="#444",
    )
    top.set_ylim(0, 1.02)
    top.set_ylabel("score")
    top.set_title(title)
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    bottom.plot(x, [p.predicted_per_row for p in sweep], color="#17becf", label="labels per row")
    if current is not None:
        bottom.axhline(
            current.labels_per_row,
            color="#17becf",
            linestyle="--",
            linewidth=1,
            label="true labels per row",
        )
    bottom.set_ylabel("labels / row")
    bottom.grid(alpha=0.3)
    twin = bottom.twinx()
    n = current.rows if current is not None else None
    empty = [p.empty_predictions / n if n else p.empty_predictions for p in sweep]
    twin.plot(x, empty, color="#7f7f7f", label="rows with no label")
    twin.set_ylabel("share with no label" if n else "rows with no label")
    lines = bottom.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    bottom.legend(
        lines[0] + more[0],
        lines[1] + more[1],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.12, 1.0),
        frameon=False,
    )
    bottom.set_xlabel("global threshold" + (" (logit)" if space == "logit" else " (probability)"))
    fig.tight_layout()
    return _png(fig)


def plot_per_label(evaluation: Evaluation, taxonomy: Taxonomy, limit: int = 60) -> bytes:
    """F1 per label (bars) with precision and recall marks, sorted, support in the label."""
    plt = _pyplot()
    rows = sorted(evaluation.per_label, key=lambda m: (m.f1, -m.support))
    if len(rows) > limit:  # the weakest labels matter most
        rows = rows[:limit]
    names = [f"{_plot_name(taxonomy, m.label)} ({m.support})" for m in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8.5, 0.9 + 0.32 * len(rows)))
    ax.barh(y, [m.f1 for m in rows], color="#1f77b4", alpha=0.85, label="F1")
    ax.scatter([m.precision for m in rows], y, marker="|", s=160, color="#ff7f0e", label="P")
    ax.scatter([m.recall for m in rows], y, marker="x", s=30, color="#d62728", label="R")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 (bar), precision (|), recall (x)")
    title = "Per-label F1 (support in brackets)"
    if len(evaluation.per_label) > limit:
        title += f": the {limit} weakest of {len(evaluation.per_label)}"
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def confusion_labels(evaluation: Evaluation, taxonomy: Taxonomy, limit: int = 25) -> list[int]:
    """Indices (into the confusion view) of the labels shown: all, or those with most errors."""
    n_labels = len(taxonomy.labels)
    if n_labels <= limit:
        return list(range(n_labels))
    errors = np.array([m.fp + m.fn for m in evaluation.per_label])
    keep = np.argsort(-errors, kind="stable")[:limit]
    return sorted(int(j) for j in keep)


def plot_confusion(evaluation: Evaluation, taxonomy: Taxonomy, limit: int = 25) -> bytes:
    """The confusion view as a heatmap, rows normalised by each true label's support."""
    plt = _pyplot()
    view = np.asarray(evaluation.confusion, dtype=float)
    n_labels = len(taxonomy.labels)
    shown = confusion_labels(evaluation, taxonomy, limit)
    has_none = evaluation.mode == "multi-label"
    index = shown + ([n_labels] if has_none else [])
    sub = view[np.ix_(index, index)]
    support = np.array([evaluation.per_label[j].support for j in shown] + ([0] if has_none else []))
    scale = np.where(support > 0, support, np.maximum(sub.sum(axis=1), 1))[:, None]
    shares = sub / scale
    names = [_plot_name(taxonomy, taxonomy.labels[j].id) for j in shown]
    names += [NONE_LABEL] if has_none else []
    size = 1.6 + 0.42 * len(index)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=max(1e-9, min(1.0, shares.max())))
    short = [taxonomy.labels[j].id for j in shown] + ([NONE_LABEL] if has_none else [])
    ax.set_xticks(range(len(names)), short, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(index) <= 26:
        for (r, c), count in np.ndenumerate(sub):
            if count:
                ax.text(
                    c,
                    r,
                    str(int(count)),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if shares[r, c] > 0.5 else "#222",
                )
    title = "Confusion view (share of each true label's rows)"
    if len(shown) < n_labels:
        title += f"\nthe {len(shown)} labels with most errors of {n_labels}"
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    return _png(fig)


def plot_pr_curves(
    truth: np.ndarray,
    probabilities: np.ndarray,
    pred: np.ndarray,
    evaluation: Evaluation,
    taxonomy: Taxonomy,
    limit: int = 12,
) -> bytes:
    """Precision–recall curve of each label (the most frequent ``limit``), with the point
    where the tagger's rule operates."""
    from sklearn.metrics import precision_recall_curve

    plt = _pyplot()
    supports = np.asarray(truth).sum(axis=0)
    labels = [j for j in np.argsort(-supports, kind="stable") if supports[j] > 0][:limit]
    cols = 4
    n_rows = max(1, -(-len(labels) // cols))
    fig, axes = plt.subplots(n_rows, cols, figsize=(11, 2.6 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for ax, j in zip(axes.ravel(), labels, strict=False):
        ax.set_visible(True)
        precision, recall, _ = precision_recall_curve(truth[:, j], probabilities[:, j])
        ax.plot(recall, precision, color="#1f77b4", linewidth=1.2)
        m = evaluation.per_label[j]
        ax.plot([m.recall], [m.precision], "o", color="#d62728", markersize=5)
        auc = f"AP {m.pr_auc:.2f}" if m.pr_auc is not None else ""
        ax.set_title(f"{_plot_name(taxonomy, m.label)} ({m.support}) {auc}", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle("Precision–recall per label (red: where the tagger's rule operates)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


# -- HTML report -----------------------------------------------------------------------------


@dataclass
class ReportInput:
    """Everything the report shows; the CLI fills it."""

    evaluation: Evaluation
    taxonomy: Taxonomy
    truth: np.ndarray
    pred: np.ndarray
    probabilities: np.ndarray
    errors: list[ErrorRow]
    sweep: list[SweepPoint]
    sweep_space: ScoreSpace = "probability"
    tagger_path: str = ""
    data_paths: list[str] = field(default_factory=list)
    encoder: str = ""
    rule: str = ""  # the decision rule's one-line description
    rule_overridden: bool = False
    rule_choice: str = ""  # how training chose the rule, in one line
    validation_metrics: dict[str, Any] | None = None
    tagger_created: str | None = None
    train_rows: int | None = None
    top_errors: int = 50


def _display(taxonomy: Taxonomy, label_id: str) -> str:
    try:
        label = taxonomy.label(label_id)
    except KeyError:
        return label_id
    return label_id if not label.name or label.name == label_id else f"{label_id} · {label.name}"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _heat(value: float | None) -> str:
    """A background colour from red (0) through amber to green (1)."""
    if value is None:
        return ""
    hue = int(120 * max(0.0, min(1.0, value)))
    return f' style="background:hsl({hue},70%,88%)"'


def _findings(data: ReportInput) -> list[str]:
    e = data.evaluation
    out = []
    out.append(
        f"<b>{_pct(e.exact_match)}</b> of {e.rows} rows get exactly the right label set; "
        f"micro F1 <b>{e.micro_f1:.3f}</b>, macro F1 <b>{e.macro_f1:.3f}</b>."
    )
    if e.mode == "multi-label":
        out.append(
            f"Lenient A (no wrong label, at least one): <b>{_pct(e.lenient_a)}</b>; "
            f"lenient B (nothing missed, at most one extra): <b>{_pct(e.lenient_b)}</b>."
        )
    candidates = [m for m in e.per_label if m.support >= 5] or [
        m for m in e.per_label if m.support > 0
    ]
    weakest = sorted(candidates, key=lambda m: m.f1)[:3]
    if weakest:
        parts = [
            f"<b>{_e(_display(data.taxonomy, m.label))}</b> F1 {m.f1:.2f} "
            f"({m.support} true: {m.fn} missed, {m.fp} false alarms)"
            for m in weakest
        ]
        out.append("Weakest labels: " + "; ".join(parts) + ".")
    if e.confused_pairs:
        pair = e.confused_pairs[0]
        out.append(
            f"Most frequent confusion: <b>{_e(pair.true)}</b> missed while "
            f"<b>{_e(pair.predicted)}</b> was predicted, in {pair.count} rows."
        )
    if e.mode == "multi-label" and e.empty_predictions:
        pred_empty = ~np.asarray(data.pred, dtype=bool).any(axis=1)
        truth_empty = ~np.asarray(data.truth, dtype=bool).any(axis=1)
        missed = int((pred_empty & ~truth_empty).sum())
        share = _pct(e.empty_predictions / max(e.rows, 1))
        text = f"{e.empty_predictions} rows ({share}) get no label"
        if missed:
            text += (
                f"; {missed} of them truly have labels — a rule that never leaves a row "
                "empty would give each its best-scoring label (`tagger optimize` tries one)."
            )
        else:
            text += ", and each truly has none."
        out.append(text)
    if data.sweep and e.mode == "multi-label":
        best = best_point(data.sweep, "micro_f1", data.sweep_space)
        if e.micro_f1 > best.micro_f1 + 0.005:
            verdict = f"the tagger's rule does better ({e.micro_f1:.3f})"
        elif e.micro_f1 >= best.micro_f1 - 0.005:
            verdict = f"the tagger's rule is about as good ({e.micro_f1:.3f})"
        else:
            verdict = (
                f"the tagger's rule gets {e.micro_f1:.3f}: `tagger optimize` on validation "
                "data may help"
            )
        out.append(
            f"The best single global threshold here would be {best.threshold:g} "
            f"(micro F1 {best.micro_f1:.3f}); {verdict}."
        )
    v = data.validation_metrics
    if v and "micro_f1" in v and not data.rule_overridden:
        out.append(
            f"At training, validation micro F1 was {float(v['micro_f1']):.3f} and exact match "
            f"{_pct(float(v['exact_match']))} on {v.get('rows', '?')} rows."
        )
    return out


_CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Roboto,'Noto Sans','Noto Sans CJK SC',
'PingFang SC','Microsoft YaHei',sans-serif;color:#1d2330;margin:0;background:#f5f6f8}
main{max-width:1120px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:34px 0 10px;
border-bottom:2px solid #e3e6ec;padding-bottom:4px}
.meta{color:#5b6475;font-size:13px}.meta code{background:#f0f2f5;padding:1px 4px;border-radius:3px}
nav a{margin-right:14px;font-size:13px;color:#2f5fb3;text-decoration:none}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin:16px 0}
.card{border:1px solid #e3e6ec;border-radius:8px;padding:10px 12px;background:#fafbfc}
.card .v{font-size:24px;font-weight:600}.card .k{color:#5b6475;font-size:12px}
.card .s{color:#8a93a3;font-size:11px}
ul.findings li{margin:4px 0}
ul.tree{list-style:none;padding-left:18px;border-left:1px solid #ddd;margin:4px 0}
ul.tree li{margin:3px 0}
table{border-collapse:collapse;width:100%;font-size:13px;margin:8px 0}
th,td{padding:4px 8px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{background:#f0f2f5;position:sticky;top:0;cursor:pointer;user-select:none}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:8px;background:#1f77b4;border-radius:2px;vertical-align:middle}
.tag{display:inline-block;padding:0 6px;margin:1px 2px;border-radius:10px;font-size:12px;
background:#eef1f6}.miss{background:#fde2e1;color:#9b1c1c}.extra{background:#fff1d6;color:#8a5300}
.ok{background:#e0f3e5;color:#1e6b34}
img{max-width:100%;height:auto;border:1px solid #eceef2;border-radius:6px;margin:6px 0}
.note{color:#5b6475;font-size:12px}
"""

_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, i){
 th.addEventListener('click', function(){
  var tbody = th.closest('table').tBodies[0];
  var rows = Array.from(tbody.rows), asc = th.dataset.asc !== '1';
  rows.sort(function(a, b){
   var x = a.cells[i].dataset.v || a.cells[i].innerText, y = b.cells[i].dataset.v || b.cells[i].innerText;
   var nx = parseFloat(x), ny = parseFloat(y);
   var r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
   return asc ? r : -r;
  });
  th.dataset.asc = asc ? '1' : '0';
  rows.forEach(function(r){ tbody.appendChild(r); });
 });
});
"""


def _card(key: str, value: str, sub: str = "") -> str:
    sub_html = f'<div class="s">{sub}</div>' if sub else ""
    return f'<div class="card"><div class="v">{value}</div><div class="k">{_e(key)}</div>{sub_html}</div>'


def _cards(data: ReportInput) -> str:
    e = data.evaluation
    v = data.validation_metrics or {}

    def at_validation(name: str) -> str:
        if name in v and v[name] is not None and not data.rule_overridden:
            return f"validation at training: {float(v[name]):.3f}"
        return ""

    cards = [
        _card("exact match", f"{e.exact_match:.3f}", at_validation("exact_match")),
        _card("micro F1", f"{e.micro_f1:.3f}", at_validation("micro_f1")),
        _card("macro F1", f"{e.macro_f1:.3f}", at_validation("macro_f1")),
        _card(
            "micro precision / recall",
            f"{e.micro_precision:.2f}/{e.micro_recall:.2f}",
        ),
    ]
    if e.mode == "multi-label":
        cards += [
            _card("samples F1", f"{e.samples_f1:.3f}"),
            _card("lenient A", f"{e.lenient_a:.3f}", "no wrong label, ≥1 given"),
            _card("lenient B", f"{e.lenient_b:.3f}", "nothing missed, ≤1 extra"),
            _card("Hamming loss", f"{e.hamming_loss:.3f}", "lower is better"),
            _card(
                "rows with no label",
                str(e.empty_predictions),
                f"{_pct(e.empty_predictions / max(e.rows, 1))} of rows",
            ),
        ]
    else:
        cards.append(_card("weighted F1", f"{e.weighted_f1:.3f}"))
    if e.lrap is not None:
        cards.append(_card("LRAP", f"{e.lrap:.3f}", "ranking, threshold-free"))
    if e.macro_pr_auc is not None:
        cards.append(_card("macro PR-AUC", f"{e.macro_pr_auc:.3f}", "threshold-free"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _num(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _per_label_table(data: ReportInput) -> str:
    e = data.evaluation
    has_threshold = any(m.threshold is not None for m in e.per_label)
    head = [
        ("label", ""),
        ("support", "n"),
        ("TP", "n"),
        ("FP", "n"),
        ("FN", "n"),
        ("precision", "n"),
        ("recall", "n"),
        ("F1", "n"),
        ("ROC-AUC", "n"),
        ("PR-AUC", "n"),
    ]
    if has_threshold:
        head.append(("threshold", "n"))
    rows = []
    for m in sorted(e.per_label, key=lambda m: -m.support):
        cells = [
            f"<td>{_e(_display(data.taxonomy, m.label))}</td>",
            f'<td class="n">{m.support}</td>',
            f'<td class="n">{m.tp}</td>',
            f'<td class="n">{m.fp}</td>',
            f'<td class="n">{m.fn}</td>',
            f'<td class="n"{_heat(m.precision)}>{m.precision:.3f}</td>',
            f'<td class="n"{_heat(m.recall)}>{m.recall:.3f}</td>',
            f'<td class="n" data-v="{m.f1:.6f}"{_heat(m.f1)}>{m.f1:.3f} '
            f'<span class="bar" style="width:{int(60 * m.f1)}px"></span></td>',
            f'<td class="n">{_num(m.roc_auc)}</td>',
            f'<td class="n">{_num(m.pr_auc)}</td>',
        ]
        if has_threshold:
            cells.append(f'<td class="n">{_num(m.threshold)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f'<th class="{cls}">{_e(name)}</th>' for name, cls in head)
    return (
        f'<table class="sortable"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">Click a column to sort. ROC-AUC needs positives and negatives, '
        "PR-AUC positives; both ignore the decision rule.</p>"
    )


def _pairs_table(data: ReportInput) -> str:
    pairs = data.evaluation.confused_pairs[:15]
    if not pairs:
        return "<p>No label was predicted in place of another.</p>"
    rows = "".join(
        f"<tr><td>{_e(_display(data.taxonomy, p.true))}</td>"
        f"<td>{_e(_display(data.taxonomy, p.predicted))}</td>"
        f'<td class="n">{p.count}</td></tr>'
        for p in pairs
    )
    return (
        "<table><thead><tr><th>true label missed</th><th>label predicted instead</th>"
        f'<th class="n">rows</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _tags(labels: Sequence[str], scores: dict[str, float], cls: set[str], css: str) -> str:
    out = []
    for label in labels:
        klass = css if label in cls else "ok"
        score = f" {scores[label]:.2f}" if label in scores else ""
        out.append(f'<span class="tag {klass}">{_e(label)}{score}</span>')
    return "".join(out) or '<span class="note">(none)</span>'


def _errors_table(data: ReportInput) -> str:
    errors = data.errors[: data.top_errors]
    if not errors:
        return "<p>No errors: every row got exactly its true labels.</p>"
    rows = []
    for err in errors:
        scores = {**err.true_scores, **err.predicted_scores}
        rows.append(
            f'<tr><td class="n">{err.index}</td><td>{_e(err.text)}</td>'
            f"<td>{_tags(err.true, scores, set(err.missing), 'miss')}</td>"
            f"<td>{_tags(err.predicted, scores, set(err.extra), 'extra')}</td>"
            f'<td class="n">{err.severity:.2f}</td></tr>'
        )
    return (
        f"<p>{len(data.errors)} rows are wrong; the {len(errors)} worst: "
        '<span class="tag miss">missed</span> <span class="tag extra">wrongly added</span> '
        '<span class="tag ok">right</span>, each with its probability.</p>'
        '<table class="sortable"><thead><tr><th class="n">#</th><th>text</th>'
        '<th>true labels</th><th>predicted labels</th><th class="n">severity</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">Severity: the probabilities of the wrongly added labels plus one minus '
        "the probabilities of the missed ones: more mistakes, made more confidently, weigh "
        "more.</p>"
    )


def _hierarchy_section(data: ReportInput) -> str:
    """The label tree with each label's F1 and support, and each level's figures; empty
    for a flat taxonomy."""
    t, e = data.taxonomy, data.evaluation
    if not t.hierarchical:
        return ""
    figures = {m.label: m for m in e.per_label}

    def branch(parent: str | None) -> str:
        items = []
        for child in t.children(parent):
            m = figures[child]
            items.append(
                f"<li><b>{_e(_display(t, child))}</b> <span{_heat(m.f1)}>F1 {m.f1:.3f}</span> "
                f'<span class="note">({m.support} true, {m.tp + m.fp} predicted)</span>'
                f"{branch(child)}</li>"
            )
        return f'<ul class="tree">{"".join(items)}</ul>' if items else ""

    rows = "".join(
        f'<tr><td>{level.level}</td><td class="n">{level.labels}</td>'
        f'<td class="n">{level.exact_match:.3f}</td><td class="n">{level.micro_f1:.3f}</td>'
        f'<td class="n">{level.macro_f1:.3f}</td></tr>'
        for level in e.levels
    )
    implied = (
        "A label's ancestors are implied: in truth and predictions alike, a child brings "
        "its parent."
        if t.implies_ancestors
        else "Ancestors are not implied: each label is predicted on its own."
    )
    return (
        '<section id="hierarchy"><h2>Hierarchy</h2>'
        f'<p class="note">{_e(implied)} Level 0 is the roots; each level is scored on its '
        "own labels' columns.</p>"
        '<table><thead><tr><th>level</th><th class="n">labels</th><th class="n">exact match'
        '</th><th class="n">micro F1</th><th class="n">macro F1</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>{branch(None)}</section>"
    )


def render_report(data: ReportInput) -> str:
    """The whole page as one string: inline CSS and script, plots as base64 PNG."""
    e = data.evaluation
    t = data.taxonomy
    plots_sweep = _img(
        plot_sweep(data.sweep, data.sweep_space, e, "Metrics against one global threshold"),
        "threshold sweep",
    )
    plot_labels = _img(plot_per_label(e, t), "per-label F1")
    plot_conf = _img(plot_confusion(e, t), "confusion view")
    plot_pr = ""
    if np.asarray(data.truth).sum() > 0:
        plot_pr = _img(
            plot_pr_curves(data.truth, data.probabilities, data.pred, e, t), "precision-recall"
        )
    rule = data.rule + (" — overridden for this evaluation" if data.rule_overridden else "")
    choice = f" ({data.rule_choice})" if data.rule_choice else ""
    data_names = ", ".join(data.data_paths) or "(in memory)"
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    trained = f", trained on {data.train_rows} rows" if data.train_rows else ""
    single = e.mode == "single-label"
    sweep_note = (
        "Single-label: the best label is given only if its probability reaches the threshold; "
        "lower thresholds answer more rows."
        if single
        else "Every label whose score reaches one global threshold. Dashed lines: the tagger's "
        "own rule, for comparison."
    )
    confusion_note = (
        "Rows: true label; columns: predicted label; cells count rows."
        if single
        else "Rows: true label; columns: predicted label. Diagonal: correctly predicted. "
        "Off the diagonal: rows where the row's label was missed while the column's label was "
        "wrongly predicted. The (none) column counts misses with no wrong label; the (none) row "
        "counts wrong labels added when nothing was missed. Shades are shares of the true "
        "label's rows."
    )
    findings = "".join(f"<li>{item}</li>" for item in _findings(data))
    hierarchy = _hierarchy_section(data)
    hierarchy_link = '<a href="#hierarchy">Hierarchy</a>' if hierarchy else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Evaluation · {_e(t.name)} · {_e(data.tagger_path)}</title>
<style>{_CSS}</style></head>
<body><main>
<h1>Evaluation of {_e(data.tagger_path or "the tagger")}</h1>
<div class="meta">Taxonomy <code>{_e(t.name)}</code> v{_e(t.version)} ({_e(t.mode)},
{len(t.labels)} labels) · encoder <code>{_e(data.encoder)}</code>{_e(trained)} ·
decision rule <code>{_e(rule)}</code>{_e(choice)}<br>
Data: {_e(data_names)} ({e.rows} rows, {_pct(e.labels_per_row / max(len(t.labels), 1))} label
density, {e.labels_per_row:.2f} labels per row) · report made {created}</div>
<nav><a href="#summary">Summary</a><a href="#labels">Per label</a><a href="#sweep">Threshold
sweep</a><a href="#confusion">Confusions</a><a href="#errors">Worst errors</a>{hierarchy_link}</nav>
<section id="summary"><h2>Summary</h2>
{_cards(data)}
<ul class="findings">{findings}</ul></section>
<section id="labels"><h2>Per label</h2>
{_per_label_table(data)}
{plot_labels}
{plot_pr}</section>
{hierarchy}
<section id="sweep"><h2>Threshold sweep</h2>
<p class="note">{_e(sweep_note)}</p>
{plots_sweep}</section>
<section id="confusion"><h2>Confusions</h2>
<p class="note">{_e(confusion_note)}</p>
{plot_conf}
<h3>Most confused label pairs</h3>
{_pairs_table(data)}</section>
<section id="errors"><h2>Worst errors</h2>
{_errors_table(data)}</section>
</main><script>{_SORT_JS}</script></body></html>
"""


def write_report(path: Path, data: ReportInput) -> None:
    write_text(path, render_report(data))
