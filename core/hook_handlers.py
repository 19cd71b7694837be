"""What the hook does with each SFTPGo event: the "event -> action" table of ``core/hook.py``.

``EventHandler.handle`` sends an event to the handler of its action (upload, rename, mkdir)
or to the post-disconnect handler; each handler checks the path and the names
(``core/hook_paths.py``) and ends the event with ``Finished`` (an outcome), by starting a
detached job (``core/hook_jobs.py``), or by queueing its work:

- in the drainer (``collect`` set), an upload's file or a disconnection's sweep is handed to
  it as a ``Work`` (and the handler ends with ``Handed``); the drainer ingests the files of
  many events together and logs each event's line once its work is done;
- run directly (``python -m core.hook``, when ``core/enqueue.py`` could not queue the event),
  the event is queued in the spool and a drainer started unless one runs, as
  ``core/enqueue.py`` does.

Standard library only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from core.hook_config import Config
from core.hook_event import CallKind, Event, Finished, Handed
from core.hook_jobs import CREATE_PLAYBOOK, DASHBOARDS_PLAYBOOK, Jobs
from core.hook_paths import DataFolder, RefusedError
from core.layout import is_tsv_name
from core.outcomes import HookExit, HookOutcome

FILE, SWEEP = "file", "sweep"  # the work an event hands to the drainer
CHANNELS_FILE = "channels.csv"
HANDLED_ACTIONS = ("upload", "rename", "mkdir")


@dataclass(frozen=True)
class Work:
    """What an event hands to the drainer: a file to ingest, or a company to sweep."""

    kind: str  # FILE or SWEEP
    target: str  # the file's path below the data folder, or the company


Collector = Callable[[Work], None]


class EventHandler:
    """One SFTPGo event (a file action or a disconnection) through to its outcome."""

    def __init__(
        self,
        config: Config,
        event: Event,
        folder: DataFolder,
        jobs: Jobs,
        environ: Mapping[str, str],
        *,
        collect: Collector | None = None,
    ) -> None:
        self.config = config
        self.event = event
        self.folder = folder
        self.jobs = jobs
        self.environ = environ  # the whole event, queued as it came
        self.collect = collect  # set in the drainer: queued work goes there

    def handle(self) -> NoReturn:
        """Act on the event; always ends with ``Finished`` or ``Handed``."""
        event = self.event
        if event.kind is CallKind.DISCONNECT:
            self._on_post_disconnect()
        if event.action in HANDLED_ACTIONS and event.provider != "0":
            raise Finished(
                HookOutcome.IGNORED, f"not on the local filesystem (provider {event.provider})"
            )
        if event.action == "upload":
            self._on_upload()
        if event.action == "rename":
            self._on_rename()
        if event.action == "mkdir":
            self._on_folder(event.path)
        raise Finished(HookOutcome.IGNORED, "action not handled by PowerView")

    # -- events ------------------------------------------------------------------------------
    def _on_upload(self) -> NoReturn:
        path, status = self.event.path, self.event.status
        if status == "1":
            self._on_file(path)
        if status in ("2", "3"):
            name = path.rpartition("/")[2]
            if not is_tsv_name(name):
                raise Finished(
                    HookOutcome.IGNORED, f"not a .tsv file (upload failed, status {status})"
                )
            if not os.path.lexists(path):
                raise Finished(
                    HookOutcome.IGNORED, f"upload failed (status {status}), no file left"
                )
            self._on_file(path, reject=f"upload failed: SFTPGo status {status}")
        raise Finished(HookOutcome.IGNORED, f"unknown upload status {status!r}: left for the sweep")

    def _on_rename(self) -> NoReturn:
        target = self.event.target
        self._show(target)
        if (self.event.status or "1") != "1":
            raise Finished(HookOutcome.IGNORED, "rename failed")
        if os.path.isdir(target) and not os.path.islink(target):
            self._on_folder(target)
        self._on_file(target)

    def _on_file(self, path: str, reject: str | None = None) -> NoReturn:
        self._show(path)
        name = path.rpartition("/")[2]
        if name == CHANNELS_FILE and reject is None:
            self._on_channels_file(path)
        if not is_tsv_name(name):
            raise Finished(HookOutcome.IGNORED, "not a .tsv file")
        if not os.path.lexists(path):
            raise Finished(HookOutcome.SKIPPED, "no longer there: taken by another run")
        parts = self._locate(path)
        if len(parts) != 4:
            raise Finished(HookOutcome.REFUSED, "not at <company>/<campaign>/<device>/<file>.tsv")
        self.folder.check_names(parts[:3], ("company", "campaign", "device folder"))
        if reject is not None:
            self.jobs.reject(parts, reject)
        self._queue(Work(FILE, "/".join(parts)), "ingestion")

    def _on_channels_file(self, path: str) -> NoReturn:
        parts = self._locate(path)
        if len(parts) != 3:
            raise Finished(HookOutcome.IGNORED, "channels.csv belongs in <company>/<campaign>/")
        self.folder.check_names(parts[:2], ("company", "campaign"))
        self.jobs.detach("dashboards", parts[:2])
        raise Finished(HookOutcome.STARTED, f"{DASHBOARDS_PLAYBOOK} for {' '.join(parts[:2])}")

    def _on_folder(self, path: str) -> NoReturn:
        self._show(path)
        parts = self._locate(path)
        if not os.path.isdir(path):
            raise Finished(HookOutcome.IGNORED, "not a folder")
        if len(parts) in (1, 2):
            self.folder.check_names(parts, ("company", "campaign"))
            self.jobs.detach("playbook", parts)
            raise Finished(HookOutcome.STARTED, f"{CREATE_PLAYBOOK} for {' '.join(parts)}")
        if len(parts) == 3:
            raise Finished(HookOutcome.IGNORED, "device folder: nothing to create")
        raise Finished(HookOutcome.IGNORED, "below a device folder")

    def _on_post_disconnect(self) -> NoReturn:
        company = self.event.user
        self.event.shown_path = company
        if not company:
            raise Finished(HookOutcome.IGNORED, "no user (closed before login)")
        # One SFTPGo user per company, named as the company, whose home is <data>/<company>.
        self.folder.check_names([company], ("company",))
        folder = self.folder.root / company
        if folder.is_symlink() or not folder.is_dir():
            raise Finished(HookOutcome.IGNORED, "no company folder")
        self._queue(Work(SWEEP, company), f"sweep of {company}")

    # -- paths -------------------------------------------------------------------------------
    def _show(self, path: str) -> None:
        self.event.shown_path = self.folder.shown(path)

    def _locate(self, path: str) -> list[str]:
        """The parts of ``path`` below the data folder, which the log line shows from now on;
        a path that leaves the data folder ends the event as refused."""
        try:
            relative = self.folder.locate(path)
        except RefusedError as refusal:
            raise Finished(HookOutcome.REFUSED, str(refusal)) from None
        self.event.shown_path = str(relative)
        return list(relative.parts)

    # -- the queue ---------------------------------------------------------------------------
    def _queue(self, work: Work, what: str) -> NoReturn:
        """In the drainer, hand the work over (it logs the line when done). Otherwise (the
        full hook, when on-upload.sh's fast path could not queue the event): queue the event
        and make sure a drainer runs, as core/enqueue.py does."""
        if self.collect is not None:
            self.collect(work)
            raise Handed
        spool = self.config.spool
        try:
            spool.enqueue(self.environ, time.time_ns())
            descriptor = spool.try_lock()
        except OSError as error:
            reason = f"cannot queue in {spool.folder}: {error.strerror or error}"
            raise Finished(HookOutcome.FAILED, reason, HookExit.BROKEN) from None
        if descriptor is None:
            raise Finished(HookOutcome.QUEUED, f"{what} queued; the running drainer takes it")
        try:  # the lock goes with its descriptor to the drainer: never two drainers
            pid = self.jobs.detach("drain", [], keep_fd=descriptor)
        finally:
            os.close(descriptor)
        raise Finished(HookOutcome.QUEUED, f"{what} queued; drainer started (pid {pid})")
