"""The ONNX fast path of a fine-tuned BERT: export with torch's exporter, dynamic int8
quantisation and inference with ONNX Runtime (the `tagger[onnx]` extra, imported here
only).

The exported graph maps (input_ids, attention_mask) to the classifier's logits (`bert`)
or to the pooled sentence vectors (`bert-frozen`), with the batch and sequence lengths
dynamic, so the encoders' length-sorted batches run unchanged; sigmoid or softmax stays
where it is for the torch path, in the core's ``Scores``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagger_core import ModelError, PluginError

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
QUANTIZE = ("none", "int8")


def need_onnx_extra(*modules: str) -> None:
    """One line naming the extra when a module of it is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise PluginError(f'the ONNX path needs {", ".join(missing)}: pip install "tagger[onnx]"')


def exported_model(directory: Path, runtime: str) -> Path | None:
    """The ONNX export in a saved encoder folder that ``runtime`` asks to score with: with
    auto, the export when there is one; with onnx, the export, which must be there; with
    torch, none."""
    exported = directory / ONNX_DIR / ONNX_FILE
    if runtime == "onnx" and not exported.is_file():
        raise ModelError("no ONNX export: run `tagger export TAGGER --onnx`", file=exported)
    return exported if runtime != "torch" and exported.is_file() else None


def keep_export(source: Path | None, directory: Path) -> None:
    """Copy the export of the folder an encoder was loaded from into the folder it saves
    itself in (only while its weights are the loaded ones: retraining clears ``source``)."""
    if source is not None and (source / ONNX_DIR).is_dir():
        shutil.copytree(source / ONNX_DIR, directory / ONNX_DIR)


class ClassifierLogits(torch.nn.Module):
    """A transformers classifier as a function of (input_ids, attention_mask) → logits."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_model(
    model: torch.nn.Module, pad_id: int, folder: Path, quantize: str, *, output: str = "logits"
) -> Path:
    """``folder/onnx/model.onnx``: ``model`` (a function of input_ids and attention_mask)
    as ONNX with one output named ``output`` (torch's dynamo exporter), int8 weights when
    ``quantize`` is "int8" (ONNX Runtime's dynamic quantisation)."""
    if quantize not in QUANTIZE:
        raise PluginError(f"--quantize must be one of {', '.join(QUANTIZE)}, got '{quantize}'")
    need_onnx_extra("onnx", "onnxscript", "onnxruntime")
    target = folder / ONNX_DIR
    target.mkdir(parents=True, exist_ok=True)
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).to("cpu")  # the caller's model stays on its device
    model = model.eval()
    example = torch.tensor([[101, 102, 103, pad_id], [101, 104, pad_id, pad_id]])
    mask = (example != pad_id).long()
    batch, length = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        plain = Path(scratch) / ONNX_FILE
        # The exporter prints its progress and warns about internals: the CLI's output is
        # its own.
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            _quiet_loggers("torch.onnx", ""),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example, mask),
                dynamo=True,
                input_names=["input_ids", "attention_mask"],
                output_names=[output],
                dynamic_shapes={
                    "input_ids": {0: batch, 1: length},
                    "attention_mask": {0: batch, 1: length},
                },
                verbose=False,
            )
            if program is None:
                raise ModelError("torch's ONNX exporter returned no program")
            program.save(str(plain), external_data=False)
        out = target / ONNX_FILE
        if quantize == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with _quiet_loggers(""):  # "consider pre-processing": measured, not needed
                quantize_dynamic(str(plain), str(out), weight_type=QuantType.QInt8)
        else:
            shutil.move(str(plain), out)
    return out


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """Only errors from these loggers ("" is the root logger) while the block runs."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class OnnxLogits:
    """An ONNX Runtime session that scores padded batches like the torch model does (its
    one output: logits, or a frozen encoder's sentence vectors)."""

    def __init__(self, file: Path, threads: int | None) -> None:
        need_onnx_extra("onnxruntime")
        import onnxruntime as ort

        self.file, self.threads = file, threads

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(
                str(file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises its own exception types
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"not a loadable ONNX model: {message[:200]}", file=file) from None
        names = [i.name for i in self.session.get_inputs()]
        if names != ["input_ids", "attention_mask"]:
            raise ModelError(f"unexpected ONNX inputs {names}", file=file)

    def with_threads(self, threads: int | None) -> OnnxLogits:
        """This session, or a new one on ``threads`` (ONNX Runtime fixes them per session;
        a server sets them after loading)."""
        return self if threads == self.threads else OnnxLogits(self.file, threads)

    def __call__(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        feeds: dict[str, Any] = {
            "input_ids": input_ids.numpy().astype(np.int64, copy=False),
            "attention_mask": mask.numpy().astype(np.int64, copy=False),
        }
        return torch.from_numpy(self.session.run(None, feeds)[0])
