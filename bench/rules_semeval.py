"""The done-when check of the decision-rules work, through the CLI, on SemEval-2018 E-c.

    .venv/bin/python bench/rules_semeval.py [--out /tmp/rules-semeval]

Runs, in ``--out``:

    tagger taxonomy infer $D/train.json -o semeval.yaml
    tagger train --taxonomy semeval.yaml --train $D/train.json --valid $D/validation.json \\
        --encoder tfidf -o semeval-tfidf
    tagger optimize semeval-tfidf $D/validation.json -o semeval-tuned
    tagger evaluate semeval-tfidf $D/test.json --rule threshold      (global 0.5)
    tagger evaluate semeval-tfidf $D/test.json                       (training default)
    tagger evaluate semeval-tuned $D/test.json --report report.html  (optimize's winner)

and prints validation and test figures of each rule as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "semeval2018_ec"
TAGGER = [str(REPO / ".venv" / "bin" / "tagger")]


def tagger(*args: str, cwd: Path) -> str:
    start = time.perf_counter()
    result = subprocess.run([*TAGGER, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"tagger {' '.join(args)} failed:\n{result.stderr}")
    print(f"tagger {' '.join(args)}  ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return result.stdout


def figures(model: str, data: Path, cwd: Path, *extra: str) -> dict:
    out = cwd / "metrics.json"
    tagger("evaluate", model, str(data), "--metrics-file", str(out), *extra, cwd=cwd)
    return json.loads(out.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/rules-semeval"))
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is absent")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    tagger("taxonomy", "infer", str(DATA / "train.json"), "-o", "semeval.yaml", "--force", cwd=out)
    tagger("train", "--taxonomy", "semeval.yaml", "--train", str(DATA / "train.json"),
           "--valid", str(DATA / "validation.json"), "--encoder", "tfidf", "-o", "semeval-tfidf",
           "--force", cwd=out)  # fmt: skip
    table = tagger("optimize", "semeval-tfidf", str(DATA / "validation.json"), "-o",
                   "semeval-tuned", "--force", cwd=out)  # fmt: skip
    (out / "optimize.txt").write_text(table, encoding="utf-8")
    chosen = next(line for line in table.splitlines() if line.startswith("Chosen: "))
    rows = {
        "global threshold 0.5": ("semeval-tfidf", ("--rule", "threshold")),
        "training default (per-label, each label's F1)": ("semeval-tfidf", ()),
        "tagger optimize's winner": ("semeval-tuned", ()),
    }
    print(f"{chosen}\n")
    print("| rule | split | micro F1 | macro F1 | exact match | samples F1 | empty |")
    print("|---|---|---|---|---|---|---|")
    for name, (model, extra) in rows.items():
        for split in ("validation", "test"):
            more = ("--report", "report.html") if split == "test" and "winner" in name else ()
            f = figures(model, DATA / f"{split}.json", out, *extra, *more)
            print(
                f"| {name} | {split} | {f['micro_f1']:.4f} | {f['macro_f1']:.4f} | "
                f"{f['exact_match']:.4f} | {f['samples_f1']:.4f} | {f['empty_predictions']} |",
                flush=True,
            )
    print(f"\nreport: {out / 'report.html'}; candidate table: {out / 'optimize.txt'}")


if __name__ == "__main__":
    main()
