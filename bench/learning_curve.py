"""Learning curves: every encoder configuration and fastText on subsets of each data set,
the same k folds for all (5-fold `tagger cv`; fastText on the folds `tagger cv` makes).

    .venv/bin/python bench/learning_curve.py run --sets attractions,poi --sizes 300,1000 \\
        --configs tfidf,bert,bert-old,fasttext --model $M3E [--threads 1]
    .venv/bin/python bench/learning_curve.py table [--sets …] [--sizes …] [--configs …]

Subsets are drawn with `tagger split` (stratified on every label) from each set's training
pool; a size at or above the pool takes all of it. Each (set, size, config) writes
`<work>/<set>-<size>-<config>.json` (cv's per-fold metrics plus wall time) and is reused
unless --force. fastText (`pip install fasttext-wheel`, for this benchmark only) is run as
its users run it: supervised, characters split by spaces (words for English), `-loss ova`
for multi-label data (softmax for single-label), and at least one label: the best one when
none reaches 0.5; `fasttext` keeps its default 5 epochs and learning rate 0.1,
`fasttext-tutorial` takes its tutorial's settings for small data (see FASTTEXT).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
TAGGER = str(Path(sys.executable).parent / "tagger")
WORK = REPO / "bench-out" / "curve"

# name → (pool files, taxonomy: a file, a registered name, or None to infer from the pool)
SETS: dict[str, tuple[list[Path], str | None]] = {
    "attractions": (
        [REPO / "examples/attractions/train.json", REPO / "examples/attractions/validation.json"],
        "attractions",
    ),
    "hotels": (
        [
            REPO / "examples/tagger-hotels/data/train.json",
            REPO / "examples/tagger-hotels/data/validation.json",
        ],
        str(REPO / "examples/tagger-hotels/tagger_hotels/hotels.yaml"),
    ),
    "poi": ([SHARED / "poi_building_types/train.json"], None),
    "duee": ([SHARED / "duee_event_multilabel/train.json"], None),
    "semeval": ([SHARED / "semeval2018_ec/train.json"], None),
    "tripadvisor": ([SHARED / "tripadvisor_attractions_en/all.json"], None),
}
ENGLISH = {"semeval", "tripadvisor"}

# config → tagger cv options (the model is added for those that take one)
CONFIGS: dict[str, list[str]] = {
    "tfidf": ["--encoder", "tfidf"],
    "tfidf-exact": ["--encoder", "tfidf", "--objective", "exact_match"],
    "bert": ["--encoder", "bert"],
    "bert-old": ["--encoder", "bert", "-p", "epochs=8", "-p", "patience=2"],
    "bert-freeze-emb": ["--encoder", "bert", "-p", "freeze_embeddings=true"],
    "bert-frozen": ["--encoder", "bert-frozen"],
    # trained for macro F1: early stopping on the objective (the default) or on micro F1
    "bert-macro": ["--encoder", "bert", "--objective", "macro_f1"],
    "bert-macro-stop-micro": [
        "--encoder",
        "bert",
        "--objective",
        "macro_f1",
        "-p",
        "metric=micro_f1",
    ],
    "ensemble": ["--encoder", "ensemble"],
    "ensemble-bert-only": ["--encoder", "ensemble", "-p", "members=tfidf,bert"],
}
TAKES_MODEL = {
    "bert",
    "bert-old",
    "bert-freeze-emb",
    "bert-frozen",
    "bert-macro",
    "bert-macro-stop-micro",
    "ensemble",
    "ensemble-bert-only",
}
METRICS = ("exact_match", "micro_f1", "macro_f1", "empty_rate")


def tagger(*args: str) -> None:
    result = subprocess.run([TAGGER, *args], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"tagger {' '.join(args)} failed:\n{result.stderr}")


def pool_and_taxonomy(name: str, work: Path) -> tuple[Path, str]:
    """One pool file per set (names without text dropped) and its taxonomy."""
    files, taxonomy = SETS[name]
    pool = work / f"{name}-pool.json"
    if not pool.exists():
        rows = [r for f in files for r in json.loads(f.read_text(encoding="utf-8"))]
        rows = [r for r in rows if str(r["text"]).strip()]
        pool.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    if taxonomy is None:
        inferred = work / f"{name}.yaml"
        if not inferred.exists():
            tagger("taxonomy", "infer", str(pool), "-o", str(inferred))
        taxonomy = str(inferred)
    return pool, taxonomy


def subset(name: str, size: int, work: Path) -> tuple[Path, str]:
    pool, taxonomy = pool_and_taxonomy(name, work)
    total = len(json.loads(pool.read_text(encoding="utf-8")))
    if size >= total:
        return pool, taxonomy
    folder = work / f"{name}-{size}"
    if not (folder / "subset.json").exists():
        tagger("split", str(pool), "--taxonomy", taxonomy, "--ratios", f"{size}:{total - size}",
               "--names", "subset,rest", "-o", str(folder), "--force")  # fmt: skip
    return folder / "subset.json", taxonomy


def config_options(config: str, args: argparse.Namespace) -> list[str]:
    """The `tagger` options of ``config``, with the model and threads where it takes them."""
    options = list(CONFIGS[config])
    if config in TAKES_MODEL:
        options += ["--model", args.model]
    if args.threads and config in TAKES_MODEL:
        # the BERT encoders take threads (the ensemble passes them on to its members)
        options += ["-p", f"threads={args.threads}"]
    return options


def decision_figures(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The figures this benchmark reports (METRICS) of 0/1 decisions against the truth."""
    from tagger_core.evaluation.metrics import quick_figures

    figures = quick_figures(truth, pred)
    figures["empty_rate"] = float((~pred.any(axis=1)).mean())
    return {m: figures[m] for m in METRICS}


def run_cv(data: Path, taxonomy: str, config: str, args: argparse.Namespace, out: Path) -> None:
    options = config_options(config, args)
    metrics = out.with_suffix(".cv.json")
    started = time.perf_counter()
    tagger("cv", str(data), "--taxonomy", taxonomy, "-k", str(args.folds), "--seed", "0",
           *options, "--metrics-file", str(metrics), "--force")  # fmt: skip
    seconds = time.perf_counter() - started
    result = json.loads(metrics.read_text(encoding="utf-8"))
    folds = [{m: f["metrics"][m] for m in METRICS} for f in result["folds"]]
    out.write_text(json.dumps({"folds": folds, "seconds": seconds}), encoding="utf-8")


# fastText's own defaults, and the settings its text-classification tutorial reaches for
# small data (25 epochs, learning rate 1.0, word bigrams: here character bigrams).
FASTTEXT = {
    "fasttext": {},
    "fasttext-tutorial": {"epoch": 25, "lr": 1.0, "wordNgrams": 2},
}


def fasttext_decisions(
    train: list, test: list, taxonomy: object, english: bool, settings: dict, seed: int
) -> np.ndarray:
    """fastText trained on ``train`` records, its label sets for ``test`` (a 0/1 matrix)."""
    import fasttext  # type: ignore[import-not-found]

    ids = taxonomy.label_ids  # type: ignore[attr-defined]

    def tokens(text: str) -> str:
        return " ".join(text.split()) if english else " ".join(ch for ch in text if ch.strip())

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        for r in train:
            labels = " ".join(f"__label__{ids.index(x)}" for x in r.labels)
            handle.write(f"{labels} {tokens(r.text)}\n")
    multi = taxonomy.mode == "multi-label"  # type: ignore[attr-defined]
    model = fasttext.train_supervised(
        handle.name, loss="ova" if multi else "softmax", verbose=0, thread=1, seed=seed,
        **settings,
    )  # fmt: skip
    Path(handle.name).unlink()
    pred = np.zeros((len(test), len(ids)), dtype=bool)
    for i, r in enumerate(test):
        # model.f.predict: the wheel's own predict() fails under numpy 2
        scored = model.f.predict(tokens(r.text) + "\n", -1, 0.0, "strict")
        best = max(scored)
        for prob, label in scored:
            if prob >= 0.5 or (prob, label) == best:
                pred[i, int(label.removeprefix("__label__"))] = True
        if not multi:
            pred[i] = False
            pred[i, int(best[1].removeprefix("__label__"))] = True
    return pred


def fasttext_cv(
    data: Path, taxonomy_name: str, english: bool, folds: int, out: Path, settings: dict
) -> None:
    from tagger_core.components import FileOptions
    from tagger_core.data.sources import DataSpec, read_specs
    from tagger_core.registry import resolve_taxonomy
    from tagger_core.taxonomy import label_matrix
    from tagger_core.workflows.crossval import fold_of_records

    taxonomy = resolve_taxonomy(taxonomy_name)
    records = read_specs([DataSpec(path=data)], None, FileOptions(), taxonomy)
    fold_ids = fold_of_records(records, taxonomy, folds, 0)  # the folds `tagger cv` uses
    results, started = [], time.perf_counter()
    for fold in range(folds):
        train = [r for r, f in zip(records, fold_ids, strict=True) if f != fold]
        test = [r for r, f in zip(records, fold_ids, strict=True) if f == fold]
        pred = fasttext_decisions(train, test, taxonomy, english, settings, seed=fold)
        results.append(decision_figures(label_matrix(test, taxonomy) > 0, pred))
    out.write_text(
        json.dumps({"folds": results, "seconds": time.perf_counter() - started}), encoding="utf-8"
    )


def run(args: argparse.Namespace) -> None:
    for name in args.sets:
        for size in args.sizes:
            data, taxonomy = subset(name, size, args.work)
            for config in args.configs:
                out = args.work / f"{name}-{size}-{config}.json"
                if out.exists() and not args.force:
                    continue
                print(f"{name} {size} {config} …", file=sys.stderr, flush=True)
                if config in FASTTEXT:
                    fasttext_cv(data, taxonomy, name in ENGLISH, args.folds, out, FASTTEXT[config])
                else:
                    run_cv(data, taxonomy, config, args, out)


def cell(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {std:.3f}"


def _folds(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["folds"] if path.exists() else []


def table(args: argparse.Namespace) -> None:
    shown_metric = args.delta.replace("_", " ").replace("f1", "F1")
    versus = f" | Δ {shown_metric} vs {args.versus} (paired over folds)" if args.versus else ""
    print("| data | rows | configuration | exact match | micro F1 | macro F1 | empty "
          f"| seconds per fold{versus} |")  # fmt: skip
    print("|---|---:|---|---|---|---|---:|---:|" + ("---|" if versus else ""))
    for name in args.sets:
        shown: set[Path] = set()
        for size in args.sizes:
            data = args.work / f"{name}-{size}" / "subset.json"
            data = data if data.exists() else args.work / f"{name}-pool.json"
            if not data.exists() or data in shown:  # a size above the pool: shown once
                continue
            shown.add(data)
            rows = len(json.loads(data.read_text(encoding="utf-8")))
            for config in args.configs:
                out = args.work / f"{name}-{size}-{config}.json"
                if not out.exists():
                    continue
                result = json.loads(out.read_text(encoding="utf-8"))
                folds = result["folds"]
                cells = [cell([f[m] for f in folds]) for m in METRICS[:3]]
                empty = 100 * statistics.mean(f["empty_rate"] for f in folds)
                per_fold = result["seconds"] / len(folds)
                delta = ""
                base = _folds(args.work / f"{name}-{size}-{args.versus}.json")
                if args.versus and base and config != args.versus:
                    delta = " | " + cell(
                        [f[args.delta] - b[args.delta] for f, b in zip(folds, base, strict=True)]
                    )
                elif args.versus:
                    delta = " | "
                print(f"| {name} | {rows} | {config} | {' | '.join(cells)} | {empty:.1f} % "
                      f"| {per_fold:.0f}{delta} |")  # fmt: skip
                raw = out.with_suffix(".cv.json")
                if not raw.exists():
                    continue
                raw_folds = json.loads(raw.read_text(encoding="utf-8"))["folds"]
                for member in raw_folds[0]["metrics"].get("members", {}):
                    figures = [f["metrics"]["members"][member] for f in raw_folds]
                    cells = [cell([f[m] for f in figures]) for m in METRICS[:3]]
                    empty = 100 * statistics.mean(f["empty_rate"] for f in figures)
                    delta = ""
                    if args.versus and base:
                        delta = " | " + cell(
                            [f[args.delta] - b[args.delta]
                             for f, b in zip(figures, base, strict=True)]
                        )  # fmt: skip
                    elif args.versus:
                        delta = " | "
                    print(f"| {name} | {rows} | {config}: {member} alone | {' | '.join(cells)} "
                          f"| {empty:.1f} % | {delta} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("run", "table"))
    parser.add_argument("--sets", default=",".join(SETS), type=lambda s: s.split(","))
    parser.add_argument(
        "--sizes", default="300,1000", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--configs", default="tfidf,bert,fasttext", type=lambda s: s.split(","))
    parser.add_argument("--model", help="model folder for the BERT configurations")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--versus", help="table: add a paired Δ against this configuration")
    parser.add_argument(
        "--delta", default="micro_f1", choices=METRICS[:3], help="table: the metric of that Δ"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    run(args) if args.mode == "run" else table(args)


if __name__ == "__main__":
    main()
