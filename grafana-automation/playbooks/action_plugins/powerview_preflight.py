"""Action plugin: read the playbook's inputs raw, check them, and derive every Grafana name.

ansible-core templates a variable each time a task uses it, and extra vars given with ``-e``
(``key=value``, inline JSON or ``@file.json``) are trusted templates: a company named
``{{ lookup('pipe','id') }}`` would run ``id`` the moment any task, even a validating
``assert``, mentions it. This plugin runs on the controller as the first task and reads
its inputs straight from ``task_vars`` without templating them, checks each one (names
against ``core.names``, the parser's allowlist), loads the settings through
``core.settings``, and returns plain values. Later tasks only use what it returns, which
Ansible never templates again, so a name is data from end to end.

Before any task changes anything, it also refuses:

- a value cut by Ansible's ``key=value`` form of ``-e``: ``-e company_name='a b'`` reaches
  Ansible as ``company_name=a b``, which it splits into ``company_name=a`` plus a free-form
  ``b`` that it stores as the extra var ``_raw_params`` and otherwise ignores;
- a reserved company name (``core.names.reserved_company_reason``);
- a company whose name equals an existing company's without regard to case: a Grafana
  organization (always listed, never looked up by name, since whether Grafana's name lookup
  ignores case depends on its database) and, when the playbook uses InfluxDB, a bucket.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible import context
from ansible.parsing.splitter import parse_kv
from ansible.plugins.action import ActionBase

PROJECT_ROOT = Path(__file__).resolve().parents[3]
GRAFANA_AUTOMATION = PROJECT_ROOT / "grafana-automation"
MODULE_UTILS = Path(__file__).resolve().parents[1] / "module_utils"
PASSWORD_DIR = "~/.powerview/grafana-passwords"
ORG_PAGE = 10000  # organizations asked for in one GET /api/orgs
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
        "Where a generated password is written (mode 0600, in a 0700 folder; an existing "
        "file is never overwritten); empty means "
        "~/.powerview/grafana-passwords/<company>/<user>.txt.",
    ),
    "move_from_company": Input(
        "name",
        "",
        "Company the user is moved from (add-user playbook only): it loses its membership of "
        "that company's organization and team. Without it, a user of another company is "
        "refused.",
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


def check_command_line(extra_vars: Any) -> None:
    """Refuse ``-e`` values that Ansible's ``key=value`` form cut short.

    ``extra_vars`` are the raw ``-e``/``--extra-vars`` strings. A ``key=value`` string is split
    at unquoted spaces; a piece without ``=`` is not a value of the key before it but a
    free-form parameter, which Ansible stores as ``_raw_params`` and no playbook reads: the
    name silently loses everything after its first space."""
    for option in extra_vars or ():
        text = str(option)
        if not text or text[0] in "@[{/.":
            continue  # a file or inline JSON/YAML: a value cannot be cut there
        leftover = parse_kv(text).get("_raw_params")
        if leftover:
            raise InputError(
                f"-e {text!r}: Ansible's key=value form kept only what comes before the first "
                f"space and would drop {str(leftover)!r}; a name never contains a space: give "
                'the name alone, or pass inputs as JSON (-e \'{"company_name": "..."}\') or '
                "in a file (-e @vars.json)"
            )


def _grafana_module() -> Any:
    """``module_utils/powerview_grafana.py`` imported as a plain module (stdlib only)."""
    if str(MODULE_UTILS) not in sys.path:
        sys.path.insert(0, str(MODULE_UTILS))
    import powerview_grafana  # noqa: PLC0415

    return powerview_grafana


def _grafana_client(settings: Any) -> Any:
    return _grafana_module().GrafanaClient.from_settings(settings.grafana)


def check_user(settings: Any, company: str, login: str, email: str, move_from: str) -> None:
    """Refuse a login or an email that belongs to another company.

    Grafana 12 finds users by login or email without regard to case, so ``ALICE``, ``alice``
    and ``alice@x`` may all name acme's alice: whoever Grafana finds is checked. A user may
    belong to the company's organization and the main one (where Grafana puts users made by
    hand); any other organization is another company, named in the refusal, unless
    ``move_from`` names exactly that one."""
    grafana = _grafana_module()
    client = _grafana_client(settings)
    try:
        for wanted, what in ((login, "login"), (email, "email")):
            if not wanted:
                continue
            status, user = client.call(
                "GET", "/api/users/lookup", query={"loginOrEmail": wanted}, accept=(404,)
            )
            if status != 200:
                continue
            if user.get("isGrafanaAdmin"):
                raise InputError(
                    f"{what} {wanted!r} is the Grafana server admin {user['login']!r}: refusing "
                    "to manage it as a company user"
                )
            _, orgs = client.call("GET", grafana.api_path("users", user["id"], "orgs"))
            foreign = sorted(
                str(org["name"])
                for org in orgs or []
                if int(org["orgId"]) != grafana.MAIN_ORG_ID
                and org["name"] != company
                and (not move_from or org["name"] != move_from)
            )
            if what == "email" and str(user.get("login", "")).lower() != login.lower():
                owner = f" of company {foreign[0]!r}" if foreign else ""
                raise InputError(
                    f"user_email {wanted!r} is already the email of Grafana user "
                    f"{user['login']!r}{owner} (emails are compared without case): refusing "
                    f"to give it to {login!r}"
                )
            if foreign:
                same = "" if user["login"] == wanted else f" (Grafana user {user['login']!r})"
                raise InputError(
                    f"{what} {wanted!r}{same} belongs to company {foreign[0]!r}: refusing it for "
                    f"company {company!r}, a user is never moved between companies; pick "
                    "another login, or move it explicitly with add_grafana_user_to_team.yml "
                    f"and move_from_company={foreign[0]} (see grafana-automation/README.md)"
                )
    except grafana.GrafanaError as error:
        raise InputError(str(error)) from None


def grafana_org_list(client: Any) -> list[dict[str, Any]]:
    """Every organization of Grafana, ``[{"id", "name"}]`` (server admin, basic auth).

    One page, without ``page``: Grafana 12 skips ``perpage * page`` organizations
    (``orgimpl/store.go``, ``Search``), so ``page`` counts from 0 and ``page=1`` would already
    skip the first page (older versions differ); ``perpage`` defaults to 1000
    (``api/org.go``, ``SearchOrgs``), hence asked for explicitly. More organizations than one
    page holds is refused, not guessed."""
    _, orgs = client.call("GET", "/api/orgs", query={"perpage": ORG_PAGE})
    if len(orgs or []) >= ORG_PAGE:
        raise _grafana_module().GrafanaError(
            f"Grafana has {ORG_PAGE} organizations or more: the company names cannot all be "
            "checked in one page"
        )
    return list(orgs or [])


def grafana_org_names(settings: Any) -> list[str]:
    """Every organization name of Grafana (see ``grafana_org_list``)."""
    return [str(org["name"]) for org in grafana_org_list(_grafana_client(settings))]


def influxdb_bucket_names(settings: Any) -> list[str]:
    """Every bucket name of INFLUXDB_ORG (all pages)."""
    import core.influx_admin as admin  # noqa: PLC0415
    from core.influx_client import connect  # noqa: PLC0415

    try:
        with connect(settings.influx) as client:
            return admin.bucket_names(client, admin.find_org_id(client, settings.influx.org))
    except admin.InfluxAdminError as error:  # unreachable, token refused, unknown org...
        raise InputError(str(error)) from None


def check_company(company: str, settings: Any, groups: tuple[str, ...], core: Any) -> None:
    """Refuse a reserved company name, or one equal to an existing company's but for case."""
    reason = core.names.reserved_company_reason(company, settings.influx.meta_bucket)
    if reason:
        raise InputError(f"company_name: {reason}")
    grafana = _grafana_module()
    try:
        orgs = grafana_org_names(settings)
    except grafana.GrafanaError as error:
        raise InputError(str(error)) from None
    other = core.names.company_case_conflict(company, orgs)
    where = "Grafana organization"
    if other is None and "influxdb" in groups:
        other = core.names.company_case_conflict(company, influxdb_bucket_names(settings))
        where = "InfluxDB bucket"
    if other is not None:
        raise InputError(
            f"company_name {company!r} differs only by case from the existing company "
            f"{other!r} ({where} {other!r}): company names are unique without regard to case, "
            f"so nothing was done for {company!r}; use {other!r} if that company is meant"
        )


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
            check_command_line(context.CLIARGS.get("extra_vars"))
            values = read_inputs(task_vars, required, optional, core)
            settings = core.settings.load_settings(require=groups)
            if values.get("company_name"):
                check_company(values["company_name"], settings, groups, core)
            if values.get("company_name") and values.get("user_name"):
                check_user(
                    settings,
                    values["company_name"],
                    values["user_name"],
                    values.get("user_email", ""),
                    values.get("move_from_company", ""),
                )
        except (InputError, core.settings.SettingsError) as error:
            return {**result, "failed": True, "changed": False, "msg": str(error)}
        company = values.get("company_name", "")
        campaign = values.get("campaign_name", "")
        user = values.get("user_name", "")
        # One folder per company: <company>/<user>.txt cannot be the file of another pair,
        # since neither name may contain '/'.
        password_file = values.get("user_password_file") or (
            f"{PASSWORD_DIR}/{company}/{user}.txt" if user else ""
        )
        influxdb_url = values.get("grafana_influxdb_url") or (
            settings.influx.url if "influxdb" in groups else ""
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
            move_from_company=values.get("move_from_company", ""),
            datasource_type=values.get("grafana_datasource_type") or "influxdb",
            influxdb_url=influxdb_url or "",
            influxdb_org=settings.influx.org,
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
