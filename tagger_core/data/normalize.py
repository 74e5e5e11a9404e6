"""Normal forms of names, shared by the built-in normalizers and by duplicate detection.

The same entity is often written in several ways: full-width or half-width letters and
brackets, Traditional or Simplified characters, other letter case, extra spaces. The
functions here turn such variants into one form, so that `tagger validate` and `tagger
split` treat them as one name, and normalizer plugins can reuse the exact same rules.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

_SPACES = re.compile(r"\s+")
# A space between two CJK characters (or CJK punctuation) carries no meaning in Chinese.
_CJK = r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]"
_CJK_GAP = re.compile(rf"(?<={_CJK})\s+(?={_CJK})")


def to_half_width(text: str) -> str:
    """Unicode NFKC: full-width letters, digits and brackets become their ASCII forms,
    compatibility characters (ligatures, circled digits, ideographic space) are unified."""
    return unicodedata.normalize("NFKC", text)


def tidy_whitespace(text: str, *, between_cjk: bool = True) -> str:
    """Runs of whitespace become one space, the ends are stripped, and (by default) spaces
    between two Chinese characters are removed."""
    text = _SPACES.sub(" ", text).strip()
    return _CJK_GAP.sub("", text) if between_cjk else text


@lru_cache(maxsize=8)
def _opencc(config: str) -> Any:
    import opencc  # imported on first use: most commands never convert scripts

    return opencc.OpenCC(config)


# OpenCC's generic Traditional → Simplified conversion.
OPENCC_TO_SIMPLIFIED = "t2s"


def to_simplified(text: str, config: str = OPENCC_TO_SIMPLIFIED) -> str:
    """Traditional → Simplified Chinese with OpenCC (``t2s``, or ``hk2s``/``tw2s`` for
    Hong Kong and Taiwan variants)."""
    return str(_opencc(config).convert(text))


# The steps of the matching key, in order, each with the name used in reports.
KEY_STEPS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("full/half width", to_half_width),
    ("Traditional/Simplified", to_simplified),
    ("case", str.casefold),
    ("spaces", lambda text: _SPACES.sub("", text)),
)


def match_key(text: str) -> str:
    """The form under which two names count as the same: NFKC, Simplified characters,
    case-folded, without any whitespace."""
    for _, step in KEY_STEPS:
        text = step(text)
    return text


def differences(a: str, b: str) -> list[str]:
    """Which of the matching steps tell ``a`` and ``b`` apart, for readable reports."""
    found = []
    for name, step in KEY_STEPS:
        a2, b2 = step(a), step(b)
        if (a2 != a or b2 != b) and a != b:
            found.append(name)
        a, b = a2, b2
    return found
