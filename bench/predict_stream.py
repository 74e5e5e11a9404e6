"""Streaming `tagger predict`: end-to-end throughput and peak memory on a large name file,
against scoring alone in the same run.

    .venv/bin/python bench/predict_stream.py --names 10000000 [--work bench-out/stream]
    .venv/bin/python bench/predict_stream.py --names 1000000 --encoder bert --model M3E_DIR

Writes N synthetic Chinese attraction names as JSON Lines (once; reused), trains a tagger
on the bundled attraction examples (TF-IDF by default; `--encoder bert --model DIR`
fine-tunes that model), then measures in one run:

- scoring only, on the first --sample names already in memory (no reading, no writing),
  in this process after `gc.freeze()` as the command does:
  `Tagger.predict` (names in, `Prediction` objects out: the Python API) and
  `scores` + `decide` (arrays out, no object per name: the least any path can do);
- end to end: the `tagger predict -i names.jsonl -o out.jsonl` command as a separate
  process (read, check, score, write, atomic rename), scoring in the same process
  (`--jobs 0`) and in one worker process while the command reads and writes (`--jobs 1`),
  names/s and the peak RSS of the whole process tree (sampled every 0.2 s), and the
  output's row count.

The files go under --work (git-ignored: bench-out/); nothing is committed but figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
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


def tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and every process below it, in KB."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def run_measured(command: list[str]) -> tuple[float, int]:
    """Seconds and peak tree RSS (MB) of ``command``."""
    started = time.perf_counter()
    peak = 0
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        while process.poll() is None:
            peak = max(peak, tree_rss_kb(process.pid))
            time.sleep(0.2)
        error = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {error}")
    return time.perf_counter() - started, peak // 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=10_000_000)
    parser.add_argument("--sample", type=int, default=500_000, help="names scored in memory")
    parser.add_argument("--encoder", default="tfidf")
    parser.add_argument("--model", help="pretrained model folder, for --encoder bert")
    parser.add_argument("--jobs", default="0,1", help="--jobs values to run end to end")
    parser.add_argument("--work", type=Path, default=REPO / "bench-out" / "stream")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    names = args.work / f"names-{args.names}.jsonl"
    if not names.exists():
        started = time.perf_counter()
        write_names(names, args.names)
        print(f"wrote {names} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    tagger_dir = args.work / f"tagger-{args.encoder}"
    if not tagger_dir.exists():
        model = ["--model", args.model] if args.model else []
        subprocess.run(
            [TAGGER, "train", "--taxonomy", "attractions", "--train",
             str(REPO / "examples/attractions/train.json"), "--valid",
             str(REPO / "examples/attractions/validation.json"), "--encoder", args.encoder,
             *model, "-o", str(tagger_dir)],
            check=True, capture_output=True,
        )  # fmt: skip

    from tagger_core import FileOptions, Tagger, iter_records

    tagger = Tagger.load(tagger_dir)
    unlabelled = FileOptions(require_labels=False)
    sample = [
        r.text
        for _, r in zip(range(args.sample), iter_records(names, options=unlabelled), strict=False)
    ]
    gc.collect()
    gc.freeze()
    chunks = [sample[start : start + 2048] for start in range(0, len(sample), 2048)]
    started = time.perf_counter()
    for chunk in chunks:
        tagger.predict(chunk)
    api = len(sample) / (time.perf_counter() - started)
    started = time.perf_counter()
    for chunk in chunks:
        scores = tagger.scores(chunk)
        tagger.decide(scores)
        scores.probabilities  # noqa: B018 (computed lazily: part of scoring)
    arrays = len(sample) / (time.perf_counter() - started)
    del tagger, sample, chunks

    print(f"{args.encoder}: scoring only, {args.sample:,} names in memory: "
          f"Tagger.predict {api:,.0f} names/s, scores + decide {arrays:,.0f} names/s")  # fmt: skip
    print("| names | --jobs | end to end names/s | ÷ Tagger.predict | ÷ scores + decide "
          "| peak RSS MB (all processes) | rows out |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    output = args.work / "out.jsonl"
    for jobs in args.jobs.split(","):
        output.unlink(missing_ok=True)
        seconds, peak_mb = run_measured(
            [TAGGER, "predict", str(tagger_dir), "-i", str(names), "-o", str(output),
             "--jobs", jobs]
        )  # fmt: skip
        with open(output, "rb") as handle:
            rows = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        end_to_end = args.names / seconds
        print(
            f"| {args.names:,} | {jobs} | {end_to_end:,.0f} | {end_to_end / api:.2f} "
            f"| {end_to_end / arrays:.2f} | {peak_mb:,} | {rows:,} |",
            flush=True,
        )
        output.unlink()


if __name__ == "__main__":
    main()
