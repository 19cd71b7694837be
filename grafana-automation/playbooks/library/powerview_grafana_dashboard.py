"""Ansible module: one dashboard rendered from the master or the template, saved only when it
differs."""

from __future__ import annotations

DOCUMENTATION = r"""
module: powerview_grafana_dashboard
short_description: Ensure a PowerView dashboard rendered from the master or a template
description:
  - Takes the master dashboard when GRAFANA_MASTER_DASHBOARD_UID is set (read from Grafana,
    in GRAFANA_MASTER_DASHBOARD_ORG_ID, at every run), else C(template); points every data
    source reference at the company's, pins bucket (and campaign), sets the time zone and the
    channel names, checks the result against Grafana's dashboard model, and saves it with
    C(overwrite) only when the stored JSON or its folder differ, so a second run leaves the
    version untouched.
  - A master that cannot be used, or a campaign channels.csv with a problem, fails the task
    before anything is saved; the message names the panel, or the file and line.
options:
  org_id: {description: Organization id; null means only planned (check mode)., type: int}
  uid: {description: Dashboard uid (at most 40 characters)., type: str, required: true}
  title: {description: Dashboard title., type: str}
  folder_uid: {description: Folder the dashboard lives in., type: str}
  template: {description: Path of the template JSON (used when no master is set)., type: path}
  bucket: {description: InfluxDB bucket of the company (its name)., type: str}
  campaign: {description: Pins the campaign variable to this campaign., type: str}
  datasource_uid: {description: Uid of the company data source., type: str}
  datasource_type: {description: Plugin id of that data source., type: str, default: influxdb}
  tags: {description: Dashboard tags., type: list, elements: str, default: []}
  timezone: {description: IANA time zone; default GRAFANA_DASHBOARD_TIMEZONE., type: str}
  channel_names:
    description:
      - Channel id to display name. Omitted on a campaign dashboard, they are read from
        <POWERVIEW_DATA_DIR>/<bucket>/<campaign>/channels.csv (none when there is no file).
    type: dict
  state: {description: present or absent., type: str, default: present}
"""

RETURN = r"""
dashboard_uid: {description: The dashboard uid., type: str}
version: {description: Version stored in Grafana after the run (null in check mode)., type: int}
source: {description: What it was made from (master uid and version, or template)., type: str}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.powerview_dashboards import (  # noqa: E402
    campaign_channel_names,
    dashboard_settings,
    render_dashboard,
    source_template,
    validate_dashboard,
)
from ansible.module_utils.powerview_grafana import (  # noqa: E402
    GrafanaClient,
    GrafanaError,
    api_path,
    changes,
    run_module,
)

VOLATILE_KEYS = ("id", "version")


def comparable(dashboard: dict | None) -> dict:
    """The dashboard without what Grafana sets on every save."""
    if not dashboard:
        return {}
    return {key: value for key, value in dashboard.items() if key not in VOLATILE_KEYS}


def channel_names(params: dict, settings: dict) -> dict[str, str]:
    if params.get("channel_names") is not None:
        return {str(key): str(value) for key, value in params["channel_names"].items()}
    if not params.get("campaign"):
        return {}
    names, problems = campaign_channel_names(
        settings["data_dir"], params["bucket"], params["campaign"]
    )
    if problems:
        raise GrafanaError(
            "channels.csv refused, the dashboard is left as it was: " + "; ".join(problems)
        )
    return names


def build(client: GrafanaClient, params: dict, settings: dict) -> tuple[dict, str]:
    template, source = source_template(client, params, settings)
    dashboard = render_dashboard(
        template,
        uid=params["uid"],
        title=params.get("title") or params["uid"],
        bucket=params["bucket"],
        datasource_uid=params["datasource_uid"],
        datasource_type=params.get("datasource_type") or "influxdb",
        campaign=params.get("campaign"),
        tags=params.get("tags") or [],
        timezone=params.get("timezone") or settings["timezone"],
        channel_names=channel_names(params, settings),
    )
    problems = validate_dashboard(dashboard)
    if problems:
        raise GrafanaError(f"{source} renders an invalid dashboard: {problems}")
    return dashboard, source


def ensure_dashboard(
    client: GrafanaClient, params: dict, check_mode: bool, settings: dict | None = None
) -> dict:
    """Save or delete the dashboard ``params["uid"]``."""
    uid, state, org_id = params["uid"], params["state"], params["org_id"]
    settings = settings or dashboard_settings()
    wanted, source = build(client, params, settings) if state == "present" else (None, "")
    after = {"folder": params.get("folder_uid"), "dashboard": comparable(wanted)} if wanted else {}
    result = {"dashboard_uid": uid, "version": None, "source": source}
    if org_id is None:
        return {**result, "changed": state == "present", "diff": changes({}, after)}
    org = client.in_org(org_id)
    status, stored = org.call("GET", api_path("dashboards", "uid", uid), accept=(404,))
    current = stored.get("dashboard") if status == 200 else None
    folder = (stored.get("meta") or {}).get("folderUid") if status == 200 else None
    before = {"folder": folder or None, "dashboard": comparable(current)} if current else {}
    if state == "absent":
        if current is not None and not check_mode:
            org.call("DELETE", api_path("dashboards", "uid", uid), accept=(404,))
        return {**result, "changed": current is not None, "diff": changes(before, {})}
    if current is not None:
        result["version"] = current.get("version")
        if comparable(current) == comparable(wanted) and (folder or None) == params.get(
            "folder_uid"
        ):
            return {**result, "changed": False, "diff": changes(before, after)}
    if not check_mode:
        body = {
            "dashboard": wanted,
            "folderUid": params.get("folder_uid") or "",
            "overwrite": True,
            "message": f"PowerView: from {source}",
        }
        _, saved = org.call("POST", "/api/dashboards/db", body)
        result["version"] = saved.get("version")
    return {**result, "changed": True, "diff": changes(before, after)}


ARGUMENT_SPEC = {
    "org_id": {"type": "int"},
    "uid": {"type": "str", "required": True},
    "title": {"type": "str"},
    "folder_uid": {"type": "str"},
    "template": {"type": "path"},
    "bucket": {"type": "str"},
    "campaign": {"type": "str"},
    "datasource_uid": {"type": "str"},
    "datasource_type": {"type": "str", "default": "influxdb"},
    "tags": {"type": "list", "elements": "str", "default": []},
    "timezone": {"type": "str"},
    "channel_names": {"type": "dict"},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "present", ("template", "bucket", "datasource_uid"))],
        supports_check_mode=True,
    )
    run_module(module, ensure_dashboard)


if __name__ == "__main__":
    main()
