"""update_grafana_dashboards.yml through the real ansible-playbook against the Grafana double.

An admin designs a master dashboard in Grafana's main organization (here: the bundled
template imported there, pointed at a demo data source, plus a new panel), sets
GRAFANA_MASTER_DASHBOARD_UID, and runs the playbook once: every company's dashboards are made
from it, each pointing at its own data source only. Channel names come from the campaign's
channels.csv in the data folder, as the upload hook leaves it.

The module builds that rollout once (``baseline``: playbook runs cost seconds); each test gets
its own copy of it (``site``), so a master a test saves is never seen by another.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import AUTOMATION, CREATE, SAMPLES, UPDATE, Baseline, GrafanaSite, Run, api, ok

TEMPLATE = AUTOMATION / "templates" / "electrical.json"
LOGGER_FILE = SAMPLES / "acme" / "base" / "02001283"
MASTER_UID = "powerview-master"
BUILTIN = {"-- Grafana --", "grafana", "-- Mixed --", "-- Dashboard --"}
COMPANIES = {"acme": "camp1", "beta": "b1"}


class Dashboards(GrafanaSite):
    """A site whose HOME holds the data folder, with the master dashboard's helpers."""

    @property
    def data(self) -> Path:
        return self.home / "data"

    def update(self, *args: str, names: dict | None = None, **env: str) -> Run:
        return self.run(
            UPDATE, *args, names=names, **{"GRAFANA_MASTER_DASHBOARD_UID": MASTER_UID, **env}
        )

    def org_id(self, company: str) -> int:
        return self.grafana.state.org_by_name(company).id

    def dashboard(self, company: str, uid: str) -> dict[str, Any]:
        status, body = api(
            self.grafana, "GET", f"/api/dashboards/uid/{uid}", org=self.org_id(company)
        )
        assert status == 200, body
        return body["dashboard"]

    def campaign_dashboard(self, company: str) -> dict[str, Any]:
        return self.dashboard(company, f"powerview_{company}_{COMPANIES[company]}")

    def save_master(self, master: dict[str, Any]) -> None:
        status, body = api(
            self.grafana, "POST", "/api/dashboards/db",
            {"dashboard": master, "overwrite": True}, org=1,
        )  # fmt: skip
        assert status == 200, body


def master_dashboard(extra_panel_title: str = "Peak power") -> dict[str, Any]:
    """What an admin saves after importing the template into the main organization (data
    source: a demo one) and adding a panel."""
    exported = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    text = json.dumps(exported).replace("${DS_POWERVIEW}", "demo-influx")
    master = json.loads(text)
    for key in ("__inputs", "__requires"):
        master.pop(key)
    master.update(uid=MASTER_UID, title="PowerView master", id=None)
    for variable in master["templating"]["list"]:
        if variable["name"] == "campaign":  # the admin's selection while designing
            variable["current"] = {"selected": True, "text": "demo", "value": "demo"}
    master["panels"].append(
        {
            "id": 40,
            "type": "stat",
            "title": extra_panel_title,
            "gridPos": {"h": 4, "w": 6, "x": 0, "y": 40},
            "datasource": {"type": "influxdb", "uid": "demo-influx"},
            "targets": [
                {
                    "refId": "A",
                    "datasource": {"type": "influxdb", "uid": "demo-influx"},
                    "query": 'from(bucket: "${bucket}")\n  |> range(start: v.timeRangeStart, '
                    "stop: v.timeRangeStop)\n  |> filter(fn: (r) => r._measurement == "
                    '"electrical" and r.campaign == "${campaign}" and r.channel_unit == "W")\n'
                    "  |> max()",
                }
            ],
        }
    )
    return master


def references(dashboard: dict[str, Any]) -> list[Any]:
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource":
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    return found


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}[name]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """acme and beta with a campaign each (a logger file in each campaign folder), a demo
    data source and the master dashboard in the main organization, rolled out twice
    (``update --diff``, then ``update``)."""
    home = tmp_path_factory.mktemp("home")
    site = Dashboards.start(
        home,
        env={
            "POWERVIEW_DATA_DIR": str(home / "data"),
            "ANSIBLE_CONFIG": str(AUTOMATION / "ansible.cfg"),
        },
    )
    site.env.pop("GRAFANA_MASTER_DASHBOARD_UID", None)
    try:
        for company, campaign in COMPANIES.items():
            device = site.data / company / campaign / "02001283"
            device.mkdir(parents=True)
            shutil.copy(LOGGER_FILE / "T302_251025_031739.tsv", device)
        for company, campaign in COMPANIES.items():
            ok(site.run(CREATE, names={"company_name": company, "campaign_name": campaign}))
        status, body = api(
            site.grafana, "POST", "/api/datasources",
            {"name": "demo", "type": "influxdb", "uid": "demo-influx", "access": "proxy",
             "url": site.influxdb.url, "jsonData": {"version": "Flux", "defaultBucket": "demo"}},
            org=1,
        )  # fmt: skip
        assert status == 200, body
        site.save_master(master_dashboard())
        ok(site.update("--diff"))
        ok(site.update())
    except BaseException:
        site.stop()
        raise
    return Baseline.keep(site)


@pytest.fixture(scope="module")
def rolled_out(baseline: Baseline) -> dict[str, Run]:
    """The baseline's two updates."""
    first, second = baseline.site.runs[-2:]
    return {"first": first, "second": second}


def test_a_new_master_panel_reaches_every_company_in_one_run(site, rolled_out):
    assert rolled_out["first"].changed_dashboards == [
        "powerview_acme",
        "powerview_acme_camp1",
        "powerview_beta",
        "powerview_beta_b1",
    ]
    for company, campaign_name in COMPANIES.items():
        for dashboard in (
            site.campaign_dashboard(company),
            site.dashboard(company, f"powerview_{company}"),
        ):
            titles = [panel["title"] for panel in dashboard["panels"]]
            assert "Peak power" in titles
            datasource = {"type": "influxdb", "uid": f"influxdb_{company}"}
            for reference in references(dashboard):
                assert reference == datasource or reference.get("uid") in BUILTIN, reference
            assert variable(dashboard, "bucket")["query"] == company
        campaign = variable(site.campaign_dashboard(company), "campaign")
        assert (campaign["type"], campaign["query"]) == ("constant", campaign_name)
        overview_campaign = variable(site.dashboard(company, f"powerview_{company}"), "campaign")
        assert overview_campaign["current"] == {}  # the admin's selection is not carried over


def test_a_second_run_changes_nothing(rolled_out):
    assert rolled_out["second"].recap["changed"] == 0


def test_check_and_diff_say_what_would_change_and_change_nothing(site, rolled_out):
    site.save_master(master_dashboard("Peak power per day"))
    before = site.grafana.snapshot()
    run = ok(site.update("--check", "--diff"))
    assert len(run.changed_dashboards) == 4
    assert "Peak power per day" in run.output
    assert site.grafana.snapshot() == before
    assert len(ok(site.update()).changed_dashboards) == 4
    assert ok(site.update()).recap["changed"] == 0


def test_one_company_alone(site, rolled_out):
    site.save_master(master_dashboard("Only acme sees this yet"))
    run = ok(site.update("-e", "company_name=acme"))
    assert run.changed_dashboards == ["powerview_acme", "powerview_acme_camp1"]
    assert "Only acme sees this yet" in json.dumps(site.campaign_dashboard("acme"))
    assert "Only acme sees this yet" not in json.dumps(site.campaign_dashboard("beta"))
    ok(site.update())


def test_a_run_interrupted_half_way_converges(site, rolled_out):
    site.save_master(master_dashboard("After the outage"))
    site.grafana.fail_next("POST", "/api/dashboards/db", 500)
    failed = site.update()
    assert failed.returncode != 0 and "HTTP 500" in failed.output
    assert ok(site.update()).changed_dashboards
    assert ok(site.update()).recap["changed"] == 0
    for company in COMPANIES:
        assert "After the outage" in json.dumps(site.campaign_dashboard(company))


def test_channel_names_from_channels_csv_reach_the_campaign_dashboard(site, rolled_out):
    csv_file = site.data / "acme" / "camp1" / "channels.csv"
    csv_file.write_text(
        "channel_id,name,description\nM02001283_Ch1,Chauffe-eau,ballon 300 l\n"
        'M02001283_Ch2,"Atelier ""nord""",\n',
        encoding="utf-8",
    )
    hook_vars = {"company_name": "acme", "campaign_name": "camp1"}
    run = ok(site.update(names=hook_vars))
    assert run.changed_dashboards == ["powerview_acme_camp1"]
    names = variable(site.campaign_dashboard("acme"), "channel_names")["query"]
    assert names == '["M02001283_Ch1": "Chauffe-eau", "M02001283_Ch2": "Atelier \\"nord\\""]'
    assert "Chauffe-eau" not in json.dumps(site.campaign_dashboard("beta"))
    assert ok(site.update(names=hook_vars)).recap["changed"] == 0

    csv_file.write_text(
        "channel_id,name\nM02001283_Ch1,Chauffe-eau\nM09999999_Ch7,Nowhere\n", encoding="utf-8"
    )
    before = site.grafana.snapshot()
    refused = site.update(names=hook_vars)
    assert refused.returncode != 0
    assert "acme/camp1/channels.csv:3: unknown channel_id 'M09999999_Ch7'" in refused.output
    assert site.grafana.snapshot() == before

    csv_file.write_bytes("channel_id,name\nM02001283_Ch1,Chauffe-eau\xe9\n".encode("latin-1"))
    refused = site.update(names=hook_vars)
    assert refused.returncode != 0 and "channels.csv:2: not UTF-8" in refused.output
    assert site.grafana.snapshot() == before

    csv_file.unlink()
    assert ok(site.update(names=hook_vars)).changed_dashboards == ["powerview_acme_camp1"]
    assert variable(site.campaign_dashboard("acme"), "channel_names")["query"] == "[:]"


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda m: m["panels"][-1].update(datasource={"type": "prometheus", "uid": "p"}),
         "data source of type 'prometheus'"),
        (lambda m: [p.update(datasource={"type": "grafana", "uid": "grafana"}) or
                    [t.pop("datasource") for t in p.get("targets", [])] for p in m["panels"]]
         and m["templating"]["list"].clear(), "reads no InfluxDB data source"),
        (lambda m: m["panels"][-1]["targets"][0].update(query='from(bucket: "demo")'),
         'reads bucket "demo" by name'),
    ],
)  # fmt: skip
def test_an_unusable_master_is_a_clear_error_and_changes_nothing(site, rolled_out, spoil, message):
    master = master_dashboard()
    spoil(master)
    site.save_master(master)
    before = site.grafana.snapshot()
    run = site.update()
    assert run.returncode != 0 and message in run.output, run.output
    assert "Traceback" not in run.output
    assert site.grafana.snapshot() == before
    site.save_master(master_dashboard())


def test_a_missing_master_is_a_clear_error(site, rolled_out):
    before = site.grafana.snapshot()
    run = site.update(GRAFANA_MASTER_DASHBOARD_UID="no-such-master")
    assert (
        run.returncode != 0
        and "master dashboard no-such-master (organization 1) not found" in run.output
    )
    assert site.grafana.snapshot() == before


def test_without_a_master_the_template_is_used(site, rolled_out):
    run = ok(site.run(UPDATE, "-e", "company_name=beta"))
    assert run.changed_dashboards == ["powerview_beta", "powerview_beta_b1"]
    dashboard = site.campaign_dashboard("beta")
    assert "Peak power" not in [panel["title"] for panel in dashboard["panels"]]
    assert copy.deepcopy(dashboard)["timezone"] == "Europe/Paris"
    ok(site.update())


def test_a_campaign_without_its_company_is_refused(site, rolled_out):
    before = site.grafana.snapshot()
    run = site.update(names={"campaign_name": "camp1"})
    assert run.returncode != 0 and "campaign_name needs company_name" in run.output
    assert site.grafana.snapshot() == before
