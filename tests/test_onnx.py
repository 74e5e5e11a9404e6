"""`tagger export --onnx`: a tiny fine-tuned BERT exported, checked and scored through ONNX
Runtime, in both taxonomy modes; the guard that refuses an export which changes too much;
the runtime choice; damaged files refused with one line; the same for `bert-frozen`, whose
backbone and pooling are exported (its head stays in numpy)."""

from __future__ import annotations

import json
from pathlib import Path

import bert_fixtures as bf
import numpy as np
import pytest
from conftest import one_line_error, write_json

from tagger_core import Tagger
from tagger_core.cli import cli
from tagger_core.errors import ModelError, PluginError, TaggerError

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

FAST = {"lr": 1e-2, "epochs": 6, "batch_size": 16, "patience": 0, "threads": 1}
TEXTS = ["东湖宾馆", "汉口老面馆", "光谷大公园", "江汉纪念馆", "武昌酒店餐厅", "沙湖", ""]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bf.build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), hidden=32)


def saved_tagger(model: Path, folder: Path, mode: str) -> tuple[Path, Path]:
    """A tiny fine-tuned tagger saved at ``folder/mode`` and its validation file."""
    tagger = Tagger.create(
        bf.taxonomy(mode), encoder="bert", encoder_params={"model": str(model), **FAST}
    )
    from tagger_core.data.io import fingerprint

    valid = bf.records(80, mode, seed=1)
    rows = [{"text": r.text, "label": list(r.labels)} for r in valid]
    valid_file = write_json(folder / f"{mode}-valid.json", rows)
    tagger.train(
        bf.records(300, mode, seed=0), valid, valid_files=[fingerprint(valid_file, len(rows))]
    )
    return tagger.save(folder / mode), valid_file


@pytest.fixture(scope="module", params=["single-label", "multi-label"])
def exported(request, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(torch tagger, fp32 ONNX tagger, int8 ONNX tagger, validation file) for one mode."""
    from tagger_core.workflows.export import export_onnx

    folder = tmp_path_factory.mktemp("onnx")
    path, valid = saved_tagger(tiny_bert, folder, request.param)
    torch_tagger = Tagger.load(path)
    records = bf.records(80, request.param, seed=1)
    export_onnx(path, records, quantize="none")
    fp32 = Tagger.load(path)
    int8_path = folder / "int8"
    Tagger.load(path, runtime="torch").save(int8_path)
    export_onnx(int8_path, records, quantize="int8", force=True)
    return torch_tagger, fp32, Tagger.load(int8_path), valid


def test_fp32_scores_match_torch_and_int8_decisions_match(exported) -> None:  # type: ignore[no-untyped-def]
    torch_tagger, fp32, int8, _ = exported
    assert torch_tagger.encoder.session is None and fp32.encoder.session is not None
    reference = torch_tagger.scores(TEXTS)
    np.testing.assert_allclose(fp32.scores(TEXTS).logits, reference.logits, atol=1e-4)
    # sigmoid (multi-label) or softmax (single-label) applied alike
    np.testing.assert_allclose(fp32.scores(TEXTS).probabilities, reference.probabilities, atol=1e-4)
    assert [p.labels for p in int8.predict(TEXTS)] == [
        p.labels for p in torch_tagger.predict(TEXTS)
    ]


def test_the_manifest_records_the_export_and_its_check(exported) -> None:  # type: ignore[no-untyped-def]
    _, fp32, int8, _ = exported
    for tagger, quantize in ((fp32, "none"), (int8, "int8")):
        record = tagger.exports["onnx"]
        assert record["file"] == "encoder/onnx/model.onnx" and record["quantize"] == quantize
        assert record["check"]["rows"] == 80
        assert tagger.directory is not None
        from tagger_core.files import sha256_of

        assert sha256_of(tagger.directory / record["file"]) == record["sha256"]
    assert fp32.exports["onnx"]["check"]["changed"] == 0
    int8_bytes = int8.exports["onnx"]["bytes"]
    assert int8_bytes < fp32.exports["onnx"]["bytes"]


def test_runtime_torch_ignores_the_export_and_a_resave_keeps_it(exported, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    torch_tagger, fp32, _, _ = exported
    assert fp32.directory is not None
    plain = Tagger.load(fp32.directory, runtime="torch")
    assert plain.encoder.session is None
    np.testing.assert_array_equal(plain.scores(TEXTS).logits, torch_tagger.scores(TEXTS).logits)
    again = Tagger.load(fp32.save(tmp_path / "copy"))
    assert again.encoder.session is not None and again.exports == fp32.exports
    np.testing.assert_allclose(again.scores(TEXTS).logits, fp32.scores(TEXTS).logits, atol=1e-6)
    # Threads set after loading (as `tagger serve --threads` does) reach ONNX Runtime.
    again.encoder.params = again.encoder.params.model_copy(update={"threads": 2})
    again.scores(TEXTS)
    assert again.encoder.session.threads == 2


def test_predict_and_evaluate_take_the_runtime(exported, runner) -> None:  # type: ignore[no-untyped-def]
    _, fp32, _, valid = exported
    for runtime in ("torch", "onnx"):
        result = runner.invoke(
            cli, ["predict", str(fp32.directory), "--runtime", runtime, "东湖宾馆"]
        )
        assert result.exit_code == 0, result.output
        evaluated = runner.invoke(
            cli, ["evaluate", str(fp32.directory), str(valid), "--runtime", runtime]
        )
        assert evaluated.exit_code == 0, evaluated.output


def test_cli_export_refuses_an_export_that_changes_too_much(
    tiny_bert: Path, tmp_path: Path, runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagger_core.workflows import export

    path, _ = saved_tagger(tiny_bert, tmp_path, "single-label")
    before = (path / "manifest.json").read_text(encoding="utf-8")
    monkeypatch.setattr(export, "MAX_CHANGED_SHARE", -1.0)  # every export "changes too much"
    refused = runner.invoke(cli, ["export", str(path), "--onnx", "--quantize", "none"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    line = refused.stderr.splitlines()[-1]  # after the "Exporting…" progress line
    assert line.startswith("Error: the fp32 ONNX export was not saved") and "--force" in line
    assert (path / "manifest.json").read_text(encoding="utf-8") == before
    assert not (path / "encoder/onnx").exists()
    assert not list(tmp_path.glob(".single-label.*"))  # no staging folder left behind
    # Its own validation file (recorded in the manifest) is the default check; --force keeps it.
    kept = runner.invoke(cli, ["export", str(path), "--onnx", "--quantize", "none", "--force"])
    assert kept.exit_code == 0, kept.output
    assert "on 80 names" in kept.output
    assert json.loads((path / "manifest.json").read_text())["exports"]["onnx"]["quantize"] == "none"


def test_an_export_signs_its_own_files_only(tiny_bert: Path, tmp_path: Path) -> None:
    """A file someone added stays unlisted, and one changed under --no-verify keeps the
    digest it was saved with: the export must not make either pass verification."""
    from tagger_core.workflows.export import export_onnx

    path, _ = saved_tagger(tiny_bert, tmp_path, "single-label")
    (path / "NOTES.txt").write_text("mine")
    config = path / "encoder" / "config.json"
    saved = json.loads((path / "manifest.json").read_text())["files"]
    config.write_text(json.dumps({**json.loads(config.read_text()), "note": "edited"}))
    export_onnx(
        path, bf.records(40, "single-label", seed=1), quantize="none", force=True, verify=False
    )
    files = json.loads((path / "manifest.json").read_text())["files"]
    assert "NOTES.txt" not in files
    assert files["encoder/config.json"] == saved["encoder/config.json"]
    assert any(name.startswith("encoder/onnx/") for name in files)
    with pytest.raises(ModelError, match="changed since the tagger was saved"):
        Tagger.load(path)


def test_a_damaged_onnx_file_is_refused_with_one_line(exported, tmp_path: Path, runner) -> None:  # type: ignore[no-untyped-def]
    _, fp32, _, _ = exported
    assert fp32.directory is not None
    copy = Tagger.load(fp32.directory).save(tmp_path / "damaged")
    onnx_file = copy / "encoder/onnx/model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])
    line = one_line_error(runner.invoke(cli, ["predict", str(copy), "东湖宾馆"]))
    assert "model.onnx" in line and "changed since the tagger was saved" in line
    line = one_line_error(runner.invoke(cli, ["predict", str(copy), "--no-verify", "东湖宾馆"]))
    assert "model.onnx" in line and "not a loadable ONNX model" in line


def test_runtime_requests_that_cannot_be_met_take_one_line(tmp_path: Path, runner) -> None:
    from conftest import TOY, train_toy

    toy = train_toy(tmp_path)  # TF-IDF: one runtime
    line = one_line_error(runner.invoke(cli, ["predict", str(toy), "--runtime", "onnx", "x"]))
    assert "has a single runtime" in line
    assert runner.invoke(cli, ["predict", str(toy), "--runtime", "torch", "x"]).exit_code == 0
    check = write_json(tmp_path / "check.json", [{"text": t, "label": ls} for t, ls in TOY])
    line = one_line_error(runner.invoke(cli, ["export", str(toy), "--onnx", "--check", str(check)]))
    assert "encoder 'tfidf' cannot be exported to ONNX" in line
    assert not (toy / "encoder/onnx").exists()


def test_onnx_runtime_without_an_export_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    path, _ = saved_tagger(tiny_bert, tmp_path, "single-label")
    with pytest.raises(TaggerError, match="no onnx export"):
        Tagger.load(path, runtime="onnx")


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from tagger_plugins.bert import onnx_runtime

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    with pytest.raises(PluginError, match=r'pip install "tagger\[onnx\]"'):
        onnx_runtime.need_onnx_extra("onnxruntime")


# -- bert-frozen: the backbone and pooling exported, the head kept in numpy -----------------


@pytest.fixture(scope="module")
def frozen_exported(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(torch tagger, fp32 ONNX tagger, int8 ONNX tagger) of a multi-label bert-frozen."""
    from tagger_core.workflows.export import export_onnx

    folder = tmp_path_factory.mktemp("frozen-onnx")
    tagger = Tagger.create(
        bf.taxonomy("multi-label"),
        encoder="bert-frozen",
        encoder_params={"model": str(tiny_bert), "cache": False, "threads": 1},
    )
    records = bf.records(80, "multi-label", seed=1)
    tagger.train(bf.records(200, "multi-label", seed=0), records)
    path = tagger.save(folder / "fp32")
    torch_tagger = Tagger.load(path)
    export_onnx(path, records, quantize="none")
    int8_path = Tagger.load(path, runtime="torch").save(folder / "int8")
    export_onnx(int8_path, records, quantize="int8", force=True)
    return torch_tagger, Tagger.load(path), Tagger.load(int8_path)


def test_frozen_vectors_run_in_onnx_runtime_with_the_same_scores(frozen_exported) -> None:  # type: ignore[no-untyped-def]
    torch_tagger, fp32, int8 = frozen_exported
    assert torch_tagger.encoder.extractor.session is None
    # Loaded for ONNX: no torch weights at all, the vectors come from the session.
    assert fp32.encoder.extractor.backbone is None and fp32.encoder.extractor.session is not None
    reference = torch_tagger.scores(TEXTS)
    np.testing.assert_allclose(fp32.scores(TEXTS).logits, reference.logits, atol=1e-4)
    np.testing.assert_allclose(fp32.scores(TEXTS).probabilities, reference.probabilities, atol=1e-4)
    assert fp32.exports["onnx"]["check"]["changed"] == 0
    assert int8.exports["onnx"]["bytes"] < fp32.exports["onnx"]["bytes"]
    assert [p.labels for p in int8.predict(TEXTS)] == [
        p.labels for p in torch_tagger.predict(TEXTS)
    ]


def test_a_frozen_onnx_tagger_resaves_and_follows_threads(frozen_exported, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    torch_tagger, fp32, _ = frozen_exported
    assert fp32.directory is not None
    plain = Tagger.load(fp32.directory, runtime="torch")
    assert plain.encoder.extractor.session is None
    np.testing.assert_array_equal(plain.scores(TEXTS).logits, torch_tagger.scores(TEXTS).logits)
    again = Tagger.load(fp32.save(tmp_path / "copy"))  # saved from the ONNX-only load
    assert again.encoder.extractor.session is not None and again.exports == fp32.exports
    np.testing.assert_allclose(again.scores(TEXTS).logits, fp32.scores(TEXTS).logits, atol=1e-6)
    # Saved from a torch load, the export travels along (the weights are the same).
    resaved = Tagger.load(plain.save(tmp_path / "from-torch"), runtime="onnx")
    assert resaved.encoder.extractor.session is not None and resaved.exports == fp32.exports
    again.encoder.params = again.encoder.params.model_copy(update={"threads": 2})
    again.scores(TEXTS)
    assert again.encoder.extractor.session.threads == 2
