"""The event queue: what the hook hands to the drainer, one marker file per SFTPGo event.

The hook does not act on an event. Its fast path (``core/enqueue.py``) writes a *marker* (the
event's ``SFTPGO_*`` variables) in the spool folder and makes sure one drainer runs; the
drainer (``core/drainer.py``) runs the hook's logic on each queued event and ingests the
uploaded files, many of them in one process with one InfluxDB client.

Layout of the spool (``<report folder>/queue``, the report folder being ``TSV_REPORT_DIR``,
else ``<data folder>/../logs/reports``)::

    queue/<ns>-<pid>.event   a queued event, oldest first
    queue/.work/<same name>  taken by the drainer, removed once its outcome is logged
    queue/.tmp/              markers being written (renamed into queue/ when complete)
    queue/.drainer.lock      flock held by the one drainer
    queue/.drainers.log      "acquired <pid>" / "released <pid>", written by the lock's holder
                             (who held it, for an operator or a test; cut past 64 kB)

**Exactly one drainer.** Whoever holds the ``flock`` of ``.drainer.lock`` is the drainer. The
hook, after writing its marker, tries the lock without waiting: held, a drainer runs and
will see the marker; free, the hook takes it and starts the drainer with the locked
descriptor (the lock belongs to the open file, which the drainer inherits), so two drainers
never run. A drainer that finds the spool empty releases the lock and then looks again: a
marker written before that second look is seen (it takes the lock back, unless a new drainer
already has it), and a hook that wrote after it finds the lock free and starts a drainer.
No marker is stranded.

**A killed drainer loses nothing.** Its taken markers stay in ``.work/``; the next drainer
puts them back in the queue before anything else. The files themselves stay where they are
until ingested, so the sweep timer takes them too (an event whose file a sweep already
ingested ends as ``skipped``). A file is never ingested twice at once: the drainer claims it
as every run does (``core/lifecycle.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Mapping
from pathlib import Path

from core.enqueue import (
    QUEUED_NS,
    SUFFIX,
    WORK,
    decode_event,
    encode_event,
    spool_path,
    try_lock,
    write_marker,
)

JOURNAL_NAME = ".drainers.log"
JOURNAL_MAX_BYTES = 64 << 10


def spool_folder(data_dir: Path, report_dir: str | None) -> Path:
    """Where the queue lives: ``queue/`` in the parser's report folder."""
    return Path(spool_path(str(data_dir), report_dir or ""))


class Marker:
    """One queued event: its marker file and the event's variables."""

    __slots__ = ("event", "path")

    def __init__(self, path: Path, event: dict[str, str]) -> None:
        self.path = path
        self.event = event

    @property
    def queued_ns(self) -> int | None:
        value = self.event.get(QUEUED_NS, "")
        return int(value) if value.isdigit() else None


class Spool:
    """The queue folder (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.work = folder / WORK
        self.journal = folder / JOURNAL_NAME

    # -- the hook's side -----------------------------------------------------------------
    def enqueue(self, environ: Mapping[str, str], queued_ns: int) -> Path:
        """Write the marker of an event (its ``SFTPGO_*`` variables) atomically."""
        return Path(write_marker(str(self.folder), encode_event(dict(environ), queued_ns)))

    def try_lock(self) -> int | None:
        """The drainer lock's descriptor when this process got it, else None (held)."""
        return try_lock(str(self.folder))

    def is_locked(self) -> bool:
        """True while a drainer holds the lock (a test's or an operator's look)."""
        descriptor = self.try_lock()
        if descriptor is None:
            return True
        os.close(descriptor)
        return False

    # -- the drainer's side --------------------------------------------------------------
    def queued(self) -> list[Path]:
        """Queued markers, oldest first."""
        try:
            names = sorted(
                name
                for name in os.listdir(self.folder)
                if name.endswith(SUFFIX) and not name.startswith(".")
            )
        except FileNotFoundError:
            return []
        return [self.folder / name for name in names]

    def recover(self) -> int:
        """Put back the markers a killed drainer had taken; how many. Only the lock's holder
        calls it."""
        count = 0
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.work):
                os.replace(self.work / name, self.folder / name)
                count += 1
        return count

    def take(self, limit: int) -> list[Marker]:
        """Move up to ``limit`` queued markers to ``.work/`` and read them."""
        taken = []
        for path in self.queued()[:limit]:
            target = self.work / path.name
            try:
                os.replace(path, target)
            except FileNotFoundError:
                continue
            try:
                event = decode_event(target.read_bytes())
            except OSError:
                event = {}
            taken.append(Marker(target, event))
        return taken

    def note(self, what: str) -> None:
        """A line of the drainers' journal; only the lock's holder writes it."""
        with contextlib.suppress(OSError):
            if what == "acquired" and self.journal.stat().st_size > JOURNAL_MAX_BYTES:
                os.truncate(self.journal, 0)
        with contextlib.suppress(OSError), open(self.journal, "a", encoding="utf-8") as stream:
            stream.write(f"{what} {os.getpid()}\n")

    def done(self, marker: Marker) -> None:
        """The marker's outcome is logged: forget it."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(marker.path)


def release(descriptor: int) -> None:
    """Release the drainer lock (closing the last descriptor of the open file does it)."""
    with contextlib.suppress(OSError):
        fcntl.flock(descriptor, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(descriptor)
