"""Run reports: one JSON document per run, and the short human summary of the same run.

A run (``core/runner.py``) appends one ``FileResult`` per file to its ``RunReport``; the
outcomes are the enums of ``core/outcomes.py`` (``Status``, ``SkipReason``, ``ErrorKind``,
``ExitCode``), written in the JSON document as their plain string and number values. The
human summary lists each file, then the run's messages, and ends with the totals, so that
the last line on a terminal is the one an operator reads first.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from core import __version__
from core.outcomes import ErrorKind, ExitCode, SkipReason, Status
from core.summary import FileSummary
from core.timestamps import iso_utc


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FileResult:
    """The outcome for one file: the engine's summary plus what the run did with it."""

    file: str
    status: Status
    error_kind: ErrorKind | None = None
    error: dict[str, Any] | None = None
    summary: FileSummary | None = None
    moved_to: str | None = None
    points_written: int = 0
    duration_s: float = 0.0
    verify: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    skip_reason: SkipReason | None = None  # when status is skipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "status": self.status,
            "skip_reason": self.skip_reason,
            "error_kind": self.error_kind,
            "error": self.error,
            "moved_to": self.moved_to,
            "points_written": self.points_written,
            "duration_s": round(self.duration_s, 4),
            "verify": self.verify,
            "notes": self.notes,
            "summary": self.summary.as_dict() if self.summary else None,
        }


@dataclass
class RunReport:
    """Everything one run did, in the order it did it."""

    mode: str  # "dry-run" or "ingest"
    data_folder: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: str = field(default_factory=utc_now_iso)
    finished_at: str | None = None
    duration_s: float = 0.0
    exit_code: ExitCode = ExitCode.OK
    files: list[FileResult] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    min_file_age_s: float | None = None  # a sweep's minimum age (None: one explicit file)

    def count(self, status: Status) -> int:
        return sum(1 for result in self.files if result.status == status)

    def totals(self) -> dict[str, int]:
        summaries = [result.summary for result in self.files if result.summary]
        return {
            "files": len(self.files),
            "ok": self.count(Status.OK),
            "error": self.count(Status.ERROR),
            "retry": self.count(Status.RETRY),
            "skipped": self.count(Status.SKIPPED),
            "rows_written": sum(summary.rows_written for summary in summaries),
            "values_written": sum(summary.values_written for summary in summaries),
            "points_written": sum(result.points_written for result in self.files),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "parser_version": __version__,
            "run_id": self.run_id,
            "mode": self.mode,
            "data_folder": self.data_folder,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 4),
            "exit_code": self.exit_code,
            "min_file_age_s": self.min_file_age_s,
            "totals": self.totals(),
            "messages": self.messages,
            "files": [result.as_dict() for result in self.files],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)


def write_json_atomically(path: Path, document: Any) -> None:
    """Write JSON so that a reader sees either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A short temporary name: the final one may already be as long as a name can be.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".json-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=2, ensure_ascii=False)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def printable(text: str) -> str:
    """``text`` with each control character written as a backslash escape (tabs kept)."""
    if text.isprintable():
        return text
    named = {"\n": "\\n", "\r": "\\r", "\\": "\\\\"}
    return "".join(
        char
        if char == "\t" or (char.isprintable() and char != "\\")
        else named.get(char, f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        for char in text
    )


def print_human_summary(report: RunReport, stream: TextIO) -> None:
    """What an operator reads at a glance: one line per file (with its details), the run's
    messages, then the totals, last, where the eye lands after hundreds of files.

    File names come from SFTP users: every control character (a newline, a terminal escape)
    is shown escaped (``printable``), so a name cannot forge or garble a line."""

    def say(text: str) -> None:
        stream.write(printable(text) + "\n")

    for result in report.files:
        for line in file_lines(result):
            say(line)
    for message in report.messages:
        say(f"  {message}")
    say(totals_line(report))


def totals_line(report: RunReport) -> str:
    """The run's totals in one line (the last line of the human summary)."""
    title = "dry run (nothing written, nothing moved)" if report.mode == "dry-run" else "run"
    return f"PowerView {title}: {totals_sentence(report.totals())}"


def totals_sentence(totals: Mapping[str, int]) -> str:
    """``2 file(s): 1 ok, 1 error, 0 to retry, 0 skipped; 96 values``: a run's totals
    (``RunReport.totals()``, or the ``totals`` of a JSON report) as the summary and the
    hook's log lines word them; a count missing from ``totals`` is 0."""
    count = {key: totals.get(key, 0) for key in TOTALS_WORDED}
    return (
        f"{count['files']} file(s): {count['ok']} ok, {count['error']} error, "
        f"{count['retry']} to retry, {count['skipped']} skipped; "
        f"{count['values_written']:,} values"
    )


TOTALS_WORDED = ("files", "ok", "error", "retry", "skipped", "values_written")


def file_lines(result: FileResult) -> list[str]:
    """One file in the human summary: its status and name, then its details, indented."""
    lines = [f"  {result.status:<7} {result.file}"]
    if result.error:
        where = f"line {result.error['line']}: " if result.error.get("line") else ""
        lines.append(f"          {result.error_kind} error: {where}{result.error['reason']}")
    summary = result.summary
    if summary is None:
        return lines + [f"          {note}" for note in result.notes]
    if summary.data_rows:
        lines.append(
            f"          {summary.format_tag}, master {summary.master_sn} "
            f"({summary.master_subtype}), {len(summary.channels)} channels, "
            f"{summary.data_rows} rows, {summary.rows_written} written, "
            f"{summary.values_written:,} values, "
            f"{iso_utc(summary.first_timestamp)} .. {iso_utc(summary.last_timestamp)}"
        )
    for kind, table in (("rows", summary.skipped_rows), ("values", summary.skipped_values)):
        for reason, counter in sorted(table.items()):
            first = ", ".join(str(line) for line in counter.lines[:5])
            lines.append(f"          skipped {kind}, {reason}: {counter.count} (lines {first})")
    lines += [f"          warning: {warning}" for warning in summary.warnings]
    lines += [f"          {note}" for note in result.notes]
    return lines
