"""Action plugin: read the playbook's inputs raw, check them, and derive every Grafana name.

ansible-core templates a variable each time a task uses it, and extra vars given with ``-e``
(``key=value``, inline JSON or ``@file.json``) are trusted templates: a company named
``{{ lookup('pipe','id') }}`` would run ``id`` the moment any task, even a validating
``assert``, mentions it. This plugin runs on the controller as the first task and reads
its inputs straight from ``task_vars`` without templating them, checks each one (names
against ``core.names``, the parser's allowlist), loads the settings through
``core.settings``, and returns plain values. Later tasks only use what it returns, which
Ansible never templates again, so a name is data from end to end.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

PROJECT_ROOT = Path(__file__).resolve().parents[3]
GRAFANA_AUTOMATION = PROJECT_ROOT / "grafana-automation"
UID_MAX_LENGTH = 40
UID_CHARACTERS = re.compile(r"[A-Za-z0-9_-]+")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
DATASOURCE_TYPES = ("influxdb", "influxdb-adecwatts-datasource")


@dataclass(frozen=True)
class Input:
    """One playbook input: how it is checked, its default, what it means."""

    kind: str  # name, email, choice, url, path, secret
    default: str | None
    description: str
    choices: tuple[str, ...] = ()


INPUTS: dict[str, Input] = {
    "company_name": Input(
        "name", None, "Company: Grafana organization, team and folder, InfluxDB bucket."
    ),
    "campaign_name": Input("name", "", "Campaign: adds (or deletes) its own dashboard."),
    "user_name": Input("name", "", "Login of a company user to create (or delete)."),
    "user_email": Input("email", "", "Email of that user; empty lets Grafana use the login."),
    "user_role": Input(
        "choice", "Viewer", "Role of that user in the company organization.", ("Viewer", "Editor")
    ),
    "user_password": Input(
        "secret", "", "Initial password of a new user; empty generates a random one."
    ),
    "user_password_file": Input(
        "path",
        "",
        "Where a generated password is written (mode 0600); empty means "
        "~/.powerview/grafana-passwords/<company>_<user>.txt.",
    ),
    "grafana_datasource_type": Input(
        "choice", "influxdb", "Plugin of the company data source.", DATASOURCE_TYPES
    ),
    "grafana_influxdb_url": Input(
        "url",
        "",
        "InfluxDB URL as Grafana reaches it (e.g. http://influxdb:8086 in Compose); empty "
        "means INFLUXDB_HOST / INFLUXDB_URL.",
    ),
}


class InputError(ValueError):
    """An input that is missing or not allowed; the message says which and why."""


def _import_core() -> Any:
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    import core.names  # noqa: PLC0415
    import core.settings  # noqa: PLC0415

    return core


def grafana_uid(prefix: str, *names: str) -> str:
    """A stable Grafana uid (at most 40 of ``[A-Za-z0-9_-]``) for the given names.

    ``prefix_name_name`` when that fits, which keeps uids readable (``powerview_acme``);
    otherwise (too long, or a ``.`` in a name) ``prefix-`` and a SHA-256 of the names. A
    readable uid always has ``_`` right after the prefix and a hashed one ``-``, so the two
    forms never collide."""
    readable = "_".join((prefix, *names))
    if len(readable) <= UID_MAX_LENGTH and UID_CHARACTERS.fullmatch(readable):
        return readable
    digest = hashlib.sha256("\x00".join(names).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest}"[:UID_MAX_LENGTH]


def derive_names(company: str, campaign: str) -> dict[str, str]:
    """Every Grafana identifier of a company (and campaign), from its checked names."""
    names = {
        "org_name": company,
        "team_name": company,
        "folder_uid": grafana_uid("powerview-folder", company),
        "folder_title": company,
        "datasource_uid": grafana_uid("influxdb", company),
        "datasource_name": f"influxdb_{company}",
        "overview_uid": grafana_uid("powerview", company),
        "overview_title": f"{company} - overview",
        "campaign_uid": "",
        "campaign_title": "",
    }
    if campaign:
        names["campaign_uid"] = grafana_uid("powerview", company, campaign)
        names["campaign_title"] = f"{company} - {campaign}"
    return names


def check_input(name: str, raw: Any, core: Any) -> str:
    """The checked value of input ``name``, from its raw (never templated) value."""
    spec = INPUTS[name]
    if not isinstance(raw, str):
        raise InputError(f"{name} must be a string, got {type(raw).__name__}")
    value = str(raw)  # drop Ansible's tags: the value is plain data from here on
    if spec.kind == "name":
        try:
            return core.names.check_name(value, name.replace("_name", ""))
        except core.names.UnsafeNameError as error:
            raise InputError(f"{name}: {error}") from None
    if value == "":
        return value
    if spec.kind == "email" and not EMAIL.fullmatch(value):
        raise InputError(f"{name} {value!r} is not an email address")
    if spec.kind == "choice" and value not in spec.choices:
        raise InputError(f"{name} must be one of {', '.join(spec.choices)}, not {value!r}")
    if spec.kind == "url":
        try:
            return core.settings.parse_url(value)
        except ValueError as error:
            raise InputError(f"{name} {value!r}: {error}") from None
    if spec.kind == "path" and "\x00" in value:
        raise InputError(f"{name} is not a usable path")
    return value


def read_inputs(
    task_vars: dict[str, Any], required: list[str], optional: list[str], core: Any
) -> dict[str, str]:
    """Checked values of the inputs a playbook uses; defaults for those not given."""
    values: dict[str, str] = {}
    for name in (*required, *optional):
        if name not in INPUTS:
            raise InputError(f"unknown input {name!r} (known: {', '.join(INPUTS)})")
        raw = task_vars.get(name)
        if raw is None or raw == "":
            if name in required:
                raise InputError(f"{name} is required: {INPUTS[name].description}")
            values[name] = INPUTS[name].default or ""
            continue
        values[name] = check_input(name, raw, core)
    return values


class ActionModule(ActionBase):
    """``powerview_preflight: {required: [...], optional: [...], settings: [...]}``."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("required", "optional", "settings"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        required = list(self._task.args.get("required") or [])
        optional = list(self._task.args.get("optional") or [])
        groups = tuple(self._task.args.get("settings") or ("grafana",))
        core = _import_core()
        try:
            values = read_inputs(task_vars, required, optional, core)
            settings = core.settings.load_settings(require=groups)
        except (InputError, core.settings.SettingsError) as error:
            return {**result, "failed": True, "changed": False, "msg": str(error)}
        company = values.get("company_name", "")
        campaign = values.get("campaign_name", "")
        user = values.get("user_name", "")
        password_file = values.get("user_password_file") or (
            f"~/.powerview/grafana-passwords/{company}_{user}.txt" if user else ""
        )
        influxdb_url = values.get("grafana_influxdb_url") or (
            settings.influxdb_url if "influxdb" in groups else ""
        )
        result.update(
            changed=False,
            company=company,
            campaign=campaign,
            user=user,
            user_email=values.get("user_email", ""),
            user_role=values.get("user_role") or "Viewer",
            user_password=values.get("user_password", ""),
            user_password_file=os.path.expanduser(password_file) if password_file else "",
            datasource_type=values.get("grafana_datasource_type") or "influxdb",
            influxdb_url=influxdb_url or "",
            influxdb_org=settings["INFLUXDB_ORG"] or "",
            root=str(PROJECT_ROOT),
            templates=str(GRAFANA_AUTOMATION / "templates"),
            token_command=[
                sys.executable,
                str(PROJECT_ROOT / "manage_influx_tokens.py"),
                "--bucket",
                company,
            ],
            **(derive_names(company, campaign) if company else {}),
        )
        if result["user_password"]:
            result["_ansible_no_log"] = True  # the only secret an input may carry
        return result
