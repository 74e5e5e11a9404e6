"""A catalogue in shards: a folder or glob tagged file by file, in this process or on a
local Ray with two actors, equal row for row to `tagger predict` on each file; an actor
killed mid-job loses and duplicates nothing; a bad row names its shard and row; the
callable class works inside Ray Data's and pandas' batch APIs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOY, one_line_error, train_toy

from tagger_core import TagBatches, Tagger
from tagger_core.cli import cli
from tagger_core.data.shards import find_shards, glob_root, plan_outputs
from tagger_core.errors import DataError, TaggerError

pa = pytest.importorskip("pyarrow", reason="needs the parquet extra")
pq = pytest.importorskip("pyarrow.parquet")

NAMES = [text for text, _ in TOY]


def names(count: int, offset: int = 0) -> list[str]:
    """Distinct names built from the toy ones (so that scores differ row to row)."""
    return [f"{NAMES[(i + offset) % len(NAMES)]}{i + offset}" for i in range(count)]


def write_catalogue(folder: Path, rows_per_shard: int = 400) -> Path:
    """Two Parquet shards (one in a Hive-style subfolder, with a row group cut inside it),
    a JSON Lines shard with gold labels and a nested field, and files that are not data."""
    (folder / "city=beijing").mkdir(parents=True)
    first = names(rows_per_shard)
    pq.write_table(
        pa.table({"id": list(range(len(first))), "text": first, "stars": [4.5] * len(first)}),
        folder / "a.parquet",
        row_group_size=150,
    )
    second = names(rows_per_shard, offset=7)
    pq.write_table(
        pa.table({"text": second, "tags": [["x", "y"]] * len(second)}),
        folder / "city=beijing" / "b.parquet",
    )
    with open(folder / "c.jsonl", "w", encoding="utf-8") as handle:
        for i, (text, labels) in enumerate(TOY * 10):
            record = {"id": f"c{i}", "text": text, "label": labels, "extra": {"n": i}}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    (folder / "_SUCCESS").write_text("")
    (folder / ".a.parquet.crc").write_text("")
    return folder


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def single_process(runner, tagger: Path, shard: Path, out: Path) -> list[dict]:
    result = runner.invoke(cli, ["predict", str(tagger), "-i", str(shard), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return read_rows(out)


def assert_same_as_single_process(runner, tagger: Path, catalogue: Path, output: Path) -> None:
    shards, _ = find_shards(catalogue)
    assert len(shards) == 3
    for shard in shards:
        relative = shard.relative_to(catalogue)
        expected = single_process(runner, tagger, shard, output.parent / "one" / relative)
        got = read_rows(output / relative)
        assert got == expected, relative  # every column, labels and scores, row for row
        assert len(got) == len(read_rows(shard)) > 0
        assert all(row["predicted"] for row in got[:5])


# -- finding shards and planning outputs ---------------------------------------------------


def test_a_folder_is_read_recursively_in_name_order_without_markers(tmp_path: Path) -> None:
    catalogue = write_catalogue(tmp_path / "cat")
    shards, root = find_shards(catalogue)
    assert root == catalogue
    assert [p.relative_to(catalogue).as_posix() for p in shards] == [
        "a.parquet",
        "c.jsonl",
        "city=beijing/b.parquet",
    ]
    only_parquet, root = find_shards(str(catalogue / "**" / "*.parquet"))
    assert root == catalogue
    assert [p.name for p in only_parquet] == ["a.parquet", "b.parquet"]
    assert glob_root("data/2024/*/part-*.parquet") == Path("data/2024")


def test_a_file_no_data_source_reads_is_refused_not_skipped(tmp_path: Path, runner) -> None:
    catalogue = write_catalogue(tmp_path / "cat")
    (catalogue / "notes.docx").write_text("?")
    tagger = train_toy(tmp_path)
    result = runner.invoke(cli, ["predict", str(tagger), "-i", str(catalogue), "-o", "out"])
    line = one_line_error(result)
    assert "notes.docx" in line and "unknown file suffix '.docx'" in line


def test_outputs_mirror_the_shards_and_refuse_clashes(tmp_path: Path) -> None:
    catalogue = write_catalogue(tmp_path / "cat")
    shards, root = find_shards(catalogue)
    out = tmp_path / "out"
    planned = plan_outputs(shards, root, out, None, force=False)
    assert [s.output for s in planned] == [
        out / "a.parquet",
        out / "c.jsonl",
        out / "city=beijing" / "b.parquet",
    ]
    as_jsonl = plan_outputs(shards, root, out, "jsonl", force=False)
    assert [s.output.name for s in as_jsonl] == ["a.jsonl", "c.jsonl", "b.jsonl"]
    (out / "city=beijing").mkdir(parents=True)
    (out / "city=beijing" / "b.parquet").write_text("keep me")
    with pytest.raises(TaggerError, match="already exists"):
        plan_outputs(shards, root, out, None, force=False)
    assert (out / "city=beijing" / "b.parquet").read_text() == "keep me"
    (catalogue / "a.jsonl").write_text('{"text": "乌镇"}\n')
    with pytest.raises(TaggerError, match="would both be written"):
        plan_outputs(*find_shards(catalogue), tmp_path / "other", "jsonl", force=False)


def test_local_engine_tags_each_shard_like_predict_on_that_file(tmp_path: Path, runner) -> None:
    catalogue = write_catalogue(tmp_path / "cat")
    tagger = train_toy(tmp_path)
    out = tmp_path / "out" / "tagged"
    result = runner.invoke(cli, ["predict", str(tagger), "-i", str(catalogue), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Wrote 1000 predictions to 3 files" in result.stderr
    assert_same_as_single_process(runner, tagger, catalogue, out)
    assert not (out / "_SUCCESS").exists()


def test_resume_tags_only_the_shards_without_output(tmp_path: Path, runner) -> None:
    catalogue = write_catalogue(tmp_path / "cat")
    tagger = train_toy(tmp_path)
    out = tmp_path / "out"
    args = ["predict", str(tagger), "-i", str(catalogue), "-o", str(out)]
    assert runner.invoke(cli, args).exit_code == 0
    kept = out / "a.parquet"
    os.utime(kept, (1, 1))  # an old time: rewritten, it would change
    (out / "c.jsonl").unlink()  # as if the job had stopped before this shard
    result = runner.invoke(cli, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert "2 of 3 shards done already" in result.stderr
    assert "Wrote 200 predictions" in result.stderr
    assert kept.stat().st_mtime == 1
    assert_same_as_single_process(runner, tagger, catalogue, out)
    assert runner.invoke(cli, [*args, "--resume"]).exit_code == 0  # nothing left to do
    assert "--resume" in runner.invoke(cli, [*args, "--resume", "--force"]).output


# -- the callable class -------------------------------------------------------------------


def test_tag_batches_adds_predictions_to_arrow_pandas_and_numpy_batches(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    directory = train_toy(tmp_path)
    texts = names(30)
    expected = Tagger.load(directory).predict(texts)
    tag = TagBatches(directory, display=True)

    table = tag(pa.table({"text": texts, "id": list(range(30))}))
    assert table.column_names == ["text", "id", "predicted", "predicted_name", "scores"]
    assert table.column("predicted").to_pylist() == [list(p.labels) for p in expected]
    scores = table.column("scores").to_pylist()
    assert scores == [{k: round(v, 6) for k, v in p.scores.items()} for p in expected]
    assert table.column("predicted_name").to_pylist()[0] != []

    frame = tag(pd.DataFrame({"text": texts, "id": range(30)}))
    assert frame["predicted"].tolist() == [list(p.labels) for p in expected]
    assert frame["scores"].tolist() == scores
    from_numpy = tag({"text": np.array(texts), "id": np.arange(30)})
    assert from_numpy.column("predicted").to_pylist() == [list(p.labels) for p in expected]


def test_tag_batches_refuses_a_missing_text_column_a_clash_and_empty_names(
    tmp_path: Path,
) -> None:
    tag = TagBatches(train_toy(tmp_path), text_field="name")
    with pytest.raises(DataError, match="no 'name' column"):
        tag(pa.table({"text": ["乌镇"]}))
    with pytest.raises(DataError, match="already has a 'scores' column"):
        tag(pa.table({"name": ["乌镇"], "scores": [1]}))
    with pytest.raises(DataError, match=r"empty text \(row 2 of the batch\)"):
        tag(pa.table({"name": ["乌镇", " "]}))


def test_the_engine_says_which_extra_is_missing(tmp_path: Path, runner, monkeypatch) -> None:
    tagger = train_toy(tmp_path)
    catalogue = write_catalogue(tmp_path / "cat")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = runner.invoke(
        cli, ["predict", str(tagger), "-i", str(catalogue), "-o", "o", "--engine", "ray"]
    )
    assert 'pip install "tagger[ray]"' in one_line_error(result)


# -- on Ray --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray (two CPUs) for this module's Ray tests: each job would otherwise pay
    Ray's start-up."""
    ray = pytest.importorskip("ray", reason="needs the ray extra")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_engine_equals_single_process_row_for_row(tmp_path, runner, ray_session) -> None:
    catalogue = write_catalogue(tmp_path / "cat")
    tagger = train_toy(tmp_path)
    out = tmp_path / "out" / "ray"
    args = ["predict", str(tagger), "-i", str(catalogue), "-o", str(out), "--engine", "ray"]
    result = runner.invoke(cli, [*args, "--actors", "2", "--batch-size", "64"])
    assert result.exit_code == 0, result.output
    assert "Wrote 1000 predictions to 3 files" in result.stderr
    assert_same_as_single_process(runner, tagger, catalogue, out)


@pytest.mark.slow
def test_an_actor_killed_mid_job_is_restarted_and_no_row_is_lost_or_doubled(
    tmp_path, runner, ray_session
) -> None:
    from tagger_core.catalogue.ray_job import ChunkScorer, RaySettings, predict_with_ray

    marker, started_file = tmp_path / "killed", tmp_path / "started"

    class KillOnce(ChunkScorer):
        """An actor that kills its own process (SIGKILL, as the OOM killer would) on its
        second chunk, once per job: whichever actor first claims the marker file dies."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.calls = 0
            with open(started_file, "a", encoding="utf-8") as handle:
                handle.write(f"{os.getpid()}\n")

        def __call__(self, chunks):
            self.calls += 1
            if self.calls == 2:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    pass
                else:
                    os.kill(os.getpid(), signal.SIGKILL)
            return super().__call__(chunks)

    catalogue = write_catalogue(tmp_path / "cat")
    directory = train_toy(tmp_path)
    shards = plan_outputs(*find_shards(catalogue), tmp_path / "out" / "ray", None, False)
    written = predict_with_ray(
        Tagger.load(directory),
        shards,
        settings=RaySettings(actors=2, batch_size=50),
        scorer=KillOnce,
    )
    assert marker.exists()  # an actor did die mid-job
    started = started_file.read_text().split()
    assert len(set(started)) >= 3  # two actors, and the one Ray restarted
    assert written == 1000
    assert_same_as_single_process(runner, directory, catalogue, tmp_path / "out" / "ray")


@pytest.mark.slow
def test_tag_batches_inside_a_ray_data_pipeline(tmp_path: Path, ray_session) -> None:
    directory = train_toy(tmp_path)
    texts = names(300)
    dataset = ray_session.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    tagged = dataset.map_batches(
        TagBatches,
        fn_constructor_kwargs={"tagger": str(directory), "threads": 1},
        compute=ray_session.data.ActorPoolStrategy(size=2),
        batch_size=64,
        batch_format="pyarrow",
    )
    rows = sorted(tagged.take_all(), key=lambda row: row["id"])
    expected = Tagger.load(directory).predict(texts)
    assert [row["text"] for row in rows] == texts
    assert [list(row["predicted"]) for row in rows] == [list(p.labels) for p in expected]


@pytest.mark.slow
def test_the_command_joins_a_running_cluster_at_ray_address(tmp_path, runner, ray_session):
    """A second driver on the module's Ray, as a job joins a cluster: the command must not
    start a Ray of its own, nor stop the cluster when it is done."""
    catalogue = write_catalogue(tmp_path / "cat", rows_per_shard=50)
    tagger = train_toy(tmp_path)
    address = ray_session.get_runtime_context().gcs_address
    drivers = len(ray_session._private.state.jobs())
    out = tmp_path / "out"
    command = [str(Path(sys.executable).with_name("tagger")), "predict", str(tagger)]
    command += ["-i", str(catalogue), "-o", str(out), "--engine", "ray", "--actors", "1"]
    done = subprocess.run(
        [*command, "--ray-address", address], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(ray_session._private.state.jobs()) == drivers + 1  # it ran here, as a job
    assert ray_session.is_initialized() and ray_session.cluster_resources()["CPU"] == 2
    assert_same_as_single_process(runner, tagger, catalogue, out)


@pytest.mark.slow
def test_a_bad_row_in_one_shard_is_one_line_naming_shard_and_row(tmp_path: Path) -> None:
    pytest.importorskip("ray.data", reason="needs the ray extra")
    catalogue = write_catalogue(tmp_path / "cat")
    bad = catalogue / "d.jsonl"
    bad.write_text('{"text": "乌镇"}\n{"text": "故宫"}\n{"text": ""}\n', encoding="utf-8")
    tagger = train_toy(tmp_path)
    out = tmp_path / "out"
    command = [str(Path(sys.executable).with_name("tagger")), "predict", str(tagger)]
    command += ["-i", str(catalogue), "-o", str(out), "--engine", "ray", "--actors", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: {bad}, row 3, field 'text': empty text"]
    assert done.stderr.rstrip().splitlines()[-1] == errors[0]
    assert not (out / "d.jsonl").exists()  # the bad shard's output is absent, not partial
