"""Frozen-feature mode: sentence vectors computed once (and cached on disk), then a linear
head (logistic regression) trained on them — the "frozen BERT + linear head" workflow.

The cache key is a fingerprint of the model's weights and tokenizer, the pooling, the
maximum length, the precision (bf16 or fp32) and the exact texts, so a cached matrix is
reused only for the same inputs; files are written atomically and a corrupt or mismatched
one is recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagger_core import Taxonomy

from .runtime import (
    autocast_dtype,
    materialize,
    resolve_device,
    run_sorted,
    scoring_copy,
    tokenize,
    warn_truncated,
)

log = logging.getLogger("tagger")
CPU = torch.device("cpu")

CACHE_ENV = "TAGGER_FEATURE_CACHE"


def default_cache_dir() -> Path:
    """``$TAGGER_FEATURE_CACHE``, else ``$XDG_CACHE_HOME/tagger/features``, else
    ``~/.cache/tagger/features``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "tagger" / "features"


def model_fingerprint(model: torch.nn.Module, tokenizer: Any) -> str:
    """A digest of every weight and of the tokenizer: equal digests, equal features."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(type(model).__name__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        data = tensor.detach().to("cpu").contiguous()
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocab = (
        backend.to_str()
        if backend is not None
        else json.dumps(sorted(tokenizer.get_vocab().items()))
    )
    digest.update(vocab.encode())
    return digest.hexdigest()


def texts_fingerprint(texts: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(len(texts)).encode())
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


class FeatureExtractor:
    """Sentence vectors of texts from a frozen backbone: [CLS] or mean of the real tokens.

    The backbone runs in torch, or, loaded from a tagger that `tagger export --onnx` wrote
    the backbone and pooling into, in ONNX Runtime (``session``; no torch weights loaded).
    """

    def __init__(
        self,
        backbone: torch.nn.Module | None,
        tokenizer: Any,
        *,
        pooling: str,
        max_length: int,
        batch_size: int,
        device: torch.device,
        precision: str,
        session: Any = None,
        hidden: int | None = None,
    ) -> None:
        if backbone is None and session is None:
            raise ValueError("a feature extractor needs a backbone or an ONNX session")
        self.backbone = materialize(backbone.to(device)).eval() if backbone is not None else None
        self.session = session
        config = getattr(backbone, "config", None)
        self.hidden: int = hidden if hidden is not None else int(getattr(config, "hidden_size", 0))
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device if session is None else CPU
        self.dtype = autocast_dtype(precision, device) if session is None else None
        self._fingerprint: str | None = None
        self._scorer: torch.nn.Module | None = None  # the backbone cast for scoring

    @property
    def has_fingerprint(self) -> bool:
        return self._fingerprint is not None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            if self.backbone is not None:
                self._fingerprint = model_fingerprint(self.backbone, self.tokenizer)
            else:  # the ONNX graph holds the weights and the pooling
                digest = hashlib.blake2b(self.session.file.read_bytes(), digest_size=16)
                self._fingerprint = f"onnx:{digest.hexdigest()}"
        return self._fingerprint

    def pooled(self) -> torch.nn.Module:
        """The backbone and the pooling as one module of (input_ids, attention_mask), for
        the ONNX export."""
        return _Pooled(self)

    def cache_path(self, directory: Path, texts: Sequence[str]) -> Path:
        key = hashlib.blake2b(digest_size=16)
        for part in (
            self.fingerprint,
            self.pooling,
            str(self.max_length),
            str(self.dtype),  # bf16 vectors differ from fp32 ones in the third digit
            texts_fingerprint(texts),
        ):
            key.update(part.encode())
            key.update(b"\0")
        return directory / f"{key.hexdigest()}.npy"

    def pool(
        self, backbone: torch.nn.Module, input_ids: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        hidden = backbone(input_ids=input_ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def compute(self, texts: Sequence[str], *, what: str | None = None) -> np.ndarray:
        encoded = tokenize(self.tokenizer, texts, self.max_length)
        if what is not None:
            warn_truncated(encoded, self.max_length, what)
        forward = self.session
        if forward is None:
            if self._scorer is None:  # the backbone never trains: cast its weights once
                assert self.backbone is not None
                self._scorer = scoring_copy(self.backbone, self.dtype)
            forward = functools.partial(self.pool, self._scorer)
        return run_sorted(
            encoded,
            self.batch_size,
            self.tokenizer.pad_token_id,
            self.device,
            self.dtype,
            forward,
            desc=f"bert-frozen: encoding {what} texts" if what else None,
        )

    def __call__(
        self,
        texts: Sequence[str],
        *,
        cache: Path | None,
        write: bool,
        what: str | None = None,
    ) -> np.ndarray:
        """Features of ``texts``, from ``cache`` when present; ``write`` stores new ones."""
        texts = list(texts)
        hidden = self.hidden
        if not texts:
            return np.zeros((0, hidden), dtype=np.float32)
        path = self.cache_path(cache, texts) if cache is not None else None
        if path is not None and path.is_file():
            try:
                features = np.load(path, allow_pickle=False)
                if features.shape == (len(texts), hidden) and features.dtype == np.float32:
                    log.info(
                        "bert-frozen: %d %s vectors from the cache %s", len(texts), what or "", path
                    )
                    return features
            except (OSError, ValueError):
                pass
            log.warning("bert-frozen: ignoring an unreadable feature cache file %s", path)
        features = self.compute(texts, what=what)
        if path is not None and write:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
                np.save(tmp, features)
                tmp.replace(path)
            except OSError as exc:
                log.warning("bert-frozen: cannot write the feature cache %s: %s", path, exc)
        return features


class _Pooled(torch.nn.Module):
    def __init__(self, extractor: FeatureExtractor) -> None:
        super().__init__()
        self.extractor = extractor
        self.backbone = extractor.backbone  # registered, so that the exporter sees it

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        assert self.backbone is not None
        return self.extractor.pool(self.backbone, input_ids, attention_mask)


def fit_head(
    features: np.ndarray,
    targets: np.ndarray,
    taxonomy: Taxonomy,
    *,
    C: float,
    max_iter: int,
    class_weight: str | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on standardised features, folded back into one affine map:
    ``logits = features @ weight.T + bias`` (L × H weight, L bias)."""
    from tagger_plugins.linear_heads import fit_logistic_heads

    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale < 1e-6] = 1.0
    x = (features - mean) / scale
    coef, intercept = fit_logistic_heads(
        x,
        targets,
        taxonomy,
        C=C,
        class_weight=class_weight,
        max_iter=max_iter,
        seed=seed,
        desc="bert-frozen",
    )
    weight = coef / scale
    bias = intercept - weight @ mean
    return weight.astype(np.float32), bias.astype(np.float32)


def extractor_for(
    params: Any,
    backbone: Any,
    tokenizer: Any,
    max_length: int,
    *,
    strict: bool,
    session: Any = None,
    hidden: int | None = None,
) -> FeatureExtractor:
    return FeatureExtractor(
        backbone,
        tokenizer,
        pooling=params.pooling,
        max_length=max_length,
        batch_size=params.batch_size,
        device=resolve_device(params.device, strict=strict) if session is None else CPU,
        precision=params.precision,
        session=session,
        hidden=hidden,
    )


def save_extractor(extractor: FeatureExtractor, directory: Path) -> None:
    """The backbone and tokenizer, as a transformers folder inside the tagger."""
    from .runtime import quiet_transformers

    backbone: Any = extractor.backbone  # a transformers model
    with quiet_transformers():
        backbone.save_pretrained(directory)
        extractor.tokenizer.save_pretrained(directory)


def load_extractor(
    params: Any, directory: Path, max_length: int, *, runtime: str = "torch"
) -> tuple[FeatureExtractor, int]:
    """The extractor saved by :func:`save_extractor`, and its vectors' width; with
    ``runtime`` auto or onnx, the backbone is ONNX Runtime's session of the export that
    `tagger export --onnx` put beside it, when there is one (onnx: there must be)."""
    from transformers import AutoConfig, AutoModel

    from tagger_core import ModelError

    from .onnx_runtime import OnnxLogits, exported_model
    from .runtime import ModelSource, load_pretrained, load_saved, load_tokenizer

    source = ModelSource(str(directory), True)
    tokenizer = load_tokenizer(source, ModelError)
    exported = exported_model(directory, runtime)
    if exported is not None:
        config = load_pretrained(AutoConfig, source, "config", ModelError)
        hidden = int(getattr(config, "hidden_size", -1))
        session = OnnxLogits(exported, params.threads)
        extractor = extractor_for(
            params, None, tokenizer, max_length, strict=False, session=session, hidden=hidden
        )
        return extractor, hidden
    backbone = load_saved(AutoModel, directory, "weights")
    hidden = int(getattr(backbone.config, "hidden_size", -1))
    return extractor_for(params, backbone, tokenizer, max_length, strict=False), hidden
