"""The dashboard template renders into JSON that fits Grafana's dashboard model and the
``electrical`` / ``powerview_ingest`` schemas the parser writes."""

from __future__ import annotations

import json
import re

import pytest
from ansible.module_utils.powerview_dashboards import (
    DATASOURCE_INPUT,
    iter_panels,
    load_template,
    render_dashboard,
    validate_dashboard,
)

from tests.grafana.conftest import AUTOMATION

TEMPLATE_PATH = AUTOMATION / "templates" / "electrical.json"


@pytest.fixture(scope="module")
def template():
    return load_template(str(TEMPLATE_PATH))


def render(template, **overrides):
    options = {
        "uid": "powerview_acme",
        "title": "acme - overview",
        "bucket": "acme",
        "datasource_uid": "influxdb_acme",
        "datasource_type": "influxdb",
    }
    return render_dashboard(template, **{**options, **overrides})


def queries(dashboard):
    found = [t["query"] for p in iter_panels(dashboard["panels"]) for t in p.get("targets", [])]
    found += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return found


def test_the_template_is_an_importable_export(template):
    """Grafana's "import dashboard" screen asks for the inputs an export declares."""
    assert template["__inputs"] == [
        {
            **template["__inputs"][0],
            "name": "DS_POWERVIEW",
            "type": "datasource",
            "pluginId": "influxdb",
        }
    ]
    assert DATASOURCE_INPUT in json.dumps(template)


def test_rendered_overview_is_valid(template):
    dashboard = render(template)
    assert validate_dashboard(dashboard) == []
    assert dashboard["uid"] == "powerview_acme" and dashboard["id"] is None
    assert isinstance(dashboard["schemaVersion"], int)
    assert "__inputs" not in dashboard and "__requires" not in dashboard


def test_rendered_campaign_dashboard_is_valid(template):
    dashboard = render(template, uid="powerview_acme_camp1", campaign="camp1")
    assert validate_dashboard(dashboard) == []
    campaign = {v["name"]: v for v in dashboard["templating"]["list"]}["campaign"]
    assert (campaign["type"], campaign["query"], campaign["hide"]) == ("constant", "camp1", 2)


def test_panel_ids_are_unique_and_every_datasource_is_a_uid_reference(template):
    dashboard = render(template, datasource_type="influxdb-adecwatts-datasource")
    panels = iter_panels(dashboard["panels"])
    assert len({p["id"] for p in panels}) == len(panels)
    references = [p["datasource"] for p in panels] + [
        t["datasource"] for p in panels for t in p["targets"]
    ]
    assert all(
        r == {"type": "influxdb-adecwatts-datasource", "uid": "influxdb_acme"} for r in references
    )


def test_the_panels_an_auditor_needs_are_there(template):
    titles = {p["title"] for p in iter_panels(template["panels"])}
    assert titles == {
        "Voltage per phase",
        "Power per channel",
        "Energy per channel over the range",
        "Daily energy",
        "Statistics per channel",
        "Last upload per device",
    }


def test_variables_campaign_master_and_channels_come_from_tag_values(template):
    variables = {v["name"]: v for v in template["templating"]["list"]}
    assert variables["bucket"]["type"] == "constant"
    for name, tag in (
        ("campaign", "campaign"),
        ("master", "device_master_sn"),
        ("channel", "channel_id"),
    ):
        assert variables[name]["type"] == "query"
        assert f'tag: "{tag}"' in variables[name]["query"]
    assert variables["channel"]["multi"] and variables["channel"]["includeAll"]


def test_every_query_reads_the_company_bucket_and_a_known_measurement(template):
    for query in queries(render(template)):
        assert 'bucket: "${bucket}"' in query
        measurements = set(re.findall(r'_measurement == "(\w+)"', query))
        assert measurements and measurements <= {"electrical", "powerview_ingest"}


def test_queries_use_only_tags_and_fields_of_the_data_contract(template):
    electrical_tags = {
        "campaign", "channel_id", "channel_label", "channel_name", "channel_unit", "device",
        "device_type", "device_subtype", "device_master_sn", "device_sn",
    }  # fmt: skip
    ingest_columns = {
        "campaign", "device_master_sn", "device_folder", "status", "points_written", "rows",
        "file", "first_ts", "last_ts",
    }  # fmt: skip
    computed = {"step", "elapsed", "seconds", "interval"}  # columns the energy query adds
    for query in queries(template):
        used = set(re.findall(r"\br\.(\w+)", query)) - {"_measurement", "_value", "_time", "_field"}
        used -= computed
        allowed = ingest_columns if "powerview_ingest" in query else electrical_tags
        assert used <= allowed, (used - allowed, query)


def test_energy_never_bridges_a_gap_and_days_are_local(template):
    """Both energy panels share one per-pair computation (see tests/test_energy.py for its
    numbers); the daily one windows it by local day of the dashboard's time zone."""
    panels = {p["title"]: p for p in template["panels"]}
    range_query = panels["Energy per channel over the range"]["targets"][0]["query"]
    daily_query = panels["Daily energy"]["targets"][0]["query"]
    assert "integral(" not in range_query + daily_query
    shared = range_query.split("energy\n  |> sum()")[0].split("pairs = ")[1]
    assert shared and shared in daily_query
    assert 'if r.seconds <= 3.0 * r.interval then' in shared
    assert 'location: timezone.location(name: "${timezone}")' in daily_query
    assert 'timeSrc: "_start"' in daily_query
    for title in ("Energy per channel over the range", "Daily energy"):
        assert panels[title]["fieldConfig"]["defaults"]["unit"] == "kwatth"


def test_time_zone_and_channel_names_are_set_per_dashboard(template):
    dashboard = render(
        template, campaign="camp1", timezone="America/New_York",
        channel_names={"M1_Ch1": 'Chauffe-eau "A" ${x}'},
    )  # fmt: skip
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert dashboard["timezone"] == "America/New_York"
    assert variables["timezone"]["query"] == "America/New_York"
    assert variables["channel_names"]["query"] == '["M1_Ch1": "Chauffe-eau \\"A\\" \\${x}"]'
    assert variables["channel_names"]["hide"] == 2
    assert render(template)["templating"]["list"][2]["query"] == "[:]"


def test_statistics_table_has_last_min_max_and_mean(template):
    panel = {p["title"]: p for p in template["panels"]}["Statistics per channel"]
    query = panel["targets"][0]["query"]
    for stat in ("last", "min", "max", "mean"):
        assert f'{stat}() |> set(key: "stat", value: "{stat}")' in query
    assert panel["type"] == "table"


def test_validation_reports_what_grafana_would_reject(template):
    dashboard = render(template)
    dashboard["panels"][1]["id"] = dashboard["panels"][0]["id"]
    dashboard["panels"][2]["datasource"] = "influxdb_acme"
    dashboard["panels"][3]["targets"][0]["refId"] = ""
    dashboard["schemaVersion"] = None
    dashboard["uid"] = "x" * 41
    problems = "\n".join(validate_dashboard(dashboard))
    assert "not unique" in problems
    assert "must be referenced as {type, uid}" in problems
    assert "refIds" in problems
    assert "schemaVersion" in problems
    assert "1-40 characters" in problems


def test_an_unresolved_input_is_reported(template):
    dashboard = render(template)
    dashboard["panels"][0]["datasource"] = {"type": "influxdb", "uid": DATASOURCE_INPUT}
    assert any("unresolved" in problem for problem in validate_dashboard(dashboard))


def test_rendering_gives_ids_to_panels_without_one(template):
    copy = json.loads(json.dumps(template))
    for panel in copy["panels"]:
        panel.pop("id")
    dashboard = render(copy)
    assert sorted(p["id"] for p in dashboard["panels"]) == list(range(1, len(copy["panels"]) + 1))
