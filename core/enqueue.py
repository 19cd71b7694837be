"""The hook's fast path: record the SFTPGo event in the queue, make sure a drainer runs.

``on-upload.sh`` runs ``python -S -m core.enqueue`` for every SFTPGo event (when the
virtualenv's Python is there): no site-packages, and only ``os``, ``sys`` and ``fcntl``
imported, so a burst of a thousand events costs a thousand Python starts of a few
milliseconds each, not a thousand parsers. Everything else (the checks, what the event
means, the ingestion, the log line) happens in the drainer, which runs the logic of
``core/hook.py`` on each queued event (see ``core/queue.py``, ``core/drainer.py``).

The event is the environment SFTPGo gave the hook, its ``SFTPGO_*`` variables, written as
``KEY=value`` entries separated by NUL bytes (a variable cannot hold a NUL, so any name,
newlines included, survives as it came), plus the time it was queued. The marker is written
under ``.tmp/`` and renamed into the queue: it is there complete or not at all.

Whatever goes wrong here (no settings file, a spool that cannot be written), the full hook
takes over (``python -m core.hook``), which logs why.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time

QUEUE_FOLDER = "queue"
WORK = ".work"
TMP = ".tmp"
LOCK_NAME = ".drainer.lock"
SUFFIX = ".event"
QUEUED_NS = "POWERVIEW_QUEUED_NS"
QUEUED_ACTIONS = ("upload", "rename", "mkdir")
# What this module reads from the settings file (the environment wins, as everywhere).
_KEYS = ("POWERVIEW_DATA_DIR", "POWERVIEW_VENV", "TSV_REPORT_DIR")


def read_env_values(path: str, keys: tuple[str, ...] = _KEYS) -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file, as ``core.hook_config.read_env_file`` reads them
    (``export`` allowed, quotes removed, `` #`` comments cut, the last assignment wins)."""
    try:
        with open(path, encoding="utf-8") as stream:
            lines = stream.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    found = {}
    for raw in lines:
        line = raw.strip()
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, equal, value = line.partition("=")
        key = key.rstrip()
        if not equal or key not in keys:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] in "\"'" and value[0] in value[1:]:
            value = value[1 : value.index(value[0], 1)]
        else:
            value = value.split(" #", 1)[0].split("\t#", 1)[0].strip()
        found[key] = value
    return found


def spool_path(data_dir: str, report_dir: str) -> str:
    """``queue/`` in the parser's report folder (``TSV_REPORT_DIR``, else
    ``<data folder>/../logs/reports``)."""
    if report_dir:
        return os.path.join(report_dir, QUEUE_FOLDER)
    parent = os.path.dirname(os.path.realpath(data_dir))
    return os.path.join(parent, "logs", "reports", QUEUE_FOLDER)


def settings(environ: dict[str, str]) -> dict[str, str]:
    root = environ.get("POWERVIEW_ROOT") or "/srv/powerview"
    env_file = environ.get("POWERVIEW_ENV_FILE") or os.path.join(root, ".env")
    values = read_env_values(env_file)
    values.update({key: environ[key] for key in _KEYS if environ.get(key)})
    values["root"] = root
    return values


def encode_event(environ: dict[str, str], queued_ns: int) -> bytes:
    entries = [f"{key}={value}" for key, value in environ.items() if key.startswith("SFTPGO_")]
    entries.append(f"{QUEUED_NS}={queued_ns}")
    return "\0".join(entries).encode("utf-8", "surrogateescape")


def decode_event(body: bytes) -> dict[str, str]:
    event = {}
    for entry in body.decode("utf-8", "surrogateescape").split("\0"):
        key, equal, value = entry.partition("=")
        if equal:
            event[key] = value
    return event


def write_marker(spool: str, body: bytes) -> str:
    """The marker, atomically; its name orders the queue (time, then pid)."""
    for folder in (spool, os.path.join(spool, WORK), os.path.join(spool, TMP)):
        os.makedirs(folder, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
    temporary = os.path.join(spool, TMP, name)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, body)
    finally:
        os.close(descriptor)
    target = os.path.join(spool, name)
    os.replace(temporary, target)
    return target


def try_lock(spool: str) -> int | None:
    """The drainer lock's descriptor when this process got it, else None (a drainer runs)."""
    os.makedirs(spool, exist_ok=True)
    path = os.path.join(spool, LOCK_NAME)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def start_drainer(python: str, root: str, environ: dict[str, str], descriptor: int) -> int:
    """``python -m core.hook --job drain --lock-fd N`` in its own session (out of reach of
    SFTPGo's kill), holding the lock through the inherited descriptor; its pid."""
    os.set_inheritable(descriptor, True)
    null = os.open(os.devnull, os.O_RDWR)
    try:
        env = {**environ, "PYTHONPATH": root, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        argv = [python, "-m", "core.hook", "--job", "drain", "--lock-fd", str(descriptor)]
        return os.posix_spawn(
            python,
            argv,
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, null, number) for number in (0, 1, 2)],
            setsid=True,
        )
    finally:
        os.close(null)


class NotQueuedError(Exception):
    """The installation cannot take the event this way: the full hook says why."""


def enqueue(environ: dict[str, str], time_ns: int) -> str:
    """Queue the event and start a drainer unless one runs; what was done."""
    values = settings(environ)
    venv = values.get("POWERVIEW_VENV") or os.path.join(values["root"], "envs", "powerview")
    python = os.path.join(venv, "bin", "python")
    if not os.access(python, os.X_OK):
        raise NotQueuedError(python)  # no drainer could run: the full hook logs it
    data_dir = values.get("POWERVIEW_DATA_DIR") or "/srv/sftpgo/data"
    spool = spool_path(data_dir, values.get("TSV_REPORT_DIR", ""))
    write_marker(spool, encode_event(environ, time_ns))
    descriptor = try_lock(spool)
    if descriptor is None:
        return "queued; the running drainer takes it"
    try:
        pid = start_drainer(python, values["root"], environ, descriptor)
    finally:
        os.close(descriptor)
    return f"queued; drainer started (pid {pid})"


def main() -> int:
    environ = dict(os.environ)
    # Queued: the events that lead to work. Any other action is only logged as ignored, at
    # once, by the full hook (SFTPGo sends none with deploy/sftpgo.env).
    if "SFTPGO_ACTION_PATH" in environ:
        event = environ.get("SFTPGO_ACTION") in QUEUED_ACTIONS
    else:
        event = any(
            key in environ for key in ("SFTPGO_CONNECTION_USERNAME", "SFTPGO_CONNECTION_DURATION")
        )
    if event:
        try:
            enqueue(environ, time.time_ns())
            # core.outcomes.HookExit.HANDLED, written as its value: importing enum would
            # cost this fast path more than all the rest of its start
            return 0
        except (OSError, NotQueuedError):
            pass  # the full hook says why, in the log
    os.execv(sys.executable, [sys.executable, "-m", "core.hook", *sys.argv[1:]])
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
