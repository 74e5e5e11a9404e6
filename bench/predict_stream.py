"""Streaming `tagger predict`: end-to-end throughput and peak memory on a large name file,
against scoring alone in the same run.

    .venv/bin/python bench/predict_stream.py --names 10000000 [--work bench-out/stream]

Writes N synthetic Chinese attraction names as JSON Lines (once; reused), trains the
default TF-IDF tagger on the bundled attraction examples, then measures in one run:

- scoring only: `Tagger.predict` on chunks of names already in memory (no reading,
  no writing), names/s, on the first 500,000 names;
- end to end: the `tagger predict -i names.jsonl -o out.jsonl` command as a separate
  process (read, score, write, atomic rename), names/s and its peak RSS (getrusage of the
  child), and the output's row count.

The files go under --work (git-ignored: bench-out/); nothing is committed but figures.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TAGGER = str(Path(sys.executable).parent / "tagger")
PLACES = "东西南北中新老大小金银龙凤天海山湖江河云花石青白黄红古华"
KINDS = ["公园", "博物馆", "动物园", "水上乐园", "古镇", "观景台", "植物园", "美术馆", "寺", "广场"]


def write_names(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            name = "".join(rng.choice(PLACES) for _ in range(rng.randint(2, 5)))
            handle.write(
                json.dumps({"id": i, "text": name + rng.choice(KINDS)}, ensure_ascii=False)
            )
            handle.write("\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=10_000_000)
    parser.add_argument("--work", type=Path, default=REPO / "bench-out" / "stream")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    names = args.work / f"names-{args.names}.jsonl"
    if not names.exists():
        started = time.perf_counter()
        write_names(names, args.names)
        print(f"wrote {names} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    tagger_dir = args.work / "tagger"
    subprocess.run(
        [TAGGER, "train", "--taxonomy", "attractions", "--train",
         str(REPO / "examples/attractions/train.json"), "--valid",
         str(REPO / "examples/attractions/validation.json"), "-o", str(tagger_dir), "--force"],
        check=True, capture_output=True,
    )  # fmt: skip

    from tagger_core import FileOptions, Tagger, iter_records

    tagger = Tagger.load(tagger_dir)
    unlabelled = FileOptions(require_labels=False)
    sample = [
        r.text
        for _, r in zip(range(500_000), iter_records(names, options=unlabelled), strict=False)
    ]
    started = time.perf_counter()
    for start in range(0, len(sample), 2048):
        tagger.predict(sample[start : start + 2048])
    scoring = len(sample) / (time.perf_counter() - started)

    output = args.work / "out.jsonl"
    output.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(
        [TAGGER, "predict", str(tagger_dir), "-i", str(names), "-o", str(output)],
        check=True, capture_output=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with open(output, "rb") as handle:
        rows = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    end_to_end = args.names / seconds
    print("| names | scoring only names/s | end to end names/s | ratio | peak RSS MB | rows out |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.names:,} | {scoring:,.0f} | {end_to_end:,.0f} | {end_to_end / scoring:.2f} "
        f"| {peak_mb:,.0f} | {rows:,} |"
    )


if __name__ == "__main__":
    main()
