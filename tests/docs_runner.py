"""Run the documentation's commands on a server laid out as docs/deployment.md says.

Started by ``tests/test_docs.py`` as root with the system's ``/usr/bin/python3`` inside a
private mount namespace (``unshare --mount --propagation private``), so nothing it does is
seen by the host:

- ``/etc/passwd`` and ``/etc/group`` are copies that add the users the docs name:
  ``sftpgo`` (the SFTPGo service), ``pvadmin`` (the administrator, who has ``sudo``) and
  ``pvdev`` (a developer with a checkout); ``/srv``, ``/home``, ``/root``, ``/tmp`` and
  ``/var/backups`` are empty folders of the test;
- ``sudo`` is a small client on the administrator's ``PATH`` that asks this process (root)
  to run the command as ``root`` or as ``-u USER``, in the caller's folder, with its
  standard streams and a reset environment, as sudo does; only ``pvadmin`` may use it;
- each block of the docs runs as one bash script of its user, one command per line, so a
  ``cd`` or a variable carries over to the next command as in a terminal; each command's
  exit code and output are recorded.

Stdlib only: it runs with the system's Python, not the project's virtual environment.
Usage: docs_runner.py PLAN.json (the plan and the results file are described in
tests/test_docs.py).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

USERS = {  # name: (uid offset, home, login shell)
    # The SFTPGo package's home is /var/lib/sftpgo; here a folder the namespace provides.
    "sftpgo": (0, "/home/sftpgo", "/usr/sbin/nologin"),
    "pvadmin": (1, "/home/pvadmin", "/bin/bash"),
    "pvdev": (2, "/home/pvdev", "/bin/bash"),
}
SUDOERS = ("pvadmin",)
SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DATA = Path("/srv/sftpgo/data")
DATA_PATH = re.compile(r"/srv/sftpgo/data/(?:[\w.-]+/){3}[\w.-]+\.tsv")

SUDO_CLIENT = """#!/usr/bin/python3
# sudo for the docs test: asks the test's root process to run the command (tests/docs_runner.py).
import json, os, socket, sys
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.connect(SOCKET)
request = json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd()}).encode() + b"\\n"
socket.send_fds(client, [request], [0, 1, 2])
answer = b""
while not answer.endswith(b"\\n"):
    chunk = client.recv(64)
    if not chunk:
        sys.exit(1)
    answer += chunk
sys.exit(int(answer))
"""


class Runner:
    def __init__(self, plan: dict) -> None:
        self.plan = plan
        self.base = Path(plan["base"])
        self.project = Path(plan["project"])
        self.results: dict = {"commands": {}, "setup": [], "error": None}
        self.ids: dict[str, tuple[int, int]] = {}

    # ---- the namespace ----------------------------------------------------------------

    def mount(self, source: Path, target: str) -> None:
        subprocess.run(["mount", "--bind", str(source), target], check=True)

    def set_up_namespace(self) -> None:
        os.umask(0o022)
        etc = self.base / "etc"
        etc.mkdir()
        passwd = Path("/etc/passwd").read_text(encoding="utf-8")
        group = Path("/etc/group").read_text(encoding="utf-8")
        used = {entry.pw_uid for entry in pwd.getpwall()}
        first = next(uid for uid in range(64100, 65000, 10) if not used & set(range(uid, uid + 3)))
        for name, (offset, home, shell) in USERS.items():
            uid = first + offset
            self.ids[name] = (uid, uid)
            passwd += f"{name}:x:{uid}:{uid}:{name} (docs test):{home}:{shell}\n"
            group += f"{name}:x:{uid}:\n"
        (etc / "passwd").write_text(passwd, encoding="utf-8")
        (etc / "group").write_text(group, encoding="utf-8")
        self.mount(etc / "passwd", "/etc/passwd")
        self.mount(etc / "group", "/etc/group")
        for folder, mode in (("srv", 0o755), ("home", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            path = self.base / "fs" / folder
            path.mkdir(parents=True)
            path.chmod(mode)
            self.mount(path, f"/{folder}")
        backups = self.base / "fs" / "var-backups"
        backups.mkdir()
        self.mount(backups, "/var/backups")
        for name in USERS:
            home = Path(USERS[name][1])
            home.mkdir(mode=0o700)
            os.chown(home, *self.ids[name])
        self.bin = self.base / "bin"
        self.bin.mkdir()
        self.socket_path = self.base / "run" / "sudo.sock"
        self.socket_path.parent.mkdir()
        client = self.bin / "sudo"
        client.write_text(
            SUDO_CLIENT.replace("SOCKET", repr(str(self.socket_path))), encoding="utf-8"
        )
        client.chmod(0o755)
        self.outputs = self.base / "out"
        self.outputs.mkdir(mode=0o755)

    # ---- sudo -------------------------------------------------------------------------

    def serve_sudo(self) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.socket_path))
        self.socket_path.chmod(0o666)
        server.listen(8)
        while True:
            connection, _ = server.accept()
            threading.Thread(target=self.sudo, args=(connection,), daemon=True).start()

    def sudo(self, connection: socket.socket) -> None:
        with connection:
            credentials = connection.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
            )
            _, caller_uid, _ = struct.unpack("3i", credentials)
            message, fds, _, _ = socket.recv_fds(connection, 65536, 3)
            try:
                code = self.sudo_command(caller_uid, json.loads(message), fds)
            finally:
                for fd in fds:
                    os.close(fd)
            connection.sendall(f"{code}\n".encode())

    def sudo_command(self, caller_uid: int, request: dict, fds: list[int]) -> int:
        stderr = os.fdopen(os.dup(fds[2]), "w")
        with stderr:
            caller = pwd.getpwuid(caller_uid).pw_name
            if caller not in SUDOERS:
                print(f"{caller} is not in the sudoers file.", file=stderr)
                return 1
            argv = list(request["argv"])
            user = "root"
            while argv and argv[0].startswith("-"):
                option = argv.pop(0)
                if option == "--":
                    break
                if option == "-u" and argv:
                    user = argv.pop(0)
                else:
                    print(f"sudo (docs test): option {option} is not supported", file=stderr)
                    return 1
            if not argv:
                print("usage: sudo [-u user] command", file=stderr)
                return 1
            try:
                target = pwd.getpwnam(user)
            except KeyError:
                print(f"sudo: unknown user {user}", file=stderr)
                return 1
            program = argv[0]
            if "/" not in program:
                found = shutil.which(program, path=SECURE_PATH)
                if found is None:
                    print(f"sudo: {program}: command not found", file=stderr)
                    return 1
            env = {
                "PATH": SECURE_PATH,
                "HOME": target.pw_dir,
                "USER": target.pw_name,
                "LOGNAME": target.pw_name,
                "SHELL": target.pw_shell,
                "LANG": "C.UTF-8",
                "SUDO_USER": caller,
                "SUDO_UID": str(caller_uid),
                "SUDO_COMMAND": " ".join(request["argv"]),
            }
            try:
                process = subprocess.Popen(
                    argv,
                    cwd=request["cwd"],
                    stdin=fds[0],
                    stdout=fds[1],
                    stderr=fds[2],
                    env=env,
                    user=target.pw_uid,
                    group=target.pw_gid,
                    extra_groups=[],
                )
            except OSError as error:
                print(f"sudo: {program}: {error.strerror}", file=stderr)
                return 1
            return process.wait()

    # ---- running as a user ------------------------------------------------------------

    def environment(self, user: str) -> dict[str, str]:
        entry = pwd.getpwnam(user)
        path = f"{self.bin}:/usr/local/bin:/usr/bin:/bin" if user in SUDOERS else SECURE_PATH
        return {
            "PATH": path,
            "HOME": entry.pw_dir,
            "USER": user,
            "LOGNAME": user,
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "COLUMNS": "100",
        }

    def run_as(
        self, user: str, argv: list[str], cwd: str = "/", env: dict | None = None
    ) -> subprocess.CompletedProcess:
        entry = pwd.getpwnam(user)
        return subprocess.run(
            argv,
            cwd=cwd,
            env=env if env is not None else self.environment(user),
            user=entry.pw_uid,
            group=entry.pw_gid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def checked(self, name: str, result: subprocess.CompletedProcess) -> None:
        self.results["setup"].append(
            {
                "name": name,
                "exit": result.returncode,
                "stdout": result.stdout[-4000:],
                "stderr": result.stderr[-4000:],
            }
        )
        if result.returncode != 0:
            raise RuntimeError(f"setup step {name} failed ({result.returncode}): {result.stderr}")

    # ---- the blocks of the docs -------------------------------------------------------

    def run_block(self, step: dict) -> None:
        user = step["user"]
        folder = self.outputs / step["id"]
        folder.mkdir()
        os.chown(folder, *self.ids.get(user, (0, 0)))
        self.seed_named_files(step)
        lines = ["#!/bin/bash", f"cd {quote(step['cwd'])} || exit 97", *step["prelude"]]
        for command in step["commands"]:
            if not command["run"]:
                continue
            out = folder / command["id"]
            lines.append(f"{{ {command['text']}\n}} >{out}.out 2>{out}.err </dev/null")
            lines.append(f'echo "$?" >{out}.exit')
        script = folder / "script.sh"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        script.chmod(0o755)
        result = self.run_as(user, ["/bin/bash", str(script)], cwd="/")
        for command in step["commands"]:
            if not command["run"]:
                continue
            out = folder / command["id"]
            exit_file = out.with_suffix(".exit")
            self.results["commands"][command["id"]] = {
                "exit": int(exit_file.read_text()) if exit_file.exists() else None,
                "stdout": read_tail(out.with_suffix(".out")),
                "stderr": read_tail(out.with_suffix(".err")),
                "shell_stderr": result.stderr[-2000:],
            }

    def seed_named_files(self, step: dict) -> None:
        """A data file a command names that is nowhere in the data folder arrives first, as an
        upload would: a copy of the example file of the same name, owned by sftpgo."""
        for command in step["commands"]:
            if not command["run"]:
                continue
            for match in DATA_PATH.findall(command["text"]):
                path = Path(match)
                if "error" in path.parts or "parsed" in path.parts:
                    continue
                siblings = [path, path.parent / "error" / path.name]
                siblings.append(path.parent / "parsed" / path.name)
                if any(candidate.exists() for candidate in siblings):
                    continue
                examples = sorted((self.project / "examples" / "data").rglob(path.name))
                if not examples:
                    raise RuntimeError(f"{match}: no example file of that name to seed it")
                self.as_sftpgo_copy(examples[0], path)

    def as_sftpgo_copy(self, source: Path, target: Path) -> None:
        result = self.run_as(
            "sftpgo",
            [
                "/bin/sh",
                "-c",
                'mkdir -p "$(dirname "$2")" && cp -p "$1" "$2"',
                "-",
                str(source),
                str(target),
            ],
        )
        self.checked(f"seed {target}", result)

    # ---- setup steps ------------------------------------------------------------------

    def link_packages(self, step: dict) -> None:
        """Stand-in for `pip install -r requirements.txt`: the packages of the checkout's
        .venv become importable in the new environment, and its console scripts run."""
        venv = Path(step["venv"])
        site = next((venv / "lib").glob("python3*/site-packages"))
        (site / "powerview-docs-test.pth").write_text(step["site_packages"] + "\n")
        for script in step["scripts"]:
            source = Path(step["venv_bin"]) / script
            body = source.read_text(encoding="utf-8").split("\n", 1)[1]
            target = venv / "bin" / script
            target.write_text(f"#!{venv}/bin/python\n{body}", encoding="utf-8")
            target.chmod(0o755)
        if step.get("owner"):
            subprocess.run(["chown", "-R", step["owner"], str(venv)], check=True)

    def write_env(self, step: dict) -> None:
        path = Path(step["path"])
        text = path.read_text(encoding="utf-8")
        for key, value in step["values"].items():
            line = f"{key}={value}"
            pattern = re.compile(rf"^#?\s*{re.escape(key)}=.*$", re.MULTILINE)
            text, count = pattern.subn(line.replace("\\", "\\\\"), text, count=1)
            if count == 0:
                text += f"\n{line}\n"
        path.write_text(text, encoding="utf-8")

    def seed_data(self, step: dict) -> None:
        """The loggers' uploads: the example data folder, then files set aside by the hook
        (an upload that did not complete), one upload handled by the hook, and the Grafana
        resources the hook creates when a campaign folder appears."""
        source = self.project / "examples" / "data"
        result = self.run_as("sftpgo", ["/bin/cp", "-Rp", f"{source}/.", str(DATA)])
        self.checked("seed the data folder", result)
        for relative in step["reject"]:
            result = self.run_as(
                "sftpgo",
                [
                    "/srv/powerview/tsv_parser.py",
                    "--dataFolder",
                    str(DATA),
                    "--tsvFile",
                    str(DATA / relative),
                    "--reject",
                    "docs test: upload interrupted",
                ],
                cwd="/srv/powerview",
            )
            self.checked(f"set aside {relative}", result)
        for relative in step["hook_uploads"]:
            path = DATA / relative
            env = dict(step["hook_env"])
            env.update(
                SFTPGO_ACTION="upload",
                SFTPGO_ACTION_PATH=str(path),
                SFTPGO_ACTION_STATUS="1",
                SFTPGO_ACTION_USERNAME=relative.split("/", 1)[0],
                SFTPGO_ACTION_FS_PROVIDER="0",
                SFTPGO_ACTION_FILE_SIZE=str(path.stat().st_size),
            )
            result = self.run_as("sftpgo", [step["hook"]], cwd="/", env=env)
            self.checked(f"hook upload {relative}", result)
            self.wait_for_outcome(relative)
        for company, campaign in step["grafana"]:
            # What the hook starts, detached, when the campaign folder appears (mkdir).
            result = self.run_as(
                "root",
                ["/srv/powerview/envs/powerview/bin/ansible-playbook",
                 "/srv/powerview/grafana-automation/playbooks/create_grafana_resources.yml",
                 "-e", f"company_name={company}", "-e", f"campaign_name={campaign}",
                 "-e", f"grafana_influxdb_url={step['grafana_influxdb_url']}"],
            )  # fmt: skip
            self.checked(f"Grafana resources of {company}/{campaign}", result)

    def wait_for_outcome(self, relative: str, deadline_s: float = 300) -> None:
        """Wait until uploads.log has the upload's outcome: a queued upload is ingested later
        by a detached drainer, and the docs read its lines."""
        log = Path("/srv/sftpgo/logs/uploads.log")
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
            handled = any(
                f"path={relative} " in line and "outcome=queued" not in line for line in lines
            )
            drainer_started = any("drainer started" in line for line in lines)
            drainer_done = any("event=job:drain" in line for line in lines)
            if handled and (drainer_done or not drainer_started):
                return
            time.sleep(0.2)
        raise RuntimeError(f"no outcome for {relative} in {log} after {deadline_s} s")

    def update_origin(self, step: dict) -> None:
        """A new commit on the project's repository, changing a file of deploy/."""
        work = self.base / "origin-work"
        subprocess.run(["git", "clone", "-q", step["origin"], str(work)], check=True)
        target = work / step["file"]
        target.write_text(target.read_text(encoding="utf-8") + step["append"], encoding="utf-8")
        git = ["git", "-C", str(work), "-c", "user.name=docs test", "-c", "user.email=t@t"]
        subprocess.run([*git, "commit", "-q", "-am", "docs test: an update"], check=True)
        subprocess.run([*git, "push", "-q", "origin", "HEAD"], check=True)

    def dev_clone(self, step: dict) -> None:
        """A developer's checkout, with its .venv (system Python + linked packages) and .env."""
        clone = Path(step["path"])
        subprocess.run(["git", "clone", "-q", step["origin"], str(clone)], check=True)
        subprocess.run(
            [step["python"], "-m", "venv", "--without-pip", str(clone / ".venv")], check=True
        )
        self.link_packages({**step, "venv": str(clone / ".venv")})
        (clone / ".venv" / ".installed-stamp").touch()
        (clone / ".env").write_text(
            "".join(f"{key}={value}\n" for key, value in step["env"].items()), encoding="utf-8"
        )
        subprocess.run(["chown", "-R", f"{step['user']}:{step['user']}", str(clone)], check=True)

    # ---- the plan ---------------------------------------------------------------------

    def run(self) -> None:
        self.set_up_namespace()
        threading.Thread(target=self.serve_sudo, daemon=True).start()
        for step in self.plan["steps"]:
            getattr(self, step["kind"])(step)
            if step["kind"] != "run_block":
                self.results["setup"].append({"name": step["kind"], "exit": 0})


def quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def read_tail(path: Path, size: int = 8000) -> str:
    if not path.exists():
        return ""
    return path.read_bytes()[-size:].decode("utf-8", "replace")


def main() -> int:
    plan = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    runner = Runner(plan)
    try:
        runner.run()
    except Exception:  # reported to the test, which fails with it
        runner.results["error"] = traceback.format_exc()
    Path(plan["results"]).write_text(json.dumps(runner.results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
