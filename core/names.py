"""The allowlist for company, campaign and device names.

These names come from SFTP folder names chosen by users. They become InfluxDB bucket names,
tag values, Grafana organization/team/folder names and Ansible variables, and they appear in
shell command lines of the upload hook. One strict rule for all of them keeps every one of
those uses safe without per-use escaping:

- 1 to 64 characters;
- only ASCII letters, digits, ``_``, ``.`` and ``-``;
- the first character is a letter or a digit (so never ``_`` like InfluxDB's system buckets,
  never ``.`` like hidden files or ``..``, never ``-`` like a command-line option).

A company name is more than a folder name: it becomes an InfluxDB bucket and a Grafana
organization, so two more rules apply to companies only (``reserved_company_reason`` and
``company_case_conflict``):

- Company names are unique without regard to case. InfluxDB compares bucket names exactly, but
  whether Grafana finds the organization ``ACME`` when asked for ``acme`` depends on its
  database (SQLite compares exactly, MySQL ignores case), so ``ACME`` beside ``acme`` could
  share acme's organization. ``company_key`` is the form names are compared in.
- Reserved names, whose resources would overlap another tenant's or the server's:

  ============================  ==============================================================
  name (compared without case)  why
  ============================  ==============================================================
  ``TSV_META_BUCKET``           the bucket of the parser's records (default
                                ``powerview_meta``); they name every company's files, so a
                                company token reading it would see all tenants
  ``_anything``                 InfluxDB's own buckets (``_monitoring``, ``_tasks``); also
                                refused by the allowlist
  ``Main Org.``                 Grafana's default organization (id 1), where users land when
                                no organization is given; it holds no company data and must
                                stay that way (the allowlist refuses it too: it has a space)
  ``General``                   Grafana's root folder: the company folder has the company's
                                title, and Grafana 12 refuses a folder titled ``General`` in
                                any case (400 "A folder with that name already exists":
                                ``EqualFold(title, RootFolderName)`` in
                                ``pkg/services/folder/folderimpl/folder.go``)
  ============================  ==============================================================

  Every other Grafana resource of a company (team, data source ``influxdb_<company>``,
  folder, dashboards) lives inside the company's own organization, so it cannot meet another
  company's; the organization name is the company name itself, unique without case.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

MAX_NAME_LENGTH = 64
GRAFANA_MAIN_ORG = "Main Org."
GRAFANA_ROOT_FOLDER = "General"
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


def company_key(name: str) -> str:
    """The form in which company names are compared: without regard to case."""
    return name.casefold()


def reserved_company_reason(name: str, meta_bucket: str) -> str | None:
    """Why ``name`` cannot be a company, or None when it may be one.

    ``meta_bucket`` is the configured TSV_META_BUCKET. The reasons are those of the table in
    the module docstring; the allowlist (``check_name``) is a separate check."""
    key = company_key(name)
    if key == company_key(meta_bucket):
        return (
            f"company name {name!r} is reserved: it is the bucket of the parser's records "
            f"(TSV_META_BUCKET={meta_bucket!r}), which names every company's files"
        )
    if name.startswith("_"):
        return (
            f"company name {name!r} is reserved: names starting with '_' are InfluxDB's own "
            "buckets (_monitoring, _tasks)"
        )
    if key == company_key(GRAFANA_MAIN_ORG):
        return (
            f"company name {name!r} is reserved: it is Grafana's main organization "
            f"({GRAFANA_MAIN_ORG!r}), which holds no company data"
        )
    if key == company_key(GRAFANA_ROOT_FOLDER):
        return (
            f"company name {name!r} is reserved: it is the title of Grafana's root folder "
            f"({GRAFANA_ROOT_FOLDER!r}), which a company folder cannot take"
        )
    return None


def company_case_conflict(name: str, existing: Iterable[str]) -> str | None:
    """The existing company that ``name`` equals without regard to case but not exactly.

    None when ``name`` itself exists (the same company) or nothing matches it."""
    key = company_key(name)
    names = list(existing)
    if name in names:
        return None
    for other in names:
        if company_key(other) == key:
            return other
    return None


def main(argv: list[str] | None = None) -> int:
    """Check names from the command line (``python -m core.names NAME...``): exit 0 when all
    are safe, so a script can refuse a name before acting on it."""
    args = sys.argv[1:] if argv is None else argv
    for name in args:
        if not is_safe_name(name):
            print(f"unsafe name: {name!r}", file=sys.stderr)
            return 1
    return 0 if args else 2


if __name__ == "__main__":
    raise SystemExit(main())
