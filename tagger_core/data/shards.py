"""A catalogue in shards: an input that is a file, a folder or a glob, and the output file
each shard is tagged into.

A folder is read recursively in name order (Hive-style ``key=value`` folders included).
Hidden files and those starting with ``_`` (``_SUCCESS``, ``.crc``, our own partial
writes) are not data; any other file whose format no data source reads is refused rather
than skipped, so that nothing in the catalogue is silently left untagged."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from tagger_core.errors import DataError, TaggerError
from tagger_core.files import check_target
from tagger_core.registry import data_source_for

GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class Shard:
    """One input file and the file its predictions go to."""

    path: Path
    output: Path


def is_glob(spec: str | Path) -> bool:
    return not Path(spec).exists() and bool(GLOB_CHARACTERS & set(str(spec)))


def is_sharded(spec: str | Path) -> bool:
    """Whether ``spec`` names several files (a folder or a glob) rather than one."""
    return Path(spec).is_dir() or is_glob(spec)


def find_shards(spec: str | Path, format: str | None = None) -> tuple[list[Path], Path]:
    """The data files that ``spec`` names, in order, and the folder they are relative to
    (the folder itself, or a glob's fixed part)."""
    path = Path(spec)
    if path.is_file():
        return [path], path.parent
    if path.is_dir():
        root = path
        found = sorted(p for p in path.rglob("*") if p.is_file())
    elif is_glob(spec):
        root = glob_root(str(spec))
        found = sorted(Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file())
    else:
        raise DataError("file or folder does not exist", file=path)
    shards = [p for p in found if not is_hidden(p.relative_to(root))]
    if not shards:
        raise DataError("no data files here", file=spec)
    for shard in shards:
        data_source_for(shard, format)  # a file no data source reads: refused, not skipped
    return shards, root


def is_hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


def glob_root(pattern: str) -> Path:
    """The longest leading folder of ``pattern`` without glob characters."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if GLOB_CHARACTERS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def plan_outputs(
    shards: list[Path],
    root: Path,
    output: Path,
    format: str | None,
    force: bool,
    resume: bool = False,
) -> list[Shard]:
    """Each shard's output under the folder ``output``, at the same relative path with the
    output format's suffix (the shard's own format unless ``format`` names one). Targets
    that exist (without ``force``) or that two shards would share are refused up front;
    with ``resume``, a shard whose output exists is left out: outputs appear only once
    complete, so an interrupted job continues where it stopped."""
    if output.exists() and not output.is_dir():
        raise TaggerError(f"{output} is a file; tagging several shards needs an output folder")
    planned: dict[Path, Path] = {}
    for shard in shards:
        source = data_source_for(shard, format)
        if not source.writable:
            raise DataError(
                f"the {source.name} data source cannot be written; name a format that can "
                "with --output-format (`tagger plugins` lists them)",
                file=shard,
            )
        suffix = shard.suffix if not format else source.suffixes[0]
        target = output / shard.relative_to(root).with_suffix(suffix)
        if target in planned:
            raise TaggerError(
                f"{planned[target]} and {shard} would both be written to {target}; "
                "give them different names or tag them separately"
            )
        planned[target] = shard
    if resume:
        planned = {target: shard for target, shard in planned.items() if not target.is_file()}
    for target in planned:
        check_target(target, force)
    return [Shard(path, target) for target, path in planned.items()]
