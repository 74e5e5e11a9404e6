"""Load and fault test of `tagger serve` on 127.0.0.1, bounded in requests and time.

    .venv/bin/python bench/serve_load.py prepare      # TF-IDF and BERT (m3e-small) POI taggers
    .venv/bin/python bench/serve_load.py run          # the table in docs/benchmarks.md
    .venv/bin/python bench/serve_load.py faults       # faults during load; corrections exact
    .venv/bin/python bench/serve_load.py cpu          # where the server's CPU time goes

`run` starts `tagger serve` for each tagger with micro-batching on and off and sends, for
a fixed time each, 1, 8 and 64 concurrent clients of single names and 4 clients of
100-name batches: requests/s, names/s, latency p50/p95/p99, errors. It also times offline
`tagger predict` on the same names (its wall time minus that of a one-name run, i.e. without
start-up and loading). The clients are a minimal keep-alive HTTP/1.1 client on asyncio, in
this process: they share the machine's two cores with the server, as a co-located caller
would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "poi_building_types"
OUT = REPO / "bench-out" / "serve"
TAGGER = str(REPO / ".venv" / "bin" / "tagger")
M3E = REPO / ".venv/lib/python3.11/site-packages/embedding/m3e-small"
TAXONOMY = REPO / "bench-out" / "curve" / "poi.yaml"
TRAIN_ROWS = 2000


def prepare() -> None:
    """A TF-IDF and a BERT tagger on 2,000 POI names (throughput barely depends on how well
    they are trained; one BERT epoch keeps this to minutes)."""
    OUT.mkdir(parents=True, exist_ok=True)
    rows = json.loads((SHARED / "train.json").read_text(encoding="utf-8"))[:TRAIN_ROWS]
    train = OUT / "train.json"
    train.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    taxonomy = ["--taxonomy", str(TAXONOMY)] if TAXONOMY.exists() else []
    if not taxonomy:
        raise SystemExit(f"{TAXONOMY} is missing: run bench/learning_curve.py first")
    valid = ["--valid", str(SHARED / "validation.json")]
    common = [TAGGER, "train", *taxonomy, "--train", str(train), *valid, "--force"]
    subprocess.run([*common, "-o", str(OUT / "poi-tfidf")], check=True)
    subprocess.run(
        [
            *common,
            "--encoder",
            "bert",
            "--model",
            str(M3E),
            "-p",
            "epochs=1",
            "-o",
            str(OUT / "poi-bert"),
        ],
        check=True,
    )


def names(count: int) -> list[str]:
    rows = json.loads((SHARED / "test.json").read_text(encoding="utf-8"))
    return [row["text"] for row in rows][:count]


# -- the server -------------------------------------------------------------------------------


class Server:
    def __init__(self, tagger: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [TAGGER, "serve", str(tagger), "--port", "0", *extra],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not found:
            raise SystemExit(f"server did not start: {line}{self.process.stderr.read()}")
        self.port = int(found.group(1))
        self.name = tagger.name
        # every worker ready: a worker still loading takes no connection, so clients that
        # connect early all land on the first one and keep their connections to it
        self.workers = int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1
        answered: set[int] = set()
        deadline = time.monotonic() + 120
        while len(answered) < self.workers:
            status, body = asyncio.run(one_request(self.port, "GET", "/readyz"))
            if status == 200:
                answered.add(json.loads(body)["pid"])
            if time.monotonic() > deadline:
                raise SystemExit(f"{len(answered)} of {self.workers} workers ready after 120 s")
            time.sleep(0.05)

    def batching(self) -> dict[str, int]:
        """The server's scoring calls and texts so far (empty with batching off)."""
        _, body = asyncio.run(one_request(self.port, "GET", "/readyz"))
        return json.loads(body).get("batching", {}).get(self.name, {})

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


# -- a lean keep-alive HTTP/1.1 client ------------------------------------------------------


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            key = key.strip().lower()
            if key == "content-length":
                length = int(value)
            elif key == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        self.writer.close()


async def one_request(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    try:
        connection = await Connection.open(port)
    except OSError:
        return 0, b""
    try:
        return await connection.request(method, path, body)
    finally:
        connection.close()


async def load(
    port: int,
    tagger: str,
    texts: list[str],
    clients: int,
    per_request: int,
    seconds: float,
    max_requests: int,
) -> dict[str, float]:
    """``clients`` loops sending ``per_request`` names each until ``seconds`` pass or
    ``max_requests`` are sent; latencies of the answered ones, errors of the rest."""
    path = f"/v1/taggers/{tagger}/predict"
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.monotonic() + seconds
    rng = random.Random(0)

    async def client() -> None:
        nonlocal errors, sent
        connection = await Connection.open(port)
        try:
            while time.monotonic() < deadline and sent < max_requests:
                sent += 1
                start = rng.randrange(len(texts) - per_request)
                batch = texts[start : start + per_request]
                body = json.dumps({"texts": batch, "scores": False}, ensure_ascii=False)
                began = time.perf_counter()
                try:
                    status, _ = await connection.request("POST", path, body.encode())
                except (ConnectionError, asyncio.IncompleteReadError):
                    errors += 1
                    connection = await Connection.open(port)
                    continue
                if status == 200:
                    latencies.append(time.perf_counter() - began)
                else:
                    errors += 1
        finally:
            connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - began
    ordered = sorted(latencies) or [float("nan")]

    def pct(p: float) -> float:
        return 1000 * ordered[min(int(p * len(ordered)), len(ordered) - 1)]

    return {
        "requests_per_s": len(latencies) / wall,
        "names_per_s": len(latencies) * per_request / wall,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "errors": errors,
        "requests": len(latencies),
    }


def offline(tagger: Path, texts: list[str]) -> float:
    """`tagger predict` names/s on ``texts`` (median of 3), start-up and loading excluded."""
    folder = OUT / "offline"
    folder.mkdir(parents=True, exist_ok=True)
    many, one = folder / "names.txt", folder / "one.txt"
    many.write_text("\n".join(texts) + "\n", encoding="utf-8")
    one.write_text(texts[0] + "\n", encoding="utf-8")

    def wall(path: Path) -> float:
        began = time.perf_counter()
        subprocess.run(
            [
                TAGGER,
                "predict",
                str(tagger),
                "-i",
                str(path),
                "-o",
                str(folder / "out.jsonl"),
                "--force",
            ],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - began

    walls = [wall(many) - wall(one) for _ in range(3)]
    return len(texts) / statistics.median(walls)


def ceiling(tagger: Path, texts: list[str], clients: int, seconds: float) -> dict[str, float]:
    """What micro-batching allows with no HTTP at all: ``clients`` threads of single names
    submitted straight to the server's batcher, in this process."""
    import threading

    from tagger_core import Tagger
    from tagger_core.serve.settings import ServeSettings
    from tagger_core.serve.taggers import ServedTagger, timed

    loaded = Tagger.load(tagger)
    call = min(timed(loaded.scores, ["warm-up"]) for _ in range(3))
    served = ServedTagger("bench", loaded, ServeSettings(taggers={}), call)
    batcher = served.batcher
    assert batcher is not None
    served.score(texts[:clients])  # warm-up
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        rng = random.Random(index)
        while time.monotonic() < stop:
            batcher.submit([rng.choice(texts)]).result()
            done[index] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    mean_batch = batcher.texts / max(batcher.batches, 1)
    served.close()
    return {"clients": clients, "names_per_s": sum(done) / wall, "mean_batch": mean_batch}


def scenarios(text: str) -> list[tuple[int, int]]:
    """'64x1,4x100' → [(64 clients, 1 name per request), (4, 100)]."""
    return [(int(c), int(n)) for c, n in (item.split("x") for item in text.split(","))]


def run(args: argparse.Namespace) -> None:
    texts = names(5000)
    results = []
    for tagger_name in args.taggers.split(","):
        tagger = OUT / tagger_name
        # TF-IDF tags 5,000 names in milliseconds: time it on 40 copies of them
        offline_rate = offline(tagger, texts * (40 if "tfidf" in tagger_name else 1))
        print(f"{tagger_name}: offline tagger predict {offline_rate:.0f} names/s", flush=True)
        results.append({"tagger": tagger_name, "mode": "offline", "names_per_s": offline_rate})
        best = ceiling(tagger, texts, 64, args.seconds)
        best["vs_offline"] = best["names_per_s"] / offline_rate
        results.append({"tagger": tagger_name, "mode": "ceiling", **best})
        print(json.dumps(results[-1]), flush=True)
        for batching in ("on", "off"):
            extra = [*args.serve_args.split(), *([] if batching == "on" else ["--no-batching"])]
            server = Server(tagger, *extra)
            for clients, per_request in scenarios(args.scenarios):
                before = server.batching()
                figures = asyncio.run(
                    load(
                        server.port,
                        server.name,
                        texts,
                        clients,
                        per_request,
                        args.seconds,
                        args.max_requests,
                    )
                )
                after = server.batching()
                if after and server.workers == 1:  # else /readyz gives one worker's count
                    batches = after["batches"] - before["batches"]
                    figures["mean_batch"] = (after["texts"] - before["texts"]) / max(batches, 1)
                row = {
                    "tagger": tagger_name,
                    "batching": batching,
                    "clients": clients,
                    "names_per_request": per_request,
                    **figures,
                    "vs_offline": figures["names_per_s"] / offline_rate,
                }
                results.append(row)
                print(json.dumps(row), flush=True)
            server.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "load.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    table(results)


def table(results: list[dict]) -> None:
    print(
        "| tagger | batching | clients × names | requests/s | names/s | vs offline | "
        "p50 / p95 / p99 ms | errors | mean batch |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in results:
        name, rate = row["tagger"], f"{row['names_per_s']:.0f}"
        if row.get("mode") == "offline":
            print(f"| {name} | offline `tagger predict` | 5,000 names | | {rate} | 1 | | | |")
        elif row.get("mode") == "ceiling":
            print(
                f"| {name} | in-process batcher, no HTTP | {row['clients']} × 1 | | {rate} | "
                f"{row['vs_offline']:.2f} | | | {row['mean_batch']:.0f} |"
            )
        else:
            batch = f"{row['mean_batch']:.1f}" if "mean_batch" in row else ""
            print(
                f"| {name} | {row['batching']} | {row['clients']} × "
                f"{row['names_per_request']} | {row['requests_per_s']:.0f} | {rate} | "
                f"{row['vs_offline']:.2f} | {row['p50_ms']:.1f} / {row['p95_ms']:.1f} / "
                f"{row['p99_ms']:.1f} | {row['errors']} | {batch} |"
            )


# -- faults -----------------------------------------------------------------------------------


async def faults(port: int, tagger: str, texts: list[str], seconds: float) -> dict[str, object]:
    """8 clients of single names run throughout while bad clients misbehave and 100
    corrections are each sent twice (one of the pair after a dropped connection)."""
    report: dict[str, object] = {}
    normal = asyncio.create_task(load(port, tagger, texts, 8, 1, seconds, 10**9))
    path = f"/v1/taggers/{tagger}/predict"

    # malformed JSON and an oversized body: JSON errors, the connection stays usable
    status, body = await one_request(port, "POST", path, b'{"texts": ["a"')
    report["malformed_json"] = [status, json.loads(body)["error"]["message"]]
    status, body = await one_request(port, "POST", path, b"[" + b" " * (2 << 20) + b"]")
    report["oversized_body"] = [status, json.loads(body)["error"]["message"][:60]]

    # a slow client: its body trickles in over two seconds
    async def slow() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = json.dumps({"texts": texts[:3]}, ensure_ascii=False).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
        )
        for byte in payload:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(2 / len(payload))
        status = int((await reader.readline()).split()[1])
        writer.close()
        return status

    # clients that disconnect mid-request (half a body, then gone)
    async def vanish() -> None:
        for _ in range(20):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                'Content-Length: 100\r\n\r\n{"texts": ["'.encode()
            )
            await writer.drain()
            writer.close()
            await asyncio.sleep(0.05)

    # corrections: 100 review ids, each sent twice, half of the first sends dropped after
    # the request is written (the answer never read), as a flaky network would
    async def corrections() -> list[int]:
        statuses = []
        for i in range(100):
            entry = json.dumps(
                {"text": texts[i], "labels": ["restaurant"], "review_id": f"load-{i}"},
                ensure_ascii=False,
            ).encode()
            corrections_path = f"/v1/taggers/{tagger}/corrections"
            if i % 2:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(
                    f"POST {corrections_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                    f"application/json\r\nContent-Length: {len(entry)}\r\n\r\n".encode()
                    + entry
                )
                await writer.drain()
                writer.close()  # gone before the answer
            else:
                statuses.append((await one_request(port, "POST", corrections_path, entry))[0])
            statuses.append((await one_request(port, "POST", corrections_path, entry))[0])
        return statuses

    slow_status, _, statuses = await asyncio.gather(slow(), vanish(), corrections())
    report["slow_client"] = slow_status
    report["correction_statuses"] = {str(s): statuses.count(s) for s in sorted(set(statuses))}
    report["normal_clients"] = await normal
    return report


def run_faults(args: argparse.Namespace) -> None:
    texts = names(5000)
    tagger = OUT / args.taggers.split(",")[0]
    corrections = OUT / "faults-corrections.jsonl"
    corrections.unlink(missing_ok=True)
    server = Server(tagger, "--corrections", str(corrections), "--allow-anonymous-review")
    report = asyncio.run(faults(server.port, server.name, texts, args.seconds))

    # a stop signal with requests in flight: each is answered before the process exits
    async def in_flight() -> list[int]:
        tasks = [
            asyncio.create_task(
                one_request(
                    server.port,
                    "POST",
                    f"/v1/taggers/{server.name}/predict",
                    json.dumps({"texts": texts[:100]}, ensure_ascii=False).encode(),
                )
            )
            for _ in range(16)
        ]
        await asyncio.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        return [status for status, _ in await asyncio.gather(*tasks)]

    statuses = asyncio.run(in_flight())
    report["stop_signal_in_flight"] = {str(s): statuses.count(s) for s in sorted(set(statuses))}
    report["exit_status"] = server.process.wait(60)
    lines = [json.loads(line) for line in corrections.read_text(encoding="utf-8").splitlines()]
    ids = [line["review_id"] for line in lines]
    report["corrections_written"] = len(lines)
    report["distinct_review_ids"] = len(set(ids))
    report["missing_review_ids"] = sorted(set(f"load-{i}" for i in range(100)) - set(ids))
    print(json.dumps(report, indent=1, ensure_ascii=False))
    (OUT / "faults.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))


def thread_seconds(root: int) -> dict[tuple[int, int], float]:
    """CPU seconds (user + system) of every thread of ``root`` and its descendants, from
    /proc (Linux only): (process id, thread id) → seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    pids, seconds = [root], {}
    for pid in pids:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        pids += [int(child) for child in children]
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            seconds[(pid, int(tid))] = (int(fields[11]) + int(fields[12])) / tick
    return seconds


def run_cpu(args: argparse.Namespace) -> None:
    """One scenario's CPU time by thread: each server process's event loop (its main
    thread: HTTP, JSON, validation) against its other threads (scoring), and the clients."""
    texts = names(5000)
    tagger = OUT / args.taggers.split(",")[0]
    clients, per_request = scenarios(args.scenarios)[0]
    server = Server(tagger, *args.serve_args.split())
    before, clients_before = thread_seconds(server.process.pid), time.process_time()
    figures = asyncio.run(
        load(server.port, server.name, texts, clients, per_request, args.seconds, 10**9)
    )
    after, clients_after = thread_seconds(server.process.pid), time.process_time()
    server.stop()
    spent = {key: after[key] - before.get(key, 0.0) for key in after}
    names_served = figures["requests"] * per_request
    report: dict[str, object] = {"scenario": f"{clients}x{per_request}", **figures}
    for pid in sorted({pid for pid, _ in spent}):
        loop = spent.get((pid, pid), 0.0)
        others = sum(s for (p, t), s in spent.items() if p == pid and t != pid)
        if loop + others >= 0.05:
            report[f"process {pid}"] = {"event_loop_s": loop, "other_threads_s": others}
    loops = sum(s for (p, t), s in spent.items() if p == t)
    others = sum(s for (p, t), s in spent.items() if p != t)
    cpus = len(os.sched_getaffinity(0))
    report |= {
        "clients_s": clients_after - clients_before,
        "event_loops_ms_per_request": 1000 * loops / max(figures["requests"], 1),
        "scoring_threads_ms_per_name": 1000 * others / max(names_served, 1),
        "idle_share": 1 - (loops + others + clients_after - clients_before) / (cpus * args.seconds),
    }
    print(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["prepare", "run", "faults", "cpu"])
    parser.add_argument("--taggers", default="poi-tfidf,poi-bert")
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario")
    parser.add_argument("--serve-args", default="", help="extra `tagger serve` options")
    parser.add_argument("--scenarios", default="1x1,8x1,64x1,4x100", help="clients x names")
    parser.add_argument("--max-requests", type=int, default=20000, help="per scenario")
    args = parser.parse_args()
    os.chdir(REPO)
    if args.command == "prepare":
        prepare()
    elif args.command == "run":
        run(args)
    elif args.command == "cpu":
        run_cpu(args)
    else:
        run_faults(args)


if __name__ == "__main__":
    sys.exit(main())
