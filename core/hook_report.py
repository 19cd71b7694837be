"""What a parser run means for the hook: its report read as an outcome and a log detail.

Outcomes come from the run's report (the JSON of ``tsv_parser.py --report-file``, or the
drainer's in-process ``RunReport.as_dict()``), never from the parser's human output: a
file's ``status``, ``error_kind`` and ``skip_reason``, the run's ``exit_code`` and totals,
all in ``core.outcomes``' vocabulary.

==============================================  =====================================
a file's entry in the report                    the hook's outcome
==============================================  =====================================
ok                                              ingested
skipped                                         skipped (with the run's notes)
retry, configuration                            failed (InfluxDB refused the token)
retry, anything else                            deferred (left for the sweep)
error, data, moved to ``error/``                set-aside
error, anything else                            failed (unexpected error)
==============================================  =====================================

``reject_outcome`` reads the one parser run the hook waits for (``--reject``, the upload that
failed), its exit code included; ``sweep_outcome`` the drainer's sweep of a company.
Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.hook_event import Finished
from core.outcomes import ErrorKind, ExitCode, HookExit, HookOutcome, SkipReason, Status
from core.report import totals_sentence

TIMED_OUT = (124, 137)  # timeout(1): the time limit, then SIGKILL
# What each exit code of tsv_parser.py means (tsv_parser.py --help).
PARSER_EXITS: dict[int, str] = {
    ExitCode.OK: "done",
    ExitCode.DATA: "bad content set aside",
    ExitCode.USAGE: "bad arguments or settings",
    ExitCode.TEMPORARY: "InfluxDB unavailable",
    ExitCode.CONFIGURATION: "InfluxDB refused the token or the organization",
    ExitCode.UNEXPECTED: "unexpected error",
}


def totals_text(report: Mapping[str, Any]) -> str:
    """The totals of a JSON run report, as the parser's summary words them."""
    return totals_sentence(report.get("totals") or {})


def file_outcome(entry: Mapping[str, Any]) -> tuple[HookOutcome, str]:
    """(outcome, reason) of one file's entry in a run report (the module docstring's table)."""
    status, kind = entry.get("status"), entry.get("error_kind")
    error = entry.get("error") or {}
    reason = str(error.get("reason") or "")
    if error.get("line"):
        reason = f"line {error['line']}: {reason}"
    notes = "; ".join(entry.get("notes") or [])
    if status == Status.OK:
        return HookOutcome.INGESTED, ""
    if status == Status.SKIPPED:
        return HookOutcome.SKIPPED, notes
    if status == Status.RETRY:
        if kind == ErrorKind.CONFIGURATION:
            refused = "InfluxDB refused the token or the organization"
            return HookOutcome.FAILED, join(refused, reason)
        return HookOutcome.DEFERRED, join(reason, "left for the sweep")
    where = "moved to error/" if entry.get("moved_to") else "left in place"
    if kind == ErrorKind.DATA and entry.get("moved_to"):
        return HookOutcome.SET_ASIDE, f"bad content, {where}: {reason}"
    return HookOutcome.FAILED, join(f"unexpected error, {where}: {reason}", notes)


def reject_outcome(
    status: int, report: Mapping[str, Any] | None, timeout_s: float, output_log: Path
) -> Finished:
    """How the parser run that set a failed upload aside ends the event: from its exit code
    ``status`` (``TIMED_OUT`` when stopped) and its report (None when it wrote none)."""
    if status in TIMED_OUT:
        return Finished(
            HookOutcome.DEFERRED, f"parser stopped after {timeout_s:g} s, left for the sweep"
        )
    files = (report or {}).get("files") or []
    entry = files[0] if files else None
    totals = totals_text(report) if report else ""
    if status == ExitCode.TEMPORARY:
        return Finished(
            HookOutcome.DEFERRED, join("InfluxDB unavailable, left for the sweep", totals)
        )
    if entry is None:
        if status == ExitCode.OK:  # nothing to do: another run had moved it
            return Finished(HookOutcome.SKIPPED, "already moved by another run")
        meaning = PARSER_EXITS.get(status, "unknown")
        return Finished(
            HookOutcome.FAILED,
            f"tsv_parser.py exit {status}: {meaning} (see {output_log})",
            HookExit.BROKEN,
        )
    outcome, reason = file_outcome(entry)
    broken = outcome == HookOutcome.FAILED
    return Finished(outcome, join(totals, reason), HookExit.BROKEN if broken else HookExit.HANDLED)


def sweep_text(company: str, report: Mapping[str, Any] | None) -> str:
    """What a sweep did to the company's files, from its report's skip reasons."""
    if report is None:
        return f"{company}: no report"
    count = _sweep_counts(report.get("files") or [])
    parts = [f"{count['ingested']} ingested", f"{count['set aside']} set aside"]
    if count["left in error"]:
        parts.append(f"{count['left in error']} refused and left in place")
    parts.append(f"{count['to retry']} to retry")
    min_age = report.get("min_file_age_s")
    young = f"{count['young']} left because too young"
    parts.append(young + (f" (under {min_age:g} s)" if isinstance(min_age, int | float) else ""))
    if count["other"]:
        parts.append(f"{count['other']} skipped (taken, changed or reported before)")
    return f"{company}: " + ", ".join(parts)


def _sweep_counts(files: list[Mapping[str, Any]]) -> dict[str, int]:
    count = dict.fromkeys(("ingested", "set aside", "left in error", "to retry", "young"), 0)
    count["other"] = 0  # skipped for another reason than their age
    for entry in files:
        status = entry["status"]
        if status == Status.OK:
            count["ingested"] += 1
        if status == Status.ERROR:
            count["set aside" if entry.get("moved_to") else "left in error"] += 1
        if status == Status.RETRY:
            count["to retry"] += 1
        if entry.get("skip_reason") == SkipReason.TOO_YOUNG:
            count["young"] += 1
        elif status == Status.SKIPPED:
            count["other"] += 1
    return count


def sweep_outcome(exit_code: int, detail: str) -> tuple[HookOutcome, str]:
    """(outcome, detail) of a company's sweep from the run's exit code: bad content set aside
    is a sweep done well; InfluxDB unavailable leaves the files for the timer's sweep."""
    if exit_code in (ExitCode.OK, ExitCode.DATA):
        return HookOutcome.COMPLETED, detail
    if exit_code == ExitCode.TEMPORARY:
        return HookOutcome.DEFERRED, f"InfluxDB unavailable; the timer's sweep retries; {detail}"
    return HookOutcome.FAILED, f"sweep exit {int(exit_code)}; {detail}"


def join(*parts: str, separator: str = "; ") -> str:
    """The non-empty parts, joined."""
    return separator.join(part for part in parts if part)
