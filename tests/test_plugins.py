"""The plugin system: entry points, ad-hoc plugins, conflicts, TAGGER_PLUGINS, lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import click
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import one_line_error

from tagger_core import (
    DataSource,
    DecisionRule,
    Encoder,
    Normalizer,
    PluginError,
    Tagger,
    Taxonomy,
    hookimpl,
    registry,
)
from tagger_core.cli import cli

TAGGER = str(Path(sys.executable).parent / "tagger")


class ConstantEncoder(Encoder):
    """Scores every label by how often it was seen in training (a baseline)."""

    name = "constant"
    description = "Training label frequencies as log-odds, whatever the text."

    def fit(self, texts, targets, taxonomy, *, valid=None, seed=0):
        rate = (targets.sum(axis=0) + 0.5) / (len(targets) + 1)
        self.bias = np.log(rate / (1 - rate))

    def logits(self, texts):
        return np.tile(self.bias, (len(texts), 1))

    def save(self, directory):
        np.save(directory / "bias.npy", self.bias)

    def load(self, directory, taxonomy):
        self.bias = np.load(directory / "bias.npy")


class EveryLabelRule(DecisionRule):
    name = "every-label"

    def decide(self, scores, taxonomy):
        return np.ones(scores.logits.shape, dtype=bool)


class LinesSource(DataSource):
    name = "lines"
    suffixes: ClassVar[tuple[str, ...]] = (".lines",)

    def read(self, path, options):
        from tagger_core import Record

        return [
            Record(text=line, file=str(path), row=i)
            for i, line in enumerate(path.read_text().splitlines(), 1)
        ]

    def write(self, path, records, options):
        path.write_text("\n".join(r.text for r in records))


class Reverse(Normalizer):
    name = "reverse"

    def normalize(self, text):
        return text[::-1]


class AdHocPlugin:
    @hookimpl
    def register_normalizers(self, register):
        register(Reverse)

    @hookimpl
    def register_taxonomies(self, register):
        register(
            Taxonomy.model_validate({"name": "colours", "labels": [{"id": "red"}, {"id": "blue"}]})
        )

    @hookimpl
    def register_encoders(self, register):
        register(ConstantEncoder)

    @hookimpl
    def register_decision_rules(self, register):
        register(EveryLabelRule)

    @hookimpl
    def register_data_sources(self, register):
        register(LinesSource)

    @hookimpl
    def register_commands(self, cli):
        @cli.command("hello")
        def hello():
            click.echo("hello from a plugin")


def test_builtins_arrive_through_entry_points() -> None:
    manager = registry.load_plugins()
    names = {name for name, _ in manager.list_name_plugin()}
    assert {"data_sources", "tfidf", "decision_rules", "attractions", "taxonomy_folders"} <= names
    assert registry.data_sources().names() == [
        "csv",
        "json",
        "jsonl",
        "parquet",
        "tsv",
        "txt",
        "xlsx",
    ]
    assert registry.encoders().items["tfidf"].plugin == "tfidf"
    assert registry.taxonomies().items["attractions"].plugin == "attractions"
    manager.check_pending()  # every hookimpl matches a hookspec


def test_adhoc_plugin_is_listed_and_used_by_train(
    register_plugin, runner: CliRunner, toy_file: Path, tmp_path: Path
) -> None:
    register_plugin(AdHocPlugin(), "adhoc")
    registry.pm.check_pending()
    listing = json.loads(runner.invoke(cli, ["plugins", "--json"]).output)
    [adhoc] = [entry for entry in listing if entry["name"] == "adhoc"]
    assert adhoc["provides"] == {
        "taxonomies": ["colours"],
        "encoders": ["constant"],
        "decision_rules": ["every-label"],
        "data_sources": ["lines"],
        "normalizers": ["reverse"],
        "commands": ["hello"],
    }
    assert adhoc["distribution"] is None
    data = tmp_path / "colours.json"
    data.write_text(
        json.dumps([{"text": "sky", "label": ["blue"]}, {"text": "sea", "label": ["blue"]}])
    )
    result = runner.invoke(
        cli,
        [
            "train",
            "--taxonomy",
            "colours",
            "--train",
            str(data),
            "--encoder",
            "constant",
            "-o",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["encoder"]["name"] == "constant"
    names = tmp_path / "in.lines"
    names.write_text("rose\ngrass\n")
    result = runner.invoke(
        cli, ["predict", str(tmp_path / "m"), "-i", str(names), "--rule", "every-label", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["predicted"] for line in result.stdout.splitlines()] == [
        ["red", "blue"]
    ] * 2


def test_register_commands_adds_subcommands() -> None:
    @click.group()
    def fresh() -> None:
        pass

    manager = registry.load_plugins()
    manager.register(AdHocPlugin(), name="adhoc-commands")
    try:
        manager.hook.register_commands(cli=fresh)
    finally:
        manager.unregister(name="adhoc-commands")
    result = CliRunner().invoke(fresh, ["hello"])
    assert result.output == "hello from a plugin\n"


def test_two_plugins_registering_one_name_is_an_error(register_plugin) -> None:
    class Duplicate:
        @hookimpl
        def register_encoders(self, register):
            register(ConstantEncoder)

    register_plugin(AdHocPlugin(), "first")
    register_plugin(Duplicate(), "second")
    with pytest.raises(
        PluginError,
        match="encoder 'constant' is registered by both plugin 'first' and plugin 'second'",
    ):
        registry.encoders()


def test_a_failing_plugin_is_named(register_plugin, runner: CliRunner) -> None:
    class Broken:
        @hookimpl
        def register_taxonomies(self, register):
            raise RuntimeError("boom")

    register_plugin(Broken(), "broken")
    line = one_line_error(runner.invoke(cli, ["taxonomies"]))
    assert line == "Error: plugin 'broken' failed in register_taxonomies: RuntimeError: boom"


def _tagger(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TAGGER, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_environment_variable_limits_which_plugins_load() -> None:
    result = _tagger("plugins", "--json", env={"TAGGER_PLUGINS": "data_sources,tfidf"})
    assert result.returncode == 0, result.stderr
    assert sorted(entry["name"] for entry in json.loads(result.stdout)) == ["data_sources", "tfidf"]
    result = _tagger("plugins", env={"TAGGER_PLUGINS": ""})
    assert result.stdout.strip() == "No plugins loaded."
    result = _tagger("taxonomy", "show", "attractions", env={"TAGGER_PLUGINS": "tfidf"})
    assert result.returncode == 2
    assert result.stderr.startswith("Error: unknown taxonomy 'attractions'")


PROBE = """
import sys
from tagger_core.cli import main
sys.argv = ["tagger", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "transformers", "sklearn") if m in sys.modules)
print("HEAVY:", ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["taxonomies"]])
def test_listing_commands_import_no_heavy_libraries(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    assert result.stderr.strip().splitlines()[-1] == "HEAVY:", result.stderr


def test_normalizers_are_saved_and_applied_alike_at_prediction(
    register_plugin, tmp_path: Path
) -> None:
    register_plugin(AdHocPlugin(), "adhoc")
    from tagger_core import Record

    # Training texts are stored reversed; the 'reverse' normalizer turns them the right way.
    train = [Record(text="yks", labels=("blue",)), Record(text="esor", labels=("red",))] * 3
    tagger = Tagger.create("colours", normalizers=["reverse"]).train(train, train)
    vocabulary = tagger.encoder.vectorizer.vocabulary_
    assert "sky" in vocabulary and "yks" not in vocabulary  # the encoder trained on normalised text
    path = tagger.save(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["normalizers"] == [{"name": "reverse", "params": {}}]
    loaded = Tagger.load(path)
    assert [n.name for n in loaded.normalizers] == ["reverse"]
    assert loaded.predict(["yks"])[0].labels == ["blue"]
    assert loaded.predict(["yks"])[0].scores == tagger.predict(["yks"])[0].scores
    # prediction normalises too: raw "yks" scores as the encoder's "sky", not as "yks"
    assert np.allclose(loaded.scores(["yks"]).logits, loaded.encoder.logits(["sky"]))
    assert not np.allclose(loaded.encoder.logits(["yks"]), loaded.encoder.logits(["sky"]))
