"""Where saved taggers fail on a test split that differs from training: rows by keyword.

    .venv/bin/python bench/keyword_shift.py TRAIN_FILE TEST_FILE TAGGER_DIR [TAGGER_DIR ...] \
        --keywords 广告,集团,大厦,公司

For each keyword: how many training and test names contain it, the most common label among
them in each split (and its share), and each tagger's exact match on those test rows. A
keyword that is rare in training, or carries another label there, is a shift that no
encoder is told about; this shows which encoders generalise across it.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from tagger_core import Tagger, read_records


def top_label(labels: list[tuple[str, ...]]) -> str:
    if not labels:
        return "–"
    ((label, count),) = Counter("|".join(sorted(x)) for x in labels).most_common(1)
    return f"{label} {count / len(labels):.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("taggers", type=Path, nargs="+")
    parser.add_argument("--keywords", default="广告,集团,大厦,公司")
    args = parser.parse_args()

    train, test = read_records(args.train), read_records(args.test)
    right: dict[str, np.ndarray] = {}
    for path in args.taggers:
        tagger = Tagger.load(path)
        scores, truth = tagger.score_records(test)
        right[path.name] = (tagger.decide(scores) == truth).all(axis=1)

    names = " | ".join(right)
    print(f"{len(train)} training rows of {args.train}, {len(test)} test rows of {args.test}")
    print()
    print(f"| keyword | train names (top label) | test names (top label) | {names} |")
    print("|---|---|---|" + "---:|" * len(right))
    # "" is in every name: the first row is the whole split, for comparison.
    for title, word in [("(all rows)", ""), *((w, w) for w in args.keywords.split(","))]:
        tr = [r.labels for r in train if word in r.text]
        te = [i for i, r in enumerate(test) if word in r.text]
        te_labels = [test[i].labels for i in te]
        accs = " | ".join(f"{ok[te].mean():.3f}" if te else "–" for ok in right.values())
        print(
            f"| {title} | {len(tr)} ({len(tr) / len(train):.1%}; {top_label(tr)}) "
            f"| {len(te)} ({len(te) / len(test):.1%}; {top_label(te_labels)}) | {accs} |"
        )


if __name__ == "__main__":
    main()
