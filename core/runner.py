"""One run of the parser: pick the files, read each once, write, move, report.

For every file: locate it in the data folder, claim it, stream it through the engine into
InfluxDB (or, in a dry run, nowhere), then move it to ``parsed/`` or ``error/`` and record
the outcome. What happens to a file depends on the kind of failure:

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

Whatever happens to one file stays with that file: every exception is caught, recorded
against the file and the run goes on with the next one, so one upload can never stop the
sweep of every company. The file read, and moved, is the inode the claim holds: a file
replaced (SFTP overwrites by rename) or grown during ingestion is left where it is for the
next run instead of being moved as if its new content had been read.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from core import __version__
from core.engine import MV2File, ParseOptions
from core.errors import FileDataError
from core.layout import ERROR_DIR, PARSED_DIR, FileLocation, LayoutError, locate, pending_files
from core.lifecycle import (
    UNREADABLE,
    Claim,
    DoneFolderError,
    Moved,
    check_done_folder,
    move_to_error,
    move_to_parsed,
    take,
)
from core.lineprotocol import format_point
from core.misplaced import MisplacedFiles
from core.report import (
    KIND_CONFIGURATION,
    KIND_DATA,
    KIND_TEMPORARY,
    KIND_UNEXPECTED,
    SKIP_CHANGED,
    SKIP_NOT_TRIED,
    SKIP_REPORTED,
    SKIP_TAKEN,
    SKIP_TOO_YOUNG,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_RETRY,
    STATUS_SKIPPED,
    FileResult,
    RunReport,
    printable,
    utc_now_iso,
)
from core.summary import FileSummary
from core.timestamps import iso_utc

if TYPE_CHECKING:  # the InfluxDB client is imported by runs that write only (not dry runs)
    from core.influx_writer import FileWriter, InfluxWriter, WriteError

log = logging.getLogger("powerview.runner")

EXIT_OK = 0
EXIT_DATA_ERRORS = 1
EXIT_USAGE = 2
EXIT_TEMPORARY = 3
EXIT_CONFIGURATION = 4
EXIT_UNEXPECTED = 5

INGEST_MEASUREMENT = "powerview_ingest"  # per file, in the company's own bucket
RUN_MEASUREMENT = "tsv_parser_run"  # per run, in the meta bucket
FILE_MEASUREMENT = "tsv_parser_file"  # per file, in the meta bucket
# Codes of a file set aside because its company name is refused (core.influx_admin).
_REFUSED_COMPANY_CODES = frozenset({"reserved_company_name", "company_case_conflict"})
DATA = "data"  # WriteError.kind of a failure that belongs to the file's content
# A file up to this size is sent from the run's own process, batch after batch; a larger one
# through the writer's sender process, which sends while the next batch is parsed (a daily
# file, some 50 kB, would spend more starting that process than it gains).
INLINE_MAX_BYTES = 4 << 20  # the default of INFLUXDB_INLINE_MAX_BYTES


class OutputClosedError(Exception):
    """The reader of the --lp-out copy went away (``--lp-out - | head``)."""


@dataclass
class RunConfig:
    data_folder: Path
    dry_run: bool = True
    parse: ParseOptions | None = None
    min_file_age_s: float = 60.0
    verify: bool = False
    meta_bucket: str = "powerview_meta"
    lp_out: BinaryIO | None = None
    progress: bool = False
    company: str | None = None  # a sweep of <data_folder>/<company> only
    state_dir: Path | None = None  # where misplaced files already reported are remembered
    inline_max_bytes: int = INLINE_MAX_BYTES  # larger files go through the sender process


class Runner:
    """Runs over one explicit file or a sweep of the data folder; see the module docstring."""

    def __init__(
        self,
        config: RunConfig,
        writer: InfluxWriter | None = None,
        clock: Callable[[], float] = time.time,
        progress_stream: TextIO = sys.stderr,
    ) -> None:
        if not config.dry_run and writer is None:
            raise ValueError("a run that writes needs an InfluxWriter")
        self.config = config
        self.writer = writer
        self.clock = clock
        self.progress_stream = progress_stream
        self.parse_options = config.parse or ParseOptions()
        self.report = RunReport(
            mode="dry-run" if config.dry_run else "ingest", data_folder=str(config.data_folder)
        )
        self._stopped_by: str | None = None
        self._unexpected_messages: list[str] = []
        self._lp_company: str | None = None
        # Bookkeeping records waiting to be written, per bucket, with where a failure is noted
        self._records: dict[str, list[tuple[bytes, list[str]]]] = {}
        self._misplaced = (
            MisplacedFiles(config.state_dir) if config.state_dir and not config.dry_run else None
        )

    # -- the run ------------------------------------------------------------------------
    def run(
        self, explicit_file: Path | None = None, files: Sequence[Path] | None = None
    ) -> RunReport:
        """Process the file, or the ``files`` (one result each, in their order), or every
        pending file; never raises for a problem of a file or of the folder, and always
        finishes the report."""
        started = time.monotonic()
        report = self.report
        targets: list[Path] = []
        if explicit_file is not None:
            files = [explicit_file]
        if files is None:
            report.min_file_age_s = self.config.min_file_age_s
        try:
            targets = list(files) if files is not None else self._sweep_targets()
            for number, path in enumerate(targets, start=1):
                if self._stopped_by is not None:
                    report.files.append(self._not_tried(path))
                    continue
                try:
                    result = self.process(path)
                except OutputClosedError:
                    self._stopped_by = "the reader of --lp-out closed it"
                    report.messages.append(
                        "the reader of the line protocol closed it: the dry run stopped there"
                    )
                    report.files.append(self._not_tried(path))
                    continue
                report.files.append(result)
                self._show_progress(number, len(targets), result)
        except Exception as error:  # listing the folder: a file-level error is caught below
            log.exception("unexpected error during the run")
            self._unexpected_messages.append(f"unexpected error: {_describe(error)}")
        if self._misplaced is not None and files is None:
            try:
                self._misplaced.save()
            except OSError as error:
                report.messages.append(f"warning: misplaced files not remembered: {error}")
        report.messages.extend(self._unexpected_messages)
        if self.config.progress and targets:
            print(file=self.progress_stream)
        report.duration_s = time.monotonic() - started
        report.finished_at = utc_now_iso()
        report.exit_code = self._exit_code()
        if not self.config.dry_run:
            self._record_run()
            self._flush_records()
        return report

    def _not_tried(self, path: Path) -> FileResult:
        stopped_by_settings = self._stopped_by and self._stopped_by.startswith("configuration")
        return FileResult(
            file=self._relative(path),
            status=STATUS_RETRY if stopped_by_settings else STATUS_SKIPPED,
            error_kind=KIND_CONFIGURATION if stopped_by_settings else None,
            notes=[f"not tried: the run stopped ({self._stopped_by})"],
            skip_reason=None if stopped_by_settings else SKIP_NOT_TRIED,
        )

    def _sweep_targets(self) -> list[Path]:
        now = self.clock()
        targets = []
        company = self.config.company
        unreadable: list[str] = []
        for pending in pending_files(self.config.data_folder, now, unreadable, company):
            if pending.age_s < self.config.min_file_age_s:
                self.report.files.append(
                    FileResult(
                        file=self._relative(pending.path),
                        status=STATUS_SKIPPED,
                        notes=[
                            f"modified {pending.age_s:.0f} s ago: may still be uploading "
                            f"(minimum age {self.config.min_file_age_s:g} s)"
                        ],
                        skip_reason=SKIP_TOO_YOUNG,
                    )
                )
                continue
            targets.append(pending.path)
        for folder in unreadable:  # its files cannot even be named: the run says so (exit 5)
            self._unexpected_messages.append(f"a folder could not be listed: {printable(folder)}")
        return targets

    def _relative(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.config.data_folder.resolve()))
        except (ValueError, OSError):
            return str(path)

    def _exit_code(self) -> int:
        kinds = {result.error_kind for result in self.report.files if result.error_kind}
        if KIND_UNEXPECTED in kinds or self._unexpected_messages:
            return EXIT_UNEXPECTED
        if KIND_CONFIGURATION in kinds:
            return EXIT_CONFIGURATION
        if KIND_TEMPORARY in kinds:
            return EXIT_TEMPORARY
        if KIND_DATA in kinds:
            return EXIT_DATA_ERRORS
        return EXIT_OK

    def _show_progress(self, number: int, total: int, result: FileResult) -> None:
        if self.config.progress:
            width = 30
            filled = width * number // total
            bar = "#" * filled + "." * (width - filled)
            print(
                f"\r[{bar}] {number}/{total} files  {result.status:<7} {result.file[-40:]:<40}",
                end="",
                file=self.progress_stream,
                flush=True,
            )
        elif not self.config.dry_run:
            log.info(
                "%s %s (%d points)", result.status, printable(result.file), result.points_written
            )

    # -- one file -----------------------------------------------------------------------
    def process(self, path: Path) -> FileResult:
        """Everything that happens to one file; never raises for a problem with the file."""
        started = time.monotonic()
        location = None
        try:
            location = locate(self.config.data_folder, path)
        except LayoutError as error:
            if error.code == "not_found":  # moved away by another process since the listing
                result = FileResult(
                    file=self._relative(path),
                    status=STATUS_SKIPPED,
                    notes=["no longer there: taken by another process"],
                    skip_reason=SKIP_TAKEN,
                )
            elif error.code == "wrong_depth" and self._misplaced is not None:
                result = self._misplaced_file(path, error)
            else:
                result = self._contained(path, None, self._layout_error, path, error)
        except OSError as error:  # a name too long to stat, a folder that cannot be read...
            result = self._unexpected(self._relative(path), error)
            result.notes.append("left in place: it could not be looked at")
        else:
            if self.config.dry_run:
                result = self._contained(location.path, None, self._read, location)
            else:
                with take(location.path) as held:
                    if held:
                        result = self._contained(location.path, held, self._ingest, location)
                    elif held.state == UNREADABLE:
                        result = self._unreadable(location, held)
                    else:
                        result = FileResult(
                            file=location.relative,
                            status=STATUS_SKIPPED,
                            notes=["taken by another process (or already moved)"],
                            skip_reason=SKIP_TAKEN,
                        )
        result.duration_s = time.monotonic() - started
        recorded = result.status in (STATUS_OK, STATUS_ERROR)
        if location is not None and recorded and not self.config.dry_run:
            try:
                self._record_file(location, result)
            except Exception as error:  # the records are bookkeeping: never lose the file
                log.exception("recording %s", printable(result.file))
                result.notes.append(f"warning: the ingestion records failed: {_describe(error)}")
        return result

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
                log.warning("%s: %s", printable(self._relative(path)), printable(_describe(error)))
            else:  # a bug: its traceback goes to the log
                log.exception("unexpected error on %s", printable(self._relative(path)))
            result = self._unexpected(self._relative(path), error)
            self._set_aside(held or path, result)
            return result

    def _unexpected(self, relative: str, error: BaseException) -> FileResult:
        code = "done_folder_unusable" if isinstance(error, DoneFolderError) else "unexpected_error"
        reason = str(error) if isinstance(error, DoneFolderError) else _describe(error)
        return FileResult(
            file=relative,
            status=STATUS_ERROR,
            error_kind=KIND_UNEXPECTED,
            error={"code": code, "line": None, "reason": reason},
        )

    def _unreadable(self, location: FileLocation, held: Claim) -> FileResult:
        result = FileResult(
            file=location.relative,
            status=STATUS_ERROR,
            error_kind=KIND_UNEXPECTED,
            error={"code": "unreadable", "line": None, "reason": held.reason},
        )
        self._set_aside(location.path, result)
        return result

    def _misplaced_file(self, path: Path, error: LayoutError) -> FileResult:
        """A file outside the layout: an error the first time a sweep meets it, then a
        skipped file that points to that first report (it cannot be set aside: there is no
        device folder for an error/ beside it)."""
        assert self._misplaced is not None
        reported = self._misplaced.reported_at(path)
        if reported is None:
            self._misplaced.remember(path, self.report.run_id)
            return self._layout_error(path, error)
        return FileResult(
            file=self._relative(path),
            status=STATUS_SKIPPED,
            skip_reason=SKIP_REPORTED,
            notes=[
                f"misplaced, reported on {reported}: move it under "
                "<company>/<campaign>/<device>/ to have it ingested"
            ],
        )

    def _layout_error(self, path: Path, error: LayoutError) -> FileResult:
        result = FileResult(
            file=self._relative(path),
            status=STATUS_ERROR,
            error_kind=KIND_DATA,
            error=error.as_dict(),
        )
        # A file under an unsafe name is set aside like any refused file; a file at the
        # wrong depth has no device folder for an error/ beside it and stays where it is.
        if error.code == "unsafe_name" and not self.config.dry_run:
            with take(path) as held:
                if held:
                    self._set_aside(held, result)
        else:
            result.notes.append("left in place: move it under <company>/<campaign>/<device>/")
        return result

    def _new_summary(self, location: FileLocation) -> FileSummary:
        return FileSummary(
            file=location.relative,
            company=location.company,
            campaign=location.campaign,
            device_folder=location.device_folder,
        )

    def _read(self, location: FileLocation) -> FileResult:
        """Dry run: the whole engine, nothing written but the optional --lp-out copy."""
        summary = self._new_summary(location)
        result = FileResult(file=location.relative, status=STATUS_OK, summary=summary)
        try:
            with open(location.path, "rb") as stream:
                self._stream(location, summary, stream, send=None)
        except FileDataError as error:
            result.status, result.error_kind = STATUS_ERROR, KIND_DATA
            result.error = error.as_dict()
        except PermissionError as error:
            result.status, result.error_kind = STATUS_ERROR, KIND_UNEXPECTED
            result.error = {
                "code": "unreadable",
                "line": None,
                "reason": f"cannot open the file: {error.strerror}",
            }
        return result

    def _stream(
        self,
        location: FileLocation,
        summary: FileSummary,
        stream: BinaryIO,
        send: Callable[[bytes], None] | None,
    ) -> None:
        """Read the file once: every batch to ``send`` and to the --lp-out copy."""
        with MV2File(
            location.path, location.campaign, self.parse_options, summary, stream=stream
        ) as mv2:
            self._check_device_folder(location, summary)
            for batch in mv2.batches():
                if self.config.lp_out is not None:
                    self._copy_line_protocol(location, batch)
                if send is not None:
                    send(batch)

    def _copy_line_protocol(self, location: FileLocation, batch: bytes) -> None:
        """The --lp-out copy: each file's points after a comment line naming their bucket
        (line protocol comments start with ``#``; ``influx write`` skips them)."""
        assert self.config.lp_out is not None
        try:
            if self._lp_company != location.relative:
                self._lp_company = location.relative
                file = json.dumps(location.relative)
                self.config.lp_out.write(f"# bucket: {location.company} file: {file}\n".encode())
            self.config.lp_out.write(batch)
        except BrokenPipeError:
            self.config.lp_out = None
            if self.config.dry_run:
                raise OutputClosedError from None
            self.report.messages.append(
                "the reader of the line protocol closed it: no more copied (ingestion went on)"
            )

    def _ingest(self, location: FileLocation, held: Claim) -> FileResult:
        from core.influx_writer import WriteError  # noqa: PLC0415 - see the imports

        assert self.writer is not None
        summary = self._new_summary(location)
        result = FileResult(file=location.relative, status=STATUS_OK, summary=summary)
        # Where the file will go must be usable before anything is written for it.
        check_done_folder(location.device_dir / ERROR_DIR)
        check_done_folder(location.device_dir / PARSED_DIR)
        try:
            bucket = location.company
            self.writer.ensure_company_bucket(bucket)
            small = location.path.stat().st_size <= self.config.inline_max_bytes
            sender: _InlineSender | FileWriter = (
                _InlineSender(self.writer, bucket) if small else self.writer.file_writer(bucket)
            )
            try:
                with held.reader() as stream:
                    self._stream(location, summary, stream, send=sender.submit)
                sender.finish()
            finally:
                sender.abandon()
                result.points_written = sender.points_written
        except FileDataError as error:
            result.status, result.error_kind = STATUS_ERROR, KIND_DATA
            result.error = error.as_dict()
            changed = held.unread_change(None)
            if changed is not None:
                return self._changed(result, changed)
            self._set_aside(held, result)
            return result
        except WriteError as error:
            return self._write_failed(location, result, error, held)
        changed = held.unread_change(summary.bytes_read)
        if changed is not None:
            return self._changed(result, changed)
        if self.config.verify:
            self._verify(location, summary, result)
        self._note_move(result, move_to_parsed(held), "parsed/")
        return result

    def _changed(self, result: FileResult, why: str) -> FileResult:
        """A file replaced or grown during ingestion: left where it is for the next run."""
        result.status, result.error_kind, result.error = STATUS_SKIPPED, None, None
        result.skip_reason = SKIP_CHANGED
        result.notes.append(f"{why}: left in place for the next run (writes are idempotent)")
        return result

    def _note_move(self, result: FileResult, moved: Moved, folder: str) -> None:
        result.moved_to = self._relative(moved.target) if moved.target else None
        if moved.duplicate:
            result.notes.append(f"an identical file was already in {folder}: one copy kept")
        if moved.left_in_place:
            result.notes.append(moved.left_in_place)

    def _check_device_folder(self, location: FileLocation, summary: FileSummary) -> None:
        if summary.master_sn != location.device_folder:
            summary.warnings.append(
                f"the folder is named {location.device_folder} but the file's master serial "
                f"is {summary.master_sn}: points are tagged with {summary.master_sn}"
            )

    def _write_failed(
        self,
        location: FileLocation,
        result: FileResult,
        error: WriteError,
        held: Claim | None = None,
    ) -> FileResult:
        if error.kind == DATA:
            result.status, result.error_kind = STATUS_ERROR, KIND_DATA
            code = error.code or "rejected_by_influxdb"  # partial_write, reserved_company_name...
            result.error = {"code": code, "line": None, "reason": str(error)}
            self._set_aside(held or location.path, result)
            return result
        result.status = STATUS_RETRY
        result.error = {"code": f"{error.kind}_error", "line": None, "reason": str(error)}
        if error.kind == KIND_CONFIGURATION:
            result.error_kind = KIND_CONFIGURATION
            self._stopped_by = f"configuration error: {error}"
            self.report.messages.append(
                f"stopped after {location.relative}: {error}. Fix the settings and run again; "
                "the remaining files were not touched."
            )
        else:
            result.error_kind = KIND_TEMPORARY
        result.notes.append("left in place for the next sweep (writes are idempotent)")
        return result

    def _set_aside(self, source: Path | Claim, result: FileResult) -> None:
        """Move the file to error/ with its reason; when that fails, the file stays where it
        is and the report says why (the failure is then an unexpected one: exit code 5)."""
        if self.config.dry_run:
            return
        details = {
            **(result.error or {}),
            "file": result.file,
            "error_kind": result.error_kind,
            "parser_version": __version__,
            "run_id": self.report.run_id,
            "time": utc_now_iso(),
            "skipped_rows": result.summary.as_dict()["skipped_rows"] if result.summary else None,
        }
        try:
            moved = move_to_error(source, details)
        except Exception as error:
            log.warning(
                "%s: not moved to error/: %s", printable(result.file), printable(_describe(error))
            )
            result.error_kind = KIND_UNEXPECTED
            result.notes.append(
                f"left in place: it could not be moved to error/ ({_describe(error)})"
            )
            return
        self._note_move(result, moved, "error/")

    def _verify(self, location: FileLocation, summary: FileSummary, result: FileResult) -> None:
        """Read back how many points the file's series hold over its time range."""
        from core.influx_writer import WriteError  # noqa: PLC0415 - see the imports

        assert self.writer is not None
        start, stop = iso_utc(summary.first_timestamp), iso_utc((summary.last_timestamp or 0) + 1)
        flux = (
            f'from(bucket: "{location.company}")\n'
            f"  |> range(start: {start}, stop: {stop})\n"
            f'  |> filter(fn: (r) => r._measurement == "{self.parse_options.measurement}"'
            f' and r.campaign == "{location.campaign}"'
            f' and r.device_master_sn == "{summary.master_sn}")\n'
            "  |> count()\n  |> group()\n  |> sum()"
        )
        try:
            found = self.writer.query_count(flux)
        except WriteError as error:
            result.verify = {"expected": summary.values_written, "found": None, "error": str(error)}
            return
        result.verify = {
            "expected": summary.values_written,
            "found": found,
            "ok": found >= summary.values_written,
        }
        if found < summary.values_written:
            result.notes.append(
                f"verify: {found} points found for {summary.values_written} written"
            )

    # -- bookkeeping records ------------------------------------------------------------
    def _record_file(self, location: FileLocation, result: FileResult) -> None:
        """Per-file records in the company bucket and the meta bucket; a failure is a note."""
        summary = result.summary or self._new_summary(location)
        now_ns = time.time_ns()
        company_record = format_point(
            INGEST_MEASUREMENT,
            {
                "campaign": location.campaign,
                "device_folder": location.device_folder,
                "device_master_sn": summary.master_sn or "",
                "status": result.status,
            },
            {
                "points_written": result.points_written,
                "rows": summary.rows_written,
                "file": location.path.name,
                "first_ts": summary.first_timestamp,
                "last_ts": summary.last_timestamp,
            },
            now_ns,
        )
        meta_record = format_point(
            FILE_MEASUREMENT,
            {
                "company": location.company,
                "campaign": location.campaign,
                "device_folder": location.device_folder,
                "status": result.status,
                "error_kind": result.error_kind or "",
            },
            {
                "file": result.file,
                "run_id": self.report.run_id,
                "points_written": result.points_written,
                "rows_written": summary.rows_written,
                "rows_skipped": summary.rows_skipped,
                "values_skipped": summary.values_skipped,
                "duration_s": round(result.duration_s, 6),
                "error_code": (result.error or {}).get("code"),
            },
            now_ns,
        )
        records = [(self.config.meta_bucket, meta_record)]
        if (result.error or {}).get("code") not in _REFUSED_COMPANY_CODES:
            # A refused company has no bucket of its own; a name like the meta bucket's
            # would otherwise put its record among the parser's records.
            records.insert(0, (location.company, company_record))
        for bucket, record in records:
            self._records.setdefault(bucket, []).append((record, result.notes))

    def _record_run(self) -> None:
        report = self.report
        totals = report.totals()
        record = format_point(
            RUN_MEASUREMENT,
            {"mode": report.mode},
            {
                "run_id": report.run_id,
                "files": totals["files"],
                "ok": totals["ok"],
                "error": totals["error"],
                "retry": totals["retry"],
                "skipped": totals["skipped"],
                "points_written": totals["points_written"],
                "duration_s": round(report.duration_s, 6),
                "exit_code": report.exit_code,
            },
            time.time_ns(),
        )
        self._records.setdefault(self.config.meta_bucket, []).append((record, report.messages))

    def _flush_records(self) -> None:
        """The run's bookkeeping records, written together: one request per bucket (the
        company buckets' ``powerview_ingest``, then the meta bucket's file and run records).
        A failure is a note of each file concerned (and of the run), never the file's fate."""
        from core.influx_writer import WriteError  # noqa: PLC0415 - see the imports

        assert self.writer is not None
        records, self._records = self._records, {}
        if self._stopped_by is not None:
            return
        meta = self.config.meta_bucket
        for bucket in sorted(records, key=lambda name: name == meta):
            entries = records[bucket]
            try:
                self.writer.ensure_bucket(bucket)
                self.writer.write_now(bucket, b"".join(r for r, _ in entries), precision="ns")
            except WriteError as error:
                for notes in {id(notes): notes for _, notes in entries}.values():
                    notes.append(
                        f"warning: the ingestion record for bucket {bucket} was not written: "
                        f"{error}"
                    )


class _InlineSender:
    """A small file's batches sent from the run's own process, each answered before the
    next is parsed; the interface of ``FileWriter`` (``submit`` raises the failure)."""

    def __init__(self, writer: InfluxWriter, bucket: str) -> None:
        self._writer = writer
        self.bucket = bucket
        self.points_written = 0

    def submit(self, body: bytes) -> None:
        from core.influx_writer import split_lines  # noqa: PLC0415 - see the imports

        most = self._writer.batch_points
        parts = [body] if body.count(b"\n") <= most else split_lines(body, most)
        for part in parts:
            self._writer.write_now(self.bucket, part)
            self.points_written += part.count(b"\n")

    def finish(self) -> None:
        """Every batch was answered in ``submit``."""

    def abandon(self) -> None:
        """Nothing is in flight."""


def _describe(error: BaseException) -> str:
    """An exception as one line of a report: its type and message, bounded in length."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 500 else text[:497] + "..."
