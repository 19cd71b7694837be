"""The life of an uploaded file: claimed, then moved to ``parsed/`` or ``error/``, never lost.

**Claim.** Before a process works on a file it takes an exclusive, non-blocking ``flock`` on
it. Hooks and sweeps that find the file locked leave it alone. The kernel drops the lock when
the holder exits, however it exits, so a killed process leaves no stale claim: the next run
simply takes the file. After locking, the claim checks that the path still names the file it
locked, because a slower process may lock a file that the first one has already moved away.

**Move.** A file is linked into ``<device>/parsed/`` or ``<device>/error/`` under a name that
is free, then unlinked from the upload folder, so an existing file is never overwritten: the
same content already there means one copy is kept; different content keeps both, the new one
named ``<stem>.2.tsv``, ``<stem>.3.tsv``... A process killed between the two steps leaves the
file in both places; the next run ingests it again (writes are idempotent) and keeps one copy.
"""

from __future__ import annotations

import errno
import fcntl
import filecmp
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.layout import ERROR_DIR, PARSED_DIR
from core.report import write_json_atomically


@contextmanager
def claim(path: Path) -> Iterator[bool]:
    """``with claim(path) as mine:`` mine is True when this process holds the file."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        yield False  # gone (moved by another process) or replaced by a link
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            yield False
            return
        locked = os.fstat(descriptor)
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            yield False
            return
        yield (current.st_dev, current.st_ino) == (locked.st_dev, locked.st_ino)
    finally:
        os.close(descriptor)


def _free_target(directory: Path, name: str, source: Path) -> tuple[Path, bool]:
    """(target path, True when an identical file is already there)."""
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    candidate = directory / name
    number = 1
    while candidate.exists():
        if filecmp.cmp(candidate, source, shallow=False):
            return candidate, True
        number += 1
        candidate = directory / (f"{stem}.{number}.{suffix}" if dot else f"{stem}.{number}")
    return candidate, False


def move_without_overwrite(
    source: Path, directory: Path, before_unlink: Any = None
) -> tuple[Path, bool]:
    """Move ``source`` into ``directory`` without replacing anything there.

    Returns (where the content now is, True when an identical copy was already there).
    ``before_unlink(target)`` runs once the content is safe in ``directory`` and before the
    source disappears (used to write the ``.error.json`` next to the file).
    """
    directory.mkdir(exist_ok=True)
    while True:
        target, duplicate = _free_target(directory, source.name, source)
        if duplicate:
            break
        try:
            os.link(source, target)
            break
        except FileExistsError:
            continue  # another process took that name meanwhile: look again
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # No hard links here (some network file systems): rename after the check.
            os.rename(source, target)
            if before_unlink is not None:
                before_unlink(target)
            return target, False
    if before_unlink is not None:
        before_unlink(target)
    source.unlink()
    return target, duplicate


def move_to_parsed(path: Path) -> tuple[Path, bool]:
    """Move an ingested file to ``<device>/parsed/``."""
    return move_without_overwrite(path, path.parent / PARSED_DIR)


def move_to_error(path: Path, details: dict[str, Any]) -> tuple[Path, bool]:
    """Move a refused file to ``<device>/error/`` with ``<file>.error.json`` beside it."""

    def write_reason(target: Path) -> None:
        write_json_atomically(target.with_name(target.name + ".error.json"), details)

    return move_without_overwrite(path, path.parent / ERROR_DIR, before_unlink=write_reason)
