"""Turn a dashboard template of ``grafana-automation/templates/`` into the JSON Grafana stores.

Templates are Grafana dashboards in the "export for sharing" form: every data source
reference is ``{"type": "influxdb", "uid": "${DS_POWERVIEW}"}`` and ``__inputs`` declares that
input, so a template can also be imported by hand in Grafana's UI. Two dashboard variables
carry the company and campaign: ``bucket`` (a hidden constant, the company's bucket) and
``campaign`` (a list read from the bucket's tags, or a hidden constant on a campaign's own
dashboard). Three more hidden constants are set per dashboard: ``timezone`` (the IANA zone of
the daily windows), ``channel_names`` (a Flux dictionary from the campaign's channels.csv,
``[:]`` when there is none) and the dashboard's own ``timezone`` field. Rendering never edits
query text, so a Flux query reads the same in the template and in Grafana.

A master dashboard (designed in Grafana's UI, ``GRAFANA_MASTER_DASHBOARD_UID``) is first
brought to the template form by ``template_from_master``, then rendered the same way.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

try:
    from ansible.module_utils.powerview_grafana import GrafanaClient, GrafanaError, api_path
except ImportError:  # imported as a plain module on the controller (an action plugin)
    from powerview_grafana import GrafanaClient, GrafanaError, api_path  # type: ignore[no-redef]

DATASOURCE_INPUT = "${DS_POWERVIEW}"
UID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,40}")
MIN_SCHEMA_VERSION = 36  # data source references by uid ({"type", "uid"}) everywhere
GRID_WIDTH = 24
EXPORT_KEYS = ("__inputs", "__requires", "__elements")


def load_template(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _constant(name: str, value: str, label: str) -> dict[str, Any]:
    return {
        "type": "constant",
        "name": name,
        "label": label,
        "hide": 2,
        "query": value,
        "current": {"selected": False, "text": value, "value": value},
        "options": [{"selected": True, "text": value, "value": value}],
        "skipUrlSync": False,
    }


def _replace_datasource(node: Any, reference: dict[str, str]) -> Any:
    if isinstance(node, dict):
        if node.get("uid") == DATASOURCE_INPUT:
            return dict(reference)
        return {key: _replace_datasource(value, reference) for key, value in node.items()}
    if isinstance(node, list):
        return [_replace_datasource(item, reference) for item in node]
    if node == DATASOURCE_INPUT:
        return dict(reference)
    return node


def iter_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(iter_panels(panel.get("panels") or []))
    return found


def render_dashboard(
    template: dict[str, Any],
    *,
    uid: str,
    title: str,
    bucket: str,
    datasource_uid: str,
    datasource_type: str,
    campaign: str | None = None,
    tags: list[str] | None = None,
    timezone: str | None = None,
    channel_names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The dashboard to save: inputs resolved, identity set, campaign pinned when given, time
    zone and channel names set, panel ids made unique (Grafana keys panel links and library
    state on them)."""
    reference = {"type": datasource_type, "uid": datasource_uid}
    dashboard = _replace_datasource(copy.deepcopy(template), reference)
    for key in EXPORT_KEYS:
        dashboard.pop(key, None)
    dashboard.update({"id": None, "uid": uid, "title": title})
    if tags is not None:
        dashboard["tags"] = list(tags)
    if timezone is not None:
        dashboard["timezone"] = timezone
    variables = dashboard.setdefault("templating", {}).setdefault("list", [])
    constants = {"bucket": _constant("bucket", bucket, "Bucket")}
    if campaign is not None:
        constants["campaign"] = _constant("campaign", campaign, "Campaign")
    if timezone is not None:
        constants["timezone"] = _constant("timezone", timezone, "Time zone")
    constants["channel_names"] = _constant(
        "channel_names", flux_dict(channel_names or {}), "Channel names"
    )
    for index, variable in enumerate(variables):
        if variable.get("name") in constants:
            variables[index] = constants.pop(variable["name"])
    for name in ("timezone", "channel_names"):
        if name in constants:  # a master without them: queries may use them all the same
            variables.append(constants.pop(name))
    seen: set[int] = set()
    next_id = 1
    for panel in iter_panels(dashboard.get("panels") or []):
        panel_id = panel.get("id")
        if not isinstance(panel_id, int) or panel_id in seen:
            while next_id in seen:
                next_id += 1
            panel["id"] = panel_id = next_id
        seen.add(panel_id)
    return dashboard


def _datasource_problem(where: str, reference: Any) -> str | None:
    if not isinstance(reference, dict) or not reference.get("uid") or not reference.get("type"):
        return f"{where}: data source must be referenced as {{type, uid}}, got {reference!r}"
    if "${" in str(reference.get("uid")):
        return f"{where}: unresolved data source input {reference['uid']}"
    return None


def validate_dashboard(dashboard: dict[str, Any]) -> list[str]:
    """What would make Grafana reject or mis-render the dashboard; empty when it is valid."""
    problems: list[str] = []
    if not isinstance(dashboard.get("title"), str) or not dashboard["title"].strip():
        problems.append("title is empty")
    if not UID_PATTERN.fullmatch(str(dashboard.get("uid", ""))):
        problems.append(f"uid {dashboard.get('uid')!r} is not 1-40 characters of [A-Za-z0-9_-]")
    schema_version = dashboard.get("schemaVersion")
    if not isinstance(schema_version, int) or schema_version < MIN_SCHEMA_VERSION:
        problems.append(
            f"schemaVersion {schema_version!r} is missing or below {MIN_SCHEMA_VERSION}"
        )
    if dashboard.get("id") is not None:
        problems.append("id must be null: Grafana assigns it")
    if "${DS_" in json.dumps(dashboard):
        problems.append("an unresolved ${DS_...} input is left")
    if "__inputs" in dashboard or "__requires" in dashboard:
        problems.append("export keys (__inputs, __requires) are left")
    panel_ids: set[int] = set()
    for panel in iter_panels(dashboard.get("panels") or []):
        where = f"panel {panel.get('id')} ({panel.get('title')!r})"
        if not isinstance(panel.get("id"), int) or panel["id"] in panel_ids:
            problems.append(f"{where}: id missing or not unique")
        else:
            panel_ids.add(panel["id"])
        if not isinstance(panel.get("type"), str):
            problems.append(f"{where}: no type")
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(key), int) for key in ("h", "w", "x", "y")):
            problems.append(f"{where}: gridPos needs integer h, w, x, y")
        elif grid["x"] + grid["w"] > GRID_WIDTH:
            problems.append(f"{where}: wider than the {GRID_WIDTH}-column grid")
        if panel.get("type") == "row":
            continue
        problem = _datasource_problem(where, panel.get("datasource"))
        if problem:
            problems.append(problem)
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no query")
        ref_ids = [target.get("refId") for target in targets]
        if len(set(ref_ids)) != len(ref_ids) or not all(ref_ids):
            problems.append(f"{where}: query refIds missing or repeated")
        for target in targets:
            problem = _datasource_problem(
                f"{where} query {target.get('refId')}", target.get("datasource")
            )
            if problem:
                problems.append(problem)
            if not str(target.get("query", "")).strip():
                problems.append(f"{where} query {target.get('refId')}: empty query")
    names = [variable.get("name") for variable in dashboard.get("templating", {}).get("list", [])]
    if len(set(names)) != len(names):
        problems.append(f"template variable names repeat: {names}")
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            problem = _datasource_problem(
                f"variable {variable.get('name')}", variable.get("datasource")
            )
            if problem:
                problems.append(problem)
    return problems


# --------------------------------------------------------------------------- the master

BUILTIN_DATASOURCE_UIDS = frozenset({"-- Grafana --", "grafana", "-- Mixed --", "-- Dashboard --"})
BUILTIN_DATASOURCE_TYPES = frozenset({"grafana", "datasource", "__expr__"})
INFLUXDB_TYPES = frozenset({"influxdb", "influxdb-adecwatts-datasource"})
REQUIRED_VARIABLES = ("bucket", "campaign")
_BUCKET_LITERAL = re.compile(r'\bfrom\s*\(\s*bucket\s*:\s*"([^"]*)"')


class MasterError(ValueError):
    """A master dashboard PowerView cannot turn into company dashboards; says why."""


def _is_builtin(reference: dict[str, Any]) -> bool:
    return (
        reference.get("uid") in BUILTIN_DATASOURCE_UIDS
        or reference.get("type") in BUILTIN_DATASOURCE_TYPES
    )


def _to_input(reference: Any, where: str, inputs: set[str], found: list[str]) -> Any:
    """The template form (``${DS_POWERVIEW}``) of one data source reference of the master."""
    if isinstance(reference, str):
        if reference.startswith("${") and reference[2:-1] in inputs:
            found.append(where)
            return {"type": "influxdb", "uid": DATASOURCE_INPUT}
        raise MasterError(
            f"{where}: data source {reference!r} is referenced by name; open the master in "
            "Grafana and save it again (Grafana stores {type, uid} references)"
        )
    if not isinstance(reference, dict) or _is_builtin(reference):
        return reference
    uid = str(reference.get("uid") or "")
    if uid.startswith("${") and uid[2:-1] not in inputs:
        raise MasterError(
            f"{where}: data source variable {uid} is not supported: give the panel the "
            "InfluxDB data source itself"
        )
    if uid.startswith("${") or reference.get("type") in INFLUXDB_TYPES:
        found.append(where)
        return {"type": "influxdb", "uid": DATASOURCE_INPUT}
    raise MasterError(
        f"{where}: data source of type {reference.get('type')!r} (uid {uid!r}); a master may "
        f"only read InfluxDB ({', '.join(sorted(INFLUXDB_TYPES))})"
    )


def _reset_selection(variable: dict[str, Any]) -> None:
    if variable.get("type") != "query":
        return
    variable["options"] = []
    if variable.get("multi") and variable.get("includeAll"):
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    else:
        variable["current"] = {}


def template_from_master(master: dict[str, Any], origin: str) -> dict[str, Any]:
    """The master dashboard (as Grafana returns it, or an "export for sharing" JSON) in the
    template form: every InfluxDB data source reference becomes ``${DS_POWERVIEW}``, variable
    selections are reset. Raises MasterError saying what makes it unusable."""
    if not isinstance(master, dict) or not isinstance(master.get("panels"), list):
        raise MasterError(f"{origin} is not a dashboard (no panels)")
    dashboard = copy.deepcopy(master)
    inputs = {
        str(item.get("name"))
        for item in dashboard.get("__inputs") or []
        if item.get("type") == "datasource" and item.get("pluginId") in INFLUXDB_TYPES
    }
    found: list[str] = []
    for panel in iter_panels(dashboard["panels"]):
        where = f"{origin} panel {panel.get('id')} ({panel.get('title')!r})"
        if panel.get("libraryPanel"):
            raise MasterError(
                f"{where} is a library panel, which lives in one organization only: unlink it "
                "in the master"
            )
        if panel.get("type") == "row":
            continue
        if panel.get("datasource") is None and panel.get("targets"):
            panel["datasource"] = {"type": "influxdb", "uid": DATASOURCE_INPUT}
            found.append(where)
        else:
            panel["datasource"] = _to_input(panel.get("datasource"), where, inputs, found)
        for target in panel.get("targets") or []:
            if "datasource" in target and target["datasource"] is not None:
                target["datasource"] = _to_input(
                    target["datasource"], f"{where} query {target.get('refId')}", inputs, found
                )
    variables = dashboard.setdefault("templating", {}).setdefault("list", [])
    for variable in variables:
        where = f"{origin} variable {variable.get('name')!r}"
        if variable.get("type") == "datasource":
            raise MasterError(
                f"{where} is a data source variable: each company has exactly one data source, "
                "so use it directly"
            )
        if "datasource" in variable and variable["datasource"] is not None:
            variable["datasource"] = _to_input(variable["datasource"], where, inputs, found)
        _reset_selection(variable)
    for annotation in (dashboard.get("annotations") or {}).get("list") or []:
        where = f"{origin} annotation {annotation.get('name')!r}"
        if "datasource" in annotation and annotation["datasource"] is not None:
            annotation["datasource"] = _to_input(annotation["datasource"], where, inputs, found)
    if not found:
        raise MasterError(f"{origin} reads no InfluxDB data source: nothing to point at a company")
    names = {variable.get("name") for variable in variables}
    missing = [name for name in REQUIRED_VARIABLES if name not in names]
    if missing:
        raise MasterError(
            f"{origin} lacks the variable(s) {', '.join(missing)}: queries must read "
            'from(bucket: "${bucket}") and filter on r.campaign == "${campaign}" (start from '
            "templates/electrical.json)"
        )
    for query in all_queries(dashboard):
        for bucket in _BUCKET_LITERAL.findall(query):
            if bucket not in ("${bucket}", "$bucket"):
                raise MasterError(
                    f'{origin} reads bucket "{bucket}" by name: use "${{bucket}}" so that each '
                    "company reads its own bucket"
                )
    for key in ("id", "version", *EXPORT_KEYS):
        dashboard.pop(key, None)
    return dashboard


def all_queries(dashboard: dict[str, Any]) -> list[str]:
    """The text of every query: panel targets, then query variables."""
    found = [
        str(target.get("query"))
        for panel in iter_panels(dashboard.get("panels") or [])
        for target in panel.get("targets") or []
        if target.get("query")
    ]
    found += [
        str(variable.get("query"))
        for variable in (dashboard.get("templating") or {}).get("list") or []
        if variable.get("type") == "query" and isinstance(variable.get("query"), str)
    ]
    return found


def datasource_references(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every ``datasource`` value in a dashboard, with where it is: to prove a company
    dashboard points at nothing but the company's data source."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append((f"{path}/{key}", value))
            found.extend(datasource_references(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(datasource_references(item, f"{path}/{index}"))
    return found


# --------------------------------------------------------------------------- channel names

CHANNELS_FILE = "channels.csv"
CHANNELS_COLUMNS = ("channel_id", "name")
CHANNELS_OPTIONAL_COLUMNS = ("description",)
CHANNEL_NAME_MAX_LENGTH = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def flux_string(text: str) -> str:
    """``text`` as a Flux string literal (``\\``, ``"`` and interpolation ``${`` escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def flux_dict(names: dict[str, str]) -> str:
    """A Flux dictionary literal ``["id": "name", ...]``; ``[:]`` when empty."""
    if not names:
        return "[:]"
    items = ", ".join(f"{flux_string(key)}: {flux_string(names[key])}" for key in sorted(names))
    return f"[{items}]"


def parse_channel_names(
    raw: bytes, shown: str, known_ids: set[str] | None
) -> tuple[dict[str, str], list[str]]:
    """``(names, problems)`` of a channels.csv; each problem names the file and the line.

    Columns: ``channel_id,name`` then optionally ``description`` (for people; ignored).
    ``known_ids`` None skips the unknown-channel check."""
    problems: list[str] = []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return {}, [f"{shown}:{line}: not UTF-8 (byte {raw[error.start]:#04x}): save it as UTF-8"]
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = [cell.strip() for cell in rows[0]] if rows else []
    allowed = (*CHANNELS_COLUMNS, *CHANNELS_OPTIONAL_COLUMNS)
    if tuple(header[:2]) != CHANNELS_COLUMNS or any(c not in allowed for c in header[2:]):
        hint = " (columns are separated by commas)" if rows and ";" in ",".join(rows[0]) else ""
        return {}, [
            f"{shown}:1: header must be {','.join(CHANNELS_COLUMNS)} optionally followed by "
            f"{','.join(CHANNELS_OPTIONAL_COLUMNS)}, got {','.join(header)!r}{hint}"
        ]
    names: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{shown}:{number}"
        if len(row) != len(header):
            problems.append(f"{where}: {len(row)} columns, the header has {len(header)}")
            continue
        channel_id, name = row[0].strip(), row[1].strip()
        if not channel_id:
            problems.append(f"{where}: channel_id is empty")
        elif channel_id in first_line:
            problems.append(
                f"{where}: channel_id {channel_id} is already named on line "
                f"{first_line[channel_id]}"
            )
        elif known_ids is not None and channel_id not in known_ids:
            problems.append(f"{where}: unknown channel_id {channel_id!r} in this campaign's files")
        elif not name:
            problems.append(f"{where}: name is empty")
        elif len(name) > CHANNEL_NAME_MAX_LENGTH or _CONTROL.search(name):
            problems.append(
                f"{where}: name must be 1 to {CHANNEL_NAME_MAX_LENGTH} characters without "
                "control characters"
            )
        else:
            names[channel_id] = name
        first_line.setdefault(channel_id, number)
    return ({}, problems) if problems else (names, [])


def known_channel_ids(campaign_dir: Path) -> set[str]:
    """The channel ids of a campaign: those of its logger files, waiting in a device folder or
    already ingested (``parsed/``), read with the parser's own header code (``core``)."""
    root = os.environ.get("POWERVIEW_ROOT", "")
    if root and root not in sys.path:
        sys.path.insert(0, root)
    from core.channels import build_channels  # noqa: PLC0415
    from core.errors import FileDataError  # noqa: PLC0415
    from core.formats import read_header  # noqa: PLC0415

    found: set[str] = set()
    for device in sorted(campaign_dir.iterdir()) if campaign_dir.is_dir() else []:
        if not device.is_dir():
            continue
        for folder in (device, device / "parsed"):
            for path in sorted(folder.glob("*.[tT][sS][vV]")) if folder.is_dir() else []:
                try:
                    with path.open("rb") as stream:
                        header = read_header(stream, path)
                    found.update(c.channel_id for c in build_channels(header, path))
                except (FileDataError, OSError):
                    continue  # a broken file names no channel; the parser reports it
    return found


def campaign_channel_names(
    data_dir: str, company: str, campaign: str
) -> tuple[dict[str, str], list[str]]:
    """``(names, problems)`` from ``<data_dir>/<company>/<campaign>/channels.csv``: no file
    means no names (so removing the file removes them); problems name the file and line."""
    campaign_dir = Path(data_dir) / company / campaign
    path = campaign_dir / CHANNELS_FILE
    shown = f"{company}/{campaign}/{CHANNELS_FILE}"
    if not path.is_file():
        return {}, []
    try:
        raw = path.read_bytes()
    except OSError as error:
        return {}, [f"{shown}: cannot be read ({error.strerror})"]
    return parse_channel_names(raw, shown, known_channel_ids(campaign_dir))


# --------------------------------------------------------------------------- sources

DEFAULT_DATA_DIR = "/srv/sftpgo/data"


def dashboard_settings() -> dict:
    """The master, time zone and data folder settings (``core.settings`` rules: environment,
    then ``.env``). POWERVIEW_DATA_DIR is the hook's setting, read the same way."""
    root = os.environ.get("POWERVIEW_ROOT", "")
    if root and root not in sys.path:
        sys.path.insert(0, root)
    from core.settings import SettingsError, load_environment, load_settings  # noqa: PLC0415

    try:
        grafana = load_settings().grafana
    except SettingsError as error:
        raise GrafanaError(str(error)) from error
    return {
        "master_uid": grafana.master_dashboard_uid,
        "master_org_id": grafana.master_dashboard_org_id,
        "timezone": grafana.dashboard_timezone,
        "data_dir": load_environment().get("POWERVIEW_DATA_DIR") or DEFAULT_DATA_DIR,
    }


def read_master(client: GrafanaClient, uid: str, org_id: int) -> tuple[dict, str]:
    """The master in template form, and a description of it; GrafanaError when unusable."""
    origin = f"master dashboard {uid} (organization {org_id})"
    status, stored = client.in_org(org_id).call(
        "GET", api_path("dashboards", "uid", uid), accept=(404,)
    )
    if status == 404:
        raise GrafanaError(
            f"{origin} not found: check GRAFANA_MASTER_DASHBOARD_UID and "
            "GRAFANA_MASTER_DASHBOARD_ORG_ID, or empty the first to use the bundled template"
        )
    master = stored.get("dashboard") if isinstance(stored, dict) else None
    try:
        template = template_from_master(master, origin)
    except MasterError as error:
        raise GrafanaError(f"{error}; no dashboard was changed") from error
    return template, f"master {uid} version {master.get('version')}"


def source_template(client: GrafanaClient, params: dict, settings: dict) -> tuple[dict, str]:
    if settings["master_uid"]:
        return read_master(client, settings["master_uid"], settings["master_org_id"])
    return load_template(params["template"]), f"template {params['template']}"
