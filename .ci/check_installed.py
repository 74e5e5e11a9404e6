"""Smoke check of a normal (non-editable) install, run from outside the repository."""

import subprocess
import sys
import sysconfig
from pathlib import Path

repo = Path(sys.argv[1])
site = Path(sysconfig.get_paths()["purelib"])
generic = [
    name for name in ("plugins", "taxonomies", "tests", "examples") if (site / name).exists()
]
assert not generic, f"generic top-level names installed: {generic}"
assert (site / "tagger_plugins" / "tfidf.py").is_file(), "built-in plugins missing from the wheel"
assert (site / "tagger_taxonomies" / "attractions.yaml").is_file(), "taxonomy data missing"
assert (site / "tagger_core" / "py.typed").is_file(), "py.typed missing"

bin_dir = Path(sys.executable).parent
tagger = str(bin_dir / "tagger")
out = subprocess.run([tagger, "plugins"], check=True, capture_output=True, text=True).stdout
for expected in ("attractions", "tfidf", "data_sources", "decision_rules"):
    assert expected in out, f"plugin {expected!r} not listed:\n{out}"
model = Path.cwd() / "model"
examples = repo / "examples" / "attractions"
subprocess.run(
    [
        tagger,
        "train",
        "--taxonomy",
        "attractions",
        "--train",
        str(examples / "train.json"),
        "--valid",
        str(examples / "validation.json"),
        "-o",
        str(model),
    ],
    check=True,
)
out = subprocess.run(
    [tagger, "predict", str(model), "香港海洋公园"], check=True, capture_output=True, text=True
).stdout
assert "香港海洋公园" in out, out
print("installed wheel OK:", out.strip())
