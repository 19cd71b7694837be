"""Run an entry point with the project's virtual environment, whatever ``python3`` started it.

``./tsv_parser.py`` and ``./manage_influx_tokens.py`` start with ``#!/usr/bin/env python3``:
the first ``python3`` on ``PATH``, which on a server is the system one, without
``influxdb_client`` and the other packages of ``requirements.txt``. Importing this module
first (it uses the standard library only, and ``core.outcomes`` for the exit code) re-executes
the script with the Python of the project's virtual environment when the running one lacks
those packages, so the commands of the README, the docs and ``--help`` run as written.

The environment is, first found wins:

1. ``POWERVIEW_VENV``, from the process environment or the settings file (``.env`` at the
   project root, or the file named by ``POWERVIEW_ENV_FILE``), as for the upload hook;
2. ``<project>/envs/powerview``, the server layout of docs/deployment.md;
3. ``<project>/.venv``, a checkout's environment (``make venv``).

Nothing happens when the packages are importable (the script was started with a suitable
Python), or when the main module is not one of the entry points (a test importing them).
When no environment is found, the script stops with exit code 2 and says where it looked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path

from core.outcomes import ExitCode

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = ("tsv_parser.py", "manage_influx_tokens.py")
# One top-level module of each runtime requirement the entry points import.
REQUIRED_MODULES = ("influxdb_client", "dotenv", "requests")
# Set in the environment of the re-executed script, so a broken environment fails once
# instead of re-executing itself forever.
REEXEC_MARKER = "POWERVIEW_VENV_REEXEC"


class VenvNotFoundError(RuntimeError):
    """No virtual environment with a Python was found where the project keeps one."""


def missing_modules(names: tuple[str, ...] = REQUIRED_MODULES) -> list[str]:
    """The modules of ``names`` the running interpreter cannot import."""
    return [name for name in names if find_spec(name) is None]


def settings_file_value(name: str, environ: Mapping[str, str], root: Path = PROJECT_ROOT) -> str:
    """``name``'s value in the settings file (``KEY=value`` lines), or "" when absent or
    unreadable (``.env`` is root:sftpgo 0640 on a server)."""
    path = Path(environ.get("POWERVIEW_ENV_FILE") or root / ".env")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    value = ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, separator, rest = stripped.partition("=")
        if not separator or key.strip() != name:
            continue
        rest = rest.strip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            rest = rest[1:].split(quote, 1)[0]
        else:
            rest = rest.split(" #", 1)[0].strip()
        value = rest  # the last assignment wins, as in a shell
    return value


def candidate_venvs(environ: Mapping[str, str], root: Path = PROJECT_ROOT) -> list[Path]:
    """Where the project's virtual environment may be, in the order they are tried."""
    explicit = environ.get("POWERVIEW_VENV") or settings_file_value("POWERVIEW_VENV", environ, root)
    if explicit:
        return [Path(explicit)]
    return [root / "envs" / "powerview", root / ".venv"]


def find_venv_python(environ: Mapping[str, str], root: Path = PROJECT_ROOT) -> Path:
    """The Python of the first virtual environment found; raises VenvNotFoundError."""
    candidates = candidate_venvs(environ, root)
    for venv in candidates:
        python = venv / "bin" / "python"
        if python.is_file() and os.access(python, os.X_OK):
            return python
    looked = ", ".join(str(venv) for venv in candidates)
    raise VenvNotFoundError(
        f"no virtual environment found (looked in: {looked}); create one with `make venv` "
        "(a checkout) or as docs/deployment.md says (a server), or set POWERVIEW_VENV"
    )


def entry_point_script() -> Path | None:
    """The entry point being run as ``__main__``, or None (imported, interactive, -c...)."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file:
        return None
    script = Path(main_file).resolve()
    if script.parent != PROJECT_ROOT or script.name not in ENTRY_POINTS:
        return None
    return script


def ensure_project_python() -> None:
    """Re-execute the running entry point with the project's Python when this one lacks the
    project's packages; print why and exit 2 when that cannot be done."""
    missing = missing_modules()
    if not missing:
        os.environ.pop(REEXEC_MARKER, None)
        return
    script = entry_point_script()
    if script is None:
        return  # not run as an entry point: let the import fail where it happens
    name = script.name
    if os.environ.get(REEXEC_MARKER):
        print(
            f"{name}: error: the Python of {os.environ[REEXEC_MARKER]} ({sys.executable}) lacks "
            f"{', '.join(missing)}: install requirements.txt into that environment",
            file=sys.stderr,
        )
        raise SystemExit(ExitCode.USAGE)
    try:
        python = find_venv_python(os.environ)
    except VenvNotFoundError as error:
        print(
            f"{name}: error: {sys.executable} lacks {', '.join(missing)} and {error}",
            file=sys.stderr,
        )
        raise SystemExit(ExitCode.USAGE) from None
    environment = dict(os.environ)
    environment[REEXEC_MARKER] = str(python.parent.parent)
    os.execve(python, [str(python), str(script), *sys.argv[1:]], environment)


ensure_project_python()
