"""`tagger train --encoder bert` under torchrun: two CPU processes, gloo backend (DDP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bert_fixtures as bf
import numpy as np
import pytest

from tagger_core.tagger import Tagger

pytest.importorskip("torch.distributed.run")
pytest.importorskip("transformers")

TAGGER = Path(sys.executable).with_name("tagger")


def write_json(path: Path, records: list) -> Path:
    rows = [{"text": r.text, "label": list(r.labels)} for r in records]
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.skipif(not TAGGER.is_file(), reason="the tagger console script is not installed")
def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    model = bf.build_tiny_bert(tmp_path / "tiny-bert")
    taxonomy = tmp_path / "toy.json"
    taxonomy.write_text(bf.taxonomy().model_dump_json(), encoding="utf-8")
    train_records = bf.records(301, seed=0)  # odd: the last batch is padded for one rank
    train = write_json(tmp_path / "train.json", train_records)
    valid = write_json(tmp_path / "valid.json", bf.records(81, seed=1))
    out, dumps = tmp_path / "tagger", tmp_path / "dumps"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "--no-python", str(TAGGER),
        "train", "--taxonomy", str(taxonomy), "--train", str(train), "--valid", str(valid),
        "--encoder", "bert", "-p", f"model={model}", "-p", "lr=1e-2", "-p", "epochs=6",
        "-p", "batch_size=8", "-p", f"dump_logits={dumps}", "-o", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TAGGER_PROGRESS": "0"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Saved tagger" in result.stdout  # rank 0 only saves and reports
    assert result.stdout.count("Saved tagger") == 1
    assert result.stderr.count("Training 'bert' on") == 1  # the start-up line too

    state = json.loads((out / "encoder" / "tagger_bert.json").read_text(encoding="utf-8"))
    assert state["training"]["world_size"] == 2
    assert state["training"]["batch_size_per_process"] == 8
    tagger = Tagger.load(out)
    metrics = tagger.training.validation_metrics
    assert metrics is not None and metrics["exact_match"] >= 0.6
    # Train logits from both processes were gathered: every row has its logits.
    rows = json.loads((dumps / "epoch01_train.json").read_text(encoding="utf-8"))
    assert len(rows) == len(train_records)
    assert all(np.any(np.asarray(row["logits"]) != 0) for row in rows)


def test_a_process_with_no_validation_rows_still_joins_the_gathering(tmp_path: Path) -> None:
    """One validation text and two processes: the second has none to score, yet must hand
    its empty share to the all-gather the first waits in (it raised, and the first hung)."""
    import torch
    from tagger_plugins.bert.finetune import sharded_logits
    from tagger_plugins.bert.runtime import tokenize
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = bf.build_tiny_bert(tmp_path / "tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = BertConfig.from_pretrained(folder, num_labels=3)
    model = BertForSequenceClassification(config).eval()
    encoded = tokenize(tokenizer, ["东湖宾馆"], 16)
    alone = sharded_logits(model, encoded, 8, 0, torch.device("cpu"), None, _Group(0, 1))

    class Second(_Group):
        def all_gather(self, value: object) -> list[object]:
            rows, part = value  # type: ignore[misc]
            assert len(rows) == 0 and part.shape == (0, 3)
            return [(np.array([0]), alone), value]

    gathered = sharded_logits(model, encoded, 8, 0, torch.device("cpu"), None, Second(1, 2))
    np.testing.assert_array_equal(gathered, alone)


class _Group:
    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world

    def all_gather(self, value: object) -> list[object]:
        return [value]
