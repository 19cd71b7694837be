"""The hook's settings: one typed ``Config``, read once per process from ``POWERVIEW_*``.

``core/hook.py``'s ``main`` loads it (``load_config``) and hands it to everything that needs
it: the checks, the handlers, the jobs, the log and the drainer (``core/drainer.py``). The
environment wins over the settings file (``POWERVIEW_ENV_FILE``, else ``<root>/.env``), as
in ``core/settings.py``; the file is read with the standard library only (plain ``KEY=value``
lines), so the hook can start, and say what is wrong, without the virtualenv.

==================================  ============================================================
variable                            ``Config`` field (default)
==================================  ============================================================
``POWERVIEW_ROOT``                  ``root`` (``/srv/powerview``; environment only)
``POWERVIEW_ENV_FILE``              ``env_file`` (``<root>/.env``; environment only)
``POWERVIEW_DATA_DIR``              ``data_dir`` (``/srv/sftpgo/data``)
``POWERVIEW_HOOK_LOG``              ``hook_log`` (``/srv/sftpgo/logs/uploads.log``)
``POWERVIEW_HOOK_OUTPUT_LOG``       ``output_log`` (``hook-output.log`` beside ``hook_log``)
``POWERVIEW_VENV``                  ``venv`` (``<root>/envs/powerview``)
``POWERVIEW_ANSIBLE_PLAYBOOK``      ``ansible_playbook`` (the virtualenv's ``ansible-playbook``)
``POWERVIEW_HOOK_TIMEOUT_S``        ``timeout_s`` (``DEFAULT_TIMEOUT_S``)
``POWERVIEW_GRAFANA_INFLUXDB_URL``  ``grafana_influxdb_url`` (none)
``POWERVIEW_HOOK_PATH``             ``path`` (the virtualenv's ``bin``, then the system's)
``TSV_META_BUCKET``                 ``meta_bucket`` (``powerview_meta``)
``TSV_REPORT_DIR``                  ``report_dir`` (none: ``<data folder>/../logs/reports``)
``POWERVIEW_DRAIN_LINGER_S``        ``drain_linger_s`` (``DEFAULT_LINGER_S``)
==================================  ============================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.queue import Spool, spool_folder

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
DEFAULT_TIMEOUT_S = 100  # the parser run of an upload; deploy/sftpgo.env's timeout is above
KILL_AFTER_S = 5  # then timeout(1) sends SIGKILL
DEFAULT_LINGER_S = 5.0  # the drainer waits this long for more events before it ends


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
    """The hook's settings (see the module docstring for where each comes from)."""

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

    def child_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """What the parser and the playbooks get: the hook's environment, the settings file,
        the hook's PATH and a UTF-8 locale."""
        return {
            **environ,
            "POWERVIEW_ENV_FILE": str(self.env_file),
            "PATH": self.path,
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
        }


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
