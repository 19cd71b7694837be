"""Fixtures and helpers for the Grafana automation tests.

The Grafana double's fixtures come from ``tests.doubles.grafana_fixtures``, registered in
``tests/conftest.py``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import ansible.module_utils

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AUTOMATION = PROJECT_ROOT / "grafana-automation"


ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


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


# Inside Ansible, module_utils/ is importable as ansible.module_utils.<name>; the same import
# path makes the modules importable by the unit tests.
if str(AUTOMATION / "playbooks" / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(AUTOMATION / "playbooks" / "module_utils"))


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
    return load_file(AUTOMATION / "playbooks" / "library" / f"{name}.py")


def preflight() -> ModuleType:
    return load_file(AUTOMATION / "playbooks" / "action_plugins" / "powerview_preflight.py")


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
