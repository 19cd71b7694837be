"""The upload queue: what the hook hands to the drainer, one marker file per event.

The hook does not ingest. It writes a *marker* (a small JSON file) in the spool folder and
makes sure one drainer runs; the drainer (``core/drainer.py``) ingests the queued files, many
of them in one process with one InfluxDB client. Standard library only: the hook imports it.

Layout of the spool (``<report folder>/queue``, the report folder being ``TSV_REPORT_DIR``,
else ``<data folder>/../logs/reports``)::

    queue/<ns>-<pid>-<kind>.json   a queued event (kind ``file`` or ``sweep``), oldest first
    queue/.work/<same name>        taken by the drainer, removed once its outcome is logged
    queue/.tmp/                    markers being written (renamed into queue/ when complete)
    queue/.drainer.lock            flock held by the one drainer
    queue/.drainers.log            "acquired <pid>" / "released <pid>", written by the lock's
                                   holder (what an operator or a test reads to see who held
                                   it; cut when it passes 64 kB)

**Exactly one drainer.** Whoever holds the ``flock`` of ``.drainer.lock`` is the drainer. The
hook, after writing its marker, tries the lock without waiting: held by someone, a drainer
runs and will see the marker; free, the hook takes it and starts the drainer with the locked
descriptor (the lock belongs to the open file, which the drainer inherits), so two drainers
never run. A drainer that finds the spool empty releases the lock and then looks again: a
marker written before that second look is seen (it takes the lock back, unless a new drainer
already has it), and a hook that wrote after it finds the lock free and starts a drainer.
No marker is stranded.

**A killed drainer loses nothing.** Its taken markers stay in ``.work/``; the next drainer
puts them back in the queue before anything else. The files themselves stay where they are
until ingested, so the sweep timer takes them too (a marker whose file a sweep already
ingested ends as ``skipped``). A file is never ingested twice at once: the drainer claims it
as every run does (``core/lifecycle.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "file"
SWEEP = "sweep"
LOCK_NAME = ".drainer.lock"
JOURNAL_NAME = ".drainers.log"
JOURNAL_MAX_BYTES = 64 << 10


def spool_folder(data_dir: Path, report_dir: str | None) -> Path:
    """Where the queue lives: ``queue/`` in the parser's report folder."""
    reports = Path(report_dir) if report_dir else data_dir.resolve().parent / "logs" / "reports"
    return reports / "queue"


@dataclass(frozen=True)
class Marker:
    """One queued event: its marker file and what it says."""

    path: Path
    entry: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.entry.get("kind", ""))


class Spool:
    """The queue folder (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.work = folder / ".work"
        self.tmp = folder / ".tmp"
        self.lock_path = folder / LOCK_NAME
        self.journal = folder / JOURNAL_NAME

    def ensure(self) -> None:
        for folder in (self.folder, self.work, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    # -- the hook's side -----------------------------------------------------------------
    def enqueue(self, entry: Mapping[str, Any]) -> Path:
        """Write a marker atomically (complete or absent); its name orders the queue."""
        self.ensure()
        kind = str(entry["kind"])
        name = f"{time.time_ns():020d}-{os.getpid()}-{kind}.json"
        body = json.dumps({**entry, "queued_ns": time.time_ns()}).encode()
        temporary = self.tmp / name
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, body)
        finally:
            os.close(descriptor)
        target = self.folder / name
        os.replace(temporary, target)
        return target

    def try_lock(self) -> int | None:
        """The drainer lock's descriptor when this process got it, else None (held)."""
        self.ensure()
        descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        return descriptor

    def is_locked(self) -> bool:
        """True while a drainer holds the lock (a test's or an operator's look)."""
        descriptor = self.try_lock()
        if descriptor is None:
            return True
        os.close(descriptor)
        return False

    # -- the drainer's side --------------------------------------------------------------
    def queued(self, kind: str | None = None) -> list[Path]:
        """Queued markers, oldest first."""
        try:
            names = sorted(
                name
                for name in os.listdir(self.folder)
                if name.endswith(".json") and not name.startswith(".")
            )
        except FileNotFoundError:
            return []
        if kind is not None:
            names = [name for name in names if name.endswith(f"-{kind}.json")]
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

    def take(self, kind: str, limit: int) -> list[Marker]:
        """Move up to ``limit`` queued markers of ``kind`` to ``.work/`` and read them; an
        unreadable marker is dropped (its file, if any, stays for the sweep)."""
        self.ensure()
        taken = []
        for path in self.queued(kind)[:limit]:
            target = self.work / path.name
            try:
                os.replace(path, target)
            except FileNotFoundError:
                continue
            try:
                entry = json.loads(target.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                entry = {"kind": kind, "unreadable": True}
            taken.append(Marker(target, entry))
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
