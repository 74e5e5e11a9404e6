"""Built-in normalizers, the shared matching key, and normalizers saved with a tagger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TOY, write_json

from tagger_core import PluginError, Record, Tagger, make_normalizer, registry
from tagger_core.cli import cli
from tagger_core.data.normalize import differences, match_key, tidy_whitespace, to_simplified


def test_builtins_are_registered_by_the_normalizers_plugin() -> None:
    collection = registry.normalizers()
    for name in ("nfkc", "whitespace", "t2s", "casefold"):
        assert collection.items[name].plugin == "normalizers"
        assert collection.items[name].item.description


@pytest.mark.parametrize(
    ("name", "params", "text", "expected"),
    [
        ("nfkc", {}, "如家酒店（外滩店）ＡＢＣ１２３", "如家酒店(外滩店)ABC123"),
        ("nfkc", {}, "香港\u3000海洋公园", "香港 海洋公园"),
        ("whitespace", {}, "  Central \t Park  ", "Central Park"),
        ("whitespace", {}, "香港 海洋 公园", "香港海洋公园"),
        ("whitespace", {"between_cjk": False}, "香港  海洋公园 ", "香港 海洋公园"),
        ("whitespace", {}, "Ocean Park 香港", "Ocean Park 香港"),
        ("t2s", {}, "香港海洋公園", "香港海洋公园"),
        ("t2s", {"config": "tw2s"}, "臺北101觀景臺", "台北101观景台"),
        ("casefold", {}, "Disneyland STRASSE", "disneyland strasse"),
    ],
)
def test_each_builtin(name: str, params: dict, text: str, expected: str) -> None:
    assert make_normalizer(name, params).normalize(text) == expected


def test_bad_parameter_names_the_normalizer() -> None:
    with pytest.raises(PluginError, match="normalizer 't2s': parameter 'config'"):
        make_normalizer("t2s", {"config": "s2t"})


def test_match_key_joins_the_usual_variants() -> None:
    variants = [
        "香港海洋公园",
        "香港海洋公園",
        "香港 海洋公园",
        "香港海洋公园　",
        "ＯＣＥＡＮ Park",
    ]
    assert len({match_key(v) for v in variants[:4]}) == 1
    assert match_key("ＯＣＥＡＮ Park") == match_key("ocean park") == "oceanpark"
    assert match_key("故宫") != match_key("故宫博物院")


def test_differences_name_what_tells_two_names_apart() -> None:
    assert differences("香港海洋公園", "香港海洋公园") == ["Traditional/Simplified"]
    assert differences("ＡＢＣ", "abc") == ["full/half width", "case"]
    assert differences("White Haven Park", "Whitehaven Park") == ["case", "spaces"]
    assert differences("same", "same") == []


def test_helpers_are_idempotent() -> None:
    for text in ["香港海洋公園", " a  b ", "ＡＢＣ"]:
        once = match_key(text)
        assert match_key(once) == once
    assert tidy_whitespace(tidy_whitespace(" a  b ")) == "a b"
    assert to_simplified(to_simplified("臺灣")) == "台湾"


def test_normalizers_are_saved_and_restored_with_the_tagger(tmp_path: Path) -> None:
    train = [Record(text=text, labels=tuple(labels)) for text, labels in TOY]
    tagger = Tagger.create("attractions", normalizers=["nfkc", "t2s"]).train(train)
    path = tagger.save(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert [n["name"] for n in manifest["normalizers"]] == ["nfkc", "t2s"]
    loaded = Tagger.load(path)
    assert [n.name for n in loaded.normalizers] == ["nfkc", "t2s"]
    # Traditional input is scored exactly as the Simplified text it was trained on.
    traditional, simplified = loaded.predict(["海洋館動物園", "海洋馆动物园"])
    assert traditional.scores == simplified.scores
    assert traditional.text == "海洋館動物園"  # predictions keep the text as given


def test_train_normalize_option_applies_at_prediction(
    runner: CliRunner, toy_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    result = runner.invoke(
        cli,
        ["train", "--taxonomy", "attractions", "--train", str(toy_file), "-o", str(out),
         "--normalize", "t2s", "--normalize", "whitespace"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["predict", str(out), "--json", "故宮博物院", "故宫 博物院"])
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["scores"] == second["scores"]


def test_unknown_normalizer_is_a_one_line_error(runner: CliRunner, tmp_path: Path) -> None:
    data = write_json(tmp_path / "d.json", [{"text": t, "label": labels} for t, labels in TOY])
    result = runner.invoke(
        cli,
        ["train", "--taxonomy", "attractions", "--train", str(data), "-o", str(tmp_path / "m"),
         "--normalize", "t2"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unknown normalizer 't2'" in result.output and "did you mean 't2s'" in result.output
