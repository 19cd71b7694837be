"""The preflight plugin: raw inputs checked, Grafana identifiers derived from them."""

from __future__ import annotations

import re

import pytest

import core.names
import core.settings
from tests.helpers import AUTOMATION, preflight

plugin = preflight()


class Core:
    names = core.names
    settings = core.settings


HOSTILE = [
    "{{ lookup('pipe','id') }}",
    "{% for x in range(3) %}x{% endfor %}",
    "acme;id",
    "acme$(id)",
    "../acme",
    "-acme",
    "acme\nid",
    "a" * 65,
    "",
]


def test_readable_uids_when_they_fit():
    names = plugin.derive_names("acme", "camp1")
    assert names["overview_uid"] == "powerview_acme"
    assert names["campaign_uid"] == "powerview_acme_camp1"
    assert names["datasource_uid"] == "influxdb_acme"
    assert names["datasource_name"] == "influxdb_acme"
    assert names["folder_uid"] == "powerview-folder_acme"
    assert names["org_name"] == names["team_name"] == names["folder_title"] == "acme"


@pytest.mark.parametrize(
    ("company", "campaign"),
    [("A" * 64, "B" * 64), ("acme.fr", "2024.01"), ("x" * 30, "y"), ("acme", "c" * 40)],
)
def test_uids_always_fit_grafana_limits_and_are_stable(company, campaign):
    first = plugin.derive_names(company, campaign)
    assert first == plugin.derive_names(company, campaign)
    for key in ("overview_uid", "campaign_uid", "datasource_uid", "folder_uid"):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", first[key]), (key, first[key])


def test_hashed_and_readable_uids_cannot_collide():
    """A readable uid has '_' after its prefix, a hashed one '-': a campaign name crafted to
    look like a hash cannot take the uid of another campaign."""
    hashed = plugin.grafana_uid("powerview", "acme", "c" * 40)
    assert hashed.startswith("powerview-")
    assert plugin.grafana_uid("powerview", "acme", "c" * 40 + "x") != hashed
    assert plugin.grafana_uid("powerview", "acme", "camp") == "powerview_acme_camp"
    assert plugin.grafana_uid("powerview", "acme.fr") != plugin.grafana_uid("powerview", "acme_fr")


def test_campaign_dashboards_of_one_company_have_distinct_uids():
    uids = {plugin.derive_names("acme", f"campaign-{i}")["campaign_uid"] for i in range(200)}
    assert len(uids) == 200


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_names_are_refused_with_the_reason(raw):
    with pytest.raises(plugin.InputError, match="company_name"):
        plugin.check_input("company_name", raw, Core)


def test_non_string_inputs_are_refused_before_use():
    with pytest.raises(plugin.InputError, match="must be a string"):
        plugin.check_input("company_name", {"nested": "{{ 1 }}"}, Core)
    with pytest.raises(plugin.InputError, match="must be a string"):
        plugin.check_input("campaign_name", 2024, Core)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("user_email", "alice"),
        ("user_email", "{{ x }}@example.com"),
        ("user_role", "Admin"),
        ("grafana_datasource_type", "prometheus"),
        ("grafana_influxdb_url", "influxdb:8086"),
    ],
)
def test_other_inputs_have_their_own_rules(name, raw):
    with pytest.raises(plugin.InputError):
        plugin.check_input(name, raw, Core)


def test_valid_inputs_pass_unchanged():
    assert plugin.check_input("company_name", "Acme-Corp.2024_v2", Core) == "Acme-Corp.2024_v2"
    assert plugin.check_input("user_email", "alice@example.com", Core) == "alice@example.com"
    assert plugin.check_input("grafana_influxdb_url", "http://influxdb:8086/", Core) == (
        "http://influxdb:8086"
    )
    assert plugin.check_input("user_password", "{{ is data }}", Core) == "{{ is data }}"


def test_required_optional_and_defaults():
    values = plugin.read_inputs(
        {"company_name": "acme"}, ["company_name"], ["campaign_name", "user_role"], Core
    )
    assert values == {"company_name": "acme", "campaign_name": "", "user_role": "Viewer"}
    with pytest.raises(plugin.InputError, match="company_name is required"):
        plugin.read_inputs({}, ["company_name"], [], Core)
    with pytest.raises(plugin.InputError, match="unknown input"):
        plugin.read_inputs({}, [], ["company"], Core)


def test_every_input_is_documented_in_the_readme_with_its_default():
    readme = (AUTOMATION / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", readme, flags=re.MULTILINE))
    for name, spec in plugin.INPUTS.items():
        assert name in rows, f"{name} is missing from the README's variable table"
        documented = rows[name].strip().strip("`")
        expected = "(required)" if spec.default is None else (spec.default or '""')
        assert documented == expected, (name, documented, expected)


@pytest.mark.parametrize(
    "options",
    [
        ["company_name=a b"],
        ["company_name=acme", "user_name=jo doe"],
        ["company_name=acme campaign_name=site 1"],
    ],
)
def test_values_cut_by_the_key_value_form_are_refused(options):
    with pytest.raises(plugin.InputError, match="key=value form kept only") as error:
        plugin.check_command_line(options)
    assert repr(options[-1]) in str(error.value)


@pytest.mark.parametrize(
    "options",
    [
        [],
        None,
        ["company_name=acme campaign_name=site-1"],
        ['company_name="a b"'],  # quoted: one value, which the allowlist then refuses
        ['{"company_name": "a b"}'],
        ["@/tmp/vars.json"],
        ["company_name={{ lookup('pipe','id') }}"],
    ],
)
def test_whole_values_pass_the_command_line_check(options):
    plugin.check_command_line(options)
