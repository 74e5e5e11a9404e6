"""Property-based fuzzing of every reader: random bytes, random JSON, random CSV. Whatever
the input, reading either gives records, which can be written back, or raises one
TaggerError whose message is one line — never another exception, never a traceback.

Each reader gets TAGGER_FUZZ_EXAMPLES inputs per strategy (default 200, so the suite stays
fast; the issue's 10,000 run is `TAGGER_FUZZ_EXAMPLES=10000 pytest tests/test_fuzz_readers.py`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tagger_core import FileOptions, TaggerError, read_records, write_records  # noqa: E402

EXAMPLES = int(os.environ.get("TAGGER_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 200,  # the suite is repeatable; long runs explore
)
SUFFIXES = [".json", ".jsonl", ".csv", ".tsv", ".txt", ".xlsx"]
WORK = Path(tempfile.mkdtemp(prefix="tagger-fuzz-"))

# Text of any characters, lone surrogates included (json.dumps escapes them as \\udXXX).
any_text = st.text(max_size=20) | st.text(st.characters(categories=["Cs", "Lo"]), max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(["text", "label", "id", "source", "x"]) | st.text(max_size=5),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)
records = st.lists(
    st.fixed_dictionaries(
        {"text": json_values, "label": json_values},
        optional={"id": json_values, "extra": json_values},
    ),
    max_size=5,
)


def read_one_way_or_another(data: bytes, suffix: str, require_labels: bool) -> None:
    path = WORK / f"input{suffix}"
    path.write_bytes(data)
    try:
        records = read_records(path, options=FileOptions(require_labels=require_labels))
    except TaggerError as error:
        message = str(error)
        assert message and "\n" not in message and "Traceback" not in message, message
        return
    for out in (".jsonl", ".csv"):  # what was read can be written (as predictions are)
        try:
            write_records(WORK / f"output{out}", records)
        except TaggerError as error:  # e.g. a CSV row with a field the first rows lack
            assert "\n" not in str(error), error


@pytest.mark.parametrize("suffix", SUFFIXES)
@FUZZ
@given(data=st.binary(max_size=2000), require_labels=st.booleans())
def test_random_bytes(suffix: str, data: bytes, require_labels: bool) -> None:
    read_one_way_or_another(data, suffix, require_labels)


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
@FUZZ
@given(value=st.one_of(json_values, records), require_labels=st.booleans())
def test_random_json(suffix: str, value: object, require_labels: bool) -> None:
    if suffix == ".json":
        text = json.dumps(value, allow_nan=True)
    else:
        rows = value if isinstance(value, list) else [value]
        text = "".join(json.dumps(row, allow_nan=True) + "\n" for row in rows)
    read_one_way_or_another(text.encode("utf-8"), suffix, require_labels)


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
@FUZZ
@given(
    rows=st.lists(st.lists(st.text(max_size=12), max_size=4), max_size=6),
    header=st.lists(st.sampled_from(["text", "label", "id", "", "x"]), max_size=4),
    require_labels=st.booleans(),
)
def test_random_tables(
    suffix: str, rows: list[list[str]], header: list[str], require_labels: bool
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="," if suffix == ".csv" else "\t")
    writer.writerow(header)
    writer.writerows(rows)
    read_one_way_or_another(buffer.getvalue().encode("utf-8"), suffix, require_labels)
