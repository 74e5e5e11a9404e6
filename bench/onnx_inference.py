"""Inference runtimes of a BERT tagger in one run: torch fp32, torch bf16 (autocast), ONNX
Runtime fp32 and ONNX Runtime int8 (`tagger export --onnx`), at 1 and 2 threads.

    D=../shared/data/poi_building_types
    .venv/bin/python bench/onnx_inference.py --tagger bench-out/onnx/poi-bert-3000 \\
        --test $D/test.json --valid $D/validation.json [--rounds 3]

For the tagger given (m3e-small fine-tuned on POI) and for a randomly initialised model of
bert-base-chinese's configuration with the same classifier head (speed only: its labels
mean nothing), each runtime scores the test names: names/s (median of the rounds, the
runtimes interleaved in every round), the ratio to torch fp32 at the same threads, the
share of that precision's own matrix-multiply rate (fp32 and bf16 GEMM, int8 `_int_mm`,
measured here at the same threads) that the forward passes reach, model size on disk,
load time, and test exact match and macro F1. Exports are written with --force (the check
is reported, not enforced) under bench-out/onnx/.
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from bert_throughput import BERT_BASE_CHINESE, classifier, forward_flops  # noqa: E402

WORK = REPO / "bench-out" / "onnx"
TAGGER = str(Path(sys.executable).parent / "tagger")
RUNTIMES = ("torch fp32", "torch bf16", "onnx fp32", "onnx int8")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def matmul_rates(threads: int) -> dict[str, float]:
    """OP/s of one 1024³ product in fp32, bf16 and int8 (torch._int_mm), best of 3 (bf16
    without native support is emulated: a 2048³ one takes a minute; with AMX a 1024³ one
    reaches about half of the 2048³ rate, so the bf16 shares are upper estimates)."""
    import torch

    torch.set_num_threads(threads)
    size = 1024
    torch.manual_seed(0)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a16, b16 = a.bfloat16(), b.bfloat16()
    a8 = torch.randint(-64, 64, (size, size), dtype=torch.int8)
    b8 = torch.randint(-64, 64, (size, size), dtype=torch.int8)
    cases = {
        "fp32": lambda: a @ b,
        "bf16": lambda: a16 @ b16,
        "int8": lambda: torch._int_mm(a8, b8),
    }
    out = {}
    for name, run in cases.items():
        run()
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            run()
            samples.append(2 * size**3 / (time.perf_counter() - started))
        out[name] = max(samples)
    return out


def base_tagger(model_tagger: Path, taxonomy: Any) -> Path:
    """A tagger folder holding a random bert-base-chinese-sized classifier."""
    from tagger_plugins.bert import BertEncoder
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tagger_core import Tagger

    folder = WORK / "bert-base-random"
    if (folder / "manifest.json").exists():
        return folder
    import torch

    backbone = WORK / "bert-base-random-backbone"
    torch.manual_seed(0)
    BertModel(BertConfig(**BERT_BASE_CHINESE)).save_pretrained(backbone)
    AutoTokenizer.from_pretrained(model_tagger / "encoder").save_pretrained(backbone)
    encoder = BertEncoder(model=str(backbone))
    encoder.model = classifier(str(backbone), taxonomy).eval()
    encoder.tokenizer = AutoTokenizer.from_pretrained(backbone)
    encoder.device = torch.device("cpu")
    encoder.n_labels = len(taxonomy.labels)
    tagger = Tagger.create(taxonomy, encoder="bert", encoder_params={"model": str(backbone)})
    tagger.encoder = encoder
    tagger.save(folder, force=True)
    return folder


def exported(source: Path, quantize: str, valid: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of ``source`` exported by `tagger export` in its own process (as a user runs
    it; one process exporting several models in a row held their graphs to 24 GB)."""
    from tagger_core import Tagger

    folder = WORK / f"{source.name}-onnx-{quantize}"
    if not (folder / "manifest.json").exists():
        Tagger.load(source, runtime="torch").save(folder, force=True)
        log(f"exporting {source.name} ({quantize})")
        command = [TAGGER, "export", str(folder), "--onnx", "--quantize", quantize]
        subprocess.run([*command, "--check", str(valid), "--force"], check=True)
    return folder, Tagger.load(folder).exports["onnx"]


def size_on_disk(folder: Path, runtime: str) -> int:
    name = "encoder/onnx/model.onnx" if runtime.startswith("onnx") else "encoder/model.safetensors"
    return (folder / name).stat().st_size


def load(folder: Path, runtime: str, threads: int) -> tuple[Any, float]:
    from tagger_core import Tagger

    started = time.perf_counter()
    tagger = Tagger.load(folder, runtime="onnx" if runtime.startswith("onnx") else "torch")
    seconds = time.perf_counter() - started
    tagger.encoder.params.threads = threads
    if runtime.startswith("torch"):  # pinned: precision=auto is bf16 where the CPU has it
        tagger.encoder.params.precision = runtime.split()[-1]
    if tagger.encoder.session is not None:  # ONNX Runtime fixes its threads per session
        from tagger_plugins.bert.onnx_runtime import OnnxLogits

        tagger.encoder.session = OnnxLogits(folder / "encoder/onnx/model.onnx", threads)
    return tagger, seconds


def run_model(
    name: str,
    folders: dict[str, Path],
    records: list[Any],
    threads_list: list[int],
    rounds: int,
    runtimes: tuple[str, ...],
    accuracy: bool,
) -> list[dict[str, Any]]:
    from tagger_core.taxonomy import label_matrix

    texts = [r.text for r in records]
    rows = []
    for threads in threads_list:
        taggers = {rt: load(folders[rt], rt, threads) for rt in runtimes}
        for tagger, _ in taggers.values():
            tagger.scores(texts[:64])  # warm-up
        times: dict[str, list[float]] = {rt: [] for rt in runtimes}
        for round_ in range(rounds):
            for rt in runtimes:
                started = time.perf_counter()
                taggers[rt][0].scores(texts)
                times[rt].append(time.perf_counter() - started)
            log(f"{name}, {threads} thread(s), round {round_ + 1}: "
                + ", ".join(f"{rt} {len(texts) / times[rt][-1]:.0f}/s" for rt in runtimes))  # fmt: skip
        first = taggers[runtimes[0]][0]
        lengths = np.array([len(ids) for ids in first.encoder.tokenizer(texts)["input_ids"]])
        config = _config(folders[runtimes[0]])
        flops = forward_flops(config, lengths, len(first.taxonomy.labels))
        truth = label_matrix(records, taggers[runtimes[0]][0].taxonomy)
        for rt in runtimes:
            tagger, load_seconds = taggers[rt]
            row: dict[str, Any] = {
                "model": name,
                "runtime": rt,
                "threads": threads,
                "names_per_s": len(texts) / statistics.median(times[rt]),
                "load_s": load_seconds,
                "bytes": size_on_disk(folders[rt], rt),
                "flops_per_name": flops,
            }
            if accuracy and threads == threads_list[0]:
                evaluation = tagger.evaluate_scores(tagger.scores(texts), truth)
                row["exact_match"] = evaluation.exact_match
                row["macro_f1"] = evaluation.macro_f1
            rows.append(row)
    return rows


def training_rates(
    name: str,
    model_dir: Path,
    taxonomy: Any,
    train: list[Any],
    threads_list: list[int],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Examples/s of the encoder's own training epoch (length-grouped batches of 32, AdamW,
    schedule, clipping) in fp32 and under bf16 autocast, from the same weights on the same
    names: the two interleaved in every round, two warm-up rounds discarded (oneDNN builds
    a kernel per new batch shape), the median of the timed ones."""
    import random

    import torch
    from tagger_plugins.bert import BertEncoder
    from tagger_plugins.bert.finetune import _Distributed, _Trainer, load_classifier
    from tagger_plugins.bert.runtime import _NoBar

    from tagger_core.taxonomy import label_matrix

    steps = args.train_steps if "base" not in name else max(1, args.train_steps // 2)
    sample = random.Random(0).sample(train, min(len(train), steps * 32))
    cpu = torch.device("cpu")
    config = _config(model_dir.parent)
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        trainers = {}
        for precision in ("fp32", "bf16"):
            params = BertEncoder.Params(model=str(model_dir), precision=precision, epochs=100)
            loaded = load_classifier(params, taxonomy, seed=0)
            trainer = _Trainer(
                params, loaded.model, loaded.tokenizer, loaded.max_length, taxonomy, cpu,
                _Distributed(cpu), seed=0,
            )  # fmt: skip
            trainer.set_data([r.text for r in sample], label_matrix(sample, taxonomy), None)
            trainers[precision] = trainer
        rates: dict[str, list[float]] = {p: [] for p in trainers}
        for round_ in range(2 + args.train_rounds):
            for precision, trainer in trainers.items():
                started = time.perf_counter()
                trainer.train_epoch(round_ + 1, _NoBar())
                if round_ >= 2:
                    rates[precision].append(len(sample) / (time.perf_counter() - started))
            if round_ >= 2:
                log(f"{name} training, {threads} thread(s): "
                    + ", ".join(f"{p} {v[-1]:.1f}/s" for p, v in rates.items()))  # fmt: skip
        lengths = trainers["fp32"].train.lengths
        flops = 3 * forward_flops(config, np.asarray(lengths), len(taxonomy.labels))
        for precision, values in rates.items():
            rows.append({
                "model": name, "precision": precision, "threads": threads,
                "examples_per_s": statistics.median(values), "rounds": values,
                "flops_per_example": flops, "examples": len(sample),
            })  # fmt: skip
    return rows


def autocast_profile(folder: Path, texts: list[str]) -> list[dict[str, Any]]:
    """Which ops take the time of bf16-autocast inference: an op autocast leaves slow (or
    in fp32, converting to and fro) shows here."""
    from torch.profiler import ProfilerActivity, profile

    from tagger_core import Tagger

    tagger = Tagger.load(folder, runtime="torch")
    tagger.encoder.params.precision = "bf16"
    tagger.encoder.params.threads = 1
    tagger.scores(texts)  # warm-up: every batch shape once
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        tagger.scores(texts)
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    rows = []
    for event in prof.key_averages(group_by_input_shape=False):
        if event.self_cpu_time_total / total < 0.01:
            continue
        rows.append({"op": event.key, "share": event.self_cpu_time_total / total})
    return sorted(rows, key=lambda r: -r["share"])


def _config(folder: Path) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder / "encoder")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tagger", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--valid", type=Path, required=True, help="what the export check scores")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--names", type=int, default=None, help="test names (default: all)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--base-names", type=int, default=500, help="names for bert-base")
    parser.add_argument(
        "--bf16-names", type=int, default=1000, help="names for emulated torch bf16"
    )
    parser.add_argument("--train", type=Path, help="names for the training steps (default: test)")
    parser.add_argument(
        "--train-steps", type=int, default=20, help="batches of 32 per timed round; 0: none"
    )
    parser.add_argument("--train-rounds", type=int, default=3, help="timed, after 2 warm-ups")
    parser.add_argument("--profile", action="store_true", help="autocast's ops, by time")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)

    from tagger_plugins.bert.runtime import cpu_has_native_bf16

    from tagger_core import Tagger, read_records

    native = cpu_has_native_bf16()
    taxonomy = Tagger.load(args.tagger).taxonomy
    test = read_records(args.test, taxonomy=taxonomy)[: args.names]
    train = read_records(args.train, taxonomy=taxonomy) if args.train else test
    threads_list = [int(t) for t in args.threads.split(",")]
    results: dict[str, Any] = {
        "native_bf16": native,
        "matmul": {t: matmul_rates(t) for t in threads_list},
    }
    log(f"native bf16: {native}; matmul rates: {results['matmul']}")
    if args.profile:
        results["profile"] = autocast_profile(args.tagger, [r.text for r in test[:2000]])

    rows = []
    checks = {}
    for name, source, names, accuracy in (
        ("m3e-small POI", args.tagger, test, True),
        ("bert-base (random)", None, test[: args.base_names], False),
    ):
        source = source or base_tagger(args.tagger, taxonomy)
        folders = {"torch fp32": source, "torch bf16": source}
        for quantize, runtime in (("none", "onnx fp32"), ("int8", "onnx int8")):
            folders[runtime], record = exported(source, quantize, args.valid)
            checks[f"{name}, {runtime}"] = record["check"]
        if native:
            rows += run_model(name, folders, names, threads_list, args.rounds, RUNTIMES, accuracy)
        else:  # emulated bf16 autocast is slow: fewer names, one round
            fast = ("torch fp32", "onnx fp32", "onnx int8")
            rows += run_model(name, folders, names, threads_list, args.rounds, fast, accuracy)
            rows += run_model(
                name, folders, names[: args.bf16_names], threads_list, 1, ("torch bf16",), accuracy
            )
        if args.train_steps:
            model_dir = folders["torch fp32"] / "encoder"
            results.setdefault("training", []).extend(
                training_rates(name, model_dir, taxonomy, train, threads_list, args)
            )
    for row in rows:
        bound = results["matmul"][row["threads"]][row["runtime"].split()[-1]]
        row["bound_share"] = row["names_per_s"] * row["flops_per_name"] / bound
    results["rows"], results["checks"] = rows, checks
    (WORK / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(table(results))


def table(results: dict[str, Any]) -> str:
    rates = ", ".join(
        f"{threads} thread(s): " + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in r.items())
        for threads, r in results["matmul"].items()
    )
    lines = [
        f"1024³ product, G(FL)OP/s — {rates}",
        "",
        "| model | runtime | threads | names/s | × torch fp32 | share of its matmul rate | "
        "size | load | test exact match | test macro F1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = {
        (r["model"], r["threads"]): r["names_per_s"]
        for r in results["rows"]
        if r["runtime"] == "torch fp32"
    }
    for r in results["rows"]:
        exact = f"{r['exact_match']:.4f}" if "exact_match" in r else ""
        macro = f"{r['macro_f1']:.4f}" if "macro_f1" in r else ""
        ratio = r["names_per_s"] / base[(r["model"], r["threads"])]
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['threads']} | {r['names_per_s']:.0f} | "
            f"{ratio:.2f} | {100 * r['bound_share']:.0f} % | {r['bytes'] / 1e6:.0f} MB | "
            f"{r['load_s']:.1f} s | {exact} | {macro} |"
        )
    if results.get("training"):
        lines += [
            "",
            "| model | training | threads | examples/s | × fp32 | share of its matmul rate |",
            "|---|---|---:|---:|---:|---:|",
        ]
        fp32 = {
            (r["model"], r["threads"]): r["examples_per_s"]
            for r in results["training"]
            if r["precision"] == "fp32"
        }
        for r in results["training"]:
            bound = results["matmul"][r["threads"]][r["precision"]]
            share = r["examples_per_s"] * r["flops_per_example"] / bound
            ratio = r["examples_per_s"] / fp32[(r["model"], r["threads"])]
            lines.append(
                f"| {r['model']} | {r['precision']} | {r['threads']} | "
                f"{r['examples_per_s']:.1f} | {ratio:.2f} | {100 * share:.0f} % |"
            )
    if results.get("profile"):
        lines += ["", "bf16 autocast inference, self time by op (≥ 1 %): " + ", ".join(
            f"{r['op']} {100 * r['share']:.0f} %" for r in results["profile"])]  # fmt: skip
    lines.append("")
    for name, check in results["checks"].items():
        lines.append(
            f"- export check, {name}: {check['changed']} of {check['rows']} validation names "
            f"changed labels ({100 * check['changed_share']:.2f} %), micro F1 "
            f"{check['micro_f1_before']:.4f} → {check['micro_f1_after']:.4f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
