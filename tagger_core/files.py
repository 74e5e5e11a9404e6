"""Writing files so that nothing is lost: every output goes to a temporary file beside its
target and is renamed over it only when complete, and every target is checked before any
work starts."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tagger_core.errors import TaggerError

PARTIAL = ".partial"


def check_target(path: str | Path, force: bool) -> None:
    """Refuse, before any work, a target that would fail or destroy something: one that
    exists (without ``force``), a directory where a file goes, a parent that is a file or
    that cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise TaggerError(f"{path} is a directory; give a file name")
    if path.exists() and not force:
        raise TaggerError(f"{path} already exists; use --force to replace it")
    check_parent(path)


def check_parent(path: str | Path) -> None:
    """The nearest existing folder above ``path`` must be a folder we can write in."""
    path = Path(path)
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise TaggerError(f"{ancestor} is a file, not a folder: cannot write {path}")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise TaggerError(f"{ancestor} is not writable: cannot write {path}")
            return


def check_targets(paths: Iterable[str | Path | None], force: bool) -> None:
    """:func:`check_target` for every path given (None: not asked for)."""
    for path in paths:
        if path is not None:
            check_target(path, force)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside ``target`` (same suffix) to write to; renamed onto
    ``target`` when the block ends, removed if it fails or is interrupted. A kill leaves
    the old file or none, never a fragment under the target's name."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f"{PARTIAL}{target.suffix}", dir=target.parent
    )
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def exclusive(target: str | Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``target`` while writing it: a second writer of the same
    target is refused at once, not after its work. A lock left by a killed process (its
    pid gone) is taken over."""
    target = Path(target)
    lock = target.parent / f".{target.name}.lock"
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _holder_alive(lock):
                raise TaggerError(
                    f"{target} is being written by another process (lock {lock}); wait for "
                    "it, or delete the lock if no such process runs"
                ) from None
            lock.unlink(missing_ok=True)  # stale: its writer was killed
            continue
        with os.fdopen(handle, "w") as file:
            file.write(str(os.getpid()))
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _holder_alive(lock: Path) -> bool:
    try:
        pid = int(lock.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as temporary:
        temporary.write_bytes(data)
