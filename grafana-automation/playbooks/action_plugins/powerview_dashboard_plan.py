"""Action plugin: which PowerView dashboards update_grafana_dashboards.yml re-renders.

It changes nothing: it reads Grafana and the data folder, so that every later task has what it
needs and anything wrong (an unusable master, a bad channels.csv) is known before the first
dashboard is saved. It runs on the controller, like ``powerview_preflight``, because it needs
the preflight's own ``derive_names`` (one definition of every uid, whichever playbook made the
dashboard) and ``core`` (names, settings, the logger file headers).

- An unusable master (``GRAFANA_MASTER_DASHBOARD_UID``) fails the task.
- A company is a Grafana organization holding the PowerView folder of its name; ``company``
  limits the run to one (which must exist).
- Its dashboards: the overview, and the campaign dashboards in its folder tagged
  ``campaign`` (the campaign is the dashboard's hidden ``campaign`` constant), or only
  ``campaign`` when given (made if missing).
- A campaign whose channels.csv has a problem is left out, its dashboard as it was, and each
  problem (file and line) is returned in ``problems``; the playbook fails on them at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

HERE = Path(__file__).resolve().parent
MODULE_UTILS = HERE.parent / "module_utils"
for folder in (HERE, MODULE_UTILS):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import powerview_dashboards as rendering  # noqa: E402
import powerview_grafana as grafana  # noqa: E402
import powerview_preflight  # noqa: E402

core = powerview_preflight._import_core()


CAMPAIGN_TAG = "campaign"


def company_orgs(
    client: grafana.GrafanaClient,
    company: str,
    names_module: Any,
    derive: Any,
    *,
    meta_bucket: str,
    problems: list[str],
) -> list[dict]:
    """``[{"company", "org_id"}]``: organizations that hold a company's PowerView folder.

    ``company`` was checked by the preflight (allowlist, reserved names, case). Without it,
    every organization is a candidate and its name gets the same checks here: one whose name
    is reserved, or equals another organization's but for case (left by a run made before
    those rules), is skipped with a line in ``problems``, its dashboards left as they were."""
    orgs = [
        {"id": org["id"], "name": str(org.get("name"))}
        for org in powerview_preflight.grafana_org_list(client)
    ]
    names = [org["name"] for org in orgs]
    found = []
    for org in orgs:
        name = org["name"]
        if company and name != company:
            continue
        try:
            names_module.check_name(name, "company")
        except names_module.UnsafeNameError:
            continue
        folder_uid = derive(name, "")["folder_uid"]
        status, _ = client.in_org(org["id"]).call(
            "GET", grafana.api_path("folders", folder_uid), accept=(404,)
        )
        if status != 200:
            continue
        if not company:
            twins = [
                other
                for other in names
                if other != name
                and names_module.company_key(other) == names_module.company_key(name)
            ]
            reason = names_module.reserved_company_reason(name, meta_bucket)
            if twins:
                reason = (
                    f"organization {name!r} differs only by case from organization "
                    f"{twins[0]!r}: company names are unique without regard to case"
                )
            if reason:
                problems.append(
                    f"{name}: {reason}; the dashboards of organization {org['id']} were left "
                    "as they were (rename or delete that organization)"
                )
                continue
        found.append({"company": name, "org_id": org["id"]})
    if company and not found:
        raise grafana.GrafanaError(
            f"company {company!r} has no PowerView organization and folder in Grafana: run "
            "create_grafana_resources.yml for it first"
        )
    return found


def campaigns_in_grafana(org: grafana.GrafanaClient, folder_uid: str) -> list[str]:
    """Campaigns whose dashboard exists: read from each dashboard's ``campaign`` constant."""
    _, hits = org.call(
        "GET",
        "/api/search",
        query={"type": "dash-db", "tag": CAMPAIGN_TAG, "limit": 5000},
    )
    campaigns = []
    for hit in hits or []:
        if hit.get("folderUid") != folder_uid:
            continue
        status, stored = org.call(
            "GET", grafana.api_path("dashboards", "uid", hit["uid"]), accept=(404,)
        )
        variables = ((stored or {}).get("dashboard") or {}).get("templating", {}).get("list", [])
        for variable in variables if status == 200 else []:
            if variable.get("name") == "campaign" and variable.get("type") == "constant":
                campaigns.append(str(variable.get("query")))
    return campaigns


def plan(client: grafana.GrafanaClient, params: dict, check_mode: bool, meta_bucket: str) -> dict:
    if params["campaign"] and not params["company"]:
        raise grafana.GrafanaError(
            "campaign_name needs company_name: a campaign belongs to one company"
        )
    settings = rendering.dashboard_settings()
    source = "template"
    if settings["master_uid"]:
        _, source = rendering.read_master(client, settings["master_uid"], settings["master_org_id"])
    derive, names_module = powerview_preflight.derive_names, core.names
    dashboards: list[dict] = []
    problems: list[str] = []
    found = company_orgs(
        client, params["company"], names_module, derive, meta_bucket=meta_bucket, problems=problems
    )
    for entry in found:
        company, org_id = entry["company"], entry["org_id"]
        names = derive(company, "")
        org = client.in_org(org_id)
        status, datasource = org.call(
            "GET", grafana.api_path("datasources", "uid", names["datasource_uid"]), accept=(404,)
        )
        if status == 404:
            problems.append(
                f"{company}: data source {names['datasource_uid']} is missing: run "
                "create_grafana_resources.yml for this company; its dashboards were left as "
                "they were"
            )
            continue
        common = {
            "org_id": org_id,
            "folder_uid": names["folder_uid"],
            "bucket": company,
            "datasource_uid": names["datasource_uid"],
            "datasource_type": datasource.get("type") or "influxdb",
        }
        if not params["campaign"]:
            dashboards.append(
                {
                    **common,
                    "uid": names["overview_uid"],
                    "title": names["overview_title"],
                    "campaign": None,
                    "tags": ["powerview"],
                    "channel_names": {},
                }
            )
        wanted = [params["campaign"]] if params["campaign"] else []
        campaigns = wanted or campaigns_in_grafana(org, names["folder_uid"])
        for campaign in sorted(set(campaigns)):
            try:
                names_module.check_name(campaign, "campaign")
            except names_module.UnsafeNameError as error:
                problems.append(f"{company}: a campaign dashboard names {campaign!r}: {error}")
                continue
            campaign_names = derive(company, campaign)
            channel_names, refused = rendering.campaign_channel_names(
                settings["data_dir"], company, campaign
            )
            if refused:
                problems.extend(
                    f"{problem} (dashboard {campaign_names['campaign_uid']} left as it was)"
                    for problem in refused
                )
                continue
            dashboards.append(
                {
                    **common,
                    "uid": campaign_names["campaign_uid"],
                    "title": campaign_names["campaign_title"],
                    "campaign": campaign,
                    "tags": ["powerview", "campaign"],
                    "channel_names": channel_names,
                }
            )
    return {"changed": False, "dashboards": dashboards, "problems": problems, "source": source}


def client() -> tuple[grafana.GrafanaClient, str]:
    """The server admin's client, and TSV_META_BUCKET (a reserved company name)."""
    from core.settings import SettingsError, load_settings  # noqa: PLC0415

    try:
        settings = load_settings(require=("grafana",))
    except SettingsError as error:
        raise grafana.GrafanaError(str(error)) from error
    return grafana.GrafanaClient.from_settings(settings.grafana), settings.influx.meta_bucket


class ActionModule(ActionBase):
    """``powerview_dashboard_plan: {company: ..., campaign: ...}`` (both may be empty)."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("company", "campaign"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        params = {
            "company": str(self._task.args.get("company") or ""),
            "campaign": str(self._task.args.get("campaign") or ""),
        }
        try:
            admin, meta_bucket = client()
            return {**result, **plan(admin, params, bool(self._task.check_mode), meta_bucket)}
        except grafana.GrafanaError as error:
            return {**result, "failed": True, "changed": False, "msg": str(error)}
