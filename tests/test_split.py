"""`tagger split` and tagger_core.data.split: stratified parts, label coverage, by-source parts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, SHARED_DATA, one_line_error, write_json

from tagger_core import Record, TaggerError, read_records, resolve_taxonomy
from tagger_core.cli import cli
from tagger_core.data.normalize import match_key
from tagger_core.data.split import parse_ratios, split_by_source, split_records

ATTRACTIONS = resolve_taxonomy("attractions")
LABELS = ATTRACTIONS.label_ids


def synthetic(counts: dict[str, int], source: str | None = None, prefix: str = "") -> list[Record]:
    """``counts[label]`` distinct names per label, every tenth with a second label."""
    records = []
    for j, (label, n) in enumerate(counts.items()):
        for i in range(n):
            labels = [label]
            if i % 10 == 9:
                labels.append(LABELS[(LABELS.index(label) + 1) % len(LABELS)])
            if "Others" in labels and len(labels) > 1:
                labels = [label]
            records.append(Record(text=f"{prefix}名{j}-{i}", labels=tuple(labels), source=source))
    return records


def labels_per_part(split) -> list[Counter]:
    return [Counter(label for r in part for label in r.labels) for part in split.parts]


def test_parse_ratios() -> None:
    assert parse_ratios("4:1:1") == [4, 1, 1]
    assert parse_ratios("0.8,0.2") == [0.8, 0.2]
    for bad in ("4", "4:x", "4:0:1", "-1:2"):
        with pytest.raises(TaggerError, match="bad ratios"):
            parse_ratios(bad)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_label_with_enough_names_is_in_every_part(seed: int) -> None:
    # 3 names is the least a 3-part split can spread; stratification alone often fails.
    counts = dict(zip(LABELS, [3, 3, 4, 30, 5, 3, 40, 6, 3], strict=True))
    split = split_records(synthetic(counts), [4, 1, 1], taxonomy=ATTRACTIONS, seed=seed)
    for part in labels_per_part(split):
        assert set(part) == set(LABELS)
    assert split.missing() == [] and split.too_rare() == []


def test_part_sizes_follow_the_ratios() -> None:
    counts = dict.fromkeys(LABELS, 20)
    split = split_records(synthetic(counts), [4, 1, 1], taxonomy=ATTRACTIONS, seed=0)
    assert [len(p) for p in split.parts] == [120, 30, 30]
    assert split.names == ["train", "valid", "test"]


def test_a_label_too_rare_to_split_goes_to_training_first() -> None:
    counts = dict.fromkeys(LABELS, 6)
    counts["Water Parks"], counts["Villages"] = 2, 1
    split = split_records(synthetic(counts), [4, 1, 1], taxonomy=ATTRACTIONS, seed=0)
    train, valid, test = labels_per_part(split)
    assert split.too_rare() == ["Water Parks", "Villages"]
    assert (train["Water Parks"], valid["Water Parks"], test["Water Parks"]) == (1, 1, 0)
    assert train["Villages"] == 1
    assert split.missing() == []


def test_one_name_stays_in_one_part() -> None:
    records = synthetic(dict.fromkeys(LABELS, 6))
    records += [
        Record(text="香港海洋公园", labels=("Playgrounds",)),
        Record(text="香港海洋公園", labels=("Playgrounds", "Zoos & Animal Parks")),
        Record(text="香港 海洋公园", labels=("Playgrounds",)),
    ]
    for seed in range(4):
        split = split_records(records, [1, 1, 1], taxonomy=ATTRACTIONS, seed=seed)
        homes = {i for i, part in enumerate(split.parts) for r in part if r.text.startswith("香港")}
        assert len(homes) == 1


def test_same_seed_same_split_and_part_names() -> None:
    records = synthetic(dict.fromkeys(LABELS, 5))
    a = split_records(records, [3, 1], taxonomy=ATTRACTIONS, seed=7, names=["fit", "check"])
    b = split_records(records, [3, 1], taxonomy=ATTRACTIONS, seed=7, names=["fit", "check"])
    assert a.parts == b.parts and a.names == ["fit", "check"]
    with pytest.raises(TaggerError, match="2 ratios need 2 distinct part names"):
        split_records(records, [3, 1], taxonomy=ATTRACTIONS, names=["a", "b", "c"])


def test_by_source_validation_parts_come_from_their_own_source() -> None:
    shared = synthetic(dict.fromkeys(LABELS, 6), source="site")
    relabelled = [r.model_copy(update={"source": "gpt"}) for r in shared[::2]]
    gpt_only = synthetic(dict.fromkeys(LABELS, 2), source="gpt", prefix="新")
    records = shared + relabelled + gpt_only
    split = split_by_source(records, [4, 1, 1], taxonomy=ATTRACTIONS, seed=0)
    assert split.names == ["train", "valid-site", "valid-gpt"]
    train, valid_site, valid_gpt = split.parts
    assert {r.source for r in valid_site} == {"site"}
    assert {r.source for r in valid_gpt} == {"gpt"}
    assert {r.source for r in train} == {"site", "gpt"}
    # No validation name is trained on, in any source's labelling.
    held_out = {match_key(r.text) for r in valid_site + valid_gpt}
    assert not held_out & {match_key(r.text) for r in train}
    # Other sources' labels of validation names are set aside, not dropped.
    assert sum(len(p) for p in split.parts) + len(split.set_aside) == len(records)
    assert all(match_key(r.text) in held_out for r in split.set_aside)
    for part in labels_per_part(split):
        assert set(part) == set(LABELS)


def test_by_source_tops_up_a_small_source_from_the_others() -> None:
    big = synthetic(dict.fromkeys(LABELS, 10), source="site")
    small = synthetic({"Others": 3}, source="gpt", prefix="小")
    split = split_by_source(big + small, [4, 1, 1], taxonomy=ATTRACTIONS, seed=0)
    valid_gpt = split.parts[2]
    sources = Counter(r.source for r in valid_gpt)
    assert sources["gpt"] == 3 and sources["site"] > 0  # all its own names, then topped up
    assert abs(len(valid_gpt) - len(big + small) / 6) <= 1


def test_by_source_needs_sources_and_matching_ratios() -> None:
    records = synthetic(dict.fromkeys(LABELS, 3))
    with pytest.raises(TaggerError, match="at least two sources"):
        split_by_source(records, [4, 1, 1], taxonomy=ATTRACTIONS)
    two = synthetic(dict.fromkeys(LABELS, 3), "a") + synthetic(dict.fromkeys(LABELS, 3), "b", "b")
    with pytest.raises(TaggerError, match=r"needs 3 ratios .* or 4"):
        split_by_source(two, [4, 1], taxonomy=ATTRACTIONS)
    split = split_by_source(two, [4, 1, 1, 1], taxonomy=ATTRACTIONS)
    assert split.names == ["train", "valid-a", "valid-b", "test"]


def test_cli_writes_parts_and_refuses_to_overwrite(runner: CliRunner, tmp_path: Path) -> None:
    data = write_json(
        tmp_path / "all.json",
        [{"text": r.text, "label": list(r.labels), "city": "HK"} for r in synthetic(dict.fromkeys(LABELS, 4))],
    )  # fmt: skip
    out = tmp_path / "parts"
    args = ["split", str(data), "--taxonomy", "attractions", "--ratios", "4:1:1", "--seed", "3", "-o", str(out)]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "split.json",
        "test.json",
        "train.json",
        "valid.json",
    ]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["LABEL", "TRAIN", "VALID", "TEST", "NAMES"]
    assert any(line.startswith("Water Parks") for line in lines)
    parts = [read_records(out / f"{name}.json") for name in ("train", "valid", "test")]
    assert sum(len(p) for p in parts) == 36
    assert parts[0][0].metadata == {"city": "HK"}  # other fields are kept
    report = json.loads((out / "split.json").read_text(encoding="utf-8"))
    assert report["seed"] == 3 and [p["name"] for p in report["parts"]] == [
        "train",
        "valid",
        "test",
    ]
    line = one_line_error(runner.invoke(cli, args))
    assert "already exist" in line and "--force" in line
    assert runner.invoke(cli, [*args, "--force"]).exit_code == 0
    # a two-part split in its place leaves no test part behind (its names are in train now)
    (out / "notes.txt").write_text("mine")
    two = [*args[:5], "4:1", *args[6:], "--force"]
    assert runner.invoke(cli, two).exit_code == 0, two
    assert sorted(p.name for p in out.iterdir()) == [
        "notes.txt",
        "split.json",
        "train.json",
        "valid.json",
    ]


def test_cli_by_source_keeps_sources_in_the_files(runner: CliRunner, tmp_path: Path) -> None:
    def dump(name: str, records: list[Record]) -> Path:
        return write_json(
            tmp_path / name, [{"text": r.text, "label": list(r.labels)} for r in records]
        )

    site = dump("site.json", synthetic(dict.fromkeys(LABELS, 6)))
    gpt = dump(
        "gpt.json", synthetic(dict.fromkeys(LABELS, 6))[::2] + synthetic({"Others": 5}, prefix="g")
    )
    out = tmp_path / "parts"
    result = runner.invoke(
        cli,
        ["split", "--data", f"site={site}", "--data", f"gpt={gpt}", "--by-source",
         "--taxonomy", "attractions", "-o", str(out), "--output-format", "jsonl"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "valid-gpt.jsonl").exists() and (out / "set-aside.jsonl").exists()
    assert "valid-gpt: gpt" in result.stdout and "Set aside" in result.stdout
    first = json.loads((out / "valid-site.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["source"] == "site"
    # Read back as a plain file, records get their written source again.
    result = runner.invoke(cli, ["validate", str(out / "train.jsonl"), "--taxonomy", "attractions"])
    assert "from 2 sources" in result.stdout


def test_cli_unknown_label_stops_with_row(runner: CliRunner, tmp_path: Path) -> None:
    data = write_json(tmp_path / "d.json", [{"text": "故宫", "label": ["Museum"]}])
    line = one_line_error(
        runner.invoke(
            cli, ["split", str(data), "--taxonomy", "attractions", "-o", str(tmp_path / "o")]
        )
    )
    assert "row 1, field 'label': unknown label 'Museum'" in line


def test_bundled_examples(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        cli,
        ["split", str(EXAMPLES / "train.json"), str(EXAMPLES / "validation.json"),
         "--taxonomy", "attractions", "-o", str(tmp_path / "parts")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records_row = next(line for line in result.stdout.splitlines() if line.startswith("(records)"))
    assert records_row.split()[1:] == ["183", "46", "46"]  # 275 × 4:1:1 = 183.3, 45.8, 45.8
    assert " !" not in result.stdout and " *" not in result.stdout


def rare_records() -> list[Record]:
    """Labels with 1, 2 and 3 names among common ones; some names carry two rare labels."""
    counts = dict.fromkeys(LABELS, 12)
    data = synthetic(counts)
    rare = [
        ("稀一", ("Water Parks", "Villages")),  # Villages: 1 name, Water Parks: 2 names
        ("稀二", ("Water Parks", "Gardens & Parks")),
        ("稀三", ("Playgrounds",)),  # Playgrounds: 3 names, one of them shared with Zoos
        ("稀四", ("Playgrounds", "Zoos & Animal Parks")),
        ("稀五", ("Playgrounds", "Museums & Galleries")),
        ("稀六", ("Zoos & Animal Parks", "Observation Decks & Towers")),  # Zoos: 2 names
    ]
    common = [r for r in data if not set(r.labels) & {"Water Parks", "Villages", "Playgrounds",
                                                       "Zoos & Animal Parks"}]  # fmt: skip
    return common + [Record(text=text, labels=labels) for text, labels in rare]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_rare_labels_go_to_the_earliest_parts_training_first(seed: int) -> None:
    data = rare_records()
    split = split_records(data, [4, 1, 1], taxonomy=ATTRACTIONS, seed=seed)
    placement = split.rare_placement()
    assert placement == {
        "Water Parks": ["train", "valid"],
        "Villages": ["train"],
        "Zoos & Animal Parks": ["train", "valid"],
    }
    # The name with two rare labels goes to training for both of them.
    [train, valid, _test] = [{r.text for r in part} for part in split.parts]
    assert "稀一" in train
    assert {"稀四", "稀六"} & train and {"稀四", "稀六"} & valid
    # Playgrounds has 3 names: one in every part, as every label with enough names.
    assert all(any("Playgrounds" in r.labels for r in part) for part in split.parts), (
        split.label_counts()
    )
    # Sizes within one record of 4:1:1.
    targets = [len(data) * share for share in (4 / 6, 1 / 6, 1 / 6)]
    assert all(abs(len(part) - t) < 1 for part, t in zip(split.parts, targets, strict=True))
    report = split.report()
    assert report["rare_placement"] == placement


def test_cli_says_where_each_rare_label_went(runner: CliRunner, tmp_path: Path) -> None:
    data = write_json(tmp_path / "rare.json",
                      [{"text": r.text, "label": list(r.labels)} for r in rare_records()])  # fmt: skip
    out = tmp_path / "parts"
    result = runner.invoke(cli, ["split", str(data), "--taxonomy", "attractions", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (
        "* 3 label(s) have fewer names than parts, so they cannot be in every part; each went "
        "to the earliest parts, training first:\n"
        "  train only: Villages\n"
        "  train and valid: Water Parks, Zoos & Animal Parks\n"
    ) in result.stdout
    assert "Not in train" not in result.stdout
    report = json.loads((out / "split.json").read_text(encoding="utf-8"))
    assert report["rare_placement"]["Villages"] == ["train"]


@pytest.mark.integration
def test_tripadvisor_every_label_reaches_training() -> None:
    """The issue's case: 1,580 names, 85 labels, 34 with fewer names than parts."""
    path = SHARED_DATA / "tripadvisor_attractions_en" / "all.json"
    if not path.exists():
        pytest.skip("../shared data not present")
    import json as _json

    rows = [r for r in _json.loads(path.read_text(encoding="utf-8")) if r["text"].strip()]
    records = [Record(text=r["text"], labels=tuple(r["label"])) for r in rows]
    for seed in (0, 1, 2):
        split = split_records(records, [4, 1, 1], seed=seed)
        assert len(split.too_rare()) == 34
        totals = dict(zip(split.taxonomy.label_ids, split.name_totals(), strict=True))
        counts = dict(zip(split.taxonomy.label_ids, split.label_counts(), strict=True))
        assert [label for label in totals if totals[label] and counts[label][0] == 0] == []
        assert all(parts[0] == "train" for parts in split.rare_placement().values())
        for label, _part in split.missing():  # only where rarer labels hold its names
            assert split.held_by_rare(label) > totals[label] - len(split.parts)
        targets = [len(records) * share for share in (4 / 6, 1 / 6, 1 / 6)]
        assert all(abs(len(p) - t) < 1 for p, t in zip(split.parts, targets, strict=True))


@pytest.mark.parametrize(
    "command",
    [
        "tagger split examples/attractions/train.json examples/attractions/validation.json "
        "--taxonomy attractions --ratios 4:1:1 --seed 0 -o parts",
        "tagger split --data hand=examples/attractions/train.json --data "
        "hand=examples/attractions/validation.json --data "
        "gpt=examples/attractions/second-source-demo.json --taxonomy attractions --by-source "
        "--ratios 4:1:1 --seed 0 -o by-source",
    ],
)
def test_docs_show_the_real_output(
    command: str, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_validate import doc_output

    expected, status = doc_output(command)
    (tmp_path / "examples").symlink_to(EXAMPLES.parent)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, command.split()[1:])
    assert (result.output, result.exit_code) == (expected, status)


def test_a_held_out_validation_part_never_takes_a_labels_only_name() -> None:
    from tagger_core.data.split import hold_out

    data = [r for r in synthetic(dict.fromkeys(LABELS, 10)) if "Villages" not in r.labels]
    data.append(Record(text="孤", labels=("Villages",)))
    for seed in range(5):
        rest, held = hold_out(data, 0.5, ATTRACTIONS, seed)
        assert any(r.text == "孤" for r in rest) and len(held) >= 40
