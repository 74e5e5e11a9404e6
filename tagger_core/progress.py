"""Progress bars on stderr that stay silent when stderr is not a terminal."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    # TAGGER_PROGRESS=1 forces bars (e.g. in CI logs), 0 hides them; unset: only on a tty.
    forced = os.environ.get("TAGGER_PROGRESS")
    disable = None if forced is None else forced == "0"
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kwargs)
