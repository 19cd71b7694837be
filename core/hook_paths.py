"""The checks made before anything runs: the installation, the paths and the folder names.

``check_installation`` makes sure the hook can work at all (an absolute data folder that
exists, the virtualenv's Python, the project); each failure is an outcome ``failed`` with
exit status 1, for an operator to act on. ``DataFolder`` then checks what an event names:

- a path must be absolute, clean (no ``.``, ``..`` or ``//``: SFTPGo sends clean ones), exist,
  and lie inside the data folder with no symbolic link below it (``locate``, which gives its
  parts below the data folder, or raises ``RefusedError`` saying why not);
- every folder name passes the parser's own rules (``core.names``: the allowlist, and the
  reserved company names); a name that does not ends the event as ``refused``.

How deep a path lies decides what it is (``core.layout``: company, campaign, device folder,
file); the handlers (``core/hook_handlers.py``) apply that. Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from core.hook_config import Config
from core.hook_event import Finished
from core.names import UnsafeNameError, check_name, reserved_company_reason
from core.outcomes import HookExit, HookOutcome


class RefusedError(Exception):
    """A path or a name the hook will not act on; the message says why."""


def check_installation(config: Config) -> Path:
    """The data folder, resolved; raises ``Finished`` (failed) when the hook cannot work."""

    def broken(detail: str) -> Finished:
        return Finished(HookOutcome.FAILED, detail, HookExit.BROKEN)

    if not config.data_dir.is_absolute():
        raise broken("POWERVIEW_DATA_DIR must be an absolute path")
    if not (config.python.is_file() and os.access(config.python, os.X_OK)):
        raise broken(f"no Python at {config.python} (POWERVIEW_VENV)")
    try:
        data_root = config.data_dir.resolve(strict=True)
    except OSError:
        raise broken(f"no data folder at {config.data_dir} (POWERVIEW_DATA_DIR)") from None
    if not data_root.is_dir():
        raise broken(f"{config.data_dir} is not a folder")
    if not (config.root / "tsv_parser.py").is_file():
        raise broken(f"no project at {config.root} (POWERVIEW_ROOT)")
    return data_root


class DataFolder:
    """The data folder as the hook checks paths and names against it."""

    def __init__(self, config: Config, root: Path) -> None:
        self.config = config
        self.root = root  # resolved (check_installation)

    def shown(self, path: str) -> str:
        """The path as the log shows it: relative to the data folder when inside."""
        for base in (str(self.root), str(self.config.data_dir)):
            if base and path.startswith(base + "/"):
                return path[len(base) + 1 :]
        return path

    def locate(self, path: str) -> Path:
        """The path below the data folder of an existing path with no symbolic link below the
        data folder; raises ``RefusedError`` saying why not."""
        if not path.startswith("/"):
            raise RefusedError("not an absolute path")
        if "//" in path or any(part in (".", "..") for part in path.split("/")):
            raise RefusedError("not a clean path ('.', '..' or '//' in it)")
        try:
            resolved = Path(path).resolve(strict=True)
        except (OSError, RuntimeError):
            raise RefusedError("does not exist (any more)") from None
        if not resolved.is_relative_to(self.root):
            raise RefusedError(f"outside the data folder {self.root} (links resolved)")
        relative = resolved.relative_to(self.root)
        lexical = Path(os.path.normpath(path))
        if lexical not in (
            self.root / relative,
            Path(os.path.normpath(self.config.data_dir)) / relative,
        ):
            raise RefusedError(f"a symbolic link on the way (leads to {relative})")
        return relative

    def check_names(self, parts: Sequence[str], kinds: Sequence[str]) -> None:
        """Each name against its kind's rules, the first also against the reserved company
        names; raises ``Finished`` (refused) at the first that fails."""
        try:
            for name, kind in zip(parts, kinds, strict=False):
                check_name(name, kind)
            if parts:
                reason = reserved_company_reason(parts[0], self.config.meta_bucket)
                if reason:
                    raise UnsafeNameError(reason)
        except UnsafeNameError as error:
            raise Finished(HookOutcome.REFUSED, f"a folder name is not allowed: {error}") from None
