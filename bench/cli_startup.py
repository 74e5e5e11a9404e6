"""Start-up latency of the listing commands, which must not import torch or scikit-learn.

    .venv/bin/python bench/cli_startup.py

Median and max over 15 runs of each command, as a whole process (interpreter start
included), next to `python -c pass` for scale.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

TAGGER = str(Path(sys.executable).parent / "tagger")
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "tagger --help": [TAGGER, "--help"],
    "tagger plugins": [TAGGER, "plugins"],
    "tagger taxonomies": [TAGGER, "taxonomies"],
}


def main(runs: int = 15) -> None:
    print("| command | median s | max s |")
    print("|---|---|---|")
    for name, argv in COMMANDS.items():
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        print(f"| `{name}` | {statistics.median(times):.3f} | {max(times):.3f} |")


if __name__ == "__main__":
    main()
