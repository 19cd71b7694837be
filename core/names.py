"""The allowlist for company, campaign and device names.

These names come from SFTP folder names chosen by users. They become InfluxDB bucket names,
tag values, Grafana organization/team/folder names and Ansible variables, and they appear in
shell command lines of the upload hook. One strict rule for all of them keeps every one of
those uses safe without per-use escaping:

- 1 to 64 characters;
- only ASCII letters, digits, ``_``, ``.`` and ``-``;
- the first character is a letter or a digit (so never ``_`` like InfluxDB's system buckets,
  never ``.`` like hidden files or ``..``, never ``-`` like a command-line option).
"""

from __future__ import annotations

import re
import sys

MAX_NAME_LENGTH = 64
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class UnsafeNameError(ValueError):
    """A folder name that is not allowed as a company, campaign or device name."""


def is_safe_name(name: str) -> bool:
    """Return True when ``name`` matches the allowlist."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


def check_name(name: str, kind: str) -> str:
    """Return ``name`` unchanged, or raise UnsafeNameError saying why it is refused."""
    if not isinstance(name, str) or name == "":
        raise UnsafeNameError(f"{kind} name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise UnsafeNameError(
            f"{kind} name {name[:20]!r}... is {len(name)} characters long "
            f"(at most {MAX_NAME_LENGTH})"
        )
    if not is_safe_name(name):
        raise UnsafeNameError(
            f"{kind} name {name!r} is not allowed: use letters, digits, '_', '.' and '-' "
            "only, starting with a letter or a digit"
        )
    return name


def main(argv: list[str] | None = None) -> int:
    """Check names from the command line: exit 0 when all are safe (used by on-upload.sh)."""
    args = sys.argv[1:] if argv is None else argv
    for name in args:
        if not is_safe_name(name):
            print(f"unsafe name: {name!r}", file=sys.stderr)
            return 1
    return 0 if args else 2


if __name__ == "__main__":
    raise SystemExit(main())
