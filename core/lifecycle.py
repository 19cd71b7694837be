"""The life of an uploaded file: claimed, then moved to ``parsed/`` or ``error/``, never lost.

**Claim.** Before a process works on a file it opens it and takes an exclusive, non-blocking
``flock`` on it (``take``). Hooks and sweeps that find the file locked leave it alone. The
kernel drops the lock when the holder exits, however it exits, so a killed process leaves no
stale claim: the next run simply takes the file. After locking, the claim checks that the
path still names the file it locked, because a slower process may lock a file that the first
one has already moved away. A file that cannot be opened for reading is not "taken by
another process": the claim says it is unreadable, with the system's reason.

**One inode.** The claim's descriptor is what the engine reads, and what is moved: the move
links the inode behind the descriptor (through ``/proc/self/fd``), not whatever the path
names by then, and removes the upload's name only while it still names that inode. SFTP
overwrites by rename, so a new upload may replace the file during ingestion; the new file
then stays where it is for the next run. ``Claim.unread_change`` tells a file that grew or
was replaced after it was read.

**Move.** A file is linked into ``<device>/parsed/`` or ``<device>/error/`` under a name that
is free, then unlinked from the upload folder, so an existing file is never overwritten: the
same content already there means one copy is kept; different content keeps both, the new one
named ``<stem>.2.tsv``, ``<stem>.3.tsv``... A process killed between the two steps leaves the
file in both places; the next run ingests it again (writes are idempotent) and keeps one copy.
``parsed/`` and ``error/`` must be real folders: a plain file of that name or a symbolic link
(which could lead out of the data folder) is refused with ``DoneFolderError`` before anything
is read, and so is a folder the process cannot write to.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import filecmp
import functools
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.layout import ERROR_DIR, PARSED_DIR
from core.report import write_json_atomically

MINE = "mine"
TAKEN = "taken"  # another process holds the lock
GONE = "gone"  # the path no longer exists, or names another file than the one locked
UNREADABLE = "unreadable"  # cannot be opened for reading (permissions, a link...)

SIDECAR_SUFFIX = ".error.json"
_NAME_MAX = 255  # bytes, for the common Linux file systems


class DoneFolderError(OSError):
    """``parsed/`` or ``error/`` of a device folder cannot take files (see the docstring)."""

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass
class Claim:
    """An open, locked file; true when this process holds it."""

    path: Path
    state: str
    descriptor: int | None = None
    reason: str | None = None  # why the state is not MINE, when the system said
    _identity: tuple[int, int] | None = None
    _size: int = 0  # when the claim was taken

    def __bool__(self) -> bool:
        return self.state == MINE

    def reader(self) -> Any:
        """A binary stream of the claimed inode, from its start (close it after use)."""
        assert self.descriptor is not None
        duplicate = os.dup(self.descriptor)
        os.lseek(duplicate, 0, os.SEEK_SET)
        return os.fdopen(duplicate, "rb")

    def unread_change(self, bytes_read: int | None) -> str | None:
        """Why the file at the path is not the file read (None when it is): replaced by
        another file, gone, or grown after the last byte read (``bytes_read``; None when
        the read stopped early, as on bad content: then any change since the claim)."""
        assert self.descriptor is not None
        try:
            current = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return "the file was removed during ingestion"
        if (current.st_dev, current.st_ino) != self._identity:
            return "the file was replaced during ingestion (a new upload under the same name)"
        size = os.fstat(self.descriptor).st_size
        if bytes_read is None and size != self._size:
            return f"the file changed during ingestion ({self._size} bytes, {size} now)"
        if bytes_read is not None and size != bytes_read:
            return f"the file changed during ingestion ({bytes_read} bytes read, {size} now)"
        return None

    def replaced(self) -> bool:
        """True when the path no longer names the claimed inode."""
        try:
            current = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return True
        return (current.st_dev, current.st_ino) != self._identity

    @property
    def content_path(self) -> Path:
        """A path that names the claimed inode itself, whatever the upload's name holds now."""
        if self.descriptor is not None and Path(f"/proc/self/fd/{self.descriptor}").exists():
            return Path(f"/proc/self/fd/{self.descriptor}")
        return self.path


@contextmanager
def take(path: Path) -> Iterator[Claim]:
    """``with take(path) as held:`` held is true when this process holds the file."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        yield Claim(path, GONE, reason="no longer there")
        return
    except OSError as error:
        yield Claim(path, UNREADABLE, reason=f"cannot open the file: {error.strerror}")
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            yield Claim(path, TAKEN)
            return
        locked = os.fstat(descriptor)
        identity = (locked.st_dev, locked.st_ino)
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            yield Claim(path, GONE, reason="moved by another process")
            return
        if (current.st_dev, current.st_ino) != identity:
            yield Claim(path, GONE, reason="moved by another process")
            return
        yield Claim(path, MINE, descriptor, _identity=identity, _size=locked.st_size)
    finally:
        os.close(descriptor)


@contextmanager
def claim(path: Path) -> Iterator[bool]:
    """``with claim(path) as mine:`` mine is True when this process holds the file."""
    with take(path) as held:
        yield bool(held)


def check_done_folder(directory: Path, create: bool = False) -> None:
    """Raise DoneFolderError unless ``directory`` is a writable real folder, or is missing
    from a folder where it can be created (created when ``create`` is true)."""
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        if not create:
            if not os.access(directory.parent, os.W_OK | os.X_OK):
                raise DoneFolderError(
                    errno.EACCES, f"{directory.name}/ cannot be created: folder not writable"
                ) from None
            return
        try:
            directory.mkdir()
        except FileExistsError:
            pass  # created by another process meanwhile: checked below
        except OSError as error:
            raise DoneFolderError(
                error.errno, f"cannot create {directory.name}/: {error.strerror}"
            ) from None
        info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode):
        raise DoneFolderError(
            errno.ELOOP,
            f"{directory.name} is a symbolic link, not a folder: remove it (files are never "
            "moved through a link)",
        )
    if not stat.S_ISDIR(info.st_mode):
        raise DoneFolderError(
            errno.ENOTDIR,
            f"{directory.name} is a file, not a folder: rename it so that {directory.name}/ "
            "can be created",
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DoneFolderError(errno.EACCES, f"{directory.name}/ is not writable by this user")


def _fit(name: str, extra: str = "") -> str:
    """``name`` + ``extra`` within the file system's name limit: a name too long keeps its
    beginning and a short hash of the whole, so distinct names stay distinct."""
    if len((name + extra).encode()) <= _NAME_MAX:
        return name + extra
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]
    budget = _NAME_MAX - len(extra.encode()) - len(digest) - 1
    kept = name.encode()[:budget].decode("utf-8", "ignore")
    return f"{kept}~{digest}{extra}"


def sidecar_path(target: Path) -> Path:
    """``<file>.error.json`` beside a file in ``error/`` (shortened for very long names)."""
    return target.with_name(_fit(target.name, SIDECAR_SUFFIX))


def _free_target(directory: Path, name: str, content: Path) -> tuple[Path, bool]:
    """(target path, True when an identical file is already there)."""
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    candidate = directory / name
    number = 1
    while candidate.exists():
        if filecmp.cmp(candidate, content, shallow=False):
            return candidate, True
        number += 1
        tail = f".{number}.{suffix}" if dot else f".{number}"
        candidate = directory / _fit(stem, tail)
    return candidate, False


@dataclass
class Moved:
    """Where the content went, and what else a reader of the report should know."""

    target: Path | None  # None: nothing was moved (see left_in_place)
    duplicate: bool  # an identical copy was already there: one copy kept
    left_in_place: str | None = None  # why the upload's name was not removed


def move_without_overwrite(
    source: Path | Claim,
    directory: Path,
    before_unlink: Callable[[Path], None] | None = None,
) -> Moved:
    """Move ``source`` (a path, or the inode of a claim) into ``directory`` without replacing
    anything there.

    ``before_unlink(target)`` runs once the content is safe in ``directory`` and before the
    source's name is removed (used to write the ``.error.json`` next to the file); when it
    fails, the link just made is removed again and the file stays where it was.
    """
    held = source if isinstance(source, Claim) else None
    if isinstance(source, Claim):
        path, content = source.path, source.content_path
    else:
        path = content = source
    check_done_folder(directory, create=True)
    made = False
    while True:
        target, duplicate = _free_target(directory, path.name, content)
        if duplicate:
            break
        try:
            os.link(content, target, follow_symlinks=True)
            made = True
            break
        except FileExistsError:
            continue  # another process took that name meanwhile: look again
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # No hard links here (some network file systems): rename after the check.
            if held is not None and held.replaced():
                return Moved(None, False, "the file was replaced: left for the next run")
            os.rename(path, target)
            if before_unlink is not None:
                _undo_on_failure(before_unlink, target, functools.partial(os.rename, target, path))
            return Moved(target, False)
    if before_unlink is not None:
        _undo_on_failure(before_unlink, target, target.unlink if made else None)
    if held is not None and held.replaced():
        return Moved(target, duplicate, "another file is at the upload's name now: left there")
    path.unlink()
    return Moved(target, duplicate)


def _undo_on_failure(
    step: Callable[[Path], None], target: Path, undo: Callable[[], object] | None
) -> None:
    try:
        step(target)
    except BaseException:
        if undo is not None:
            with contextlib.suppress(OSError):  # else both copies remain: the next run keeps one
                undo()
        raise


def move_to_parsed(source: Path | Claim) -> Moved:
    """Move an ingested file to ``<device>/parsed/``."""
    path = source.path if isinstance(source, Claim) else source
    return move_without_overwrite(source, path.parent / PARSED_DIR)


def move_to_error(source: Path | Claim, details: dict[str, Any]) -> Moved:
    """Move a refused file to ``<device>/error/`` with ``<file>.error.json`` beside it."""
    path = source.path if isinstance(source, Claim) else source

    def write_reason(target: Path) -> None:
        write_json_atomically(sidecar_path(target), details)

    return move_without_overwrite(source, path.parent / ERROR_DIR, before_unlink=write_reason)
