"""PowerView's SFTPGo hook: SFTPGo events in, ingestions and Grafana playbook runs out.

``on-upload.sh`` sets up the environment and starts ``python -S -m core.enqueue``, which only
queues the event (a few milliseconds) and makes sure the one drainer runs
(``core/enqueue.py``, ``core/queue.py``); the drainer (``core/drainer.py``) runs the hook's
logic (this module's ``Hook`` and the ``core/hook_*.py`` modules, see "Where the code is"
below) on each queued event, in the order they came, and ingests the files of many uploads
together, in one process with one InfluxDB client. When the event cannot be queued (no
virtualenv, a spool that cannot be written) or there is none, ``python -m core.hook`` runs
directly and logs why. SFTPGo runs the hook for the custom actions upload, rename and mkdir
(``SFTPGO_COMMON__ACTIONS__HOOK``) and after each SFTP disconnection
(``SFTPGO_COMMON__POST_DISCONNECT_HOOK``); ``deploy/sftpgo.env`` sets both. It passes the
event in environment variables only: no arguments, no stdin, its output thrown away.

=============================================  =================================================
event (what SFTPGo sets)                       what the hook does
=============================================  =================================================
upload, STATUS=1, ``*.tsv``                    ingested by the drainer, with the batch it is in
upload, STATUS=2 or 3, ``*.tsv``               ``tsv_parser.py --reject``: the partial file to
                                               ``error/``
upload of ``<company>/<campaign>/channels.csv``  ``update_grafana_dashboards.yml``, detached
upload of anything else                        nothing (logged)
rename to ``*.tsv`` or ``channels.csv``        as an upload of the target
rename of a folder                             as a mkdir of the target
mkdir ``<company>/<campaign>``                 ``create_grafana_resources.yml``, detached
mkdir ``<company>``                            the same for the company alone, detached
mkdir, other depths                            nothing (logged)
any other action                               nothing (logged), exit 0
``SFTPGO_CONNECTION_*``, no ``SFTPGO_ACTION_*``  sweep of ``<data>/<username>`` by the drainer,
                                               once the queue is empty (one sweep per company
                                               for all the disconnections queued)
no event at all (run by hand)                  a usage message on stderr, exit 2, no log line
=============================================  =================================================

The two kinds of call are told apart by what SFTPGo itself sets: every variable of a file
action, ``SFTPGO_ACTION_PATH`` included, is present even when empty, and a post-disconnect
call gets ``SFTPGO_CONNECTION_*`` and nothing about a path. ``SFTPGO_ACTION`` alone proves
nothing: a variable set in SFTPGo's command environment reaches the post-disconnect call
(``core/hook_event.py``).

**Checks.** Before anything runs, every folder name is checked with the parser's own rules
(``core.names``: the allowlist, and the reserved company names) and every path must lie
inside the data folder with no symbolic link on the way (``core.layout`` gives the depth
rules and the ``.tsv`` name rule). Names reach Ansible in a JSON file (``--extra-vars
@file``), never through a shell string.

**Outcomes** come from the run's report (the drainer's in-process run, or the exit code and
``--report-file`` of a reject's parser run, read by ``core/hook_report.py``), never from its
human output. They are ``core.outcomes.HookOutcome``'s values:

==========  ============================================================================
outcome     meaning
==========  ============================================================================
ingested    the file is in InfluxDB and in ``parsed/``
set-aside   bad content, or an upload that failed: the file is in ``error/`` with its reason
skipped     another hook or the sweep had the file, or it changed during ingestion
deferred    InfluxDB unavailable, or the parser ran out of time: the file stays for the sweep
started     a detached job began; its ``job:*`` line follows when it ends
completed   a detached job ended well, or the sweep of a disconnection
queued      (only when ``core.hook`` runs directly) the event waits for the drainer
ignored     an event PowerView does not handle
refused     a name outside the allowlist, or a path leaving the data folder: nothing ran
failed      the installation is broken (settings, credentials, no Python) or a job failed, or
            the parser met an unexpected error (exit 5) with the file
==========  ============================================================================

**Log line** (``uploads.log``, one per event and one per detached job when it ends)::

    <UTC time> pid=<pid> event=<event> user=<user> path=<path> outcome=<outcome> \
duration_ms=<n> detail=<detail>

``event`` is the SFTPGo action (``upload``, ``rename``, ``mkdir``...), ``post-disconnect``,
or ``job:<name>`` for a detached job (``job:drain``, ``job:playbook``, ``job:dashboards``);
``user`` the SFTPGo user (``-`` when none); ``path`` the path below the data folder. For a
parser run the detail is the run's totals, as the parser's summary words them (``1 file(s):
1 ok, 0 error, 0 to retry, 0 skipped; 61,440 values``), then the reason of a file that was
not ingested; a sweep's detail starts with what it did to the company's files (``acme: 2
ingested, 0 set aside, 0 to retry, 1 left because too young (under 60 s)``). Every value is
written bare when it holds only ``A-Za-z0-9_./:@+,-``, in double quotes when it is printable
without ``"`` or ``\\``, and otherwise in bash's ``$'...'`` form with every control character
escaped, so a name holding a newline or a terminal escape cannot forge or garble a line.
``hook-output.log`` holds what the parser and the playbooks printed, each line prefixed with
the ``pid=`` of its log line and escaped the same way.

**The log line of a queued event** is written by the drainer once the event is acted on:
``pid`` is the drainer's, ``duration_ms`` counts from the queueing (the wait in the queue
included). The drainer ends with a ``job:drain`` line of its own (how many events it ended,
by outcome).

**Time.** SFTPGo kills a hook with SIGKILL after its timeout (``deploy/sftpgo.env``); the
hook only queues, in milliseconds. The drainer, playbooks and dashboards updates run in their
own session (``setsid``), out of the reach of that kill. The parser run that sets a failed
upload aside (``--reject``) goes through coreutils' ``timeout`` and is stopped after
``POWERVIEW_HOOK_TIMEOUT_S``. Killed at any point, a hook or the drainer loses nothing:
the marker stays in the queue for the next drainer, the file stays for the next sweep
(``powerview-sweep.timer``).

**Bounds under a burst**: one drainer at a time, however many events arrive (a lock, see
``core/queue.py``); with the timer's sweep, at most two processes ingest. Each hook is a
Python start without site-packages; the drainer holds one batch (``core.drainer.BATCH_FILES``
events) and one file's points at a time.

**Exit status** (``core.outcomes.HookExit``): 0 when the event was queued, or handled (done,
refused, ignored, left for the sweep, or handed to a detached job); 1 when the installation
is broken and an operator must act; 2 when run without an SFTPGo event. Never put "upload"
in SFTPGo's ``execute_sync``: a non-zero exit of a synchronous upload hook makes SFTPGo
delete the uploaded file.

**Where the code is.** This module reads the call and dispatches it (``Hook``); the rest of
the hook, one concern per module:

=========================  ========================================================================
module                     what it holds
=========================  ========================================================================
``core/hook_config.py``    the settings (``Config``), read once per process from ``POWERVIEW_*``
``core/hook_event.py``     the call read from SFTPGo's variables (or ``--job``); ``Finished``
``core/hook_paths.py``     the checks: the installation, paths in the data folder, folder names
``core/hook_handlers.py``  what each event does (the table above), and queueing its work
``core/hook_jobs.py``      detached jobs (drain, playbook, dashboards) and the ``--reject`` run
``core/hook_report.py``    a run report read as an outcome and a detail
``core/hook_log.py``       the log line, the escaping, ``hook-output.log``
``core/outcomes.py``       the outcomes (``HookOutcome``) and exit statuses (``HookExit``)
=========================  ========================================================================

All of them use the standard library only, so the hook can report a broken virtual
environment instead of failing to start (the drainer imports the parser's modules itself).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import NoReturn

from core.hook_config import Config, load_config
from core.hook_event import CallKind, Finished, Handed, read_event
from core.hook_handlers import Collector, EventHandler
from core.hook_jobs import CREATE_PLAYBOOK, DASHBOARDS_PLAYBOOK, Jobs
from core.hook_log import write_log_line
from core.hook_paths import DataFolder, check_installation
from core.outcomes import HookExit, HookOutcome

USAGE = (
    "on-upload.sh: SFTPGo runs this hook with an event in SFTPGO_* variables; "
    "see core/hook.py. Nothing was done."
)
# The playbook jobs: the playbook, and how many names (company, campaign) it takes.
PLAYBOOK_JOBS = {"playbook": (CREATE_PLAYBOOK, (1, 2)), "dashboards": (DASHBOARDS_PLAYBOOK, (2,))}


class Hook:
    """One call of the hook (an SFTPGo event, or a detached job) through to its log line and
    exit status. In the drainer, ``collect`` receives the work of a queued event and
    ``queued_ns`` is when that event was queued."""

    def __init__(
        self,
        config: Config,
        environ: Mapping[str, str],
        argv: Sequence[str],
        collect: Collector | None = None,
        queued_ns: int | None = None,
    ) -> None:
        self.config = config
        self.environ = environ
        self.event = read_event(environ, argv)
        self.collect = collect
        self.queued_ns = queued_ns
        self.started = time.monotonic()

    def run(self) -> int:
        """Handle the call; its exit status (``HookExit``)."""
        if self.event.kind is CallKind.NONE:
            print(USAGE, file=sys.stderr)
            return HookExit.NO_EVENT  # by hand: no line in the production log
        try:
            self._dispatch(DataFolder(self.config, check_installation(self.config)))
        except Finished as done:
            self.log(done.outcome, done.detail)
            return done.status
        except Handed:
            return HookExit.HANDLED
        except Exception as error:  # a bug: still one line, so the event is not lost
            self.log(HookOutcome.FAILED, f"hook error: {type(error).__name__}: {error}")
            raise

    def _dispatch(self, folder: DataFolder) -> NoReturn:
        """A job to its runner, an SFTPGo event to its handler (``core/hook_handlers.py``)."""
        event = self.event
        event.shown_path = folder.shown(event.shown_path)
        jobs = Jobs(self.config, self.environ, event.user)
        if event.kind is CallKind.JOB:
            self._run_job(folder, jobs)
        handler = EventHandler(self.config, event, folder, jobs, self.environ, collect=self.collect)
        handler.handle()

    def _run_job(self, folder: DataFolder, jobs: Jobs) -> NoReturn:
        """``--job drain``, ``--job playbook <company> [<campaign>]`` or ``--job dashboards
        <company> <campaign>``; the names are checked again, as for an event."""
        job, names = self.event.job, self.event.job_args
        if job == "drain":
            jobs.drain(self.event.lock_fd)
        playbook, counts = PLAYBOOK_JOBS.get(job, ("", ()))
        if len(names) in counts:
            self.event.shown_path = "/".join(names)
            folder.check_names(names, ("company", "campaign"))
            jobs.playbook(playbook, names)
        raise Finished(HookOutcome.FAILED, f"unknown job {job!r}", HookExit.NO_EVENT)

    def log(self, outcome: HookOutcome, detail: str) -> None:
        """The event's line; in the drainer, ``duration_ms`` counts from the queueing."""
        if self.queued_ns is not None:
            elapsed_ms = max(0, (time.time_ns() - self.queued_ns) // 1_000_000)
        else:
            elapsed_ms = int((time.monotonic() - self.started) * 1000)
        write_log_line(
            self.config,
            event=self.event.name,
            user=self.event.user,
            path=self.event.shown_path,
            outcome=outcome,
            duration_ms=elapsed_ms,
            detail=detail,
        )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The hook's entry point: the settings read once, then one call handled."""
    env = dict(os.environ if environ is None else environ)
    args = sys.argv[1:] if argv is None else list(argv)
    return Hook(load_config(env), env, args).run()


if __name__ == "__main__":
    raise SystemExit(main())
