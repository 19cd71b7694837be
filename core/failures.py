"""How a failure is written into a file's result: its status, error kind, code and reason.

Pure functions, one per kind of failure met while processing a file
(``core/file_processor.py`` decides what then becomes of the file, and the module docstring
there has the table): bad content (``FileDataError``), InfluxDB's answer (``WriteError``,
whose ``kind`` says data, temporary or configuration), a file that changed while read, and
anything else (an exception: a bug, or the environment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import FileDataError
from core.lifecycle import DoneFolderError
from core.outcomes import ErrorKind, SkipReason, Status
from core.report import FileResult

if TYPE_CHECKING:  # the InfluxDB client is imported by runs that write only
    from core.influx_writer import WriteError

_MAX_DESCRIPTION = 500


def describe(error: BaseException) -> str:
    """An exception as one line of a report: its type and message, bounded in length."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 3] + "..."


def unexpected_result(relative: str, error: BaseException) -> FileResult:
    """A file met an exception nobody expected (a bug), or its done folder is unusable."""
    done_folder = isinstance(error, DoneFolderError)
    return FileResult(
        file=relative,
        status=Status.ERROR,
        error_kind=ErrorKind.UNEXPECTED,
        error={
            "code": "done_folder_unusable" if done_folder else "unexpected_error",
            "line": None,
            "reason": str(error) if done_folder else describe(error),
        },
    )


def mark_bad_content(result: FileResult, error: FileDataError) -> None:
    """The engine refused the file's content: an error of kind data (to ``error/``)."""
    result.status, result.error_kind = Status.ERROR, ErrorKind.DATA
    result.error = error.as_dict()


def mark_write_failure(result: FileResult, error: WriteError) -> None:
    """InfluxDB's failure: a refusal of the points is the file's (kind data, to ``error/``);
    any other failure leaves the file for the next sweep (kind configuration or temporary)."""
    if error.kind == ErrorKind.DATA:
        result.status, result.error_kind = Status.ERROR, ErrorKind.DATA
        code = error.code or "rejected_by_influxdb"  # partial_write, reserved_company_name...
        result.error = {"code": code, "line": None, "reason": str(error)}
        return
    result.status = Status.RETRY
    result.error = {"code": f"{error.kind}_error", "line": None, "reason": str(error)}
    configuration = error.kind == ErrorKind.CONFIGURATION
    result.error_kind = ErrorKind.CONFIGURATION if configuration else ErrorKind.TEMPORARY
    result.notes.append("left in place for the next sweep (writes are idempotent)")


def mark_changed(result: FileResult, why: str) -> FileResult:
    """A file replaced or grown during ingestion: left where it is for the next run."""
    result.status, result.error_kind, result.error = Status.SKIPPED, None, None
    result.skip_reason = SkipReason.CHANGED
    result.notes.append(f"{why}: left in place for the next run (writes are idempotent)")
    return result


def stops_the_run(result: FileResult) -> bool:
    """InfluxDB refused the settings (credentials, organization): every later file would
    fail the same way, so the run stops after this one."""
    return result.status == Status.RETRY and result.error_kind == ErrorKind.CONFIGURATION
