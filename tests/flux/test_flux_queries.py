"""Every Flux query of every dashboard PowerView ships or generates passes InfluxData's own Flux
parser and semantic (type) check, run by ``check_flux.mjs`` with the WebAssembly build of
flux-lsp (``@influxdata/flux-lsp-browser``, pinned in ``package.json``; ``make test`` installs
it with ``npm ci --prefix tests/flux``).

What the package exposes, and so what the check covers (read in its
``flux-lsp-browser.d.ts``): ``parse`` (the syntax errors, with their messages),
``Flux.is_valid()`` (the semantic analysis, true or false only) and ``Lsp``, the language
server, whose diagnostics give the semantic errors with messages and positions. The semantic
analysis knows the standard library (``timezone``, ``join``, ``dict``...): it catches unknown
identifiers and functions, missing imports, unknown or missing arguments, argument and
operator types. It does not know the data: a record's columns and their types are inferred
from use (``r._value + "a"`` passes), and bucket or tag names are strings like any other.
Grafana's variables are replaced by sample values first, as Grafana does before sending a
query.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess

import pytest

from tests.helpers import AUTOMATION, PROJECT_ROOT  # also makes module_utils importable

dashboards = importlib.import_module("ansible.module_utils.powerview_dashboards")
all_queries = dashboards.all_queries
load_template = dashboards.load_template
render_dashboard = dashboards.render_dashboard
template_from_master = dashboards.template_from_master

FLUX_DIR = PROJECT_ROOT / "tests" / "flux"
CHECKER = FLUX_DIR / "check_flux.mjs"
PACKAGE = FLUX_DIR / "node_modules" / "@influxdata" / "flux-lsp-browser"
TEMPLATES = sorted((AUTOMATION / "templates").glob("*.json"))

# What Grafana puts in place of its variables, and of the v record it passes to Flux.
SAMPLE_VARIABLES = {
    "bucket": "acme",
    "campaign": "camp1",
    "master": "02001283",
    "channel:regex": "(M02001283_Ch1|M02001283_S02001400_Ch2)",
    "timezone": "Europe/Paris",
}
SAMPLE_V = {
    "v.timeRangeStart": "2026-03-01T00:00:00Z",
    "v.timeRangeStop": "2026-04-01T00:00:00Z",
    "v.windowPeriod": "10m",
}
VARIABLE = re.compile(r"\$\{([A-Za-z0-9_:]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def grafana_interpolate(query: str, dashboard: dict) -> str:
    """The query as Grafana sends it: its dashboard's constants, else sample values."""
    constants = {
        variable["name"]: variable["query"]
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable.get("type") == "constant"
    }
    values = {**SAMPLE_VARIABLES, **constants}

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise AssertionError(f"no sample value for Grafana variable {name!r} in {query!r}")
        return values[name]

    text = VARIABLE.sub(value, query)
    for name, sample in SAMPLE_V.items():
        text = text.replace(name, sample)
    return text


def check(queries: list[tuple[str, str]]) -> list[dict]:
    node = shutil.which("node")
    if node is None or not PACKAGE.is_dir():
        pytest.fail("node or the Flux checker is missing: run npm ci --prefix tests/flux")
    payload = json.dumps([{"name": name, "query": query} for name, query in queries])
    completed = subprocess.run(
        [node, str(CHECKER)],
        check=False,
        input=payload,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode in (0, 1), completed.stderr
    return [json.loads(line) for line in completed.stdout.splitlines()]


def generated_dashboards() -> list[tuple[str, dict]]:
    """Every template as shipped, and what rendering makes of it: an overview, a campaign
    dashboard with channel names that need escaping, and the template brought back from a
    master (its round trip through template_from_master)."""
    found = []
    for path in TEMPLATES:
        template = load_template(str(path))
        common = {
            "bucket": "acme",
            "datasource_uid": "influxdb_acme",
            "datasource_type": "influxdb",
        }
        overview = render_dashboard(template, uid="powerview_acme", title="o", **common)
        campaign = render_dashboard(
            template, uid="powerview_acme_camp1", title="c", campaign="camp1",
            timezone="America/New_York",
            channel_names={"M02001283_Ch1": 'Chauffe-eau "nord" ${x} \\ é'},
            **common,
        )  # fmt: skip
        from_master = render_dashboard(
            template_from_master(json.loads(json.dumps(overview)), "master"),
            uid="powerview_beta", title="b", bucket="beta", datasource_uid="influxdb_beta",
            datasource_type="influxdb",
        )  # fmt: skip
        found += [
            (f"{path.name}", template),
            (f"{path.name} overview", overview),
            (f"{path.name} campaign", campaign),
            (f"{path.name} from a master", from_master),
        ]
    return found


def test_every_dashboard_query_passes_the_flux_compiler():
    queries = [
        (f"{name} #{index}", grafana_interpolate(query, dashboard))
        for name, dashboard in generated_dashboards()
        for index, query in enumerate(all_queries(dashboard))
    ]
    assert len(queries) >= 4 * 8  # every panel and query variable of each form
    results = check(queries)
    assert len(results) == len(queries)
    failed = [(r["name"], r["errors"]) for r in results if not (r["parses"] and r["valid"])]
    assert failed == []


@pytest.mark.parametrize(
    ("query", "parses", "message"),
    [
        ('from(bucket: "acme") |> range(start: -1h', False, "expected RPAREN, got EOF"),
        ('from(bucket: "acme") |> rnge(start: -1h)', True, "undefined identifier rnge"),
        ('from(bucket: "acme") |> range(start: -1h) |> integral(unit: "1h")', True,
         "expected duration but found string (argument unit)"),
        ('from(bucket: "acme") |> range(start: -1h)\n  |> aggregateWindow(every: 1d, fn: sum, '
         'location: timezone.location(name: "Europe/Paris"))', True,
         "undefined identifier timezone"),
        ('names = [:]\nfrom(bucket: "acme") |> range(start: -1h)\n  |> map(fn: (r) => ({r with '
         "n: dict.get(dict: names, key: r.channel_id, default: 0)}))", True,
         "undefined identifier dict"),
    ],
)  # fmt: skip
def test_a_wrong_query_fails_the_check(query, parses, message):
    [result] = check([("wrong", query)])
    assert result["parses"] is parses
    assert result["valid"] is False
    assert any(message in error for error in result["errors"]), result["errors"]


def test_the_checker_accepts_the_constructs_the_dashboards_rely_on():
    """Guards the test above against a checker that refuses everything."""
    [result] = check(
        [
            (
                "right",
                'import "timezone"\nfrom(bucket: "acme") |> range(start: -1h)\n'
                "  |> aggregateWindow(every: 1d, fn: sum, "
                'location: timezone.location(name: "Europe/Paris"), timeSrc: "_start")',
            )
        ]
    )
    assert result == {"name": "right", "parses": True, "valid": True, "errors": []}
