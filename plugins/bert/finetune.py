"""Fine-tuning a sequence-classification model: one process, or many under ``torchrun``.

Texts are tokenized once; each epoch draws length-grouped batches (padding only to the
longest text of a batch); AdamW with linear warm-up and decay; gradient clipping; early
stopping on a validation metric with the best epoch restored. Under ``torchrun`` the model
is wrapped in torch's DistributedDataParallel (gloo on CPU, NCCL on CUDA) and every process
takes its share of the same batches.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagger_core import LOWER_IS_BETTER, Taxonomy

from .runtime import (
    Encoded,
    autocast,
    autocast_dtype,
    distributed_env,
    effective_max_length,
    length_grouped_batches,
    load_tokenizer,
    load_weights,
    materialize,
    pad_batch,
    padding_share,
    progress_bar,
    resolve_device,
    resolve_model,
    run_sorted,
    shard_batches,
    tokenize,
    using_threads,
    warn_truncated,
)

log = logging.getLogger("tagger")

# Learning rates used when ``lr`` is left unset (see docs/bert.md for the measurements):
# shallow models (m3e-small, 4 layers) train best with a higher rate than 12-layer BERTs.
SHALLOW_LAYERS = 6
LR_SHALLOW = 2e-4
LR_DEEP = 5e-5
MAX_LABEL_WEIGHT = 100.0
# The automatic schedule (``epochs`` unset): at least this many epochs, the plateau on
# 2,000-20,000 POI names, and more where that is fewer than ``min_steps`` updates.
LARGE_SET_EPOCHS = 8


@dataclass(frozen=True)
class Schedule:
    """How long a run trains and how often it validates, in epochs."""

    epochs: int
    validate_every: int  # epochs between validation passes (the last epoch always has one)
    steps_per_epoch: int

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def validates_after(self, epoch: int) -> bool:
        return epoch % self.validate_every == 0 or epoch == self.epochs


def plan_schedule(params: Any, steps_per_epoch: int) -> Schedule:
    """``epochs`` as given (a validation pass after each); unset, the schedule is set in
    optimizer updates: enough epochs for ``min_steps`` updates (small sets), never fewer
    than 8 (large ones), with about ``validations`` passes spread over it, so that
    ``patience`` counts passes whatever the size."""
    if params.epochs is not None:
        return Schedule(params.epochs, 1, steps_per_epoch)
    epochs = max(LARGE_SET_EPOCHS, math.ceil(params.min_steps / max(1, steps_per_epoch)))
    every = max(1, round(epochs / params.validations))
    return Schedule(epochs, every, steps_per_epoch)


def problem_type(taxonomy: Taxonomy) -> str:
    if taxonomy.mode == "multi-label":
        return "multi_label_classification"
    return "single_label_classification"


def default_lr(config: Any) -> float:
    layers = getattr(config, "num_hidden_layers", None)
    return LR_SHALLOW if layers is not None and layers <= SHALLOW_LAYERS else LR_DEEP


def label_weights(targets: np.ndarray, mode: str, scheme: str) -> np.ndarray | None:
    """Per-label loss weights from training frequencies, for rare labels.

    Multi-label: BCE ``pos_weight`` = negatives / positives of each label ("balanced") or
    its square root ("sqrt"). Single-label: cross-entropy class weights n / (k · n_c)
    over the k classes present ("balanced") or their square root. Capped at 100; a label
    with no positive example gets 1.
    """
    if scheme == "none":
        return None
    n = targets.shape[0]
    positives = targets.sum(axis=0).astype(np.float64)
    present = positives > 0
    weights = np.ones(targets.shape[1], dtype=np.float64)
    if mode == "multi-label":
        weights[present] = (n - positives[present]) / positives[present]
    else:
        weights[present] = n / (present.sum() * positives[present])
    if scheme == "sqrt":
        weights = np.sqrt(weights)
    return np.clip(weights, 1.0 / MAX_LABEL_WEIGHT, MAX_LABEL_WEIGHT).astype(np.float32)


def make_loss(mode: str, weights: np.ndarray | None, device: torch.device) -> torch.nn.Module:
    w = None if weights is None else torch.from_numpy(weights).to(device)
    if mode == "multi-label":
        return torch.nn.BCEWithLogitsLoss(pos_weight=w)
    return torch.nn.CrossEntropyLoss(weight=w)


def loss_targets(targets: np.ndarray, mode: str) -> torch.Tensor:
    if mode == "multi-label":
        return torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    return torch.from_numpy(targets.argmax(axis=1).astype(np.int64))


def make_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW without decay on biases and normalisation weights; the fused kernel where
    torch has one for the device (on CPU it is ~5× faster than the default loop)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first ``warmup`` share of the steps, then linear decay to 0."""
    warmup_steps = round(warmup * total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def decisions(logits: np.ndarray, mode: str) -> np.ndarray:
    """The decisions validation metrics use: argmax (single-label) or p > 0.5."""
    if mode == "multi-label":
        return logits > 0
    chosen = np.zeros(logits.shape, dtype=bool)
    if len(logits):
        chosen[np.arange(len(logits)), logits.argmax(axis=1)] = True
    return chosen


def validation_metrics(
    logits: np.ndarray,
    targets: np.ndarray,
    taxonomy: Taxonomy,
    loss_fn: torch.nn.Module,
    stopping: str = "micro_f1",
) -> dict[str, float]:
    """Loss, exact match, micro and macro F1 of the validation rows, and ``stopping``, the
    figure early stopping watches, where it is another."""
    from tagger_core import evaluate_matrices, quick_figures

    chosen = decisions(logits, taxonomy.mode)
    evaluation = evaluate_matrices(targets, chosen, taxonomy)
    with torch.no_grad():
        device = next(iter(loss_fn.buffers()), torch.empty(0)).device
        loss = loss_fn(
            torch.from_numpy(logits).to(device), loss_targets(targets, taxonomy.mode).to(device)
        )
    figures = {
        "loss": float(loss),
        "exact_match": evaluation.exact_match,
        "micro_f1": evaluation.micro_f1,
        "macro_f1": evaluation.macro_f1,
    }
    if stopping not in figures:
        figures[stopping] = quick_figures(targets > 0.5, chosen)[stopping]
    return figures


def dump_results(path: Path, logits: np.ndarray, targets: np.ndarray) -> None:
    """The reference notebook's format: ``[{"logits": [...], "labels": [0/1 ...]}]``."""
    rows = [
        {"logits": [float(v) for v in row], "labels": [float(v) for v in labels]}
        for row, labels in zip(logits, targets, strict=True)
    ]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rows), encoding="utf-8")
    tmp.replace(path)


@dataclass
class FitResult:
    model: Any
    tokenizer: Any
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class _Distributed:
    """Process-group bookkeeping: a no-op in a single process."""

    def __init__(self, device: torch.device) -> None:
        self.rank, _, self.world = distributed_env()
        self.created = False
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                if device.type == "cuda":
                    torch.cuda.set_device(device)
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
                self.created = True
            self.rank, self.world = dist.get_rank(), dist.get_world_size()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_gather(self, value: Any) -> list[Any]:
        if self.world <= 1:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, value)
        return gathered

    def mean(self, total: float, count: int) -> float:
        if self.world > 1:
            sums = self.all_gather((total, count))
            total, count = sum(s[0] for s in sums), sum(s[1] for s in sums)
        return total / max(1, count)

    def close(self) -> None:
        if self.created:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def sharded_logits(
    model: Any,
    encoded: Encoded,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    dtype: torch.dtype | None,
    group: _Distributed,
) -> np.ndarray:
    """Logits of every text; under DDP each process scores a share and all gather them."""
    model.eval()
    rows = np.arange(len(encoded))[group.rank :: group.world]

    def forward(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=mask).logits

    if len(rows):
        part = run_sorted(encoded, batch_size, pad_id, device, dtype, forward, rows=rows)
    else:  # fewer texts than processes: this one has none, yet joins the gathering
        labels = getattr(model, "module", model).config.num_labels
        part = np.zeros((0, labels), dtype=np.float32)
    if group.world <= 1:
        return part
    pieces = group.all_gather((rows, part))
    out = np.empty((len(encoded), part.shape[1]), dtype=np.float32)
    for piece_rows, piece in pieces:
        out[piece_rows] = piece
    return out


@dataclass
class Classifier:
    model: Any
    tokenizer: Any
    max_length: int
    new_head: torch.nn.Linear | None  # the output layer, when the checkpoint had none


def load_classifier(params: Any, taxonomy: Taxonomy, seed: int) -> Classifier:
    from transformers import AutoModelForSequenceClassification

    source = resolve_model(params.model)
    tokenizer = load_tokenizer(source, match_vocabulary_case=True)
    ids = taxonomy.label_ids
    torch.manual_seed(seed)  # the new classification head's initial weights
    model, info = load_weights(
        AutoModelForSequenceClassification,
        source,
        "weights",
        num_labels=len(ids),
        id2label=dict(enumerate(ids)),
        label2id={label: i for i, label in enumerate(ids)},
        problem_type=problem_type(taxonomy),
        ignore_mismatched_sizes=True,
        output_loading_info=True,
    )
    max_length = effective_max_length(params, model.config, tokenizer)
    tokenizer.model_max_length = max_length  # pipeline(truncation=True) cuts where we did
    return Classifier(model, tokenizer, max_length, new_output_layer(model, len(ids), info))


def new_output_layer(model: Any, num_labels: int, info: dict[str, Any]) -> torch.nn.Linear | None:
    """The layer that outputs the logits, if from_pretrained had to initialise it."""
    fresh = set(info.get("missing_keys") or ())
    for key in info.get("mismatched_keys") or ():
        fresh.add(key[0] if isinstance(key, tuple) else key)
    found = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == num_labels:
            found = (name, module)  # the last such layer is the output
    if found is None or found[1].bias is None or f"{found[0]}.bias" not in fresh:
        return None
    return found[1]


def init_output_bias(layer: torch.nn.Linear, targets: np.ndarray, mode: str) -> None:
    """Start a new head at the label priors (log-odds per label; log-frequency per class)
    rather than at 0 (p = 0.5 per label): with many rare labels the first epochs are
    otherwise spent pushing every logit down, and every prediction stays empty."""
    n = len(targets)
    positives = targets.sum(axis=0).astype(np.float64)
    if mode == "multi-label":
        prior = (positives + 0.5) / (n + 1.0)
        bias = np.log(prior / (1.0 - prior))
    else:
        bias = np.log((positives + 0.5) / (n + 0.5 * len(positives)))
    with torch.no_grad():
        layer.bias.copy_(torch.from_numpy(bias.astype(np.float32)))


def finetune(
    params: Any,
    texts: list[str],
    targets: np.ndarray,
    taxonomy: Taxonomy,
    valid: tuple[list[str], np.ndarray] | None,
    seed: int,
) -> FitResult:
    device = resolve_device(params.device, strict=True)
    with using_threads(params.threads):
        group = _Distributed(device)
        try:
            return _finetune(params, texts, targets, taxonomy, valid, seed, device, group)
        finally:
            group.close()


def _finetune(
    params: Any,
    texts: list[str],
    targets: np.ndarray,
    taxonomy: Taxonomy,
    valid: tuple[list[str], np.ndarray] | None,
    seed: int,
    device: torch.device,
    group: _Distributed,
) -> FitResult:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    loaded = load_classifier(params, taxonomy, seed)
    if loaded.new_head is not None:
        init_output_bias(loaded.new_head, targets, taxonomy.mode)
    torch.manual_seed(seed)  # dropout masks
    trainer = _Trainer(
        params, loaded.model, loaded.tokenizer, loaded.max_length, taxonomy, device, group, seed
    )
    trainer.set_data(texts, targets, valid)
    return trainer.run()


class _Trainer:
    """One fine-tuning run: the state shared by its epochs."""

    def __init__(
        self,
        params: Any,
        model: Any,
        tokenizer: Any,
        max_length: int,
        taxonomy: Taxonomy,
        device: torch.device,
        group: _Distributed,
        seed: int,
    ) -> None:
        self.p = params
        self.taxonomy = taxonomy
        self.device = device
        self.group = group
        self.seed = seed
        self.model = model.to(device)
        self.tokenizer, self.max_length = tokenizer, max_length
        self.pad_id = tokenizer.pad_token_id
        self.dtype = autocast_dtype(params.precision, device)
        self.lr = params.lr if params.lr is not None else default_lr(model.config)
        self.dump_dir = Path(params.dump_logits).expanduser() if params.dump_logits else None
        self.valid: Encoded | None = None
        self.valid_targets: np.ndarray | None = None

    def set_data(
        self, texts: list[str], targets: np.ndarray, valid: tuple[list[str], np.ndarray] | None
    ) -> None:
        main, mode = self.group.main, self.taxonomy.mode
        self.train = tokenize(self.tokenizer, texts, self.max_length)
        self.targets = targets
        self.y = loss_targets(targets, mode)
        if main:
            warn_truncated(self.train, self.max_length, "training")
        if valid is not None and len(valid[0]):
            self.valid = tokenize(self.tokenizer, valid[0], self.max_length)
            self.valid_targets = np.asarray(valid[1], dtype=np.float32)
            if main:
                warn_truncated(self.valid, self.max_length, "validation")
        elif main:
            log.info("no validation data: training every planned epoch, no early stopping")
        weights = label_weights(targets, mode, self.p.label_weights)
        self.loss_fn = make_loss(mode, weights, self.device)
        steps_per_epoch = math.ceil(
            math.ceil(len(self.train) / self.p.batch_size) / self.group.world
        )
        # Per-epoch logit dumps (the notebook's format) need a validation pass per epoch.
        self.schedule = plan_schedule(self.p, steps_per_epoch)
        if self.dump_dir is not None:
            self.schedule = Schedule(self.schedule.epochs, 1, steps_per_epoch)
        if self.p.freeze_embeddings:  # no dense 21k-row gradient, clipping or AdamW over it
            self.model.get_input_embeddings().weight.requires_grad_(False)
        self.optimizer = make_optimizer(self.model, self.lr, self.p.weight_decay, self.device)
        self.scheduler = make_scheduler(self.optimizer, self.schedule.steps, self.p.warmup)
        self.wrapped: Any = self.model
        if self.group.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.model, device_ids=ids)

    # -- one epoch ----------------------------------------------------------------------

    def train_epoch(self, epoch: int, bar: Any) -> tuple[float, float, np.ndarray | None]:
        """Mean training loss, padding share, and (when dumping) the logits seen."""
        p, group = self.p, self.group
        self.model.train()
        batches = length_grouped_batches(
            self.train.lengths, p.batch_size, np.random.default_rng([self.seed % 2**32, epoch])
        )
        mine = shard_batches(batches, group.rank, group.world)
        dumped = None
        if self.dump_dir is not None:
            dumped = np.full((len(self.train), self.targets.shape[1]), np.nan, dtype=np.float32)
        loss_total, loss_count, running = 0.0, 0, 0.0
        for step, rows in enumerate(mine, start=1):
            input_ids, mask = pad_batch(self.train, rows, self.pad_id)
            with autocast(self.device, self.dtype):
                out = self.wrapped(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)
                ).logits
            loss = self.loss_fn(out.float(), self.y[rows].to(self.device))
            loss.backward()
            if p.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), p.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            value = loss.item()
            loss_total += value * len(rows)
            loss_count += len(rows)
            running = value if step == 1 else 0.9 * running + 0.1 * value
            if dumped is not None:
                dumped[rows] = out.detach().float().cpu().numpy()
            bar.update(1)
            if step % 10 == 0 or step == len(mine):
                bar.set_postfix(epoch=f"{epoch}/{self.schedule.epochs}", loss=f"{running:.4f}")
        if dumped is not None and group.world > 1:
            seen = ~np.isnan(dumped[:, 0])
            for rows, part in group.all_gather((np.flatnonzero(seen), dumped[seen])):
                dumped[rows] = part
        share = padding_share(self.train.lengths, batches)
        return group.mean(loss_total, loss_count), share, dumped

    def validate(self) -> tuple[np.ndarray, dict[str, float]]:
        assert self.valid is not None and self.valid_targets is not None
        logits = sharded_logits(
            self.model,
            self.valid,
            self.p.eval_batch_size,
            self.pad_id,
            self.device,
            self.dtype,
            self.group,
        )
        return logits, validation_metrics(
            logits, self.valid_targets, self.taxonomy, self.loss_fn, self.p.metric or "micro_f1"
        )

    # -- the run ------------------------------------------------------------------------

    def run(self) -> FitResult:
        p, group = self.p, self.group
        if self.dump_dir is not None and group.main:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
        history: list[dict[str, Any]] = []
        metric = p.metric or "micro_f1"
        sign = -1.0 if metric == "loss" or metric in LOWER_IS_BETTER else 1.0
        # Ties on the metric (e.g. micro F1 still 0 while every multi-label prediction is
        # empty) go to the lower validation loss, so early stopping waits for progress.
        best_score: tuple[float, float] = (-math.inf, -math.inf)
        best_epoch = 0
        best_state: dict[str, torch.Tensor] | None = None
        stopped_early = False
        shares: list[float] = []
        plan = self.schedule
        since_best = 0  # validation passes without a new best
        losses: list[float] = []  # training losses since the last validation pass
        with progress_bar(group.main, total=plan.steps, desc="fine-tuning", unit="step") as bar:
            for epoch in range(1, plan.epochs + 1):
                started = time.perf_counter()
                train_loss, share, train_logits = self.train_epoch(epoch, bar)
                shares.append(share)
                losses.append(train_loss)
                if not plan.validates_after(epoch):
                    continue
                train_loss = float(np.mean(losses))
                losses = []
                entry: dict[str, Any] = {
                    "epoch": epoch,
                    "step": epoch * plan.steps_per_epoch,
                    "train_loss": round(train_loss, 6),
                }
                line = f"epoch {epoch}/{plan.epochs}: train loss {train_loss:.4f}"
                valid_logits = None
                if self.valid is not None:
                    valid_logits, metrics = self.validate()
                    entry.update({f"valid_{k}": round(v, 6) for k, v in metrics.items()})
                    line += (
                        f", valid loss {metrics['loss']:.4f}, exact match "
                        f"{metrics['exact_match']:.4f}, micro F1 {metrics['micro_f1']:.4f}, "
                        f"macro F1 {metrics['macro_f1']:.4f}"
                    )
                    score = (sign * metrics[metric], -round(metrics["loss"], 4))
                    since_best += 1
                    if score > best_score:
                        best_score, best_epoch, since_best = score, epoch, 0
                        # The last epoch's weights need no copy: they stay in place.
                        best_state = self.state_copy() if epoch < plan.epochs else None
                        line += " *"
                entry["seconds"] = round(time.perf_counter() - started, 2)
                history.append(entry)
                self.report(bar, line)
                if self.dump_dir is not None and group.main:
                    self.dump(epoch, train_logits, valid_logits)
                if (
                    self.valid is not None
                    and p.patience > 0
                    and since_best >= p.patience
                    and epoch < plan.epochs
                ):
                    stopped_early = True
                    bar.update(plan.steps - epoch * plan.steps_per_epoch)
                    self.report(
                        bar,
                        f"early stopping: no better valid {metric} in the {p.patience} "
                        f"validation pass(es) after epoch {best_epoch}",
                    )
                    break
        last_epoch = history[-1]["epoch"] if history else plan.epochs
        if self.valid is not None and best_epoch and best_epoch != last_epoch:
            if best_state is not None:
                self.model.load_state_dict(best_state)
            if group.main:
                log.info("restored the weights of epoch %d (best valid %s)", best_epoch, metric)
        materialize(self.model).eval()
        summary = {
            "lr": self.lr,
            "epochs_run": last_epoch,
            "epochs_planned": plan.epochs,
            "steps_planned": plan.steps,
            "validate_every": plan.validate_every,
            "best_epoch": best_epoch or last_epoch,
            "stopped_early": stopped_early,
            "metric": metric,
            "device": str(self.device),
            "precision": "bf16" if self.dtype is not None else "fp32",
            "world_size": group.world,
            "batch_size_per_process": p.batch_size,
            "max_length": self.max_length,
            "padding_share": round(float(np.mean(shares)), 4) if shares else 0.0,
            "truncated_train_texts": self.train.truncated,
            "seed": self.seed,
        }
        return FitResult(self.model, self.tokenizer, history, summary)

    def state_copy(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def report(self, bar: Any, line: str) -> None:
        """One line per epoch on stderr (stdout is for results). tqdm's write prints it above
        the bar, and plainly where the bar is off (no terminal), so a redirected run keeps it."""
        if self.group.main:
            bar.write(line, file=sys.stderr)
            log.debug(line)

    def dump(self, epoch: int, train: np.ndarray | None, valid: np.ndarray | None) -> None:
        assert self.dump_dir is not None
        if train is not None:
            dump_results(self.dump_dir / f"epoch{epoch:02d}_train.json", train, self.targets)
        if valid is not None and self.valid_targets is not None:
            dump_results(self.dump_dir / f"epoch{epoch:02d}_valid.json", valid, self.valid_targets)
