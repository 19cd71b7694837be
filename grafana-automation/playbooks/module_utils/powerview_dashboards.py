"""Turn a dashboard template of ``grafana-automation/templates/`` into the JSON Grafana stores.

Templates are Grafana dashboards in the "export for sharing" form: every data source
reference is ``{"type": "influxdb", "uid": "${DS_POWERVIEW}"}`` and ``__inputs`` declares that
input, so a template can also be imported by hand in Grafana's UI. Two dashboard variables
carry the company and campaign: ``bucket`` (a hidden constant, the company's bucket) and
``campaign`` (a list read from the bucket's tags, or a hidden constant on a campaign's own
dashboard). Rendering never edits query text, so a Flux query reads the same in the template
and in Grafana.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

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
) -> dict[str, Any]:
    """The dashboard to save: inputs resolved, identity set, campaign pinned when given,
    panel ids made unique (Grafana keys panel links and library state on them)."""
    reference = {"type": datasource_type, "uid": datasource_uid}
    dashboard = _replace_datasource(copy.deepcopy(template), reference)
    for key in EXPORT_KEYS:
        dashboard.pop(key, None)
    dashboard.update({"id": None, "uid": uid, "title": title})
    if tags is not None:
        dashboard["tags"] = list(tags)
    variables = dashboard.setdefault("templating", {}).setdefault("list", [])
    for index, variable in enumerate(variables):
        if variable.get("name") == "bucket":
            variables[index] = _constant("bucket", bucket, "Bucket")
        elif variable.get("name") == "campaign" and campaign is not None:
            variables[index] = _constant("campaign", campaign, "Campaign")
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
