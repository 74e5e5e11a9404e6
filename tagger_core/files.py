"""Writing files so that nothing is lost: every output goes to a temporary file beside its
target and is renamed over it only when complete, and every target is checked before any
work starts."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import stat
import sys
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


def check_targets(
    paths: Iterable[str | Path | None], force: bool, inputs: Iterable[str | Path] = ()
) -> None:
    """:func:`check_target` for every path given (None: not asked for); two outputs on
    one file, or an output on an input or inside an input folder (a tagger), are refused
    even with ``force``: one would destroy the other."""
    read = [Path(p).resolve() for p in inputs]
    seen: dict[Path, str | Path] = {}
    for path in paths:
        if path is None:
            continue
        resolved = Path(path).resolve()
        if resolved in seen:
            raise TaggerError(f"{path} is given for two outputs; each needs its own file")
        for source in read:
            if resolved == source or source in resolved.parents:
                raise TaggerError(f"{path} is an input of this command; write elsewhere")
        seen[resolved] = path
        check_target(path, force)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside ``target`` (same suffix) to write to; renamed onto
    ``target`` when the block ends, removed if it fails or is interrupted. A kill leaves
    the old file or none, never a fragment under the target's name; the hidden fragment
    it leaves (named with the writer's pid) is removed by the next write to ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    handle, name = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}.",
        suffix=f"{PARTIAL}{target.suffix}",
        dir=target.parent,
    )
    os.close(handle)
    temporary = Path(name)
    try:
        # mkstemp makes the file private (0600); the output gets the mode the old file
        # had, or what a plain open() would give.
        os.chmod(temporary, _mode_of(target) or usual_mode(0o666))
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_folder(target.parent)


def sync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a new or renamed file's name) to disk: without it a
    crash can lose the name of a file whose contents were flushed. No-op where folders
    cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename stands
    finally:
        os.close(fd)


def usual_mode(full: int) -> int:
    """``full`` (0o666 for files, 0o777 for folders) less this process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return full & ~mask


def _mode_of(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def remove_stale_partials(target: Path) -> list[Path]:
    """Remove the fragments that killed writers of ``target`` left (their pid is gone);
    a live writer's fragment is left alone."""
    name = re.compile(
        rf"\.{re.escape(target.name)}\.(\d+)\.\w+{re.escape(PARTIAL + target.suffix)}"
    )
    removed = []
    for partial in target.parent.glob(f".{glob.escape(target.name)}.*{PARTIAL}*"):
        match = name.fullmatch(partial.name)
        if match and partial.is_file() and not _alive(int(match[1])):
            partial.unlink(missing_ok=True)
            removed.append(partial)
    return removed


def exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE), so a
    folder is replaced with no moment at which its name holds nothing. False where the
    system or file system cannot: the caller falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # a libc without it (glibc < 2.28, musl)
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    return bool(done == 0)


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
    return _alive(pid)


def _alive(pid: int) -> bool:
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
