"""What each taxonomy constraint changes in the default tagger's decisions: 5-fold
`tagger cv` of the default (TF-IDF, per-label) tagger with the constraints off, with the
exclusive labels only, and with `min_labels: 1` as well.

    .venv/bin/python bench/constraints.py [--work bench-out/constraints] [--reuse]

Data: the bundled attraction examples (train + validation, exclusive `Others`), the hotels
plugin's examples (exclusive group budget/luxury), and the TripAdvisor attractions (85
labels inferred from the data: no exclusive label). The taxonomy files without
`min_labels` are written under --work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
TAGGER = str(Path(sys.executable).parent / "tagger")
METRICS = ("exact_match", "micro_f1", "macro_f1", "empty_rate", "predicted_per_row")


def tagger(*args: str) -> None:
    subprocess.run([TAGGER, *args], check=True, capture_output=True)


def taxonomy_file(source: Path, out: Path, min_labels: int) -> Path:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data.setdefault("constraints", {})["min_labels"] = min_labels
    out.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out


def cv(data: list[str], taxonomy: Path, out: Path, *rule: str) -> list[dict[str, float]]:
    """Per-fold metrics of 5-fold `tagger cv` (the same folds for every configuration)."""
    if not REUSE or not out.exists():
        files = [arg for path in data for arg in ("--data", path)]
        tagger("cv", *files, "--taxonomy", str(taxonomy), "-k", "5", *rule,
               "--metrics-file", str(out), "--force")  # fmt: skip
    folds = json.loads(out.read_text(encoding="utf-8"))["folds"]
    return [{m: fold["metrics"][m] for m in METRICS} for fold in folds]


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


REUSE = False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=REPO / "bench-out" / "constraints")
    parser.add_argument("--reuse", action="store_true", help="reuse the cv metrics in --work")
    args = parser.parse_args()
    global REUSE
    REUSE = args.reuse
    args.work.mkdir(parents=True, exist_ok=True)
    # TripAdvisor as docs/data-workflow.md prepares it: its one empty name dropped.
    rows = json.loads((SHARED / "tripadvisor_attractions_en/all.json").read_text("utf-8"))
    ta_data = args.work / "tripadvisor-clean.json"
    ta_data.write_text(json.dumps([r for r in rows if r["text"].strip()]), encoding="utf-8")
    ta_taxonomy = args.work / "tripadvisor.yaml"
    tagger("taxonomy", "infer", str(ta_data), "-o", str(ta_taxonomy), "--force")
    sets = {
        "attractions (bundled examples)": (
            [str(REPO / "examples/attractions/train.json"),
             str(REPO / "examples/attractions/validation.json")],
            REPO / "taxonomies/attractions.yaml",
        ),
        "hotels (plugin examples)": (
            [str(REPO / "examples/tagger-hotels/data/train.json"),
             str(REPO / "examples/tagger-hotels/data/validation.json")],
            REPO / "examples/tagger-hotels/tagger_hotels/hotels.yaml",
        ),
        "TripAdvisor attractions": ([str(ta_data)], ta_taxonomy),
    }  # fmt: skip
    print("| data | constraints | exact match | micro F1 | macro F1 | names with no label "
          "| labels per name | Δ exact match vs none (paired over folds) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, (data, source) in sets.items():
        slug = name.split()[0].lower()
        without = taxonomy_file(source, args.work / f"{slug}-min0.yaml", 0)
        with_min = taxonomy_file(source, args.work / f"{slug}-min1.yaml", 1)
        runs = {
            "none (`constraints=false`)": cv(
                data, with_min, args.work / f"{slug}-none.json",
                "--rule", "per-label", "--rule-param", "constraints=false",
            ),
            # the default rule fixed: training's rule choice is measured in bench/rule_choice.py
            "exclusive only": cv(
                data, without, args.work / f"{slug}-exclusive.json", "--rule", "per-label"
            ),
            "exclusive + `min_labels: 1` (default)": cv(
                data, with_min, args.work / f"{slug}-min1.json", "--rule", "per-label"
            ),
        }  # fmt: skip
        none = runs["none (`constraints=false`)"]
        for label, folds in runs.items():
            cells = [
                mean_std([f[k] for f in folds]) for k in ("exact_match", "micro_f1", "macro_f1")
            ]
            empty = f"{100 * statistics.mean(f['empty_rate'] for f in folds):.1f} %"
            per_name = f"{statistics.mean(f['predicted_per_row'] for f in folds):.2f}"
            delta = mean_std(
                [f["exact_match"] - g["exact_match"] for f, g in zip(folds, none, strict=True)]
            )
            print(f"| {name} | {label} | {' | '.join(cells)} | {empty} | {per_name} | {delta} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
