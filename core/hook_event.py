"""One call of the hook, read from what SFTPGo set (or a ``--job`` command line), and the two
ways handling it ends.

SFTPGo passes the event in environment variables only. ``read_event`` tells the kinds of
call apart by what SFTPGo itself sets: every variable of a file action,
``SFTPGO_ACTION_PATH`` included, is present even when empty, and a post-disconnect call gets
``SFTPGO_CONNECTION_*`` and nothing about a path. ``SFTPGO_ACTION`` alone proves nothing: a
variable set in SFTPGo's command environment reaches the post-disconnect call. A detached job
is the hook started again by itself, ``python -m core.hook --job <name> [names...]
[--lock-fd N] [--user U]``; a call with none of these is someone running the hook by hand.

=================  ===================================================  =================
kind               read from                                            ``event=`` logged
=================  ===================================================  =================
``ACTION``         ``SFTPGO_ACTION_*``                                  the action, or
                                                                        ``empty``
``DISCONNECT``     ``SFTPGO_CONNECTION_USERNAME`` or ``_DURATION``      ``post-disconnect``
``JOB``            ``--job <name>`` on the command line                 ``job:<name>``
``NONE``           nothing of the above                                 (no line)
=================  ===================================================  =================

Handling an event always ends with an exception: ``Finished`` (an outcome for the log line
and the exit status) or, in the drainer, ``Handed`` (the work went to the drainer, which
logs the line once it is done).

Standard library only, like the rest of the hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from core.outcomes import HookExit, HookOutcome


class CallKind(Enum):
    """What started the hook."""

    ACTION = "action"  # a custom action of SFTPGo: upload, rename, mkdir...
    DISCONNECT = "post-disconnect"  # the end of an SFTP connection
    JOB = "job"  # the hook itself, starting a detached job
    NONE = "none"  # run by hand, with no event


@dataclass
class Event:
    """One call of the hook. ``shown_path`` is the ``path=`` of the log line: the path as
    SFTPGo sent it, made relative to the data folder as soon as the hook has located it."""

    kind: CallKind
    name: str = "none"  # the ``event=`` of the log line
    user: str = ""
    shown_path: str = ""
    action: str = ""  # SFTPGO_ACTION
    path: str = ""  # SFTPGO_ACTION_PATH
    target: str = ""  # SFTPGO_ACTION_TARGET (a rename's new path)
    status: str = ""  # SFTPGO_ACTION_STATUS: 1 done, 2 or 3 failed
    provider: str = "0"  # SFTPGO_ACTION_FS_PROVIDER: 0 is the local filesystem
    job: str = ""  # a job's name
    job_args: list[str] = field(default_factory=list)  # the names a job acts on
    lock_fd: str = ""  # a drain job's inherited lock (--lock-fd)


def read_event(environ: Mapping[str, str], argv: Sequence[str]) -> Event:
    """The call the hook is handling (see the module docstring)."""
    if argv[:1] == ["--job"]:
        return _job_call(list(argv))
    if "SFTPGO_ACTION_PATH" in environ:
        path = environ.get("SFTPGO_ACTION_PATH", "")
        return Event(
            CallKind.ACTION,
            name=environ.get("SFTPGO_ACTION") or "empty",
            user=environ.get("SFTPGO_ACTION_USERNAME", ""),
            shown_path=path,
            action=environ.get("SFTPGO_ACTION", ""),
            path=path,
            target=environ.get("SFTPGO_ACTION_TARGET", ""),
            status=environ.get("SFTPGO_ACTION_STATUS", ""),
            provider=environ.get("SFTPGO_ACTION_FS_PROVIDER") or "0",
        )
    if "SFTPGO_CONNECTION_USERNAME" in environ or "SFTPGO_CONNECTION_DURATION" in environ:
        user = environ.get("SFTPGO_CONNECTION_USERNAME", "")
        return Event(CallKind.DISCONNECT, name="post-disconnect", user=user)
    return Event(CallKind.NONE)


def _job_call(argv: list[str]) -> Event:
    """``--job <name> [names...] [--lock-fd N] [--user U]``."""
    job = argv[1] if len(argv) > 1 else ""
    names = argv[2:]
    for option in ("--lock-fd", "--user"):
        names = names[: names.index(option)] if option in names else names
    return Event(
        CallKind.JOB,
        name=f"job:{job}",
        user=_option(argv, "--user"),
        job=job,
        job_args=names,
        lock_fd=_option(argv, "--lock-fd"),
    )


def _option(argv: Sequence[str], name: str) -> str:
    if name in argv:
        index = list(argv).index(name)
        if index + 1 < len(argv):
            return argv[index + 1]
    return ""


class Finished(Exception):  # noqa: N818 - how a handler ends, not an error
    """The event is handled: log its line and exit with ``status``."""

    def __init__(
        self, outcome: HookOutcome, detail: str, status: HookExit = HookExit.HANDLED
    ) -> None:
        super().__init__(detail)
        self.outcome, self.detail, self.status = outcome, detail, status


class Handed(Exception):  # noqa: N818 - how a queued event leaves the hook, not an error
    """In the drainer: the event's work (an ingestion, a sweep) was handed to it, which logs
    the event's line once that work is done."""
