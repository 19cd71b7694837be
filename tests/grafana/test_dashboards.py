"""The dashboard template renders into JSON that fits Grafana's dashboard model and the
``electrical`` / ``powerview_ingest`` schemas the parser writes."""

from __future__ import annotations

import json
import re

import pytest
from ansible.module_utils.powerview_dashboards import (
    DATASOURCE_INPUT,
    MasterError,
    all_queries,
    datasource_references,
    flux_dict,
    iter_panels,
    load_template,
    parse_channel_names,
    render_dashboard,
    template_from_master,
    validate_dashboard,
)

from tests.helpers import AUTOMATION

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
    assert "if r.seconds <= 3.0 * r.interval then" in shared
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


# ---- a master designed in Grafana


def grafana_saved(template, uid="demo-ds", kind="influxdb"):
    """The template as Grafana stores it once imported with a data source of the main org."""
    saved = json.loads(json.dumps(template).replace(DATASOURCE_INPUT, uid))
    for key in ("__inputs", "__requires"):
        saved.pop(key)
    saved.update(id=7, uid="master", version=12)
    if kind != "influxdb":
        saved["panels"][0]["datasource"]["type"] = kind
    return saved


def test_a_master_becomes_the_template_form(template):
    master = grafana_saved(template)
    master["templating"]["list"][3]["current"] = {"text": "demo", "value": "demo"}
    master["panels"][0]["datasource"] = None  # "default data source" in Grafana's UI
    converted = template_from_master(master, "master")
    rendered = render(converted, campaign="camp1")
    assert validate_dashboard(rendered) == []
    for where, reference in datasource_references(rendered):
        if reference.get("uid") not in ("-- Grafana --",):
            assert reference == {"type": "influxdb", "uid": "influxdb_acme"}, where
    campaign = {v["name"]: v for v in converted["templating"]["list"]}["campaign"]
    assert campaign["current"] == {} and campaign["options"] == []
    assert "id" not in converted and "version" not in converted
    assert all_queries(converted) == all_queries(template)


def test_an_exported_master_with_inputs_is_accepted(template):
    exported = json.loads(json.dumps(template).replace("DS_POWERVIEW", "DS_INFLUXDB"))
    converted = template_from_master(exported, "export")
    assert "${DS_INFLUXDB}" not in json.dumps(converted)
    assert validate_dashboard(render(converted)) == []


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda m: m["panels"][0]["datasource"].update(type="prometheus"), "of type 'prometheus'"),
        (lambda m: m["panels"][0].update(datasource="InfluxDB"), "referenced by name"),
        (lambda m: m["panels"][0].update(libraryPanel={"uid": "x"}), "library panel"),
        (lambda m: m["templating"]["list"].append({"type": "datasource", "name": "ds"}),
         "data source variable"),
        (lambda m: m["panels"][0]["datasource"].update(uid="${ds}"), "variable ${ds}"),
        (lambda m: m["templating"]["list"].pop(0), "lacks the variable(s) bucket"),
        (lambda m: m["panels"][1]["targets"][0].update(query='from(bucket: "demo")'),
         'reads bucket "demo" by name'),
        (lambda m: m.pop("panels"), "is not a dashboard"),
    ],
)  # fmt: skip
def test_an_unusable_master_is_refused_with_the_reason(template, spoil, message):
    master = grafana_saved(template)
    spoil(master)
    with pytest.raises(MasterError, match=re.escape(message)):
        template_from_master(master, "master")


def test_a_master_without_any_influxdb_reference_is_refused(template):
    master = {"title": "t", "panels": [{"id": 1, "type": "text", "gridPos": {}}]}
    with pytest.raises(MasterError, match="reads no InfluxDB data source"):
        template_from_master(master, "master")


# ---- channels.csv


KNOWN = {"M02001283_Ch1", "M02001283_Ch2", "M02001283_U1"}


def test_channels_csv_gives_names_and_ignores_the_description():
    raw = (
        "\ufeffchannel_id,name,description\r\nM02001283_Ch1,Chauffe-eau,300 l\r\n\r\n"
        'M02001283_U1," Phase 1 ",\r\n'
    ).encode()
    assert parse_channel_names(raw, "c.csv", KNOWN) == (
        {"M02001283_Ch1": "Chauffe-eau", "M02001283_U1": "Phase 1"},
        [],
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("channel_id;name\nM02001283_Ch1;x\n", "c.csv:1: header must be channel_id,name"),
        ("id,name\n", "c.csv:1: header must be"),
        ("channel_id,name,colour\n", "c.csv:1: header must be"),
        ("channel_id,name\nM02001283_Ch1,a\nM9_Ch1,b\n", "c.csv:3: unknown channel_id 'M9_Ch1'"),
        ("channel_id,name\nM02001283_Ch1,a\nM02001283_Ch1,b\n", "c.csv:3: channel_id "
         "M02001283_Ch1 is already named on line 2"),
        ("channel_id,name\nM02001283_Ch1\n", "c.csv:2: 1 columns, the header has 2"),
        ("channel_id,name\nM02001283_Ch1,\n", "c.csv:2: name is empty"),
        ("channel_id,name\nM02001283_Ch1," + "x" * 65 + "\n", "c.csv:2: name must be 1 to 64"),
    ],
)  # fmt: skip
def test_a_bad_channels_csv_names_the_line_and_gives_no_name(text, problem):
    names, problems = parse_channel_names(text.encode(), "c.csv", KNOWN)
    assert names == {}
    assert any(p.startswith(problem) for p in problems), problems


def test_a_channels_csv_that_is_not_utf8_names_the_line():
    raw = "channel_id,name\nM02001283_Ch1,Chauffe-eau\nM02001283_Ch2,Séchoir\n".encode("cp1252")
    assert parse_channel_names(raw, "c.csv", KNOWN) == (
        {},
        ["c.csv:3: not UTF-8 (byte 0xe9): save it as UTF-8"],
    )


def test_flux_literals_escape_what_flux_would_interpret():
    assert flux_dict({}) == "[:]"
    assert flux_dict({"b": 'say "hi"', "a": "C:\\ ${x}"}) == (
        '["a": "C:\\\\ \\${x}", "b": "say \\"hi\\""]'
    )
