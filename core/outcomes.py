"""One vocabulary of outcomes, from the engine to the report, the hook and the exit code.

Every module that says what happened to a file, to a command or to an SFTPGo event uses these
names; none defines its own strings. The enums are ``str``/``int`` enums, so a report written
as JSON, a log line and an exit code carry exactly the values they carried as bare strings.

What happened to a file in a run (``Status``), and why it was skipped (``SkipReason``):

==========  ====================================================================
status      meaning
==========  ====================================================================
ok          ingested (or, in a dry run, would be)
error       not ingested: set aside in ``error/`` with its reason (dry run: would be), or
            left in place when it could not be moved (the report says why)
retry       left in place for the next sweep (a temporary or configuration failure)
skipped     not touched: too young, taken by another process, changed while read...
==========  ====================================================================

Why something failed (``ErrorKind``) decides the fate of the file and the exit code, the same
way for every entry point (``tsv_parser.py``, ``tsv_parser.py --check``,
``manage_influx_tokens.py``):

=============  =====  ===================================================================
kind           exit   meaning
=============  =====  ===================================================================
(none)         0      all is well, or there was nothing to do
data           1      bad content: the file goes to ``error/``; the run goes on
usage          2      bad arguments or settings: nothing was read, written or moved
temporary      3      a server unreachable or overloaded (after retries): try again later
configuration  4      a server refused the credentials or does not know the organization
unexpected     5      a bug, or the environment (a full disk, a parsed/ that is a file)
=============  =====  ===================================================================

When several kinds occur, the most severe wins, in this order: unexpected, usage,
configuration, temporary, data (``exit_code_for``).

The SFTPGo hook has a policy of its own (``HookExit``), because SFTPGo deletes an upload whose
synchronous hook fails: it exits 0 whenever the event was handled, whatever happened to the
file (its ``HookOutcome`` goes to the log line), 1 only when the installation is broken and an
operator must act, 2 when run without an SFTPGo event.

This module uses the standard library only: the hook imports it before any virtualenv is
known to work.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum


class Status(StrEnum):
    """What happened to one file in one run."""

    OK = "ok"
    ERROR = "error"
    RETRY = "retry"
    SKIPPED = "skipped"


class SkipReason(StrEnum):
    """Why a file was skipped (``skip_reason`` of a report entry whose status is skipped)."""

    TOO_YOUNG = "too_young"  # modified less than the minimum age ago: may still be uploading
    TAKEN = "taken"  # another process holds it, or has moved it
    CHANGED = "changed"  # replaced or grown during ingestion: left for the next run
    NOT_TRIED = "not_tried"  # the run stopped before it
    REPORTED = "reported_before"  # a misplaced file already reported by an earlier run


class ErrorKind(StrEnum):
    """Why a file, a command or a check failed; see the module docstring for the exit codes."""

    DATA = "data"
    USAGE = "usage"
    TEMPORARY = "temporary"
    CONFIGURATION = "configuration"
    UNEXPECTED = "unexpected"


class ExitCode(IntEnum):
    """The exit codes of ``tsv_parser.py`` (``--check`` included) and
    ``manage_influx_tokens.py``."""

    OK = 0
    DATA = 1
    USAGE = 2
    TEMPORARY = 3
    CONFIGURATION = 4
    UNEXPECTED = 5


EXIT_CODE_OF_KIND: dict[ErrorKind, ExitCode] = {
    ErrorKind.DATA: ExitCode.DATA,
    ErrorKind.USAGE: ExitCode.USAGE,
    ErrorKind.TEMPORARY: ExitCode.TEMPORARY,
    ErrorKind.CONFIGURATION: ExitCode.CONFIGURATION,
    ErrorKind.UNEXPECTED: ExitCode.UNEXPECTED,
}

# Most severe first: the first kind present decides the exit code.
SEVERITY: tuple[ErrorKind, ...] = (
    ErrorKind.UNEXPECTED,
    ErrorKind.USAGE,
    ErrorKind.CONFIGURATION,
    ErrorKind.TEMPORARY,
    ErrorKind.DATA,
)


def exit_code_for(kinds: Iterable[ErrorKind | None]) -> ExitCode:
    """The exit code of a run or command that met these failure kinds (``None``: no failure):
    the most severe kind wins, and no failure at all is ``ExitCode.OK``."""
    present = {kind for kind in kinds if kind is not None}
    for kind in SEVERITY:
        if kind in present:
            return EXIT_CODE_OF_KIND[kind]
    return ExitCode.OK


class HookOutcome(StrEnum):
    """What the SFTPGo hook did with one event (the ``outcome=`` of its log line)."""

    INGESTED = "ingested"  # the file is in InfluxDB and in parsed/
    SET_ASIDE = "set-aside"  # bad content, or an upload that failed: the file is in error/
    SKIPPED = "skipped"  # another hook or the sweep had the file, or it changed
    DEFERRED = "deferred"  # InfluxDB unavailable: the file stays for the sweep
    STARTED = "started"  # a detached job began
    COMPLETED = "completed"  # a detached job ended well, or the sweep of a disconnection
    QUEUED = "queued"  # the event waits for the drainer
    IGNORED = "ignored"  # an event PowerView does not handle
    REFUSED = "refused"  # a name outside the allowlist, or a path leaving the data folder
    FAILED = "failed"  # the installation is broken, a job failed, or an unexpected error


class HookExit(IntEnum):
    """The exit status of the SFTPGo hook (see the module docstring)."""

    HANDLED = 0
    BROKEN = 1
    NO_EVENT = 2
