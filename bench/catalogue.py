"""A catalogue in Parquet shards tagged by one process and by Ray, on this machine.

    .venv/bin/python bench/catalogue.py prepare                  # 1,000,000 names, 20 shards
    .venv/bin/python bench/catalogue.py run --tagger T [--shards K] [--configs ...]

`prepare` writes --names POI names (the shared set's 27,000 distinct names, cycled, each
row with its own id and a city column) as --shards Parquet files under
bench-out/catalogue/names/, and trains a TF-IDF tagger on the POI training split
(bench-out/catalogue/poi-tfidf). The BERT tagger is the m3e-small POI tagger with its int8
ONNX export from the "ONNX Runtime and int8" benchmark (bench-out/onnx/poi-bert-3000-onnx-int8).

`run` tags the first K shards with each configuration as a separate `tagger predict`
process, start to finish:

- ``single1`` / ``single2``: the local engine (one process, shard after shard) with the
  encoder on 1 / 2 threads;
- ``ray1`` / ``ray2``: ``--engine ray`` with 1 / 2 actors of one CPU and one thread each.

Per run: wall time; the same command on a one-name shard (start-up: Python, loading the
tagger, starting Ray and its actors); names/s over the whole run and net of start-up; peak
resident memory of the command's process and of each Ray actor (sampled from /proc every
0.2 s). Every output shard is then compared with ``single1``'s: the same rows, labels and
scores (Arrow table equality).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TAGGER = str(Path(sys.executable).parent / "tagger")
SHARED = REPO.parent / "shared" / "data" / "poi_building_types"
WORK = REPO / "bench-out" / "catalogue"
CONFIGS = {
    "single1": ["--threads", "1"],
    "single2": ["--threads", "2"],
    "ray1": ["--engine", "ray", "--actors", "1", "--threads", "1"],
    "ray2": ["--engine", "ray", "--actors", "2", "--threads", "1"],
}


def prepare(names: int, shards: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [
        row["text"]
        for split in ("train", "validation", "test")
        for row in json.loads((SHARED / f"{split}.json").read_text(encoding="utf-8"))
    ]
    folder = WORK / "names"
    folder.mkdir(parents=True, exist_ok=True)
    per_shard = names // shards
    cities = ["北京", "上海", "广州", "深圳", "成都", "杭州", "西安"]
    for shard in range(shards):
        ids = range(shard * per_shard, (shard + 1) * per_shard)
        table = pa.table(
            {
                "id": list(ids),
                "text": [texts[i % len(texts)] for i in ids],
                "city": [cities[i % len(cities)] for i in ids],
            }
        )
        pq.write_table(table, folder / f"part-{shard:02d}.parquet")
    tiny = WORK / "tiny"
    tiny.mkdir(exist_ok=True)
    pq.write_table(
        pa.table({"id": [0], "text": [texts[0]], "city": ["北京"]}), tiny / "one.parquet"
    )
    print(f"{shards} shards of {per_shard} names in {folder}; {len(set(texts))} distinct names")
    train = [
        TAGGER, "train", "--taxonomy", str(REPO / "bench-out" / "curve" / "poi.yaml"),
        "--train", str(SHARED / "train.json"), "--valid", str(SHARED / "validation.json"),
        "-o", str(WORK / "poi-tfidf"), "--force",
    ]  # fmt: skip
    subprocess.run(train, check=True)


def subset(shards: int) -> Path:
    """A folder of links to the first ``shards`` shards."""
    every = sorted((WORK / "names").glob("part-*.parquet"))
    folder = WORK / f"names-{shards}"
    folder.mkdir(exist_ok=True)
    for path in every[:shards]:
        link = folder / path.name
        if not link.exists():
            link.symlink_to(path)
    return folder


class PeakMemory:
    """Peak RSS of a process tree and of Ray's actor processes, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.main = 0
        self.actors: dict[int, int] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    @staticmethod
    def rss(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def sample(self) -> None:
        while not self.done.is_set():
            self.main = max(self.main, self.rss(self.pid))
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    command = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if command.startswith(b"ray::MapWorker"):
                    pid = int(entry.name)
                    self.actors[pid] = max(self.actors.get(pid, 0), self.rss(pid))
            time.sleep(0.2)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def timed_run(tagger: str, folder: Path, out: Path, extra: list[str]) -> dict:
    command = [TAGGER, "predict", tagger, "-i", str(folder), "-o", str(out), "--force", *extra]
    env = {**os.environ, "TAGGER_PROGRESS": "0"}
    began = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    memory = PeakMemory(process.pid)
    _, stderr = process.communicate()
    wall = time.perf_counter() - began
    memory.stop()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return {
        "wall_s": round(wall, 2),
        "peak_main_mb": round(memory.main / 2**20),
        "peak_actor_mb": sorted(round(v / 2**20) for v in memory.actors.values()),
    }


def same_outputs(first: Path, second: Path) -> bool:
    import pyarrow.parquet as pq

    names = sorted(p.name for p in first.glob("*.parquet"))
    assert names == sorted(p.name for p in second.glob("*.parquet")), (first, second)
    return all(pq.read_table(first / n).equals(pq.read_table(second / n)) for n in names)


def run(tagger: str, shards: int, configs: list[str], label: str) -> None:
    import pyarrow.parquet as pq

    folder = subset(shards)
    names = sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet"))
    results = []
    for config in configs:
        start_up = timed_run(tagger, WORK / "tiny", WORK / "out-tiny", CONFIGS[config])
        full = timed_run(tagger, folder, WORK / f"out-{label}-{config}", CONFIGS[config])
        net = max(full["wall_s"] - start_up["wall_s"], 1e-9)
        result = {
            "config": config,
            "names": names,
            **full,
            "start_up_s": start_up["wall_s"],
            "names_per_s": round(names / full["wall_s"]),
            "names_per_s_net": round(names / net),
        }
        results.append(result)
        print(json.dumps(result), flush=True)
    base = {r["config"]: r for r in results}
    reference = WORK / f"out-{label}-{configs[0]}"
    for result in results:
        result["same_as_first"] = same_outputs(reference, WORK / f"out-{label}-{result['config']}")
        if "single1" in base:
            for key in ("names_per_s", "names_per_s_net"):
                result[f"x_single1_{key}"] = round(result[key] / base["single1"][key], 2)
    (WORK / f"results-{label}.json").write_text(json.dumps(results, indent=1))
    print(
        "| config | names | wall s | start-up s | names/s | net names/s | × single1 (net) "
        "| peak MB (main / actors) | same as first |"
    )
    for r in results:
        print(
            f"| {r['config']} | {r['names']:,} | {r['wall_s']} | {r['start_up_s']} "
            f"| {r['names_per_s']:,} | {r['names_per_s_net']:,} "
            f"| {r.get('x_single1_names_per_s_net', '')} "
            f"| {r['peak_main_mb']} / {', '.join(map(str, r['peak_actor_mb'])) or '–'} "
            f"| {r['same_as_first']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("prepare")
    make.add_argument("--names", type=int, default=1_000_000)
    make.add_argument("--shards", type=int, default=20)
    bench = commands.add_parser("run")
    bench.add_argument("--tagger", required=True)
    bench.add_argument("--shards", type=int, default=20, help="the first K shards")
    bench.add_argument("--configs", default="single1,single2,ray1,ray2")
    bench.add_argument("--label", help="names the outputs and results (default: tagger-K)")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.names, args.shards)
    else:
        label = args.label or f"{Path(args.tagger).name}-{args.shards}"
        run(args.tagger, args.shards, args.configs.split(","), label)


if __name__ == "__main__":
    main()
