"""BERT-Chinese encoders: fine-tuning (``bert``), frozen features + linear head
(``bert-frozen``), and label prototypes in a sentence-embedding space (``embedding``,
zero- and few-shot).

Importing this module is cheap: torch and transformers are imported inside the methods
(from the sibling modules ``runtime``, ``finetune`` and ``frozen``), so ``tagger --help``
and ``tagger plugins`` never load them. See docs/bert.md for the options and the
measurements behind the defaults.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tagger_core import (
    OBJECTIVES,
    Encoder,
    ModelError,
    ParamRange,
    Taxonomy,
    check_weights,
    hookimpl,
)

log = logging.getLogger("tagger")

DEFAULT_MODEL = "bert-base-chinese"
STATE_FILE = "tagger_bert.json"
HEAD_FILE = "head.npz"
STOPPING_METRICS = ("loss", *OBJECTIVES)
CACHE_LOOKUP_MIN = 256  # smaller prediction calls skip the feature-cache lookup
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

Device = str
Precision = Literal["auto", "fp32", "bf16"]


def check_device(value: str) -> str:
    if not _DEVICE.match(value):
        raise ValueError("device must be auto, cpu, mps, cuda or cuda:N")
    return value


class BertParams(BaseModel):
    """Options of the fine-tuning encoder; the defaults are measured (docs/bert.md)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default=DEFAULT_MODEL, min_length=1, description="local model folder or hub id"
    )
    epochs: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="epochs, validating after each; unset: set by min_steps (at least 8)",
    )
    min_steps: int = Field(
        default=600,
        ge=0,
        description="unset epochs: train for at least this many optimizer updates",
    )
    validations: int = Field(
        default=10,
        ge=1,
        description="unset epochs: about this many validation passes over the run",
    )
    lr: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="peak learning rate; unset: 2e-4 for models of ≤6 layers, else 5e-5",
    )
    batch_size: int = Field(default=32, ge=1, le=65536, description="per process")
    max_length: int = Field(default=128, ge=4, le=8192, description="tokens, [CLS]/[SEP] included")
    warmup: float = Field(default=0.1, ge=0, lt=1, description="share of steps warming up")
    weight_decay: float = Field(default=0.01, ge=0, le=1)
    max_grad_norm: float = Field(default=1.0, ge=0, description="0 disables clipping")
    freeze_embeddings: bool = Field(
        default=False,
        description="keep the word embedding as pretrained (13-24 % less CPU time a step)",
    )
    patience: int = Field(
        default=3, ge=0, description="validation passes without a better score; 0: never stop"
    )
    metric: str | None = Field(
        default=None,
        description="validation metric for early stopping: loss or an objective of tagger "
        "optimize; unset: the training objective (tagger train --objective), else micro_f1",
    )
    label_weights: Literal["none", "sqrt", "balanced"] = Field(
        default="none", description="up-weight rare labels by training frequency"
    )
    device: Device = "auto"
    precision: Precision = Field(
        default="auto", description="auto: bf16 on a CUDA GPU or CPU (AVX-512 BF16, AMX) with it"
    )
    runtime: Literal["auto", "torch", "onnx"] = Field(
        default="auto", description="scoring: auto uses the ONNX export where there is one"
    )
    eval_batch_size: int = Field(default=256, ge=1, le=65536)
    threads: int | None = Field(default=None, ge=1, le=1024, description="torch CPU threads")
    dump_logits: str | None = Field(
        default=None, description="folder for per-epoch train/valid logits (notebook format)"
    )

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        return check_device(value)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        if value is not None and value not in STOPPING_METRICS:
            raise ValueError(f"'{value}' is not one of: {', '.join(STOPPING_METRICS)}")
        return value


class ExtractorParams(BaseModel):
    """Options of the encoders that take sentence vectors from a frozen model
    (``bert-frozen``, ``embedding``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default=DEFAULT_MODEL, min_length=1)
    pooling: Literal["mean", "cls"] = "mean"
    max_length: int = Field(default=128, ge=4, le=8192)
    batch_size: int = Field(default=256, ge=1, le=65536, description="feature extraction")
    device: Device = "auto"
    precision: Precision = "auto"
    threads: int | None = Field(default=None, ge=1, le=1024)

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        return check_device(value)


class FrozenParams(ExtractorParams):
    """Options of the frozen-feature encoder; the defaults are measured (docs/bert.md)."""

    C: float = Field(default=1.0, gt=0, description="inverse regularisation of the head")
    max_iter: int = Field(default=2000, ge=1)
    class_weight: Literal["balanced"] | None = None
    cache: bool = Field(default=True, description="cache training/validation features")
    cache_dir: str | None = Field(
        default=None, description="default: $TAGGER_FEATURE_CACHE or ~/.cache/tagger/features"
    )
    runtime: Literal["auto", "torch", "onnx"] = Field(
        default="auto", description="sentence vectors: auto uses the ONNX export where there is one"
    )


def _check_labels(config: Any, taxonomy: Taxonomy, directory: Path) -> None:
    id2label = getattr(config, "id2label", None) or {}
    saved = [id2label[i] for i in sorted(id2label, key=int)]
    if saved != taxonomy.label_ids:
        raise ModelError(
            f"the saved model's labels ({len(saved)}) do not match the taxonomy "
            f"'{taxonomy.name}' ({len(taxonomy.labels)} labels)",
            file=directory,
        )


def read_state(directory: Path) -> dict[str, Any]:
    try:
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"no {STATE_FILE}: not a tagger BERT encoder folder", file=directory
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"unreadable {STATE_FILE}: {exc}", file=directory) from None
    if not isinstance(state, dict):
        raise ModelError(f"corrupt {STATE_FILE}", file=directory)
    return state


def write_state(directory: Path, state: dict[str, Any]) -> None:
    (directory / STATE_FILE).write_text(
        json.dumps(state, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


class BertEncoder(Encoder[BertParams]):
    """Fine-tunes ``AutoModelForSequenceClassification``; saves a transformers folder."""

    name = "bert"
    description = "Fine-tuned BERT (default bert-base-chinese; any local folder or hub id)."
    model_param = "model"
    uses_all_cpus = True
    learns_from_validation = True  # early stopping

    @classmethod
    def search_space(cls, params: dict[str, Any]) -> dict[str, ParamRange]:
        return {
            "lr": ParamRange(3e-5, 5e-4, log=True),
            "min_steps": ParamRange(choices=(300, 600, 1200)),
            "batch_size": ParamRange(choices=(16, 32)),
            "label_weights": ParamRange(choices=("none", "sqrt")),
        }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.model: Any = None
        self.tokenizer: Any = None
        self.device: Any = None
        self.max_length = self.p.max_length  # lowered at fit time to what the model supports
        self.history: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.session: Any = None  # ONNX Runtime, when scoring through the export
        self.n_labels = 0
        self.source: Path | None = None  # the saved folder it was loaded from
        self._scoring: tuple[Any, Any, Any] = (None, None, None)  # model, dtype, scorer

    @property
    def p(self) -> BertParams:
        return self.params

    def is_primary(self) -> bool:
        from .runtime import distributed_env

        return distributed_env()[0] == 0

    def fit(
        self,
        texts: list[str],
        targets: np.ndarray,
        taxonomy: Taxonomy,
        *,
        valid: tuple[list[str], np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        from .finetune import finetune

        params = self.p
        if params.metric is None:  # early stopping measures what training is judged on
            params = params.model_copy(update={"metric": self.objective or "micro_f1"})
        result = finetune(params, texts, np.asarray(targets), taxonomy, valid, seed)
        self.model, self.tokenizer = result.model, result.tokenizer
        self.session, self.source, self.n_labels = None, None, len(taxonomy.labels)
        self._scoring = (None, None, None)
        self.device = next(self.model.parameters()).device
        self.history, self.summary = result.history, result.summary
        self.max_length = int(result.summary["max_length"])

    def logits(self, texts: list[str]) -> np.ndarray:
        if self.model is None and self.session is None:
            raise ModelError("the bert encoder is not trained")
        from .packed import packed_classifier
        from .runtime import autocast_dtype, run_sorted, tokenize, using_threads

        if not texts:
            return np.zeros((0, self.n_labels), dtype=np.float32)
        encoded = tokenize(self.tokenizer, texts, self.max_length)
        packed = None  # a forward over the real tokens only, where the model allows one
        if self.session is not None:
            self.session = self.session.with_threads(self.p.threads)  # set after loading
            forward, dtype = self.session, None
        else:
            dtype = autocast_dtype(self.p.precision, self.device)
            scorer = self._scorer(dtype)
            if scorer.training:  # eval() walks every module: ~0.2 ms of a 4.5-ms one-name call
                scorer.eval()
            packed = packed_classifier(scorer)

            def padded(input_ids: Any, mask: Any) -> Any:
                return scorer(input_ids=input_ids, attention_mask=mask).logits

            forward = packed or padded

        with using_threads(self.p.threads):
            return run_sorted(
                encoded,
                self.p.eval_batch_size,
                self.tokenizer.pad_token_id,
                self.device,
                dtype,
                forward,
                desc="bert: scoring",
                padded=packed is None,
            )

    def _scorer(self, dtype: Any) -> Any:
        """The model with its weights cast once for scoring (``runtime.scoring_copy``),
        rebuilt whenever ``fit`` or ``load`` put another model in place."""
        from .runtime import scoring_copy

        built_from, built_for, scorer = self._scoring
        if built_from is not self.model or built_for != dtype:
            scorer = scoring_copy(self.model.eval(), dtype)
            self._scoring = (self.model, dtype, scorer)
        return scorer

    def export_onnx(self, directory: Path, *, quantize: str) -> Path:
        from .onnx_runtime import ClassifierLogits, export_model

        model = ClassifierLogits(self._torch_model())
        return export_model(model, self.tokenizer.pad_token_id, directory, quantize)

    def _torch_model(self) -> Any:
        """The torch model; loaded from the saved folder when scoring runs through ONNX."""
        if self.model is None:
            if self.source is None:
                raise ModelError("the bert encoder is not trained")
            from transformers import AutoModelForSequenceClassification

            from .runtime import load_saved

            self.model = load_saved(AutoModelForSequenceClassification, self.source, "weights")
        return self.model

    def save(self, directory: Path) -> None:
        if self.model is None and self.session is None:
            raise ModelError("the bert encoder is not trained")
        import shutil

        from .onnx_runtime import keep_export
        from .runtime import quiet_transformers

        if self.model is None:  # loaded for ONNX only: the saved folder is the model
            assert self.source is not None
            shutil.copytree(self.source, directory, dirs_exist_ok=True)
            return
        with quiet_transformers():
            self.model.save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
        keep_export(self.source, directory)
        write_state(
            directory,
            {
                "encoder": self.name,
                "max_length": self.max_length,
                "training": self.summary,
                "history": self.history,
            },
        )

    def load(self, directory: Path, taxonomy: Taxonomy) -> None:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        from .finetune import problem_type
        from .onnx_runtime import OnnxLogits, exported_model
        from .runtime import (
            ModelSource,
            load_pretrained,
            load_saved,
            load_tokenizer,
            materialize,
            resolve_device,
        )

        state = read_state(directory)
        source = ModelSource(str(directory), True)
        exported = exported_model(directory, self.p.runtime)
        config = load_pretrained(AutoConfig, source, "config", ModelError)
        _check_labels(config, taxonomy, directory)
        if config.problem_type != problem_type(taxonomy):
            raise ModelError(
                f"the saved model is for {config.problem_type} but taxonomy "
                f"'{taxonomy.name}' is {taxonomy.mode}",
                file=directory,
            )
        self.tokenizer = load_tokenizer(source, ModelError)
        self.n_labels, self.source = len(taxonomy.labels), directory
        self._scoring = (None, None, None)
        if exported is not None:
            self.device = resolve_device("cpu", strict=False)
            self.session, self.model = OnnxLogits(exported, self.p.threads), None
        else:
            model = load_saved(AutoModelForSequenceClassification, directory, "weights")
            self.device = resolve_device(self.p.device, strict=False)
            self.model = materialize(model.to(self.device)).eval()
        self.max_length = int(state.get("max_length", self.p.max_length))
        self.history = list(state.get("history", []))
        self.summary = dict(state.get("training", {}))


class FrozenBertEncoder(Encoder[FrozenParams]):
    """Sentence vectors from a frozen BERT (cached) + logistic regression per label."""

    name = "bert-frozen"
    description = "Frozen BERT sentence vectors (cached on disk) + a logistic-regression head."
    model_param = "model"
    uses_all_cpus = True

    @classmethod
    def search_space(cls, params: dict[str, Any]) -> dict[str, ParamRange]:
        return {
            "C": ParamRange(0.01, 10.0, log=True),
            "pooling": ParamRange(choices=("mean", "cls")),
            "class_weight": ParamRange(choices=("balanced", None)),
        }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.extractor: Any = None
        self.weight: np.ndarray | None = None  # L × H
        self.bias: np.ndarray | None = None  # L
        self.source: Path | None = None  # the folder it was loaded from

    @property
    def p(self) -> FrozenParams:
        return self.params

    def _cache(self) -> Path | None:
        from .frozen import default_cache_dir

        if not self.p.cache:
            return None
        return Path(self.p.cache_dir).expanduser() if self.p.cache_dir else default_cache_dir()

    def fit(
        self,
        texts: list[str],
        targets: np.ndarray,
        taxonomy: Taxonomy,
        *,
        valid: tuple[list[str], np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        from transformers import AutoModel

        from .frozen import extractor_for, fit_head
        from .runtime import (
            effective_max_length,
            load_tokenizer,
            load_weights,
            resolve_model,
            using_threads,
        )

        source = resolve_model(self.p.model)
        tokenizer = load_tokenizer(source, match_vocabulary_case=True)
        backbone = load_weights(AutoModel, source)
        max_length = effective_max_length(self.p, backbone.config, tokenizer)
        self.extractor = extractor_for(self.p, backbone, tokenizer, max_length, strict=True)
        self.source = None  # retrained: an export of the old weights no longer applies
        cache = self._cache()
        with using_threads(self.p.threads):
            features = self.extractor(texts, cache=cache, write=True, what="training")
            if valid is not None and len(valid[0]):
                # Cached now, so that scoring the validation set after fit reads it back.
                self.extractor(valid[0], cache=cache, write=True, what="validation")
        self.weight, self.bias = fit_head(
            features,
            np.asarray(targets),
            taxonomy,
            C=self.p.C,
            max_iter=self.p.max_iter,
            class_weight=self.p.class_weight,
            seed=seed,
        )

    def logits(self, texts: list[str]) -> np.ndarray:
        if self.extractor is None or self.weight is None or self.bias is None:
            raise ModelError("the bert-frozen encoder is not trained")
        from .runtime import using_threads

        # The validation set scored right after fit is cached; so may be large inputs. Small
        # calls on a loaded tagger skip the lookup (it needs a digest of all the weights).
        known = self.extractor.has_fingerprint
        cache = self._cache() if known or len(texts) >= CACHE_LOOKUP_MIN else None
        if self.extractor.session is not None:  # threads set after loading reach it
            self.extractor.session = self.extractor.session.with_threads(self.p.threads)
        with using_threads(self.p.threads):
            features = self.extractor(texts, cache=cache, write=False)
        return np.asarray(features @ self.weight.T + self.bias, dtype=np.float32)

    def save(self, directory: Path) -> None:
        if self.extractor is None or self.weight is None or self.bias is None:
            raise ModelError("the bert-frozen encoder is not trained")
        import shutil

        from .frozen import save_extractor
        from .onnx_runtime import keep_export

        if self.extractor.backbone is None:  # loaded for ONNX only: the saved folder is it
            assert self.source is not None
            shutil.copytree(self.source, directory, dirs_exist_ok=True)
            return
        save_extractor(self.extractor, directory)
        keep_export(self.source, directory)
        np.savez(directory / HEAD_FILE, weight=self.weight, bias=self.bias)
        write_state(
            directory,
            {
                "encoder": self.name,
                "pooling": self.p.pooling,
                "max_length": self.extractor.max_length,
                "labels": self.weight.shape[0],
            },
        )

    def load(self, directory: Path, taxonomy: Taxonomy) -> None:
        from .frozen import load_extractor

        state = read_state(directory)
        try:
            with np.load(directory / HEAD_FILE, allow_pickle=False) as head:
                weight, bias = head["weight"], head["bias"]
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"missing or corrupt {HEAD_FILE}: {exc}", file=directory) from None
        max_length = int(state.get("max_length", self.p.max_length))
        extractor, hidden = load_extractor(self.p, directory, max_length, runtime=self.p.runtime)
        n_labels = len(taxonomy.labels)
        check_weights(weight, directory / f"{HEAD_FILE}:weight", (n_labels, hidden))
        check_weights(bias, directory / f"{HEAD_FILE}:bias", (n_labels,))
        self.extractor, self.weight, self.bias = extractor, weight, bias
        self.source = directory

    def export_onnx(self, directory: Path, *, quantize: str) -> Path:
        """The backbone and its pooling, to sentence vectors; the head stays in numpy."""
        if self.extractor is None:
            raise ModelError("the bert-frozen encoder is not trained")
        if self.extractor.backbone is None:
            raise ModelError("load the tagger with runtime='torch' to export it")
        from .onnx_runtime import export_model

        pad_id = self.extractor.tokenizer.pad_token_id
        return export_model(self.extractor.pooled(), pad_id, directory, quantize, output="features")


@hookimpl
def register_encoders(register):  # type: ignore[no-untyped-def]
    from .embedding import EmbeddingEncoder

    register(BertEncoder)
    register(FrozenBertEncoder)
    register(EmbeddingEncoder)
