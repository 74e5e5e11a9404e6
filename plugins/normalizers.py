"""Built-in text normalizers: full-width → half-width, whitespace, Traditional → Simplified,
case folding.

Choose them at training (`tagger train --normalize nfkc --normalize t2s`); the tagger
saves them and applies them, in the same order, to every text it predicts. The rules are
the ones `tagger validate` uses to find duplicate names (`tagger_core.match_key`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tagger_core import Normalizer, hookimpl, tidy_whitespace, to_half_width, to_simplified


class NfkcNormalizer(Normalizer):
    name = "nfkc"
    description = (
        "Unicode NFKC: full-width letters, digits and brackets to half-width "
        "(（外滩店） → (外滩店), ＡＢＣ → ABC)."
    )

    def normalize(self, text: str) -> str:
        return to_half_width(text)


class WhitespaceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    between_cjk: bool = Field(
        default=True, description="also remove spaces between two Chinese characters"
    )


class WhitespaceNormalizer(Normalizer[WhitespaceParams]):
    name = "whitespace"
    description = "Collapse runs of whitespace to one space, strip the ends, drop spaces between Chinese characters."

    def normalize(self, text: str) -> str:
        return tidy_whitespace(text, between_cjk=self.params.between_cjk)


class SimplifiedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: Literal["t2s", "hk2s", "tw2s", "tw2sp"] = Field(
        default="t2s",
        description="OpenCC conversion: t2s (generic), hk2s / tw2s (Hong Kong / Taiwan "
        "variants), tw2sp (Taiwan, with phrases)",
    )


class SimplifiedNormalizer(Normalizer[SimplifiedParams]):
    name = "t2s"
    description = "Traditional → Simplified Chinese with OpenCC (香港海洋公園 → 香港海洋公园)."

    def normalize(self, text: str) -> str:
        return to_simplified(text, self.params.config)


class CasefoldNormalizer(Normalizer):
    name = "casefold"
    description = "Case folding for Latin-script names (Disneyland → disneyland)."

    def normalize(self, text: str) -> str:
        return text.casefold()


@hookimpl
def register_normalizers(register):  # type: ignore[no-untyped-def]
    for normalizer in (
        NfkcNormalizer,
        WhitespaceNormalizer,
        SimplifiedNormalizer,
        CasefoldNormalizer,
    ):
        register(normalizer)
