"""Every command of the docs runs as written, by the user the text says, on the documented layout.

The commands are read from the text (``tests/docs_commands.py``): the shell blocks of
README.md, docs/deployment.md, docs/operations.md and grafana-automation/README.md, and the
examples of ``tsv_parser.py --help`` and ``manage_influx_tokens.py --help``. Those that can run
on a build machine run, in the order a new administrator follows them, inside a private mount
namespace where ``/srv``, ``/home``, ``/root``, ``/tmp`` and ``/var/backups`` are the test's and
the users ``sftpgo``, ``pvadmin`` (with ``sudo``) and ``pvdev`` exist (``tests/docs_runner.py``):

1. docs/deployment.md top to bottom, as ``pvadmin``: folders, ``git clone`` of this working
   tree, the virtual environment, ``.env``, ``--check``, the playbooks;
2. the loggers' uploads arrive (the example data, two uploads set aside in ``error/``, one
   upload handled by ``on-upload.sh`` as SFTPGo starts it, the Grafana resources of the
   campaign ``acme/base`` as the hook makes them);
3. README.md (server commands as ``pvadmin``; ``make demo`` as ``pvdev`` in a checkout);
4. docs/operations.md, as ``pvadmin``, after a new commit reached the repository;
5. grafana-automation/README.md as ``pvdev`` in the checkout;
6. the ``--help`` examples as ``sftpgo`` in ``/srv/powerview`` (the data folder's owner).

InfluxDB and Grafana are the test doubles; ``.env`` points at them. The commands that cannot
run here are listed in ``NOT_RUN`` with their reason; every other command runs, so a command
added to the docs is either run or listed. Each command must end with the exit code its text
implies (0; 0 or 1 for a parser run, where 1 means some sample file is refused, and for
``grep``) and print no sign of a wrong user or path ("Permission denied", "dubious
ownership", "command not found", a traceback...).

Needs root, ``unshare`` and the system's Python 3.11 with ``venv`` (Debian's ``python3.11``,
``python3-venv``); elsewhere the run is skipped with the reason and only the inventory test runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs_commands import (
    NOT_RUN,
    PRELUDES,
    PROJECT_ROOT,
    Block,
    Command,
    all_blocks,
    not_run_reason,
    prelude,
)
from tests.doubles.grafana import GrafanaDouble
from tests.doubles.influxdb import InfluxDBDouble
from tests.helpers import run_program

SYSTEM_PYTHON = "/usr/bin/python3"
SYSTEM_PYTHON_311 = "/usr/bin/python3.11"
RUNNER = PROJECT_ROOT / "tests" / "docs_runner.py"
VENV = Path(sys.executable).parent.parent
SERVER = ("pvadmin", "/home/pvadmin")
CHECKOUT = ("pvdev", "/home/pvdev/powerview")
DATA_OWNER = ("sftpgo", "/srv/powerview")
UPLOADED_FILE = "/srv/sftpgo/data/acme/upload/02001283/T302_251025_031739.tsv"
# Uploads the hook set aside (operations.md reprocesses them) and one it ingests (its logs).
SET_ASIDE = [
    "acme/base/02001283/T302_251128_031740.tsv",
    "acme/base/02001283/T302_251027_031520.tsv",
]
HOOK_UPLOAD = "acme/base/02001283/T302_251026_031500.tsv"
CONSOLE_SCRIPTS = ["ansible", "ansible-playbook", "ansible-config", "ansible-galaxy"]
SIGNS_OF_TROUBLE = (
    "Permission denied",
    "dubious ownership",
    "command not found",
    "Traceback (most recent call last)",
    "ModuleNotFoundError",
    "No such file or directory",
    "sudoers",
    "is not supported",
)


def placeholders(influxdb: InfluxDBDouble | None, origin: str) -> dict[str, str]:
    """What the test puts where the text asks the reader for a value of their own."""
    return {
        "<URL of this repository>": origin,
        "<path of the uploaded file>": UPLOADED_FILE,
        # InfluxDB as Grafana reaches it: in Compose, the service name; here, the double.
        "http://influxdb:8086": influxdb.url if influxdb else "http://127.0.0.1:1",
    }


def prepared_text(block: Block, command: Command, values: dict[str, str]) -> str:
    text = command.text
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    if block.source == "tsv_parser.py --help" and text.startswith("tsv_parser.py"):
        text = "./" + text  # the program's name, run from the project's folder
    return text


def context(block: Block) -> tuple[str, str]:
    """(user, starting folder) of a block, from what its document says about who runs it."""
    if block.source in ("docs/deployment.md", "docs/operations.md"):
        return SERVER  # "run by an administrator with sudo"
    if block.source == "grafana-automation/README.md" and any(
        "vars_file" in command.text for command in block.commands
    ):
        return DATA_OWNER  # "How the upload hook must call the playbook": the hook is sftpgo
    if block.source in ("README.md", "grafana-automation/README.md"):
        on_server = any("/srv/" in c.text or c.text.startswith("sudo") for c in block.commands)
        return SERVER if on_server else CHECKOUT  # else "After cloning: make demo"
    if block.source.endswith("--help"):
        return DATA_OWNER
    raise AssertionError(f"{block.source}: no rule says who runs its commands")


def unknown_placeholders(text: str) -> list[str]:
    return re.findall(r"<[A-Za-z][^<>]*>", text)


@pytest.fixture(scope="module")
def blocks() -> list[Block]:
    # Through /usr/bin/python3, which lacks the packages: --help must work all the same.
    return all_blocks(SYSTEM_PYTHON)


# -- the inventory -----------------------------------------------------------------------------


def test_the_docs_hold_commands_from_every_source(blocks):
    sources = {block.source for block in blocks if block.commands}
    assert sources == {
        "docs/deployment.md",
        "docs/operations.md",
        "README.md",
        "grafana-automation/README.md",
        "tsv_parser.py --help",
        "manage_influx_tokens.py --help",
    }


def test_every_command_runs_here_or_is_listed_with_its_reason(blocks):
    commands = [(block, command) for block in blocks for command in block.commands]
    for entry in NOT_RUN:
        assert any(entry.matches(command) for _, command in commands), (
            f"NOT_RUN entry {entry.pattern!r} matches no command of the docs any more: remove it"
        )
    for entry in PRELUDES:
        assert any(re.search(entry.pattern, command.text) for _, command in commands), (
            f"PRELUDES entry {entry.pattern!r} matches no command of the docs any more: remove it"
        )
    values = placeholders(None, "/origin.git")
    problems = []
    for block, command in commands:
        context(block)
        if not_run_reason(command) is None:
            left = unknown_placeholders(prepared_text(block, command, values))
            if left:
                problems.append(f"{command.where}: placeholder(s) {left} the test cannot fill")
    assert problems == []


def test_the_entry_points_run_with_the_system_python3_first_on_path(tmp_path):
    """Item 2: ``./tsv_parser.py`` started by a ``python3`` without the project's packages
    re-runs itself with the project's environment (core/venv.py)."""
    assert (
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import influxdb_client"], capture_output=True, check=False
        ).returncode
        != 0
    )
    env = {"PATH": "/usr/bin:/bin", "POWERVIEW_ENV_FILE": os.devnull, "POWERVIEW_VENV": str(VENV)}
    for script in ("tsv_parser.py", "manage_influx_tokens.py"):
        result = run_program([f"./{script}", "--help"], env, cwd=PROJECT_ROOT)
        assert result.returncode == 0, result.stderr
        assert "examples:" in result.stdout
    # A run, not only --help: the system's python3 could not even import the parser's modules.
    probe = tmp_path / "data"
    probe.mkdir()
    command = ["./tsv_parser.py", "--dataFolder", str(probe), "--dry-run"]
    result = run_program(command, env, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("where", ["settings file", "checkout"])
def test_the_environment_is_found_where_the_docs_say(tmp_path, where):
    """POWERVIEW_VENV in the settings file (as the hook reads it), else the checkout's .venv."""
    env = {"PATH": "/usr/bin:/bin"}
    if where == "settings file":
        settings = tmp_path / "powerview.env"
        settings.write_text(f'export POWERVIEW_VENV="{VENV}"  # the venv\n', encoding="utf-8")
        env["POWERVIEW_ENV_FILE"] = str(settings)
    else:
        if VENV != PROJECT_ROOT / ".venv" or (PROJECT_ROOT / "envs" / "powerview").exists():
            pytest.skip("the suite does not run from the checkout's own .venv")
        env["POWERVIEW_ENV_FILE"] = os.devnull
    command = [str(PROJECT_ROOT / "manage_influx_tokens.py"), "--bucket", "a b"]
    result = run_program(command, env, cwd=tmp_path)
    # The project's code ran (it refuses the name), not the bootstrap's message.
    assert result.returncode == 2
    assert "bucket name 'a b' is not allowed" in result.stderr


@pytest.mark.parametrize("given_in", ["environment", "settings file"])
def test_an_entry_point_without_any_environment_says_where_it_looked(tmp_path, given_in):
    env = {"PATH": "/usr/bin:/bin", "POWERVIEW_ENV_FILE": os.devnull}
    if given_in == "environment":
        env["POWERVIEW_VENV"] = str(tmp_path / "missing")
    else:
        settings = tmp_path / "powerview.env"
        settings.write_text(f"INFLUXDB_ORG=x\nPOWERVIEW_VENV={tmp_path / 'missing'}\n")
        env["POWERVIEW_ENV_FILE"] = str(settings)
    command = [str(PROJECT_ROOT / "manage_influx_tokens.py"), "--bucket", "acme"]
    result = run_program(command, env, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "lacks influxdb_client" in result.stderr
    assert str(tmp_path / "missing") in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_environment_fails_once_instead_of_looping(tmp_path):
    """An environment whose Python lacks the packages is tried once, then named."""
    broken = tmp_path / "broken"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(broken)], check=True)
    env = {"PATH": "/usr/bin:/bin", "POWERVIEW_ENV_FILE": os.devnull, "POWERVIEW_VENV": str(broken)}
    result = run_program([str(PROJECT_ROOT / "tsv_parser.py"), "--help"], env, timeout=60)
    assert result.returncode == 2
    assert f"the Python of {broken}" in result.stderr


# -- the run -----------------------------------------------------------------------------------


def why_the_run_cannot_happen() -> str | None:
    if os.geteuid() != 0:
        return "needs root (users, a mount namespace); run the suite as root to check the docs"
    for tool in ("unshare", "mount", "git", "bash"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    for python in (SYSTEM_PYTHON, SYSTEM_PYTHON_311):
        if not Path(python).exists():
            return f"needs the system's {python}"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"unshare --mount is refused here: {probe.stderr.decode().strip()}"
    return None


def working_tree_repository(target: Path) -> None:
    """A repository whose one commit is this working tree (tracked and new files), as
    `git clone` would get it from the project's public repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    work = target.parent / "origin-src"
    for name in filter(None, listed.split("\0")):
        source = PROJECT_ROOT / name
        if not source.is_file() or "__pycache__" in source.parts:
            continue
        destination = work / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    git = ["git", "-C", str(work), "-c", "user.name=docs test", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the working tree"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(target)], check=True)


def hook_environment() -> dict[str, str]:
    """The environment SFTPGo gives the hook (deploy/sftpgo.env, SFTPGO_COMMAND__ENV)."""
    text = (PROJECT_ROOT / "deploy" / "sftpgo.env").read_text(encoding="utf-8")
    value = re.search(r"^SFTPGO_COMMAND__ENV=(.*)$", text, re.MULTILINE).group(1)
    return dict(pair.split("=", 1) for pair in value.split(","))


def first_block(blocks: list[Block], pattern: str) -> Block:
    found = [b for b in blocks if any(re.search(pattern, c.text) for c in b.commands)]
    assert found, f"no block of the docs runs {pattern!r} any more"
    return found[0]


def build_plan(
    blocks: list[Block], base: Path, influxdb: InfluxDBDouble, grafana: GrafanaDouble
) -> dict:
    origin = str(base / "origin.git")
    values = placeholders(influxdb, origin)
    settings = {
        "INFLUXDB_HOST": influxdb.url,
        "INFLUXDB_ORG": influxdb.org,
        "INFLUXDB_ADMIN_TOKEN": influxdb.admin_token,
        "GRAFANA_URL": grafana.url,
        "GRAFANA_USERNAME": grafana.admin_login,
        "GRAFANA_PASSWORD": grafana.admin_password,
        "INFLUXDB_INIT_PASSWORD": "docs-test-password",
        "GRAFANA_ROOT_URL": "https://grafana.example.org/",
        "POWERVIEW_GRAFANA_INFLUXDB_URL": influxdb.url,
    }
    packages = {
        "site_packages": str(next((VENV / "lib").glob("python3*/site-packages"))),
        "venv_bin": str(VENV / "bin"),
        "scripts": CONSOLE_SCRIPTS,
    }
    venv_block = first_block(blocks, r"-m venv /srv/powerview/envs/powerview")
    editor_block = first_block(blocks, r"^sudo editor \.env")
    pull_block = first_block(blocks, r"git pull")
    steps: list[dict] = []
    command_index: dict[str, tuple[Block, Command]] = {}

    def add_block(block: Block) -> None:
        user, cwd = context(block)
        commands = []
        for command in block.commands:
            command_id = f"c{len(command_index)}"
            command_index[command_id] = (block, command)
            commands.append(
                {
                    "id": command_id,
                    "text": prepared_text(block, command, values),
                    "run": not_run_reason(command) is None,
                }
            )
        steps.append(
            {
                "kind": "run_block",
                "id": f"b{len(steps)}",
                "user": user,
                "cwd": cwd,
                "prelude": prelude(block),
                "commands": commands,
            }
        )

    def of(source: str) -> list[Block]:
        return [block for block in blocks if block.source == source and block.commands]

    for block in of("docs/deployment.md"):
        add_block(block)
        if block is venv_block:
            steps.append(
                {"kind": "link_packages", "venv": "/srv/powerview/envs/powerview", **packages}
            )
        if block is editor_block:
            steps.append({"kind": "write_env", "path": "/srv/powerview/.env", "values": settings})
    steps.append(
        {
            "kind": "seed_data",
            "reject": SET_ASIDE,
            "hook_uploads": [HOOK_UPLOAD],
            "hook": "/srv/powerview/on-upload.sh",
            "hook_env": hook_environment(),
            "grafana": [["acme", "base"]],
            "grafana_influxdb_url": influxdb.url,
        }
    )
    steps.append(
        {
            "kind": "dev_clone",
            "path": CHECKOUT[1],
            "origin": origin,
            "user": CHECKOUT[0],
            "python": SYSTEM_PYTHON_311,
            "env": settings,
            **packages,
        }
    )
    for block in of("README.md"):
        add_block(block)
    for block in of("docs/operations.md"):
        if block is pull_block:
            steps.append(
                {
                    "kind": "update_origin",
                    "origin": origin,
                    "file": "deploy/logrotate",
                    "append": "# an update\n",
                }
            )
        add_block(block)
    for block in of("grafana-automation/README.md"):
        add_block(block)
    for block in blocks:
        if block.source.endswith("--help"):
            add_block(block)
    return {"steps": steps, "index": command_index}


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    # Outside /tmp, which the namespace replaces; 0755 so that every test user reaches it.
    path = Path(tempfile.mkdtemp(prefix="powerview-docs-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    if not os.environ.get("POWERVIEW_DOCS_TEST_KEEP"):  # set it to read what each command printed
        shutil.rmtree(path, ignore_errors=True)


def allowed_exit_codes(text: str) -> set[int]:
    if "tsv_parser.py" in text and "--check" not in text and "--tsvFile" not in text:
        return {0, 1}  # a sweep: 1 when a sample file is refused (two bundled files are)
    if re.match(r"^(sudo )?(-u \S+ )?grep ", text):
        return {0, 1}  # 1: nothing matched
    return {0}


def test_the_documented_commands_run_as_written(blocks, base, influxdb, grafana):
    reason = why_the_run_cannot_happen()
    if reason:
        pytest.skip(reason)
    working_tree_repository(base / "origin.git")
    plan = build_plan(blocks, base, influxdb, grafana)
    index = plan.pop("index")
    plan.update(base=str(base), project=str(PROJECT_ROOT), results=str(base / "results.json"))
    plan_file = base / "plan.json"
    plan_file.write_text(json.dumps(plan, indent=1), encoding="utf-8")
    completed = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            SYSTEM_PYTHON,
            str(RUNNER),
            str(plan_file),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads((base / "results.json").read_text(encoding="utf-8"))
    failures = []
    for command_id, (block, command) in index.items():
        if not_run_reason(command) is not None:
            continue
        outcome = results["commands"].get(command_id)
        if outcome is None:
            continue  # not reached: the runner's error says why
        text = prepared_text(block, command, placeholders(influxdb, ""))
        trouble = [sign for sign in SIGNS_OF_TROUBLE if sign in outcome["stderr"]]
        if outcome["exit"] not in allowed_exit_codes(text) or trouble:
            failures.append(
                f"{command.where}: {command.text}\n  exit {outcome['exit']}"
                f"{' ' + str(trouble) if trouble else ''}\n  stderr: "
                + outcome["stderr"][-1500:].replace("\n", "\n    ")
            )
    assert results["error"] is None, results["error"] + "\n" + "\n".join(failures)
    assert failures == [], "\n".join(failures)
    assert len(results["commands"]) == sum(
        1 for block, command in index.values() if not_run_reason(command) is None
    )
    check_what_the_docs_promise(base, index, results)


def output_of(index: dict, results: dict, pattern: str) -> str:
    for command_id, (_, command) in index.items():
        if re.search(pattern, command.text) and command_id in results["commands"]:
            return results["commands"][command_id]["stdout"]
    raise AssertionError(f"no command run matches {pattern!r}")


def check_what_the_docs_promise(base: Path, index: dict, results: dict) -> None:
    fs = base / "fs"
    srv = fs / "srv"
    # deployment.md: envs/ is ignored, so the checkout stays clean.
    status = subprocess.run(
        [
            "git",
            "-c",
            f"safe.directory={srv / 'powerview'}",
            "-C",
            str(srv / "powerview"),
            "status",
            "--porcelain",
            "--ignored=no",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "envs/" not in status
    # deployment.md: where the generated password of a new user is written.
    deployment = (PROJECT_ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    password_file = re.search(r"`~/([^`]*grafana-passwords/[^`]*jdoe[^`]*)`", deployment)
    assert password_file, "deployment.md no longer says where the password file is"
    assert (fs / "root" / password_file.group(1)).is_file()
    # operations.md: the reprocessed file was ingested; the dry run's report is JSON.
    device = srv / "sftpgo" / "data" / "acme" / "base" / "02001283"
    assert (device / "parsed" / "T302_251128_031740.tsv").is_file()
    assert not (device / "error" / "T302_251128_031740.tsv.error.json").exists()
    json.loads((fs / "tmp" / "dry-run.json").read_text(encoding="utf-8"))
    assert output_of(index, results, r"json\.tool").rstrip().endswith("}")
    # operations.md: what the update changed in deploy/.
    assert "deploy/logrotate" in output_of(index, results, r"diff --stat")
