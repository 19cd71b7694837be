"""PowerView's SFTPGo hook: SFTPGo events in, ingestions and Grafana playbook runs out.

``on-upload.sh`` sets up the environment and starts ``python -S -m core.enqueue``, which only
queues the event (a few milliseconds) and makes sure the one drainer runs
(``core/enqueue.py``, ``core/queue.py``); the drainer (``core/drainer.py``) runs the logic
here on each queued event, in the order they came, and ingests the files of many uploads
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
nothing: a variable set in SFTPGo's command environment reaches the post-disconnect call.

**Checks.** Before anything runs, every folder name is checked with the parser's own rules
(``core.names``: the allowlist, and the reserved company names) and every path must lie
inside the data folder with no symbolic link on the way (``core.layout`` gives the depth
rules and the ``.tsv`` name rule). Names reach Ansible in a JSON file (``--extra-vars
@file``), never through a shell string.

**Outcomes** come from the run's report (the drainer's in-process run, or the exit code and
``--report-file`` of a reject's parser run), never from its human output:

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

**Exit status**: 0 when the event was queued, or handled (done, refused, ignored, left for
the sweep, or handed to a detached job); 1 when the installation is broken and an operator
must act; 2 when run without an SFTPGo event. Never put "upload" in SFTPGo's
``execute_sync``: a non-zero exit of a synchronous upload hook makes SFTPGo delete the
uploaded file.

This module uses the standard library only, so the hook can report a broken virtual
environment instead of failing to start (the drainer imports the parser's modules itself).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from core.layout import is_tsv_name
from core.names import UnsafeNameError, check_name, reserved_company_reason
from core.queue import Spool, spool_folder

FILE, SWEEP = "file", "sweep"  # the work an event hands to the drainer

EXIT_HANDLED = 0
EXIT_BROKEN = 1
EXIT_NO_EVENT = 2

HOOK_SETTINGS = (
    "POWERVIEW_DATA_DIR",
    "POWERVIEW_HOOK_LOG",
    "POWERVIEW_HOOK_OUTPUT_LOG",
    "POWERVIEW_VENV",
    "POWERVIEW_HOOK_PATH",
    "POWERVIEW_ANSIBLE_PLAYBOOK",
    "POWERVIEW_HOOK_TIMEOUT_S",
    "POWERVIEW_GRAFANA_INFLUXDB_URL",
    "TSV_META_BUCKET",
    "TSV_MIN_FILE_AGE_S",
    "TSV_REPORT_DIR",
    "POWERVIEW_DRAIN_LINGER_S",
)
CHANNELS_FILE = "channels.csv"
CREATE_PLAYBOOK = "create_grafana_resources.yml"
DASHBOARDS_PLAYBOOK = "update_grafana_dashboards.yml"
DEFAULT_TIMEOUT_S = 100  # the parser run of an upload; deploy/sftpgo.env's timeout is above
KILL_AFTER_S = 5
DEFAULT_LINGER_S = 5.0  # the drainer waits this long for more events before it ends
PLAYBOOK_WAIT_S = 1800
# Parser exit codes (tsv_parser.py --help).
PARSER_OK, PARSER_DATA, PARSER_USAGE, PARSER_TEMPORARY, PARSER_REFUSED, PARSER_UNEXPECTED = range(6)
TIMED_OUT = (124, 137)  # timeout(1): the time limit, then SIGKILL

_BARE = re.compile(r"[A-Za-z0-9_./:@+,-]+")
_RECAP = re.compile(r"ok=\d+.*failed=\d+")


# -- settings --------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """The hook's settings found in a ``.env`` file: plain ``KEY=value`` lines, quotes
    removed, no interpolation; the last assignment wins. Unreadable: nothing."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    found: dict[str, str] = {}
    for line in lines:
        match = re.fullmatch(r"\s*(?:export\s+)?([A-Z0-9_]+)\s*=\s*(.*)", line)
        if match is None or match.group(1) not in HOOK_SETTINGS:
            continue
        value = match.group(2)
        quoted = re.match(r"""(["'])(.*?)\1""", value)
        value = quoted.group(2) if quoted else value.split(" #", 1)[0].split("\t#", 1)[0].strip()
        found[match.group(1)] = value
    return found


@dataclass
class Config:
    root: Path
    env_file: Path
    data_dir: Path
    hook_log: Path
    output_log: Path
    venv: Path
    ansible_playbook: str
    timeout_s: float
    grafana_influxdb_url: str
    path: str
    meta_bucket: str
    report_dir: str = ""
    drain_linger_s: float = DEFAULT_LINGER_S

    @property
    def spool(self) -> Spool:
        return Spool(spool_folder(self.data_dir, self.report_dir or None))

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def playbooks(self) -> Path:
        return self.root / "grafana-automation" / "playbooks"


def load_config(environ: Mapping[str, str]) -> Config:
    """The environment wins over the settings file, as in core/settings.py."""
    root = Path(environ.get("POWERVIEW_ROOT") or "/srv/powerview")
    env_file = Path(environ.get("POWERVIEW_ENV_FILE") or root / ".env")
    values = {**read_env_file(env_file), **{k: environ[k] for k in HOOK_SETTINGS if environ.get(k)}}
    hook_log = Path(values.get("POWERVIEW_HOOK_LOG") or "/srv/sftpgo/logs/uploads.log")
    venv = Path(values.get("POWERVIEW_VENV") or root / "envs" / "powerview")
    try:
        timeout_s = float(values.get("POWERVIEW_HOOK_TIMEOUT_S") or DEFAULT_TIMEOUT_S)
    except ValueError:
        timeout_s = float(DEFAULT_TIMEOUT_S)
    return Config(
        root=root,
        env_file=env_file,
        data_dir=Path(values.get("POWERVIEW_DATA_DIR") or "/srv/sftpgo/data"),
        hook_log=hook_log,
        output_log=Path(
            values.get("POWERVIEW_HOOK_OUTPUT_LOG") or hook_log.parent / "hook-output.log"
        ),
        venv=venv,
        ansible_playbook=values.get("POWERVIEW_ANSIBLE_PLAYBOOK")
        or str(venv / "bin" / "ansible-playbook"),
        timeout_s=timeout_s,
        grafana_influxdb_url=values.get("POWERVIEW_GRAFANA_INFLUXDB_URL", ""),
        path=values.get("POWERVIEW_HOOK_PATH") or f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        meta_bucket=values.get("TSV_META_BUCKET") or "powerview_meta",
        report_dir=values.get("TSV_REPORT_DIR", ""),
        drain_linger_s=_seconds(values.get("POWERVIEW_DRAIN_LINGER_S"), DEFAULT_LINGER_S),
    )


def _seconds(text: str | None, default: float) -> float:
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if value >= 0 else default


# -- escaping --------------------------------------------------------------------------------


def log_value(text: str) -> str:
    """A value as the log writes it (see the module docstring)."""
    if text and _BARE.fullmatch(text):
        return text
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return "$'" + "".join(_escape_char(char) for char in text) + "'"


def _escape_char(char: str) -> str:
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", "'": "\\'"}
    if char in named:
        return named[char]
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_output_line(line: str) -> str:
    """A line of a child's output with every control character escaped (tabs kept)."""
    return "".join(
        char if char == "\t" or char.isprintable() else _escape_char(char) for char in line
    )


# -- the hook --------------------------------------------------------------------------------


class Finished(Exception):  # noqa: N818 - how a handler ends, not an error
    """The event is handled: log its line and exit with ``status``."""

    def __init__(self, outcome: str, detail: str, status: int = EXIT_HANDLED) -> None:
        super().__init__(detail)
        self.outcome, self.detail, self.status = outcome, detail, status


class RefusedError(Exception):
    """A path or a name the hook will not act on; the message says why."""


class Handed(Exception):  # noqa: N818 - how a queued event leaves the hook, not an error
    """In the drainer: the event's work (an ingestion, a sweep) was handed to it, which logs
    the event's line once that work is done."""


Collector = Callable[["Hook", dict[str, Any]], None]


class Hook:
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
        self.argv = list(argv)
        self.collect = collect  # set in the drainer: queued work goes there
        self.queued_ns = queued_ns  # in the drainer: when the event was queued
        self.started = time.monotonic()
        self.event = "none"
        self.user = ""
        self.shown_path = ""
        self.data_root: Path | None = None

    # -- entry -------------------------------------------------------------------------------
    def run(self) -> int:
        self._decode_event()
        if self.event == "none":
            print(
                "on-upload.sh: SFTPGo runs this hook with an event in SFTPGO_* variables; "
                "see core/hook.py. Nothing was done.",
                file=sys.stderr,
            )
            return EXIT_NO_EVENT  # by hand: no line in the production log
        try:
            self._check_installation()
            self._dispatch()  # always ends with Finished
        except Finished as done:
            self.log(done.outcome, done.detail)
            return done.status
        except Handed:
            return EXIT_HANDLED
        except Exception as error:  # a bug: still one line, so the event is not lost
            self.log("failed", f"hook error: {type(error).__name__}: {error}")
            raise
        return EXIT_BROKEN  # not reached

    def _decode_event(self) -> None:
        env = self.environ
        if self.argv[:1] == ["--job"]:
            self.event = f"job:{self.argv[1] if len(self.argv) > 1 else ''}"
            self.user = _option(self.argv, "--user")
        elif "SFTPGO_ACTION_PATH" in env:
            self.event = env.get("SFTPGO_ACTION") or "empty"
            self.user = env.get("SFTPGO_ACTION_USERNAME", "")
            self.shown_path = env.get("SFTPGO_ACTION_PATH", "")
        elif "SFTPGO_CONNECTION_USERNAME" in env or "SFTPGO_CONNECTION_DURATION" in env:
            self.event = "post-disconnect"
            self.user = env.get("SFTPGO_CONNECTION_USERNAME", "")

    def _check_installation(self) -> None:
        config = self.config
        if not config.data_dir.is_absolute():
            raise Finished("failed", "POWERVIEW_DATA_DIR must be an absolute path", EXIT_BROKEN)
        if not (config.python.is_file() and os.access(config.python, os.X_OK)):
            raise Finished("failed", f"no Python at {config.python} (POWERVIEW_VENV)", EXIT_BROKEN)
        try:
            self.data_root = config.data_dir.resolve(strict=True)
        except OSError:
            raise Finished(
                "failed", f"no data folder at {config.data_dir} (POWERVIEW_DATA_DIR)", EXIT_BROKEN
            ) from None
        if not self.data_root.is_dir():
            raise Finished("failed", f"{config.data_dir} is not a folder", EXIT_BROKEN)
        if not (config.root / "tsv_parser.py").is_file():
            raise Finished("failed", f"no project at {config.root} (POWERVIEW_ROOT)", EXIT_BROKEN)
        self._show(self.shown_path)

    def _dispatch(self) -> NoReturn:
        if self.event.startswith("job:"):
            rest = self.argv[2:]
            for option in ("--lock-fd", "--user"):
                rest = rest[: rest.index(option)] if option in rest else rest
            self._job(self.event[4:], rest)
        if self.event == "post-disconnect":
            self._on_post_disconnect()
        env = self.environ
        action = env.get("SFTPGO_ACTION", "")
        if action in ("upload", "rename", "mkdir"):
            provider = env.get("SFTPGO_ACTION_FS_PROVIDER") or "0"
            if provider != "0":
                raise Finished("ignored", f"not on the local filesystem (provider {provider})")
        if action == "upload":
            self._on_upload()
        if action == "rename":
            self._on_rename()
        if action == "mkdir":
            self._on_folder(env.get("SFTPGO_ACTION_PATH", ""))
        raise Finished("ignored", "action not handled by PowerView")

    # -- logging -----------------------------------------------------------------------------
    def log(self, outcome: str, detail: str) -> None:
        """The event's line; in the drainer, ``duration_ms`` counts from the queueing."""
        if self.queued_ns is not None:
            elapsed_ms = max(0, (time.time_ns() - self.queued_ns) // 1_000_000)
        else:
            elapsed_ms = int((time.monotonic() - self.started) * 1000)
        write_log_line(
            self.config,
            event=self.event,
            user=self.user,
            path=self.shown_path,
            outcome=outcome,
            duration_ms=elapsed_ms,
            detail=detail,
        )

    def keep_output(self, text: str) -> None:
        """A child's output into hook-output.log, each line escaped and prefixed."""
        if not text:
            return
        prefix = f"pid={os.getpid()} "
        lines = [prefix + escape_output_line(line) + "\n" for line in text.splitlines()]
        _append(self.config.output_log, "".join(lines), fallback=None)

    # -- paths -------------------------------------------------------------------------------
    def _show(self, path: str) -> None:
        """The path as the log shows it: relative to the data folder when inside."""
        for base in (str(self.data_root or ""), str(self.config.data_dir)):
            if base and path.startswith(base + "/"):
                self.shown_path = path[len(base) + 1 :]
                return
        self.shown_path = path

    def _locate(self, path: str) -> list[str]:
        """The parts below the data folder of an existing path with no symbolic link below
        the data folder; raises Refused saying why not."""
        assert self.data_root is not None
        if not path.startswith("/"):
            raise RefusedError("not an absolute path")
        if "//" in path or any(part in (".", "..") for part in path.split("/")):
            raise RefusedError(
                "not a clean path ('.', '..' or '//' in it)"
            )  # SFTPGo sends clean ones
        try:
            resolved = Path(path).resolve(strict=True)
        except (OSError, RuntimeError):
            raise RefusedError("does not exist (any more)") from None
        if not resolved.is_relative_to(self.data_root):
            raise RefusedError(f"outside the data folder {self.data_root} (links resolved)")
        relative = resolved.relative_to(self.data_root)
        lexical = Path(os.path.normpath(path))
        if lexical not in (
            self.data_root / relative,
            Path(os.path.normpath(self.config.data_dir)) / relative,
        ):
            raise RefusedError(f"a symbolic link on the way (leads to {relative})")
        self.shown_path = str(relative)
        return list(relative.parts)

    def _check_names(self, parts: Sequence[str], kinds: Sequence[str]) -> None:
        try:
            for name, kind in zip(parts, kinds, strict=False):
                check_name(name, kind)
            if parts:
                reason = reserved_company_reason(parts[0], self.config.meta_bucket)
                if reason:
                    raise UnsafeNameError(reason)
        except UnsafeNameError as error:
            raise Finished("refused", f"a folder name is not allowed: {error}") from None

    # -- events ------------------------------------------------------------------------------
    def _on_upload(self) -> None:
        path = self.environ.get("SFTPGO_ACTION_PATH", "")
        status = self.environ.get("SFTPGO_ACTION_STATUS", "")
        if status == "1":
            self._on_file(path)
        if status in ("2", "3"):
            name = path.rpartition("/")[2]
            if not is_tsv_name(name):
                raise Finished("ignored", f"not a .tsv file (upload failed, status {status})")
            if not os.path.lexists(path):
                raise Finished("ignored", f"upload failed (status {status}), no file left")
            self._on_file(path, reject=f"upload failed: SFTPGo status {status}")
        raise Finished("ignored", f"unknown upload status {status!r}: left for the sweep")

    def _on_rename(self) -> None:
        target = self.environ.get("SFTPGO_ACTION_TARGET", "")
        self._show(target)
        if (self.environ.get("SFTPGO_ACTION_STATUS") or "1") != "1":
            raise Finished("ignored", "rename failed")
        if os.path.isdir(target) and not os.path.islink(target):
            self._on_folder(target)
        self._on_file(target)

    def _on_file(self, path: str, reject: str | None = None) -> None:
        self._show(path)
        name = path.rpartition("/")[2]
        if name == CHANNELS_FILE and reject is None:
            self._on_channels_file(path)
        if not is_tsv_name(name):
            raise Finished("ignored", "not a .tsv file")
        if not os.path.lexists(path):
            raise Finished("skipped", "no longer there: taken by another run")
        try:
            parts = self._locate(path)
        except RefusedError as refusal:
            raise Finished("refused", str(refusal)) from None
        if len(parts) != 4:
            raise Finished("refused", "not at <company>/<campaign>/<device>/<file>.tsv")
        self._check_names(parts[:3], ("company", "campaign", "device folder"))
        if reject is not None:
            self._run_parser_on_file(parts, reject)
        self._queue({"kind": FILE, "path": "/".join(parts)}, "ingestion")

    def _on_channels_file(self, path: str) -> None:
        try:
            parts = self._locate(path)
        except RefusedError as refusal:
            raise Finished("refused", str(refusal)) from None
        if len(parts) != 3:
            raise Finished("ignored", "channels.csv belongs in <company>/<campaign>/")
        self._check_names(parts[:2], ("company", "campaign"))
        self._detach("dashboards", parts[:2])
        raise Finished("started", f"{DASHBOARDS_PLAYBOOK} for {' '.join(parts[:2])}")

    def _on_folder(self, path: str) -> None:
        self._show(path)
        try:
            parts = self._locate(path)
        except RefusedError as refusal:
            raise Finished("refused", str(refusal)) from None
        if not os.path.isdir(path):
            raise Finished("ignored", "not a folder")
        if len(parts) in (1, 2):
            self._check_names(parts, ("company", "campaign"))
            self._detach("playbook", parts)
            raise Finished("started", f"{CREATE_PLAYBOOK} for {' '.join(parts)}")
        if len(parts) == 3:
            raise Finished("ignored", "device folder: nothing to create")
        raise Finished("ignored", "below a device folder")

    def _on_post_disconnect(self) -> None:
        company = self.user
        self.shown_path = company
        if not company:
            raise Finished("ignored", "no user (closed before login)")
        # One SFTPGo user per company, named as the company, whose home is <data>/<company>.
        self._check_names([company], ("company",))
        assert self.data_root is not None
        folder = self.data_root / company
        if folder.is_symlink() or not folder.is_dir():
            raise Finished("ignored", "no company folder")
        self._queue({"kind": SWEEP, "company": company}, f"sweep of {company}")

    # -- the queue ---------------------------------------------------------------------------
    def _queue(self, entry: dict[str, Any], what: str) -> NoReturn:
        """In the drainer, hand the work over (it logs the line when done). Otherwise (the
        full hook, when on-upload.sh's fast path could not queue the event): queue the event
        and make sure a drainer runs, as core/enqueue.py does."""
        if self.collect is not None:
            self.collect(self, entry)
            raise Handed
        spool = self.config.spool
        try:
            spool.enqueue(self.environ, time.time_ns())
            descriptor = spool.try_lock()
        except OSError as error:
            raise Finished(
                "failed", f"cannot queue in {spool.folder}: {error.strerror or error}", EXIT_BROKEN
            ) from None
        if descriptor is None:
            raise Finished("queued", f"{what} queued; the running drainer takes it")
        try:  # the lock goes with its descriptor to the drainer: never two drainers
            pid = self._detach("drain", [], keep_fd=descriptor)
        finally:
            os.close(descriptor)
        raise Finished("queued", f"{what} queued; drainer started (pid {pid})")

    # -- the parser --------------------------------------------------------------------------
    def _parser(self, work: Path, *args: str) -> tuple[int, dict[str, Any] | None]:
        """Run tsv_parser.py within the time limit; (exit code, its JSON report or None)."""
        config = self.config
        report_file = work / "report.json"
        command = [
            "timeout",
            f"--kill-after={KILL_AFTER_S}",
            f"{config.timeout_s:g}",
            str(config.python),
            str(config.root / "tsv_parser.py"),
            "--dataFolder",
            str(config.data_dir),
            "--report-file",
            str(report_file),
            *args,
        ]
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._child_env(),
            cwd=config.root,
            check=False,
        )
        self.keep_output(done.stdout.decode("utf-8", "replace"))
        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = None
        return done.returncode, report

    def _run_parser_on_file(self, parts: Sequence[str], reject: str | None) -> None:
        file = str(self.config.data_dir.joinpath(*parts))
        args = ["--tsvFile", file] + (["--reject", reject] if reject else [])
        with tempfile.TemporaryDirectory(prefix="powerview-hook-") as work:
            status, report = self._parser(Path(work), *args)
        if status in TIMED_OUT:
            raise Finished(
                "deferred", f"parser stopped after {self.config.timeout_s:g} s, left for the sweep"
            )
        files = (report or {}).get("files") or []
        entry = files[0] if files else None
        totals = totals_text(report) if report else ""
        if status == PARSER_TEMPORARY:
            raise Finished("deferred", _join("InfluxDB unavailable, left for the sweep", totals))
        if entry is None:
            if status == PARSER_OK:  # nothing to do: another run had moved it
                raise Finished("skipped", "already moved by another run")
            raise Finished(
                "failed",
                f"tsv_parser.py exit {status}: {PARSER_EXITS.get(status, 'unknown')} "
                f"(see {self.config.output_log})",
                EXIT_BROKEN,
            )
        outcome, reason = file_outcome(entry)
        raise Finished(outcome, _join(totals, reason), EXIT_BROKEN if outcome == "failed" else 0)

    # -- detached jobs -----------------------------------------------------------------------
    def _detach(self, job: str, args: Sequence[str], keep_fd: int | None = None) -> int:
        """Start ``python -m core.hook --job <job> ...`` in its own session (SFTPGo's kill
        after its timeout does not reach it); the job writes its own log line. ``keep_fd``
        is passed on (``--lock-fd``); the pid of the job is returned."""
        # The drainer needs the virtualenv's packages; the other jobs only the standard library
        python = str(self.config.python) if job == "drain" else sys.executable
        command = [python, "-m", "core.hook", "--job", job, *args]
        if keep_fd is not None:
            command += ["--lock-fd", str(keep_fd)]
        if self.user:
            command += ["--user", self.user]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.config.root,
            env={**self._child_env(), "PYTHONPATH": str(self.config.root)},
            start_new_session=True,
            pass_fds=() if keep_fd is None else (keep_fd,),
        )
        return process.pid

    def _job(self, job: str, names: list[str]) -> None:
        if job == "drain":
            self._job_drain(_option(self.argv, "--lock-fd"))
        if job == "playbook" and len(names) in (1, 2):
            self._job_playbook(CREATE_PLAYBOOK, names[0], names[1] if len(names) > 1 else "")
        if job == "dashboards" and len(names) == 2:
            self._job_playbook(DASHBOARDS_PLAYBOOK, names[0], names[1])
        raise Finished("failed", f"unknown job {job!r}", EXIT_NO_EVENT)

    def _job_drain(self, lock_fd: str) -> NoReturn:
        """The drainer (core/drainer.py): started by a hook holding the drainer lock, whose
        descriptor it inherits. It logs a line per queued event, then its own."""
        from core.drainer import drain  # noqa: PLC0415 - the hook itself stays light

        spool = self.config.spool
        if lock_fd.isdigit():
            descriptor: int | None = int(lock_fd)
        else:  # started by hand: take the lock, or leave it to the running drainer
            descriptor = spool.try_lock()
            if descriptor is None:
                raise Finished("skipped", "a drainer is already running")
        assert self.data_root is not None
        done = drain(self.config, spool, descriptor, self.keep_output, self.environ)
        raise Finished("completed", done)

    def _job_playbook(self, playbook: str, company: str, campaign: str) -> None:
        names = [company, campaign] if campaign else [company]
        self.shown_path = "/".join(names)
        self._check_names(names, ("company", "campaign"))
        config = self.config
        variables: dict[str, str] = {"company_name": company}
        if campaign:
            variables["campaign_name"] = campaign
        if playbook == CREATE_PLAYBOOK and config.grafana_influxdb_url:
            variables["grafana_influxdb_url"] = config.grafana_influxdb_url
        with tempfile.TemporaryDirectory(prefix="powerview-playbook-") as folder:
            work = Path(folder)
            vars_file = work / "vars.json"
            descriptor = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(descriptor, "w", encoding="utf-8") as stream:
                json.dump(variables, stream)  # names are data, never pasted into a string
            env = {
                **self._child_env(),
                "ANSIBLE_CONFIG": str(config.root / "grafana-automation" / "ansible.cfg"),
                "ANSIBLE_HOME": str(work / "ansible"),
                "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
                "ANSIBLE_NOCOLOR": "1",
            }
            # One playbook at a time on this machine: a burst of events queues here.
            command = [
                "flock", "-w", str(PLAYBOOK_WAIT_S), str(config.playbooks),
                config.ansible_playbook, str(config.playbooks / playbook),
                "--extra-vars", f"@{vars_file}",
            ]  # fmt: skip
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=config.root,
                check=False,
            )
        output = done.stdout.decode("utf-8", "replace")
        self.keep_output(output)
        recaps = _RECAP.findall(output)
        recap = " ".join(recaps[-1].split()) if recaps else ""
        if done.returncode == 0:
            raise Finished("completed", _join(playbook, recap, separator=": "))
        raise Finished(
            "failed",
            _join(f"{playbook} exit {done.returncode}", recap, separator=": ")
            + f" (see {config.output_log})",
            EXIT_BROKEN,
        )

    def _child_env(self) -> dict[str, str]:
        """What the parser and the playbooks get: the hook's environment, the settings file,
        the hook's PATH and a UTF-8 locale."""
        return {
            **self.environ,
            "POWERVIEW_ENV_FILE": str(self.config.env_file),
            "PATH": self.config.path,
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
        }


PARSER_EXITS = {
    PARSER_OK: "done",
    PARSER_DATA: "bad content set aside",
    PARSER_USAGE: "bad arguments or settings",
    PARSER_TEMPORARY: "InfluxDB unavailable",
    PARSER_REFUSED: "InfluxDB refused the token or the organization",
    PARSER_UNEXPECTED: "unexpected error",
}


def totals_text(report: Mapping[str, Any]) -> str:
    """The run's totals as the parser's summary words them."""
    totals = report.get("totals") or {}
    return (
        f"{totals.get('files', 0)} file(s): {totals.get('ok', 0)} ok, "
        f"{totals.get('error', 0)} error, {totals.get('retry', 0)} to retry, "
        f"{totals.get('skipped', 0)} skipped; {totals.get('values_written', 0):,} values"
    )


def file_outcome(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(outcome, reason) of one file's entry in a run report."""
    status, kind = entry.get("status"), entry.get("error_kind")
    error = entry.get("error") or {}
    reason = str(error.get("reason") or "")
    if error.get("line"):
        reason = f"line {error['line']}: {reason}"
    notes = "; ".join(entry.get("notes") or [])
    if status == "ok":
        return "ingested", ""
    if status == "skipped":
        return "skipped", notes
    if status == "retry":
        if kind == "configuration":
            return "failed", _join("InfluxDB refused the token or the organization", reason)
        return "deferred", _join(reason, "left for the sweep")
    where = "moved to error/" if entry.get("moved_to") else "left in place"
    if kind == "data" and entry.get("moved_to"):
        return "set-aside", f"bad content, {where}: {reason}"
    return "failed", _join(f"unexpected error, {where}: {reason}", notes)


def sweep_text(company: str, report: Mapping[str, Any] | None) -> str:
    """What a sweep did to the company's files, from its report's skip reasons."""
    if report is None:
        return f"{company}: no report"
    files = report.get("files") or []
    count = {
        key: sum(1 for entry in files if predicate(entry))
        for key, predicate in (
            ("ingested", lambda e: e["status"] == "ok"),
            ("set aside", lambda e: e["status"] == "error" and e.get("moved_to")),
            ("left in error", lambda e: e["status"] == "error" and not e.get("moved_to")),
            ("to retry", lambda e: e["status"] == "retry"),
            ("young", lambda e: e.get("skip_reason") == "too_young"),
            ("other", lambda e: e["status"] == "skipped" and e.get("skip_reason") != "too_young"),
        )
    }
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


def _join(*parts: str, separator: str = "; ") -> str:
    return separator.join(part for part in parts if part)


def _option(argv: Sequence[str], name: str) -> str:
    if name in argv:
        index = list(argv).index(name)
        if index + 1 < len(argv):
            return argv[index + 1]
    return ""


def _append(path: Path, text: str, fallback: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(text)
    except OSError:
        if fallback is not None:
            fallback.write(text)


def write_log_line(
    config: Config,
    *,
    event: str,
    user: str,
    path: str,
    outcome: str,
    duration_ms: int,
    detail: str,
) -> None:
    """One line of ``uploads.log`` (see the module docstring), from this process."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    fields = [
        stamp,
        f"pid={os.getpid()}",
        f"event={log_value(event)}",
        f"user={log_value(user or '-')}",
        f"path={log_value(path or '-')}",
        f"outcome={outcome}",
        f"duration_ms={duration_ms}",
        f"detail={log_value(detail)}",
    ]
    _append(config.hook_log, " ".join(fields) + "\n", fallback=sys.stderr)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    args = sys.argv[1:] if argv is None else list(argv)
    return Hook(load_config(env), env, args).run()


if __name__ == "__main__":
    raise SystemExit(main())
