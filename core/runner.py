"""One run of the parser: take the files, process each in turn, report, record.

The runner only orchestrates; each concern has its module:

- which files the run takes (one explicit file, a list, or a sweep of the data folder or of
  one company's folder; the too-young rule): ``core/selection.py``;
- everything that happens to one file (locate, claim, read through the engine, write, move
  to ``parsed/`` or ``error/``, and what each kind of failure does to the file and the run):
  ``core/file_processor.py``, helped by ``core/streaming.py`` (one read of the file, its
  batches to the sender and the ``--lp-out`` copy), ``core/failures.py`` and
  ``core/verify.py`` (the ``--verify`` read-back);
- the bookkeeping records of the run and its files, written together at the end:
  ``core/records.py``;
- the progress display: ``core/progress.py``;
- the report and its exit code: ``core/report.py``, ``core/outcomes.py``.

A run never raises for a problem of a file or of the folder, and always finishes its report:
a failure outside any file (listing the data folder) is a message of the run and exit code 5.
It stops early only when InfluxDB refuses the settings (every later file would fail the same
way: those files are reported as not tried, to retry) or, in a dry run, when the reader of
the ``--lp-out`` copy goes away.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from core.engine import ParseOptions
from core.failures import describe, stops_the_run
from core.file_processor import FileProcessor
from core.misplaced import MisplacedFiles
from core.outcomes import ErrorKind, ExitCode, SkipReason, Status, exit_code_for
from core.progress import LogProgress, QuietProgress, TerminalProgress
from core.records import RunRecords
from core.report import FileResult, RunReport, utc_now_iso
from core.selection import Selection, relative_name
from core.settings import InfluxSettings, ParserSettings
from core.streaming import LineProtocolCopy, OutputClosedError

if TYPE_CHECKING:  # the InfluxDB client is imported by runs that write only (not dry runs)
    from core.influx_writer import InfluxWriter

log = logging.getLogger("powerview.runner")

LP_OUT_CLOSED = "the reader of --lp-out closed it"


@dataclass
class RunConfig:
    """What one run takes and how (``tsv_parser.py`` fills it from its arguments and
    settings, the drainer from its settings)."""

    data_folder: Path
    dry_run: bool = True
    parse: ParseOptions | None = None
    min_file_age_s: float = ParserSettings.min_file_age_s  # defaults: the settings' own
    verify: bool = False
    meta_bucket: str = InfluxSettings.meta_bucket
    lp_out: BinaryIO | None = None  # None after the run when its reader closed it
    progress: bool = False  # a bar on progress_stream (a terminal), else log lines
    company: str | None = None  # a sweep of <data_folder>/<company> only
    state_dir: Path | None = None  # where misplaced files already reported are remembered
    inline_max_bytes: int = InfluxSettings.inline_max_bytes  # larger: the sender process


class Runner:
    """Runs over one explicit file, a list, or a sweep; see the module docstring."""

    def __init__(
        self,
        config: RunConfig,
        writer: InfluxWriter | None = None,
        clock: Callable[[], float] = time.time,
        progress_stream: TextIO = sys.stderr,
        progress: QuietProgress | None = None,
    ) -> None:
        if not config.dry_run and writer is None:
            raise ValueError("a run that writes needs an InfluxWriter")
        self.config = config
        self.writer = writer
        self.clock = clock
        self.report = RunReport(
            mode="dry-run" if config.dry_run else "ingest", data_folder=str(config.data_folder)
        )
        self.progress = progress or _progress_for(config, progress_stream)
        self._stopped_by: str | None = None
        self._unexpected_messages: list[str] = []
        self._copy = (
            LineProtocolCopy(config.lp_out, config.dry_run, self.report.messages)
            if config.lp_out is not None
            else None
        )
        self._records = (
            None if config.dry_run else RunRecords(config.meta_bucket, self.report.run_id)
        )
        self._misplaced = (
            MisplacedFiles(config.state_dir) if config.state_dir and not config.dry_run else None
        )
        self.processor = FileProcessor(
            config,
            writer,
            self.report.run_id,
            copy=self._copy,
            records=self._records,
            misplaced=self._misplaced,
            bytes_read=self.progress.bytes_read,
        )

    def run(
        self, explicit_file: Path | None = None, files: Sequence[Path] | None = None
    ) -> RunReport:
        """Process the file, or the ``files`` (one result each, in their order), or every
        pending file; never raises for a problem of a file or of the folder, and always
        finishes the report."""
        started = time.monotonic()
        sweep = explicit_file is None and files is None
        if sweep:
            self.report.min_file_age_s = self.config.min_file_age_s
        try:
            selection = self._select(explicit_file, files)
            self._process_all(selection.files)
        except Exception as error:  # listing the folder: a file-level error is caught below
            log.exception("unexpected error during the run")
            self._unexpected_messages.append(f"unexpected error: {describe(error)}")
        if self._misplaced is not None and sweep:
            try:
                self._misplaced.save()
            except OSError as error:
                self.report.messages.append(f"warning: misplaced files not remembered: {error}")
        self._finish(started)
        return self.report

    def _select(self, explicit_file: Path | None, files: Sequence[Path] | None) -> Selection:
        if explicit_file is not None:
            return Selection.given([explicit_file])
        if files is not None:
            return Selection.given(files)
        selection = Selection()
        config = self.config
        try:
            selection.add_sweep(
                config.data_folder, self.clock(), config.min_file_age_s, config.company
            )
        finally:
            self.report.files.extend(selection.too_young)
        self._unexpected_messages += selection.unlisted_folders
        return selection

    def _process_all(self, paths: list[Path]) -> None:
        self.progress.start(paths)
        for number, path in enumerate(paths, start=1):
            if self._stopped_by is not None:
                self.report.files.append(self._not_tried(path))
                continue
            self.progress.file_started(number, path)
            try:
                result = self.processor.process(path)
            except OutputClosedError:
                self._stopped_by = LP_OUT_CLOSED
                self.report.messages.append(
                    "the reader of the line protocol closed it: the dry run stopped there"
                )
                self.report.files.append(self._not_tried(path))
                continue
            if stops_the_run(result):
                self._stop_for_settings(result)
            self.report.files.append(result)
            self.progress.file_done(result)

    def _stop_for_settings(self, result: FileResult) -> None:
        reason = (result.error or {}).get("reason")
        self._stopped_by = f"configuration error: {reason}"
        self.report.messages.append(
            f"stopped after {result.file}: {reason}. Fix the settings and run again; "
            "the remaining files were not touched."
        )

    def _not_tried(self, path: Path) -> FileResult:
        by_settings = self._stopped_by is not None and self._stopped_by.startswith("configuration")
        return FileResult(
            file=relative_name(self.config.data_folder, path),
            status=Status.RETRY if by_settings else Status.SKIPPED,
            error_kind=ErrorKind.CONFIGURATION if by_settings else None,
            notes=[f"not tried: the run stopped ({self._stopped_by})"],
            skip_reason=None if by_settings else SkipReason.NOT_TRIED,
        )

    def _finish(self, started: float) -> None:
        report = self.report
        report.messages.extend(self._unexpected_messages)
        if self._copy is not None and self._copy.closed:
            self.config.lp_out = None
        report.duration_s = time.monotonic() - started
        report.finished_at = utc_now_iso()
        report.exit_code = self._exit_code()
        self.progress.finish(report)
        if self._records is not None:
            assert self.writer is not None
            self._records.add_run(report)
            if self._stopped_by is None:
                self._records.flush(self.writer)
            else:
                self._records.discard()

    def _exit_code(self) -> ExitCode:
        """The most severe failure met decides (``core.outcomes.exit_code_for``); a failure
        outside any file is an unexpected one."""
        kinds: list[ErrorKind | None] = [result.error_kind for result in self.report.files]
        if self._unexpected_messages:
            kinds.append(ErrorKind.UNEXPECTED)
        return exit_code_for(kinds)


def _progress_for(config: RunConfig, stream: TextIO) -> QuietProgress:
    """A bar on a terminal; elsewhere a log line per file of a run that writes."""
    if config.progress:
        return TerminalProgress(stream)
    return QuietProgress() if config.dry_run else LogProgress()
