"""Progress bars on stderr that stay silent when stderr is not a terminal."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    # TAGGER_PROGRESS=1 forces bars (e.g. in CI logs), 0 hides them; unset: only on a tty.
    forced = os.environ.get("TAGGER_PROGRESS")
    disable = None if forced is None else forced == "0"
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kwargs)


@contextmanager
def ticking(desc: str, interval: float = 0.5) -> Iterator[None]:
    """A bar for one long step with no progress to count (a solver's single fit): it shows
    the seconds spent, redrawn every ``interval``, so that it visibly moves."""
    bar = progress(total=None, desc=desc, bar_format="{desc}: {elapsed_s:.1f} s")
    if bar.disable:
        yield
        return
    done = threading.Event()

    def tick() -> None:
        while not done.wait(interval):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        bar.close()


def note(text: str) -> None:
    """A line on stderr above any bar being drawn (printed plainly when none is)."""
    import sys

    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stderr)
