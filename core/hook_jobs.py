"""The processes the hook starts: detached jobs, and the parser run of a failed upload.

A **detached job** is the hook started again, ``python -m core.hook --job <job> [names...]``,
in its own session (``setsid``), so that SFTPGo's kill after its timeout does not reach it;
it writes its own ``job:<job>`` line when it ends (``core/hook.py`` dispatches it here):

=============  ==============================================================================
job            what it runs
=============  ==============================================================================
drain          the drainer (``core/drainer.py``), with the virtualenv's Python; it inherits
               the drainer lock (``--lock-fd``), or takes it when started by hand
playbook       ``create_grafana_resources.yml`` for a company, or a company and a campaign
dashboards     ``update_grafana_dashboards.yml`` for a company and a campaign
=============  ==============================================================================

Playbooks run one at a time on the machine (``flock`` on the playbooks folder, waiting up to
``PLAYBOOK_WAIT_S``); the names reach Ansible in a JSON file (``--extra-vars @file``), never
through a shell string.

The **parser run of a failed upload** (``tsv_parser.py --reject``) is waited for, under
coreutils' ``timeout`` (``POWERVIEW_HOOK_TIMEOUT_S``, then SIGKILL after ``KILL_AFTER_S``);
its report decides the outcome (``core/hook_report.py``).

What the children print goes to ``hook-output.log`` (``core/hook_log.py``). Standard library
only: the drainer's modules are imported by the drain job alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from core.hook_config import KILL_AFTER_S, Config
from core.hook_event import Finished
from core.hook_log import keep_output
from core.hook_report import join, reject_outcome
from core.outcomes import HookExit, HookOutcome

CREATE_PLAYBOOK = "create_grafana_resources.yml"
DASHBOARDS_PLAYBOOK = "update_grafana_dashboards.yml"
PLAYBOOK_WAIT_S = 1800
_RECAP = re.compile(r"ok=\d+.*failed=\d+")


class Jobs:
    """The child processes of one call of the hook, with its settings and environment."""

    def __init__(self, config: Config, environ: Mapping[str, str], user: str) -> None:
        self.config = config
        self.environ = environ
        self.user = user  # passed on to detached jobs, for their log line

    def keep_output(self, text: str) -> None:
        """A child's output into hook-output.log."""
        keep_output(self.config, text)

    # -- detached jobs -------------------------------------------------------------------
    def detach(self, job: str, args: Sequence[str], keep_fd: int | None = None) -> int:
        """Start ``python -m core.hook --job <job> ...`` in its own session; ``keep_fd`` is
        passed on (``--lock-fd``). The pid of the job."""
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
            env={**self.config.child_env(self.environ), "PYTHONPATH": str(self.config.root)},
            start_new_session=True,
            pass_fds=() if keep_fd is None else (keep_fd,),
        )
        return process.pid

    def drain(self, lock_fd: str) -> NoReturn:
        """The drain job: started by a hook holding the drainer lock, whose descriptor it
        inherits. It logs a line per queued event, then its own."""
        from core.drainer import drain  # noqa: PLC0415 - the hook itself stays light

        spool = self.config.spool
        # Started by hand (no --lock-fd): take the lock, or leave it to the running drainer.
        descriptor = int(lock_fd) if lock_fd.isdigit() else spool.try_lock()
        if descriptor is None:
            raise Finished(HookOutcome.SKIPPED, "a drainer is already running")
        done = drain(self.config, spool, descriptor, self.keep_output, self.environ)
        raise Finished(HookOutcome.COMPLETED, done)

    def playbook(self, playbook: str, names: Sequence[str]) -> NoReturn:
        """The playbook job, for a company (and a campaign); names already checked."""
        config = self.config
        with tempfile.TemporaryDirectory(prefix="powerview-playbook-") as folder:
            work = Path(folder)
            vars_file = work / "vars.json"
            descriptor = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(descriptor, "w", encoding="utf-8") as stream:
                # names are data, never pasted into a string
                json.dump(self._playbook_variables(playbook, names), stream)
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
                env=self._ansible_env(work),
                cwd=config.root,
                check=False,
            )
        output = done.stdout.decode("utf-8", "replace")
        self.keep_output(output)
        recaps = _RECAP.findall(output)
        recap = " ".join(recaps[-1].split()) if recaps else ""
        if done.returncode == 0:
            raise Finished(HookOutcome.COMPLETED, join(playbook, recap, separator=": "))
        failed = join(f"{playbook} exit {done.returncode}", recap, separator=": ")
        raise Finished(HookOutcome.FAILED, f"{failed} (see {config.output_log})", HookExit.BROKEN)

    def _playbook_variables(self, playbook: str, names: Sequence[str]) -> dict[str, str]:
        variables = {"company_name": names[0]}
        if len(names) > 1 and names[1]:
            variables["campaign_name"] = names[1]
        if playbook == CREATE_PLAYBOOK and self.config.grafana_influxdb_url:
            variables["grafana_influxdb_url"] = self.config.grafana_influxdb_url
        return variables

    def _ansible_env(self, work: Path) -> dict[str, str]:
        """Ansible's settings for one run: the project's ansible.cfg, a home and temporary
        folder of its own, no colour."""
        return {
            **self.config.child_env(self.environ),
            "ANSIBLE_CONFIG": str(self.config.root / "grafana-automation" / "ansible.cfg"),
            "ANSIBLE_HOME": str(work / "ansible"),
            "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
        }

    # -- the parser ----------------------------------------------------------------------
    def reject(self, parts: Sequence[str], reason: str) -> NoReturn:
        """Set the file at ``parts`` aside unread (``tsv_parser.py --reject``): the outcome
        comes from the run's exit code and report."""
        file = str(self.config.data_dir.joinpath(*parts))
        with tempfile.TemporaryDirectory(prefix="powerview-hook-") as work:
            status, report = self._parser(Path(work), "--tsvFile", file, "--reject", reason)
        raise reject_outcome(status, report, self.config.timeout_s, self.config.output_log)

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
            env=config.child_env(self.environ),
            cwd=config.root,
            check=False,
        )
        self.keep_output(done.stdout.decode("utf-8", "replace"))
        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = None
        return done.returncode, report
