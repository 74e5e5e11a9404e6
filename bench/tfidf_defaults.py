"""Choose the TF-IDF encoder's defaults by measurement: C × class_weight on validation splits.

    .venv/bin/python bench/tfidf_defaults.py > /tmp/tfidf_defaults.md

Trains on each data set's train split and scores its validation split with the default
decision rule (0.5 probability threshold for multi-label, argmax for single-label).
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

from tagger_core import Tagger, read_records, resolve_taxonomy
from tagger_core.taxonomy import infer_taxonomy

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DATASETS = {
    "attractions (examples, 220/55)": (REPO / "examples/attractions", "attractions"),
    "semeval2018_ec (6838/886)": (SHARED / "semeval2018_ec", None),
    "poi_building_types (19999/2000)": (SHARED / "poi_building_types", None),
}


def main() -> None:
    print("| data set | C | class_weight | exact match | micro F1 | macro F1 | empty | fit s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (folder, taxonomy_name) in DATASETS.items():
        if not folder.exists():
            print(f"skipping {name}: {folder} absent", file=sys.stderr)
            continue
        train = read_records(folder / "train.json")
        valid = read_records(folder / "validation.json")
        taxonomy = resolve_taxonomy(taxonomy_name) if taxonomy_name else infer_taxonomy(train, "t")
        for c, weight in itertools.product([3, 10, 30], [None, "balanced"]):
            start = time.perf_counter()
            tagger = Tagger.create(taxonomy, encoder_params={"C": c, "class_weight": weight})
            tagger.train(train)
            seconds = time.perf_counter() - start
            e = tagger.evaluate(valid)
            print(
                f"| {name} | {c} | {weight} | {e.exact_match:.3f} | {e.micro_f1:.3f} | "
                f"{e.macro_f1:.3f} | {e.empty_predictions} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
