"""What the tests share, in one place: paths, sample files, processes, and the two test sites.

Test modules import their helpers from here and never from one another; the fixtures built on
these helpers are in ``tests/conftest.py`` (and ``tests/grafana/conftest.py``), the server
doubles in ``tests/doubles/``. The layout of the test suite:

- ``tests/helpers.py`` (this module): the project's paths; the bundled sample files and what
  the contract says of them (``copy_samples``, ``contract``, ``electrical``...); the parser
  as a process (``run_parser``, ``last_report``); the upload hook's temporary installation
  (``HookInstallation``, behind the ``stack`` fixture); the Grafana automation as an admin
  runs it (``run_playbook``, ``Run``, ``ok``, ``api``) and a Grafana site (``GrafanaSite``:
  both doubles, a HOME, the planted ``id`` command), with ``Baseline`` to build a site once
  and give each test a private copy of it;
- ``tests/conftest.py``: the fixtures every module may use (the doubles' fixtures,
  ``samples``, ``stack``); ``tests/grafana/conftest.py``: the Grafana sites' fixtures;
- ``tests/doubles/``: the InfluxDB and Grafana doubles on one HTTP base (``http_base.py``),
  their fixtures, the line-protocol and Flux models;
- independent references, each a module of its own because it is a second implementation
  rather than a helper: ``tests/lp.py`` (a line-protocol reader), ``tests/reference.py`` (the
  row rules done the slow way), ``tests/unprivileged.py`` (a process that file permissions
  apply to, even as root), ``tests/docs_commands.py`` and ``tests/docs_runner.py`` (the
  documentation's commands and their run in a private mount namespace);
- ``tests/realinflux/``: the tier against a real influxd; ``tests/flux/``: the Flux checker;
  ``tests/contracts/``: the API descriptions the doubles' requests are checked against.

No test depends on what another left: the doubles are fresh per test, and a state that costs
playbook runs is built once per module and copied for each test (``Baseline``).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import ansible.module_utils

from tests.doubles.grafana import GrafanaDouble
from tests.doubles.grafana_fixtures import grafana_environment, load_grafana_contract
from tests.doubles.influxdb import InfluxDBDouble
from tests.lp import parse_lines

# ---------------------------------------------------------------------------- paths

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES = PROJECT_ROOT / "examples" / "data"
EXPECTED = Path(__file__).resolve().parent / "data" / "expected"
PARSER = PROJECT_ROOT / "tsv_parser.py"
HOOK = PROJECT_ROOT / "on-upload.sh"
DEPLOY = PROJECT_ROOT / "deploy"
AUTOMATION = PROJECT_ROOT / "grafana-automation"
VENV = Path(sys.executable).parent.parent
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

# ---------------------------------------------------------------------------- sample files

COMPANY1 = "company1/campaign1/02001084/T302_251012_031720.tsv"
V003 = "dominique/v003/02000800/T302_260208_211459_UTC.tsv"
BAVELLA = "dominique/bavella/02000800/T302_260105_162016.tsv"
ACME = "acme/base/02001283/T302_251025_031739.tsv"
EMPTY = "acme/base/02001283/T302_260109_120045.tsv"
HEADER_ONLY = "acme/base/02001283/T302_260109_133915.tsv"


def copy_samples(target: Path, *relatives: str) -> Path:
    """A data folder holding the given sample files (all of them when none is given), each
    copy readable and writable by its owner whatever the checkout's modes."""
    if not relatives:
        shutil.copytree(SAMPLES, target)
        copied = list(target.rglob("*"))
    else:
        copied = []
        for relative in relatives:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLES / relative, target / relative)
            copied += [target / relative, *(target / p for p in Path(relative).parents[:-1])]
    for path in copied:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def sample_files() -> list[Path]:
    """Every bundled real logger file, as paths relative to the sample data folder."""
    return sorted(path.relative_to(SAMPLES) for path in SAMPLES.rglob("*.tsv"))


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder``, as sorted relative paths."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def contract(relative: str) -> Counter:
    """The points the contract (``tests/data/expected``) says a sample file gives."""
    expected = EXPECTED / Path(relative).with_suffix(".lp")
    return Counter(parse_lines(expected.read_text()))


def electrical(double: InfluxDBDouble, bucket: str) -> Counter:
    """Stored electrical points as comparable tuples (timestamps back in seconds)."""
    return Counter(
        (p.measurement, p.tags, p.field, p.value, p.time_ns // 10**9)
        for p in double.points(bucket)
        if p.measurement == "electrical"
    )


def ingest_records(influxdb: InfluxDBDouble, bucket: str) -> Counter:
    """Files named by the parser's per-file ingestion records: one per ingestion."""
    return Counter(
        point.value
        for point in influxdb.points(bucket)
        if point.measurement == "powerview_ingest" and point.field == "file"
    )


# ---------------------------------------------------------------------------- the parser


def run_program(
    command: list[str], env: dict[str, str], *, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """A program as a separate process: its output as text, its exit code whatever it is."""
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_parser(
    env: dict[str, str], data: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    """The real ``tsv_parser.py`` over ``data`` (files of any age), as a separate process."""
    command = [sys.executable, str(PARSER), "--dataFolder", str(data), "--min-age", "0", *args]
    return run_program(command, env, timeout=timeout)


def last_report(env: dict[str, str]) -> dict:
    """The newest JSON run report in ``TSV_REPORT_DIR``."""
    reports = sorted(Path(env["TSV_REPORT_DIR"]).glob("tsv_parser_*.json"), key=os.path.getmtime)
    return json.loads(reports[-1].read_text())


def unit_file(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit of ``deploy/`` as {section: {key: [values]}}; fails on a line systemd
    would reject."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        if header := re.fullmatch(r"\[([A-Za-z]+)\]", line):
            current = sections.setdefault(header.group(1), {})
            continue
        assignment = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(.*)", line)
        assert current is not None and assignment, f"{path.name}:{number}: {line!r}"
        current.setdefault(assignment.group(1), []).append(assignment.group(2))
    return sections


# ---------------------------------------------------------------------------- the upload hook

STANDINS = ("id", "ansible-playbook")
LOG_FIELD = re.compile(r"""(\w+)=("(?:[^"\\]|\\.)*"|\$'(?:[^'\\]|\\.)*'|\S+)""")


def unquote(value: str) -> str:
    """A log value as it was before the hook quoted or escaped it."""
    if value.startswith('"'):
        return value[1:-1]
    if value.startswith("$'"):
        return value[2:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return value


def drainers(spool: Any) -> list[int]:
    """The drainers of the journal still alive (they write their own line as they end)."""
    try:
        journal = spool.journal.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return []
    pids = {int(pid) for pid in journal[1::2]}
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def standin(path: Path, marker: Path, record: Path | None = None) -> None:
    """A stand-in executable: writes a marker (and its argv and vars file when recording)."""
    lines = ["#!/bin/sh", f'echo "$0 $*" >> "{marker}"']
    if record is not None:
        lines += [
            f'printf "%s\\n" "$@" > "{record}.argv"',
            'for arg in "$@"; do case $arg in @*) cat "${arg#@}" > "'
            + f'{record}.json";; esac; done',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o755)


@dataclass
class HookInstallation:
    """A temporary installation of the upload hook: data folder, logs, .env, stand-ins, and
    the InfluxDB double (the ``stack`` fixture of ``tests/conftest.py``)."""

    home: Path
    data: Path
    logs: Path
    bin: Path
    env_file: Path
    influxdb: InfluxDBDouble
    settle_after: bool = True  # each hook run waits for the drainer to finish

    @classmethod
    def create(cls, home: Path, influxdb: InfluxDBDouble) -> HookInstallation:
        data, logs, bin_dir = home / "data", home / "logs", home / "bin"
        for folder in (data, logs, bin_dir):
            folder.mkdir()
        env_file = home / "powerview.env"
        built = cls(home, data, logs, bin_dir, env_file, influxdb)
        for name in STANDINS:
            standin(bin_dir / name, built.marker)
        env_file.write_text(
            "# written by the test: the hook reads the POWERVIEW_* lines, the parser the rest\n"
            f'POWERVIEW_DATA_DIR="{data}"\n'
            f"export POWERVIEW_HOOK_LOG={logs / 'uploads.log'}  # a comment\n"
            f"POWERVIEW_VENV='{VENV}'\n"
            f"POWERVIEW_HOOK_PATH={bin_dir}:/usr/bin:/bin\n"
            f"POWERVIEW_ANSIBLE_PLAYBOOK={bin_dir / 'ansible-playbook'}\n"
            f"INFLUXDB_HOST={influxdb.url}\n"
            f"INFLUXDB_ORG={influxdb.org}\n"
            f"INFLUXDB_ADMIN_TOKEN={influxdb.admin_token}\n"
            "INFLUXDB_MAX_RETRIES=1\n"
            "INFLUXDB_RETRY_INTERVAL_MS=50\n"
            "INFLUXDB_TIMEOUT_S=5\n"
            f"TSV_REPORT_DIR={logs / 'reports'}\n"
            "POWERVIEW_DRAIN_LINGER_S=0\n",  # the drainer ends as soon as the queue is empty
            encoding="utf-8",
        )
        return built

    @property
    def marker(self) -> Path:
        return self.home / "STANDIN_RAN"

    @property
    def uploads_log(self) -> Path:
        return self.logs / "uploads.log"

    def settings(self, **values: str) -> None:
        """Add lines to the .env file (later lines do not override earlier ones: the hook
        keeps the first, python-dotenv the last, so each key is written once)."""
        with self.env_file.open("a", encoding="utf-8") as stream:
            for key, value in values.items():
                stream.write(f"{key}={value}\n")

    def hook(
        self, extra_env: dict[str, str] | None = None, **sftpgo: str
    ) -> subprocess.CompletedProcess:
        """One hook run as SFTPGo starts it: cleared environment, no stdin, no arguments."""
        env = {"POWERVIEW_ROOT": str(PROJECT_ROOT), "POWERVIEW_ENV_FILE": str(self.env_file)}
        env.update({f"SFTPGO_{key.upper()}": value for key, value in sftpgo.items()})
        env.update(extra_env or {})
        result = subprocess.run(
            [str(HOOK)],
            env=env,
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if self.settle_after:  # the drainer acts on the event and logs its line
            self.settle()
        return result

    def upload(self, path: Path, status: str = "1", **more: str) -> subprocess.CompletedProcess:
        return self.hook(
            action="upload",
            action_path=str(path),
            action_status=status,
            action_username=more.pop("username", "acme"),
            action_fs_provider="0",
            action_file_size=str(path.stat().st_size if path.exists() else 0),
            **more,
        )

    def mkdir(self, path: Path, **extra: str) -> subprocess.CompletedProcess:
        return self.hook(
            extra_env=extra or None,
            action="mkdir",
            action_path=str(path),
            action_status="1",
            action_username="acme",
            action_fs_provider="0",
            action_file_size="0",
        )

    def log(self) -> list[dict[str, str]]:
        """The lines of uploads.log, but the drainer's own (one per drainer, as it ends)."""
        if not self.uploads_log.exists():
            return []
        lines = [
            {key: unquote(value) for key, value in LOG_FIELD.findall(line)}
            for line in self.uploads_log.read_text(encoding="utf-8").splitlines()
        ]
        return [line for line in lines if line.get("event") != "job:drain"]

    def wait_for(self, event: str, count: int = 1, timeout_s: float = 90) -> list[dict]:
        """The log lines of ``event`` once ``count`` of them are there (detached jobs)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [line for line in self.log() if line.get("event") == event]
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {event} line in time:\n{self.uploads_log.read_text()}")

    @property
    def spool(self) -> Any:
        from core.queue import Spool

        return Spool(self.logs / "reports" / "queue")

    def settle(self, timeout_s: float = 120) -> None:
        """Wait until the drainer is done: no marker queued or taken, and no drainer holding
        the lock (a drainer takes its markers and logs their lines before it lets go)."""
        spool = self.spool
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            taken = list(spool.work.iterdir()) if spool.work.is_dir() else []
            if not spool.queued() and not taken and not spool.is_locked() and not drainers(spool):
                return
            time.sleep(0.05)
        raise AssertionError(f"the queue was not drained in time:\n{self.uploads_log.read_text()}")

    def outcomes(self) -> list[dict[str, str]]:
        """The lines that give each event's outcome, once the queue is drained (not the
        drainer's own line)."""
        self.settle()
        return self.log()

    def tree(self) -> list[str]:
        """Every file and folder of the temporary tree but the logs."""
        return sorted(
            str(path.relative_to(self.home))
            for path in self.home.rglob("*")
            if self.logs not in path.parents and path != self.logs
        )


# ---------------------------------------------------------------------------- Grafana automation

PLAYBOOKS = AUTOMATION / "playbooks"
CREATE = PLAYBOOKS / "create_grafana_resources.yml"
DELETE = PLAYBOOKS / "delete_grafana_resources.yml"
ADD_USER = PLAYBOOKS / "add_grafana_user_to_team.yml"
UPDATE = PLAYBOOKS / "update_grafana_dashboards.yml"

# Inside Ansible, module_utils/ is importable as ansible.module_utils.<name>; the same import
# path makes the modules importable by the unit tests.
if str(PLAYBOOKS / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(PLAYBOOKS / "module_utils"))


def load_file(path: Path) -> ModuleType:
    """Import a module of grafana-automation/ (whose directory name is not a package)."""
    name = "powerview_test_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def library(name: str) -> ModuleType:
    """One of the project's Ansible modules, e.g. ``library("powerview_grafana_org")``."""
    return load_file(PLAYBOOKS / "library" / f"{name}.py")


def preflight() -> ModuleType:
    return load_file(PLAYBOOKS / "action_plugins" / "powerview_preflight.py")


@dataclass
class Run:
    """One ansible-playbook run: its exit code, its whole output and the PLAY RECAP counts."""

    returncode: int
    output: str
    recap: dict[str, int]

    @property
    def changed_dashboards(self) -> list[str]:
        """Uids of the dashboards a loop saved (the recap counts the loop task once)."""
        return re.findall(r"changed: \[localhost\] => \(item=([\w-]+)\)", self.output)


def run_playbook(
    playbook: Path,
    *args: str,
    home: Path,
    env: dict[str, str],
    names: dict[str, Any] | None = None,
    timeout: float = 300,
) -> Run:
    """ansible-playbook as the hook runs it: names in a JSON file (``-e @file``), from ``home``
    rather than the project's folder."""
    command = [str(ANSIBLE_PLAYBOOK), str(playbook), *args]
    if names is not None:
        vars_file = home / "vars.json"
        vars_file.write_text(json.dumps(names), encoding="utf-8")
        command += ["--extra-vars", f"@{vars_file}"]
    completed = subprocess.run(
        command, cwd=home, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = completed.stdout + completed.stderr
    recap = re.search(r"localhost\s*:\s*(.*)", output.split("PLAY RECAP")[-1])
    counts = dict(re.findall(r"(\w+)=(\d+)", recap.group(1))) if recap else {}
    return Run(completed.returncode, output, {k: int(v) for k, v in counts.items()})


def ok(run: Run) -> Run:
    """``run`` after checking that it succeeded with no failed task."""
    assert run.returncode == 0 and run.recap.get("failed") == 0, run.output
    return run


def api(
    double: Any,
    method: str,
    path: str,
    body: Any = None,
    *,
    login: str | None = None,
    password: str | None = None,
    org: int | None = None,
) -> tuple[int, Any]:
    """(status, JSON body) of one request to a Grafana double, as ``login`` (the server admin
    by default; other users default to the password ``pw``)."""
    login = login or double.admin_login
    if password is None:
        password = double.admin_password if login == double.admin_login else "pw"
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    headers = {"Authorization": "Basic " + token}
    if org is not None:
        headers["X-Grafana-Org-Id"] = str(org)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = Request(double.url + path, data=data, method=method, headers=headers)
    try:
        with urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@dataclass
class GrafanaSite:
    """Grafana and InfluxDB (the doubles), and the HOME of the admin who runs the playbooks.

    Every run is made the way an admin or the upload hook makes it: the playbook by its path
    from HOME, names in a JSON file given by ``--extra-vars @file``, and an ``id`` command
    planted first on PATH that leaves ``marker`` if anything ever runs it. After every run, no
    secret may appear in what it printed.
    """

    grafana: GrafanaDouble
    influxdb: InfluxDBDouble
    home: Path
    env: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    @classmethod
    def start(
        cls, home: Path, *, env: dict[str, str] | None = None, **settings: Any
    ) -> GrafanaSite:
        """Both doubles started (``settings`` of the GrafanaDouble, e.g. ``database``),
        ``home`` made, and the environment: no ANSIBLE_CONFIG (the plugins are found beside
        the playbooks) unless ``env`` sets one, like every other of its values."""
        planted = home / "bin"
        planted.mkdir(parents=True)
        site = cls(
            GrafanaDouble(contract=load_grafana_contract(), **settings).start(),
            InfluxDBDouble().start(),
            home,
            {},
        )
        script = planted / "id"  # says it ran, then answers as id -u would for root
        script.write_text(f'#!/bin/sh\necho "id $*" >> "{site.marker}"\necho 0\n', encoding="utf-8")
        script.chmod(0o755)
        base = grafana_environment(site.grafana)
        for name in ("INFLUXDB_URL", "ANSIBLE_CONFIG"):
            base.pop(name, None)
        site.env = {
            **base,
            **site.servers_env(),
            "HOME": str(home),
            "PATH": f"{planted}{os.pathsep}{base.get('PATH', '')}",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCAL_TEMP": str(home / "ansible-tmp"),
            **(env or {}),
        }
        return site

    def servers_env(self) -> dict[str, str]:
        """The settings that point the playbooks at this site's doubles."""
        return {
            "GRAFANA_URL": self.grafana.url,
            "INFLUXDB_HOST": self.influxdb.url,
            "INFLUXDB_ORG": self.influxdb.org,
            "INFLUXDB_ADMIN_TOKEN": self.influxdb.admin_token,
        }

    @property
    def marker(self) -> Path:
        return self.home / "PLANTED_COMMAND_RAN"

    @property
    def passwords(self) -> Path:
        return self.home / ".powerview" / "grafana-passwords"

    def stop(self) -> list[str]:
        """Stop both doubles; the requests Grafana's API description refuses, if any."""
        problems = list(self.grafana.contract_problems)
        self.grafana.stop()
        self.influxdb.stop()
        return problems

    def run(
        self, playbook: Path, *args: str, names: dict[str, Any] | None = None, **env: str
    ) -> Run:
        """ansible-playbook as the hook runs it: names in a JSON file, from another directory."""
        run = run_playbook(playbook, *args, home=self.home, env={**self.env, **env}, names=names)
        self.runs.append(run)
        self.assert_no_secret_in(run.output)
        assert not self.marker.exists(), f"a planted command ran:\n{run.output}"
        return run

    def secrets(self) -> list[str]:
        found = [self.grafana.admin_password, self.influxdb.admin_token]
        found += [auth.token for auth in self.influxdb.authorizations()]
        with self.grafana.state.lock:
            found += [u.password for u in self.grafana.state.users.values()]
        return [secret for secret in found if secret]

    def assert_no_secret_in(self, output: str) -> None:
        for secret in self.secrets():
            assert secret not in output, "a secret was printed"

    def org_id(self, company: str) -> int | None:
        org = self.grafana.state.org_by_name(company)
        return org.id if org else None

    def password_of(self, company: str, user: str) -> str:
        return (self.passwords / company / f"{user}.txt").read_text(encoding="utf-8").strip()

    def write_point(self, bucket: str, line: str) -> None:
        request = Request(
            f"{self.influxdb.url}/api/v2/write?org={self.influxdb.org}&bucket={bucket}&precision=s",
            data=line.encode(),
            method="POST",
            headers={"Authorization": f"Token {self.influxdb.admin_token}"},
        )
        with urlopen(request, timeout=10) as response:
            assert response.status == 204


@dataclass
class Baseline:
    """A site built once (playbook runs cost seconds each), handed to each test as a private
    copy: both doubles copied (their state and request logs), started anew, and HOME put back
    as the baseline left it, at the same path (the runs' outputs name files there)."""

    site: GrafanaSite
    saved_home: Path

    @classmethod
    def keep(cls, site: GrafanaSite) -> Baseline:
        """Keep ``site`` as it is now; its doubles stop (a copy is served instead)."""
        saved_home = site.home.with_name(site.home.name + "-baseline")
        shutil.copytree(site.home, saved_home, symlinks=True)
        problems = site.stop()
        assert not problems, "requests outside Grafana's API description:\n" + "\n".join(problems)
        return cls(site, saved_home)

    def copy(self) -> GrafanaSite:
        """A running site in the baseline's state that no other test sees."""
        shutil.rmtree(self.site.home)
        shutil.copytree(self.saved_home, self.site.home, symlinks=True)
        grafana, influxdb = self.site.grafana.copy().start(), self.site.influxdb.copy().start()
        with grafana.state.lock:  # the data sources read this copy's InfluxDB
            for datasource in grafana.state.datasources.values():
                if datasource.url == self.site.influxdb.url:
                    datasource.url = influxdb.url
        site = replace(self.site, grafana=grafana, influxdb=influxdb, runs=[])
        site.env = {**self.site.env, **site.servers_env()}
        return site
