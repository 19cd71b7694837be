"""The nightly burst: many loggers upload at once, each upload announced by the SFTPGo hook.

    .venv/bin/python bench/bench_burst.py                  # 1,000 files in 60 s (issue #12)
    .venv/bin/python bench/bench_burst.py --files 100      # a quick check
    .venv/bin/python bench/bench_burst.py --json           # the result as JSON on stdout

What it does, relying only on what SFTPGo and an operator see (on-upload.sh run as SFTPGo runs
it, the data folder with parsed/ and error/, and the points stored in the InfluxDB double),
never on how the hook or the parser work inside:

1. Makes N daily files shaped like the bundled 143-row, 31-column sample (master tri + 4
   slaves): each file has its own serials (its own 30 series), company (one per 50 files),
   campaign (two per company) and days, so no two files share a point.
2. Starts the InfluxDB double (tests/doubles/influxdb.py) in its own process
   (bench/burst_double.py): its memory and CPU are not PowerView's and are reported apart.
3. "Uploads" the files evenly over the window as SFTPGo does with SFTPGO_COMMON__UPLOAD_MODE=1:
   written under ``.sftpgo-upload.<id>.<name>`` in the device folder, then renamed in place.
4. For each upload runs the hook as SFTPGo v2.7.5 does (internal/common/actions.go,
   handleCommand and notificationAsEnvVars; internal/common/common.go, post-disconnect):
   the absolute path of on-upload.sh, no arguments, stdin and output on /dev/null, an
   environment holding only SFTPGO_COMMAND__ENV of deploy/sftpgo.env (POWERVIEW_ROOT and
   POWERVIEW_ENV_FILE pointed at this run) plus every SFTPGO_ACTION_* variable of an upload
   (STATUS=1, FS_PROVIDER=0...); asynchronously, at most 150 hooks at a time, the others
   waiting in order (the hooksConcurrencyGuard channel of actions.go, shared with the
   post-disconnect hook); killed with SIGKILL, the hook process alone (Go's
   exec.CommandContext), SFTPGO_COMMAND__TIMEOUT seconds after it started. When
   deploy/sftpgo.env sets SFTPGO_COMMON__POST_DISCONNECT_HOOK, each upload is followed by the
   disconnection of its logger: the same program with SFTPGO_CONNECTION_* (--no-disconnect
   leaves it out).
5. Plays powerview-sweep.timer: the ExecStart of deploy/powerview-sweep.service, every period
   of the timer's OnCalendar (5 minutes), never two at once, the first tick one period after
   the first upload (--sweep-phase): within the bars (window + 120 s < 300 s) the timer never
   fires, so the figure is what the hooks achieve; a run not done by then shows when the
   timer's sweeps finish it. --no-sweep-timer turns it off.

Measured:

- time from the last upload until every file is in parsed/ and every one of its values is
  stored in the double;
- peak total memory: the sum of the RSS of every PowerView process (hooks and all they start,
  detached jobs included; not the double, not this launcher), sampled from /proc every
  --sample-interval seconds (the PSS sum, shared pages divided, about each second, for
  information). Aborts (and reports the figure reached) past --rss-cap-mb;
- CPU seconds per file: user + system time of every PowerView process, from wait4() of each
  one. This launcher makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so a
  process that outlives its parent (a detached job started with setsid, a parser whose hook
  was killed) is re-parented to it, reaped by it and counted, and stays in the /proc tree
  sampled for memory. The figure is cross-checked against getrusage(RUSAGE_CHILDREN);
- lost and duplicated values, per series: each file's 30 series must hold its 143 values,
  and the double counts the values it received in accepted writes, so a value written twice
  (stored once, since InfluxDB overwrites) shows as received - stored. A missing value is
  lost when its file left the place it was uploaded to, waiting when the file is still there.

This launcher runs at niceness -10 when allowed (it plays the clients and measures: starved,
it would upload and sample late) and starts every process through ``nice -n 10``, exec'd in
place, so PowerView's processes run at the usual 0, like the double.

Bars (issue #12, 2 cores): all ingested within 120 s of the last upload, peak total memory
under 500 MB, 0 lost, 0 duplicated. Exit status 0 when every bar is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import queue
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOOK = ROOT / "on-upload.sh"
TEMPLATE = ROOT / "examples/data/company1/campaign1/02001084/T302_251012_031720.tsv"
SFTPGO_ENV = ROOT / "deploy/sftpgo.env"
SWEEP_SERVICE = ROOT / "deploy/powerview-sweep.service"
SWEEP_TIMER = ROOT / "deploy/powerview-sweep.timer"
OUT = ROOT / "bench" / "out"
WORK = OUT / "burst"
VENV = Path(sys.executable).parent.parent

SFTPGO_HOOK_SLOTS = 150  # internal/common/actions.go: hooksConcurrencyGuard, not configurable
FILES_PER_COMPANY = 50
CAMPAIGNS = ("site-a", "site-b")
STAMP = "%d/%m/%y %H:%M:%S"
BARS = {"seconds_after_last_upload": 120.0, "peak_rss_mb": 500.0, "lost": 0, "duplicated": 0}
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36


# -- deployment files ------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Z0-9_]+)=(.*)$", line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


@dataclass
class Deployment:
    """What deploy/ says about how the hook and the sweep run, pointed at this run's tree."""

    timeout_s: float
    command_env: dict[str, str]
    post_disconnect: bool
    sweep_command: list[str]
    sweep_env: dict[str, str]
    sweep_period_s: float

    @classmethod
    def load(cls, data: Path, env_file: Path) -> Deployment:
        sftpgo = read_env_file(SFTPGO_ENV)
        hook = sftpgo.get("SFTPGO_COMMON__ACTIONS__HOOK", "")
        if Path(hook).name != HOOK.name:
            raise SystemExit(f"{SFTPGO_ENV}: the upload hook is {hook!r}, not {HOOK.name}")
        command_env = {}
        for pair in sftpgo.get("SFTPGO_COMMAND__ENV", "").split(","):
            key, _, value = pair.strip().partition("=")
            if key:
                command_env[key] = value
        command_env["POWERVIEW_ROOT"] = str(ROOT)
        command_env["POWERVIEW_ENV_FILE"] = str(env_file)
        disconnect = Path(sftpgo.get("SFTPGO_COMMON__POST_DISCONNECT_HOOK", "")).name == HOOK.name
        service = SWEEP_SERVICE.read_text(encoding="utf-8")
        install = {"/srv/powerview/envs/powerview": str(VENV), "/srv/powerview": str(ROOT),
                   "/srv/sftpgo/data": str(data)}  # fmt: skip

        def placed(text: str) -> str:
            for old, new in install.items():
                text = text.replace(old, new)
            return text

        (exec_start,) = re.findall(r"^ExecStart=(.*)$", service, re.M)
        sweep_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        for assignment in re.findall(r"^Environment=(.*)$", service, re.M):
            key, _, value = assignment.partition("=")
            sweep_env[key] = placed(value)
        sweep_env["POWERVIEW_ENV_FILE"] = str(env_file)
        calendar = re.search(r"^OnCalendar=\*:0/(\d+)$", SWEEP_TIMER.read_text(), re.M)
        return cls(
            timeout_s=float(sftpgo.get("SFTPGO_COMMAND__TIMEOUT", "30")),
            command_env=command_env,
            post_disconnect=disconnect,
            sweep_command=placed(exec_start).split(),
            sweep_env=sweep_env,
            sweep_period_s=60.0 * int(calendar.group(1)) if calendar else 300.0,
        )


# -- input files -----------------------------------------------------------------------------


@dataclass
class Upload:
    index: int
    company: str
    campaign: str
    master: str
    name: str
    content: bytes
    path: Path
    done_at: float | None = None
    uploaded_at: float | None = None

    @property
    def parsed(self) -> Path:
        return self.path.parent / "parsed" / self.name

    @property
    def error(self) -> Path:
        return self.path.parent / "error" / self.name


@dataclass
class Shape:
    rows: int
    channels: int


def make_uploads(count: int, data: Path) -> tuple[list[Upload], Shape]:
    """``count`` daily files from the 143-row template, each with its own serials and days."""
    lines = TEMPLATE.read_text(encoding="ascii").splitlines()
    serials, labels, body = lines[0].split("\t"), lines[1], [line for line in lines[2:] if line]
    rows = [line.split("\t", 1) for line in body]
    for _, values in rows:
        if all(float(value) == 0 for value in values.split("\t")):
            raise SystemExit(f"{TEMPLATE}: an all-zero row would not be written; pick another")
    moments = [datetime.strptime(stamp, STAMP) for stamp, _ in rows]
    template_serials = list(dict.fromkeys(serials))  # master first, then the slaves in order
    companies = max(1, -(-count // FILES_PER_COMPANY))
    uploads = []
    for index in range(count):
        company = f"burst{index % companies + 1:02d}"
        campaign = CAMPAIGNS[(index // companies) % len(CAMPAIGNS)]
        master = f"05{index:06d}"
        renamed = {template_serials[0]: master}
        for number, slave in enumerate(template_serials[1:], start=1):
            renamed[slave] = f"{5 + number}{index:07d}"
        shift = timedelta(days=index % 120)
        text = "\n".join([
            "\t".join(renamed[serial] for serial in serials),
            labels,
            *(f"{(moment + shift).strftime(STAMP)}\t{values}"
              for moment, (_, values) in zip(moments, rows, strict=True)),
        ]) + "\n"  # fmt: skip
        name = f"T302_{(moments[-1] + shift):%y%m%d}_031720.tsv"
        path = data / company / campaign / master / name
        uploads.append(Upload(index, company, campaign, master, name, text.encode(), path))
    return uploads, Shape(rows=len(rows), channels=len(serials) - 1)


# -- processes -------------------------------------------------------------------------------


@dataclass
class Proc:
    pid: int
    kind: str  # upload, disconnect, timer-sweep
    started: float
    pidfd: int
    deadline: float | None
    killed: bool = False


@dataclass
class Accounting:
    cpu_s: Counter = field(default_factory=Counter)  # per kind; "adopted" for re-parented ones
    exits: Counter = field(default_factory=Counter)  # per kind and status
    reaped: int = 0
    double_cpu_s: float = 0.0


class Launcher:
    """Spawns, times out, reaps and samples every PowerView process of the run."""

    def __init__(self, deployment: Deployment, sftpgo_home: Path, args: argparse.Namespace):
        self.deployment = deployment
        self.home = sftpgo_home
        self.args = args
        self.lock = threading.Lock()
        self.running: dict[int, Proc] = {}
        self.accounting = Accounting()
        self.slots = threading.Semaphore(SFTPGO_HOOK_SLOTS)
        self.events: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.halt = threading.Event()  # no more processes: stopping or aborting
        self.abort_reason: str | None = None
        self.double_pid: int | None = None
        self.double_done = threading.Event()
        self.peak_rss = 0
        self.peak_at: float | None = None
        self.peak_breakdown: dict[str, float] = {}
        self.peak_processes = 0
        self.peak_pss = 0
        self.double_peak_rss = 0
        self.hooks_waiting_peak = 0
        self.hooks_running_peak = 0
        self.timer_ticks: list[dict[str, Any]] = []
        self.me = os.getpid()
        self.nice_back = nice_back(args.launcher_nice)
        self.t0 = time.monotonic()

    # ---- spawning

    def _spawn(
        self, argv: list[str], env: dict[str, str], kind: str, timeout: float | None
    ) -> Proc:
        argv = [*self.nice_back, *argv]  # exec'd in place: the same process, at niceness 0
        devnull = os.devnull
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, devnull, os.O_WRONLY, 0),
        ]
        with self.lock:  # the reaper must not see the pid before it is registered
            if self.halt.is_set():
                raise RuntimeError("halted")
            pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
            now = time.monotonic()
            proc = Proc(pid, kind, now, os.pidfd_open(pid), now + timeout if timeout else None)
            self.running[pid] = proc
        return proc

    def dispatch(self) -> None:
        """SFTPGo's async hooks: each waits for one of 150 slots, in order, then runs."""
        while True:
            event = self.events.get()
            if event is None:
                return
            kind, env = event
            acquired = False
            while not acquired and not self.halt.is_set():
                acquired = self.slots.acquire(timeout=0.2)
            if self.halt.is_set():
                if acquired:
                    self.slots.release()
                continue
            try:
                self._spawn([str(HOOK)], env, kind, self.deployment.timeout_s)
            except RuntimeError:
                self.slots.release()

    def announce(self, kind: str, env: dict[str, str]) -> None:
        self.events.put((kind, {**self.deployment.command_env, **env}))

    def sweep(self) -> bool:
        """One run of powerview-sweep.service, unless one is still running."""
        with self.lock:
            if any(proc.kind == "timer-sweep" for proc in self.running.values()):
                return False
        argv = ["/usr/bin/env", "-C", str(ROOT), *self.deployment.sweep_command]  # its cwd
        try:
            self._spawn(argv, dict(self.deployment.sweep_env), "timer-sweep", None)
        except RuntimeError:
            return False
        return True

    # ---- reaping

    def reap(self) -> None:
        """wait4() every child: ours, the double, and every orphan re-parented to us."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, 0)
            except ChildProcessError:
                if self.stop.is_set() and self.double_done.is_set():
                    return
                time.sleep(0.05)
                continue
            cpu = usage.ru_utime + usage.ru_stime
            code = os.waitstatus_to_exitcode(status)
            with self.lock:
                if pid == self.double_pid:
                    self.accounting.double_cpu_s += cpu
                    self.double_done.set()
                    continue
                proc = self.running.pop(pid, None)
                self.accounting.reaped += 1
                if proc is None:
                    self.accounting.cpu_s["adopted"] += cpu
                    continue
                os.close(proc.pidfd)
                self.accounting.cpu_s[proc.kind] += cpu
                outcome = "killed-timeout" if proc.killed else f"exit {code}"
                self.accounting.exits[f"{proc.kind}: {outcome}"] += 1
            if proc.kind != "timer-sweep":
                self.slots.release()

    # ---- sampling

    def tree(self) -> tuple[dict[int, tuple[str, int]], int]:
        """Our descendants but the double's tree: pid -> (command, RSS bytes); the double's RSS."""
        stats: dict[int, tuple[int, str, int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stream:
                    raw = stream.read().decode("ascii", "replace")
            except OSError:
                continue
            head, _, rest = raw.rpartition(")")
            fields = rest.split()
            stats[int(entry.name)] = (int(fields[1]), head.partition("(")[2], int(fields[21]))
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        found: dict[int, tuple[str, int]] = {}
        double_rss = 0
        stack = list(children.get(self.me, []))
        while stack:
            pid = stack.pop()
            if pid == self.double_pid:
                double_rss = stats[pid][2] * PAGE
                continue
            _, command, rss = stats[pid]
            found[pid] = (command, rss * PAGE)
            stack.extend(children.get(pid, []))
        return found, double_rss

    def sample(self) -> None:
        cap = self.args.rss_cap_mb * 2**20
        pss_every = max(1, round(1.0 / self.args.sample_interval))  # about once a second
        samples = 0
        while not self.stop.is_set():
            found, double_rss = self.tree()
            total = sum(rss for _, rss in found.values())
            samples += 1
            if samples % pss_every == 0:
                self.peak_pss = max(self.peak_pss, sum(map(proportional_set_size, found)))
            self.double_peak_rss = max(self.double_peak_rss, double_rss)
            with self.lock:
                running = sum(1 for proc in self.running.values() if proc.kind != "timer-sweep")
                self.hooks_running_peak = max(self.hooks_running_peak, running)
                self.hooks_waiting_peak = max(self.hooks_waiting_peak, self.events.qsize())
                now = time.monotonic()
                for proc in self.running.values():
                    if proc.deadline is not None and now >= proc.deadline and not proc.killed:
                        with contextlib.suppress(ProcessLookupError):  # ended, not yet reaped
                            signal.pidfd_send_signal(proc.pidfd, signal.SIGKILL)  # Process.Kill
                            proc.killed = True
            if total > self.peak_rss:
                self.peak_rss, self.peak_at, self.peak_processes = total, now - self.t0, len(found)
                breakdown: Counter = Counter()
                for command, rss in found.values():
                    breakdown[command] += rss
                self.peak_breakdown = {
                    f"{command} x{sum(1 for c, _ in found.values() if c == command)}":
                        round(rss / 2**20, 1)
                    for command, rss in breakdown.most_common(8)
                }  # fmt: skip
            if total > cap and self.abort_reason is None:
                self.abort_reason = (
                    f"total RSS {total / 2**20:.0f} MB passed the cap of {self.args.rss_cap_mb:.0f}"
                    f" MB after {now - self.t0:.1f} s"
                )
                self.halt.set()
                self.kill_all()
            time.sleep(self.args.sample_interval)

    def guarded(self, target: Any) -> Any:
        """A thread's work; if it fails the run stops: a dead sampler or reaper measures nothing."""

        def run() -> None:
            try:
                target()
            except Exception as error:  # any failure: the reason of the abort
                if self.abort_reason is None:
                    self.abort_reason = f"{target.__name__} failed: {error!r}"
                self.halt.set()
                self.kill_all()
                raise

        return run

    def kill_all(self) -> None:
        """SIGKILL every PowerView process (not the double), until none is left."""
        for _ in range(200):
            found, _ = self.tree()
            if not found:
                return
            for pid in found:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def alive(self) -> int:
        return len(self.tree()[0])


def proportional_set_size(pid: int) -> int:
    """PSS in bytes: private pages plus a share of the pages it shares (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as stream:
            for line in stream:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def nice_back(raise_by: int) -> list[str]:
    """Raise this launcher's priority (it plays the clients and measures: a starved launcher
    would upload late and sample late); the prefix that puts a child back at niceness 0."""
    if raise_by <= 0:
        return []
    try:
        os.nice(-raise_by)
    except PermissionError:
        return []
    return ["/usr/bin/nice", "-n", str(raise_by)]


# -- the double ------------------------------------------------------------------------------


class Double:
    def __init__(self, log: Path) -> None:
        with log.open("w") as errors:  # tracebacks of clients that went away (killed hooks)
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "burst_double.py")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=ROOT,
            )  # fmt: skip
        self.info = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("the InfluxDB double did not start")
        return json.loads(line)

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._answer()

    def quit(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.close()


# -- the run ---------------------------------------------------------------------------------


def write_settings(env_file: Path, data: Path, logs: Path, influx: dict[str, str]) -> None:
    """The installation's .env: the hook's and the parser's settings, production defaults."""
    env_file.write_text(
        "# bench_burst.py: the hook reads the POWERVIEW_* lines, the parser the rest\n"
        f"POWERVIEW_DATA_DIR={data}\n"
        f"POWERVIEW_HOOK_LOG={logs / 'uploads.log'}\n"
        f"POWERVIEW_VENV={VENV}\n"
        f"INFLUXDB_HOST={influx['url']}\n"
        f"INFLUXDB_ORG={influx['org']}\n"
        f"INFLUXDB_ADMIN_TOKEN={influx['token']}\n"
        f"TSV_REPORT_DIR={logs / 'reports'}\n",
        encoding="utf-8",
    )


def upload_env(upload: Upload, session: str, elapsed_ms: int) -> dict[str, str]:
    """SFTPGo's variables for a successful upload (actions.go notificationAsEnvVars)."""
    relative = upload.path.relative_to(upload.path.parents[3])
    return {
        "SFTPGO_ACTION": "upload",
        "SFTPGO_ACTION_USERNAME": upload.company,
        "SFTPGO_ACTION_PATH": str(upload.path),
        "SFTPGO_ACTION_TARGET": "",
        "SFTPGO_ACTION_VIRTUAL_PATH": f"/{relative.as_posix().partition('/')[2]}",
        "SFTPGO_ACTION_VIRTUAL_TARGET": "",
        "SFTPGO_ACTION_SSH_CMD": "",
        "SFTPGO_ACTION_FILE_SIZE": str(len(upload.content)),
        "SFTPGO_ACTION_ELAPSED": str(elapsed_ms),
        "SFTPGO_ACTION_FS_PROVIDER": "0",
        "SFTPGO_ACTION_BUCKET": "",
        "SFTPGO_ACTION_ENDPOINT": "",
        "SFTPGO_ACTION_STATUS": "1",
        "SFTPGO_ACTION_PROTOCOL": "SFTP",
        "SFTPGO_ACTION_IP": f"10.{upload.index // 65536 % 256}.{upload.index // 256 % 256}."
        f"{upload.index % 256}",
        "SFTPGO_ACTION_SESSION_ID": session,
        "SFTPGO_ACTION_OPEN_FLAGS": "0",
        "SFTPGO_ACTION_TIMESTAMP": str(time.time_ns()),
        "SFTPGO_ACTION_ROLE": "",
    }


def disconnect_env(upload: Upload, duration_ms: int) -> dict[str, str]:
    """SFTPGo's variables after an SFTP disconnection (common.go executePostDisconnectHook)."""
    return {
        "SFTPGO_CONNECTION_IP": f"10.{upload.index // 65536 % 256}.{upload.index // 256 % 256}."
        f"{upload.index % 256}",
        "SFTPGO_CONNECTION_USERNAME": upload.company,
        "SFTPGO_CONNECTION_DURATION": str(duration_ms),
        "SFTPGO_CONNECTION_PROTOCOL": "SFTP",
    }


def upload_file(upload: Upload) -> int:
    """SFTPGo's atomic upload: a temporary name in the same folder, renamed when complete."""
    started = time.monotonic()
    temporary = upload.path.parent / f".sftpgo-upload.{secrets.token_hex(10)}.{upload.name}"
    with open(temporary, "wb") as stream:
        stream.write(upload.content)
    os.rename(temporary, upload.path)
    return int((time.monotonic() - started) * 1000)


def where(upload: Upload) -> str:
    """Where a file is at the end: parsed, error, in place (for a retry), gone, or never sent."""
    if upload.uploaded_at is None:
        return "not uploaded"
    if upload.parsed.exists():
        return "parsed"
    if upload.error.exists():
        return "error"
    return "in place" if upload.path.exists() else "gone"


def verify(uploads: list[Upload], shape: Shape, final: dict[str, Any]) -> dict[str, Any]:
    """Values lost, waiting, duplicated and unexpected, per series, against every file.

    A file's values must make ``shape.channels`` series of its company's bucket, tagged with
    its campaign and master serial, each holding the file's ``shape.rows`` values. A missing
    value is *lost* when its file is no longer waiting where it was uploaded (it is in
    parsed/ or error/, or gone), *waiting* when the file is still there for a later run. A
    value the double received more often than it stores was written twice (*duplicated*).
    """
    by_master: dict[str, list[list[Any]]] = {}
    for row in final["series"]:
        by_master.setdefault(row[2], []).append(row)
    lost = waiting = duplicated = unexpected = files_lost = files_duplicated = 0
    for upload in uploads:
        rows = by_master.pop(upload.master, [])
        good = [row for row in rows if row[0] == upload.company and row[1] == upload.campaign]
        unexpected += sum(row[4] for row in rows if row not in good)
        stored = sorted((row[4] for row in good), reverse=True)
        kept, extra = stored[: shape.channels], stored[shape.channels :]
        missing = sum(shape.rows - min(count, shape.rows) for count in kept)
        missing += (shape.channels - len(kept)) * shape.rows
        unexpected += sum(max(0, count - shape.rows) for count in kept) + sum(extra)
        twice = sum(max(0, row[5] - row[4]) for row in good)
        duplicated += twice
        files_duplicated += twice > 0
        place = where(upload)
        if place in ("in place", "not uploaded"):
            waiting += missing
        elif missing or place != "parsed":
            lost += missing
            files_lost += 1
    unexpected += sum(row[4] for rows in by_master.values() for row in rows)  # other serials
    return {
        "series_stored": len(final["series"]),
        "series_expected": len(uploads) * shape.channels,
        "values_expected": len(uploads) * shape.channels * shape.rows,
        "values_stored": sum(row[4] for row in final["series"]),
        "lost": lost,
        "waiting": waiting,
        "duplicated": duplicated,
        "unexpected": unexpected,
        "files_lost": files_lost,
        "files_written_twice": files_duplicated,
        "other_measurements": final["other"],
    }


def hook_outcomes(log: Path) -> dict[str, int]:
    """Informational: outcome=... counts of the hook's log, when it writes one."""
    if not log.exists():
        return {}
    counts: Counter = Counter()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        event = re.search(r"\bevent=(\S+)", line)
        outcome = re.search(r"\boutcome=(\S+)", line)
        if outcome:
            counts[f"{event.group(1) if event else '?'}: {outcome.group(1)}"] += 1
    return dict(counts.most_common())


def run(args: argparse.Namespace) -> dict[str, Any]:
    shutil.rmtree(WORK, ignore_errors=True)
    data, logs, home = WORK / "data", WORK / "logs", WORK / "sftpgo-home"
    for folder in (data, logs, home):
        folder.mkdir(parents=True)
    env_file = WORK / "powerview.env"
    deployment = Deployment.load(data, env_file)
    if args.no_disconnect:
        deployment.post_disconnect = False
    if args.hook_timeout is not None:
        deployment.timeout_s = args.hook_timeout
    uploads, shape = make_uploads(args.files, data)
    for upload in uploads:  # the loggers' folders exist before the night
        upload.path.parent.mkdir(parents=True, exist_ok=True)
    expected_per_bucket: Counter = Counter()
    for upload in uploads:
        expected_per_bucket[upload.company] += shape.rows * shape.channels

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed: detached jobs would escape")
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    double = Double(logs / "double.log")
    write_settings(env_file, data, logs, double.info)
    os.chdir(home)  # SFTPGo's working folder (/etc/sftpgo under its systemd unit)
    launcher = Launcher(deployment, home, args)
    launcher.double_pid = double.process.pid
    threads = [threading.Thread(target=launcher.guarded(target), daemon=True)
               for target in (launcher.reap, launcher.sample, launcher.dispatch)]  # fmt: skip
    for thread in threads:
        thread.start()
    load_before = os.getloadavg()
    run_date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    # uploads, evenly over the window
    t0 = launcher.t0 = time.monotonic()
    spacing = args.window / len(uploads)
    timer = not args.no_sweep_timer
    timer_stop = threading.Event()

    def play_timer() -> None:
        """powerview-sweep.timer: a sweep each period, skipped while the last one runs."""
        phase = deployment.sweep_period_s if args.sweep_phase is None else args.sweep_phase
        tick = t0 + phase
        while not timer_stop.wait(max(0.0, tick - time.monotonic())):
            started = launcher.sweep()
            launcher.timer_ticks.append({"at_s": round(time.monotonic() - t0, 1),
                                         "started": started})  # fmt: skip
            tick += deployment.sweep_period_s

    if timer:
        threads.append(threading.Thread(target=launcher.guarded(play_timer), daemon=True))
        threads[-1].start()

    for upload in uploads:
        wait = t0 + upload.index * spacing - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if launcher.abort_reason:
            break
        opened = time.monotonic()
        elapsed_ms = upload_file(upload)
        upload.uploaded_at = time.monotonic()
        session = f"SFTP_{secrets.token_hex(8)}_1"
        launcher.announce("upload", upload_env(upload, session, elapsed_ms))
        if deployment.post_disconnect:
            duration = int((time.monotonic() - opened) * 1000) + 150
            launcher.announce("disconnect", disconnect_env(upload, duration))
    last_upload = max((u.uploaded_at for u in uploads if u.uploaded_at), default=time.monotonic())

    # until every file is in parsed/ with its values stored
    pending = [u for u in uploads if u.uploaded_at]
    parsed_all_at = points_all_at = None
    deadline = last_upload + args.max_wait
    poll = 0.0
    while launcher.abort_reason is None and time.monotonic() < deadline:
        now = time.monotonic()
        if now < poll:
            time.sleep(min(0.1, poll - now))
            continue
        poll = now + args.poll_interval
        still = []
        for upload in pending:
            if upload.parsed.exists():
                upload.done_at = now
            else:
                still.append(upload)
        pending = still
        if not pending and parsed_all_at is None:
            parsed_all_at = now
        if pending:
            continue  # the double is asked only then: a starved double answers slowly
        stored = double.ask("progress")["stored"]
        if points_all_at is None and all(
            stored.get(bucket, 0) >= count for bucket, count in expected_per_bucket.items()
        ):
            points_all_at = now
        if parsed_all_at is not None and points_all_at is not None:
            break
    done_at = time.monotonic()
    timer_stop.set()
    all_done = parsed_all_at is not None and points_all_at is not None
    uploads_missed = sum(1 for u in uploads if u.uploaded_at is None)

    # let every process end (CPU accounting), then stop what is left
    settle_deadline = time.monotonic() + args.settle
    while launcher.alive() and time.monotonic() < settle_deadline and not launcher.abort_reason:
        time.sleep(0.5)
    left_running = launcher.alive()
    launcher.halt.set()
    launcher.events.put(None)
    launcher.kill_all()
    while True:
        with launcher.lock:
            if not launcher.running:
                break
        time.sleep(0.05)
    launcher.stop.set()
    final = double.ask("final")
    double.quit()
    launcher.double_done.wait(30)
    double.process.returncode = 0  # reaped by the reaper thread
    for thread in threads:
        thread.join(timeout=30)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.chdir(ROOT)

    accounting = launcher.accounting
    cpu_total = sum(accounting.cpu_s.values())
    rusage_children = (children_after.ru_utime + children_after.ru_stime
                       - children_before.ru_utime - children_before.ru_stime)  # fmt: skip
    checks = verify(uploads, shape, final)
    places = Counter(where(upload) for upload in uploads)
    in_parsed = places["parsed"]
    seconds = (max(parsed_all_at, points_all_at) - last_upload) if all_done else None
    result: dict[str, Any] = {
        "date": run_date,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "files": args.files,
        "window_s": args.window,
        "values_per_file": shape.rows * shape.channels,
        "machine": {"cores": os.cpu_count(), "load_before": [round(x, 2) for x in load_before]},
        "sftpgo": {
            "hook_timeout_s": deployment.timeout_s,
            "hook_slots": SFTPGO_HOOK_SLOTS,
            "post_disconnect_hook": deployment.post_disconnect,
        },
        "sweep_timer": {
            "enabled": timer,
            "period_s": deployment.sweep_period_s,
            "ticks": launcher.timer_ticks,
        },
        "aborted": launcher.abort_reason,
        "uploads_done": len(uploads) - uploads_missed,
        "upload_span_s": round(last_upload - t0, 1),
        "upload_late_max_s": round(
            max(
                (u.uploaded_at - t0 - u.index * spacing for u in uploads if u.uploaded_at),
                default=0.0,
            ),
            2,
        ),
        "seconds_after_last_upload": round(seconds, 1) if seconds is not None else None,
        "all_in_parsed_after_s": round(parsed_all_at - last_upload, 1) if parsed_all_at else None,
        "all_points_after_s": round(points_all_at - last_upload, 1) if points_all_at else None,
        "gave_up_after_s": None if all_done else round(done_at - last_upload, 1),
        "files_in_parsed": in_parsed,
        "files_in_error": places["error"],
        "files_still_in_place": places["in place"],
        "files_vanished": places["gone"],
        "files_never_uploaded": places["not uploaded"],
        "peak_rss_mb": round(launcher.peak_rss / 2**20, 1),
        "peak_at_s": round(launcher.peak_at, 1) if launcher.peak_at is not None else None,
        "peak_processes": launcher.peak_processes,
        "peak_rss_by_command_mb": launcher.peak_breakdown,
        "peak_pss_mb": round(launcher.peak_pss / 2**20, 1),
        "hooks_running_peak": launcher.hooks_running_peak,
        "hooks_waiting_peak": launcher.hooks_waiting_peak,
        "cpu_s_total": round(cpu_total, 2),
        "cpu_s_per_file": round(cpu_total / len(uploads), 3),
        "cpu_s_by_kind": {kind: round(value, 2) for kind, value in accounting.cpu_s.items()},
        "cpu_s_rusage_children_check": round(rusage_children - accounting.double_cpu_s, 2),
        "processes_reaped": accounting.reaped,
        "processes_left_running": left_running,
        "hook_exits": dict(accounting.exits.most_common()),
        "double": {
            "cpu_s": round(accounting.double_cpu_s, 2),
            "peak_rss_mb": round(launcher.double_peak_rss / 2**20, 1),
        },
        **checks,
        "hook_log_outcomes": hook_outcomes(logs / "uploads.log"),
    }
    result["files_not_in_parsed"] = len(uploads) - in_parsed
    result["bars"] = {
        "ingested_within_120_s": seconds is not None
        and seconds <= BARS["seconds_after_last_upload"],
        "peak_rss_under_500_mb": launcher.peak_rss / 2**20 < BARS["peak_rss_mb"]
        and not launcher.abort_reason,
        "none_lost": checks["lost"] == 0 and checks["files_lost"] == 0,
        "none_duplicated": checks["duplicated"] == 0,
    }
    return result


def show(result: dict[str, Any]) -> None:
    seconds = result["seconds_after_last_upload"]
    lines = [
        f"{result['files']} files uploaded in {result['upload_span_s']} s "
        f"(window {result['window_s']} s), {result['values_per_file']} values each",
        f"aborted: {result['aborted']}" if result["aborted"] else "",
        "ingested (parsed/ + every value stored): "
        + (
            f"{seconds} s after the last upload"
            if seconds is not None
            else f"NOT DONE (gave up {result['gave_up_after_s']} s after the last upload)"
        ),
        f"files: {result['files_in_parsed']} in parsed/, {result['files_in_error']} in error/, "
        f"{result['files_still_in_place']} still in place, {result['files_vanished']} vanished",
        f"peak total RSS of PowerView processes: {result['peak_rss_mb']} MB "
        f"at {result['peak_at_s']} s, {result['peak_processes']} processes "
        f"{result['peak_rss_by_command_mb']}; peak PSS (shared pages divided, sampled "
        f"each second): {result['peak_pss_mb']} MB",
        f"hooks running at once (peak): {result['hooks_running_peak']}, "
        f"waiting for a slot (peak): {result['hooks_waiting_peak']}",
        f"CPU: {result['cpu_s_total']} s in all, {result['cpu_s_per_file']} s per file "
        f"{result['cpu_s_by_kind']} (RUSAGE_CHILDREN check: "
        f"{result['cpu_s_rusage_children_check']} s)",
        f"values: {result['values_stored']} stored of {result['values_expected']}, "
        f"lost {result['lost']} ({result['files_lost']} files), "
        f"waiting in place {result['waiting']}, "
        f"duplicated {result['duplicated']} ({result['files_written_twice']} files), "
        f"unexpected {result['unexpected']}",
        f"hook exits: {result['hook_exits']}",
        f"hook log: {result['hook_log_outcomes']}",
        f"sweep timer: {result['sweep_timer']}",
        f"double (not counted): {result['double']}",
        "bars: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in result["bars"].items()),
    ]
    print("\n".join(line for line in lines if line), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="uploads (default 1000)")
    parser.add_argument("--window", type=float, default=60.0, help="upload window in s (60)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=600.0,
        help="give up this many s after the last upload (600)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=300.0,
        help="then wait up to this many s for every process to end (300)",
    )
    parser.add_argument(
        "--rss-cap-mb",
        type=float,
        default=6144.0,
        help="abort when PowerView's total RSS passes this (6144)",
    )
    parser.add_argument("--sample-interval", type=float, default=0.25)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument(
        "--no-disconnect", action="store_true", help="no post-disconnect hook after each upload"
    )
    parser.add_argument("--no-sweep-timer", action="store_true")
    parser.add_argument(
        "--launcher-nice",
        type=int,
        default=10,
        help="raise this launcher's priority by this much when allowed; children run at 0 (10)",
    )
    parser.add_argument(
        "--hook-timeout",
        type=float,
        default=None,
        help="SFTPGo's hook timeout in s (SFTPGO_COMMAND__TIMEOUT of deploy/)",
    )
    parser.add_argument(
        "--sweep-phase",
        type=float,
        default=None,
        help="first timer tick, s after the first upload (one period)",
    )
    args = parser.parse_args()
    if args.files < 1 or args.window < 0:
        parser.error("--files must be at least 1 and --window not negative")
    result = run(args)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "burst.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0 if all(result["bars"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
