"""Everything that happens to ONE file of a run: locate, claim, read, write, move, record.

For every file: locate it in the data folder (``core/layout.py``), claim it
(``core/lifecycle.py``), stream it through the engine into InfluxDB, or in a dry run nowhere
(``core/streaming.py``), then move it to ``parsed/`` or ``error/`` and note the outcome in
its ``FileResult``. What happens to a file depends on the kind of failure
(``core/failures.py`` writes each into the result):

========================  ==============================  ==================================
failure                   the file                        the run
========================  ==============================  ==================================
data (bad content)        ``error/`` + ``.error.json``    goes on (exit code 1)
temporary (unreachable,   stays for the next sweep        goes on with the next file (exit 3)
timeout, 429, 5xx)
configuration (401, 403,  stays                           stops: every later file would fail
wrong org, 404 bucket)                                    the same way (exit code 4)
unexpected (any other     ``error/`` + ``.error.json``    goes on (exit code 5)
exception: a bug, a full  when it can be moved, else
disk, a parsed/ that is   stays, the reason in the
a file, an unreadable     report
file)
========================  ==============================  ==================================

Whatever happens to one file stays with that file: every exception is caught and recorded
against the file, so one upload can never stop the sweep of every company (only the
``--lp-out`` reader going away during a dry run, ``OutputClosedError``, reaches the runner).
The file read, and moved, is the inode the claim holds: a file replaced (SFTP overwrites by
rename) or grown during ingestion is left where it is for the next run instead of being
moved as if its new content had been read.

Three classes share the work: ``FileProcessor`` decides what happens to the file (and
contains every failure), ``Ingestion`` reads it through the engine and writes its points,
``FileMover`` moves it to ``parsed/`` or ``error/`` and notes where it went.

A file outside the layout is refused as bad content; one at the wrong depth has no device
folder for an ``error/`` beside it, so it stays, and a sweep that remembers misplaced files
(``core/misplaced.py``) reports it once, then skips it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from core import __version__
from core.engine import ParseOptions
from core.errors import FileDataError
from core.failures import (
    describe,
    mark_bad_content,
    mark_changed,
    mark_write_failure,
    unexpected_result,
)
from core.layout import ERROR_DIR, PARSED_DIR, FileLocation, LayoutError, locate
from core.lifecycle import (
    UNREADABLE,
    Claim,
    Moved,
    check_done_folder,
    move_to_error,
    move_to_parsed,
    take,
)
from core.misplaced import MisplacedFiles
from core.outcomes import ErrorKind, SkipReason, Status
from core.records import RunRecords
from core.report import FileResult, printable, utc_now_iso
from core.selection import relative_name
from core.streaming import LineProtocolCopy, OutputClosedError, open_sender, stream_file
from core.summary import FileSummary
from core.verify import verify_file

if TYPE_CHECKING:  # the InfluxDB client is imported by runs that write only (not dry runs)
    from core.influx_writer import InfluxWriter
    from core.runner import RunConfig

log = logging.getLogger("powerview.runner")


class FileProcessor:
    """Processes one file at a time for a run; see the module docstring."""

    def __init__(
        self,
        config: RunConfig,
        writer: InfluxWriter | None,
        run_id: str,
        *,
        copy: LineProtocolCopy | None = None,
        records: RunRecords | None = None,
        misplaced: MisplacedFiles | None = None,
        bytes_read: Callable[[int], None] | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.records = records  # None: nothing recorded (a dry run)
        self.misplaced = misplaced
        self.mover = FileMover(config.data_folder, run_id, config.dry_run)
        self.ingestion = Ingestion(config, writer, self.mover, copy, bytes_read)

    def process(self, path: Path) -> FileResult:
        """Everything that happens to one file; never raises for a problem with the file."""
        started = time.monotonic()
        location = None
        try:
            location = locate(self.config.data_folder, path)
        except LayoutError as error:
            result = self._contained(path, None, self._refused, path, error)
        except OSError as error:  # a name too long to stat, a folder that cannot be read...
            result = unexpected_result(self._relative(path), error)
            result.notes.append("left in place: it could not be looked at")
        else:
            if self.config.dry_run:
                result = self._contained(location.path, None, self.ingestion.read, location)
            else:
                result = self._claimed(location)
        result.duration_s = time.monotonic() - started
        if location is not None and result.status in (Status.OK, Status.ERROR):
            self._record(location, result)
        return result

    def _claimed(self, location: FileLocation) -> FileResult:
        with take(location.path) as held:
            if held:
                return self._contained(location.path, held, self.ingestion.ingest, location)
            if held.state == UNREADABLE:
                result = FileResult(
                    file=location.relative,
                    status=Status.ERROR,
                    error_kind=ErrorKind.UNEXPECTED,
                    error={"code": "unreadable", "line": None, "reason": held.reason},
                )
                self.mover.set_aside(location.path, result)
                return result
            return _taken(location.relative, "taken by another process (or already moved)")

    def _contained(
        self, path: Path, held: Claim | None, work: Callable[..., FileResult], *args: object
    ) -> FileResult:
        """``work(*args, held)`` with any exception recorded against the file, which is then
        set aside in error/ when it can be moved (see the module docstring)."""
        try:
            return work(*args, held) if held is not None else work(*args)
        except OutputClosedError:
            raise
        except Exception as error:
            if isinstance(error, OSError):  # the environment: the message says it all
                log.warning("%s: %s", printable(self._relative(path)), printable(describe(error)))
            else:  # a bug: its traceback goes to the log
                log.exception("unexpected error on %s", printable(self._relative(path)))
            result = unexpected_result(self._relative(path), error)
            self.mover.set_aside(held or path, result)
            return result

    def _refused(self, path: Path, error: LayoutError) -> FileResult:
        """A file the layout refuses: gone, misplaced, or under an unsafe name."""
        relative = self._relative(path)
        if error.code == "not_found":  # moved away by another process since the listing
            return _taken(relative, "no longer there: taken by another process")
        if error.code == "wrong_depth" and self.misplaced is not None:
            reported = self.misplaced.reported_at(path)
            if reported is not None:
                return _reported_before(relative, reported)
            self.misplaced.remember(path, self.run_id)
        result = FileResult(
            file=relative, status=Status.ERROR, error_kind=ErrorKind.DATA, error=error.as_dict()
        )
        # A file under an unsafe name is set aside like any refused file; a file at the
        # wrong depth has no device folder for an error/ beside it and stays where it is.
        if error.code == "unsafe_name" and not self.config.dry_run:
            with take(path) as held:
                if held:
                    self.mover.set_aside(held, result)
        else:
            result.notes.append("left in place: move it under <company>/<campaign>/<device>/")
        return result

    def _record(self, location: FileLocation, result: FileResult) -> None:
        """The file's bookkeeping records; a failure is a note, never the file's fate."""
        if self.records is None:
            return
        try:
            self.records.add_file(location, result)
        except Exception as error:  # the records are bookkeeping: never lose the file
            log.exception("recording %s", printable(result.file))
            result.notes.append(f"warning: the ingestion records failed: {describe(error)}")

    def _relative(self, path: Path) -> str:
        return relative_name(self.config.data_folder, path)


class Ingestion:
    """One file read through the engine: all of it in a dry run, nothing sent; in a run
    that writes, its points to its company's bucket, then the file to parsed/ (or, on bad
    content or points refused, to error/). Exceptions other than bad content and InfluxDB's
    answers are left to ``FileProcessor``, which contains them."""

    def __init__(
        self,
        config: RunConfig,
        writer: InfluxWriter | None,
        mover: FileMover,
        copy: LineProtocolCopy | None,
        bytes_read: Callable[[int], None] | None,
    ) -> None:
        self.config = config
        self.writer = writer
        self.mover = mover
        self.copy = copy
        self.bytes_read = bytes_read  # told after each batch (the progress display)
        self.parse_options = config.parse or ParseOptions()

    def read(self, location: FileLocation) -> FileResult:
        """Dry run: the whole engine, nothing written but the optional --lp-out copy."""
        summary = new_summary(location)
        result = FileResult(file=location.relative, status=Status.OK, summary=summary)
        try:
            with open(location.path, "rb") as stream:
                self._stream(location, summary, stream, send=None)
        except FileDataError as error:
            mark_bad_content(result, error)
        except PermissionError as error:
            result.status, result.error_kind = Status.ERROR, ErrorKind.UNEXPECTED
            reason = f"cannot open the file: {error.strerror}"
            result.error = {"code": "unreadable", "line": None, "reason": reason}
        return result

    def ingest(self, location: FileLocation, held: Claim) -> FileResult:
        """The claimed file's points to InfluxDB, then the file to parsed/ or error/."""
        from core.influx_writer import WriteError  # noqa: PLC0415 - see the imports

        summary = new_summary(location)
        result = FileResult(file=location.relative, status=Status.OK, summary=summary)
        # Where the file will go must be usable before anything is written for it.
        check_done_folder(location.device_dir / ERROR_DIR)
        check_done_folder(location.device_dir / PARSED_DIR)
        try:
            self._send(location, summary, held, result)
        except FileDataError as error:
            mark_bad_content(result, error)
            changed = held.unread_change(None)
            if changed is not None:
                return mark_changed(result, changed)
            self.mover.set_aside(held, result)
            return result
        except WriteError as error:
            mark_write_failure(result, error)
            if result.status == Status.ERROR:
                self.mover.set_aside(held, result)
            return result
        changed = held.unread_change(summary.bytes_read)
        if changed is not None:
            return mark_changed(result, changed)
        if self.config.verify:
            assert self.writer is not None
            verify_file(self.writer, location, summary, self.parse_options.measurement, result)
        self.mover.note_move(result, move_to_parsed(held), "parsed/")
        return result

    def _send(
        self, location: FileLocation, summary: FileSummary, held: Claim, result: FileResult
    ) -> None:
        """The file's points to its company's bucket (``result.points_written`` counts them,
        whatever happens)."""
        assert self.writer is not None
        bucket = location.company
        self.writer.ensure_company_bucket(bucket)
        size = location.path.stat().st_size
        sender = open_sender(self.writer, bucket, size, self.config.inline_max_bytes)
        try:
            with held.reader() as stream:
                self._stream(location, summary, stream, send=sender.submit)
            sender.finish()
        finally:
            sender.abandon()
            result.points_written = sender.points_written

    def _stream(
        self,
        location: FileLocation,
        summary: FileSummary,
        stream: BinaryIO,
        send: Callable[[bytes], None] | None,
    ) -> None:
        """Read the file once: every batch to ``send``, to the --lp-out copy and progress."""
        stream_file(
            location,
            summary,
            stream,
            self.parse_options,
            send,
            copy=self.copy,
            bytes_read=self.bytes_read,
        )


class FileMover:
    """Moves a processed file to ``error/`` with its reason (``core/lifecycle.py``), and
    notes in its result where it went; a dry run moves nothing."""

    def __init__(self, data_folder: Path, run_id: str, dry_run: bool) -> None:
        self.data_folder = data_folder
        self.run_id = run_id
        self.dry_run = dry_run

    def set_aside(self, source: Path | Claim, result: FileResult) -> None:
        """Move the file to error/ with its reason; when that fails, the file stays where it
        is and the report says why (the failure is then an unexpected one: exit code 5)."""
        if self.dry_run:
            return
        skipped_rows = result.summary.as_dict()["skipped_rows"] if result.summary else None
        details = {
            **(result.error or {}),
            "file": result.file,
            "error_kind": result.error_kind,
            "parser_version": __version__,
            "run_id": self.run_id,
            "time": utc_now_iso(),
            "skipped_rows": skipped_rows,
        }
        try:
            moved = move_to_error(source, details)
        except Exception as error:
            log.warning(
                "%s: not moved to error/: %s", printable(result.file), printable(describe(error))
            )
            result.error_kind = ErrorKind.UNEXPECTED
            why = f"left in place: it could not be moved to error/ ({describe(error)})"
            result.notes.append(why)
            return
        self.note_move(result, moved, "error/")

    def note_move(self, result: FileResult, moved: Moved, folder: str) -> None:
        """Where the file went (``moved_to``), and what the move had to say."""
        target = moved.target
        result.moved_to = relative_name(self.data_folder, target) if target else None
        if moved.duplicate:
            result.notes.append(f"an identical file was already in {folder}: one copy kept")
        if moved.left_in_place:
            result.notes.append(moved.left_in_place)


def new_summary(location: FileLocation) -> FileSummary:
    """The engine's summary of a file, named as the report names it."""
    return FileSummary(
        file=location.relative,
        company=location.company,
        campaign=location.campaign,
        device_folder=location.device_folder,
    )


def _taken(relative: str, note: str) -> FileResult:
    return FileResult(
        file=relative, status=Status.SKIPPED, notes=[note], skip_reason=SkipReason.TAKEN
    )


def _reported_before(relative: str, reported: str) -> FileResult:
    """A misplaced file an earlier sweep reported: skipped, pointing to that report."""
    return FileResult(
        file=relative,
        status=Status.SKIPPED,
        skip_reason=SkipReason.REPORTED,
        notes=[
            f"misplaced, reported on {reported}: move it under "
            "<company>/<campaign>/<device>/ to have it ingested"
        ],
    )
