"""The installation check behind ``tsv_parser.py --check``: can PowerView work here, now?

An upload hook that fails at three in the morning leaves only a line in a log. This check
answers the questions an operator would otherwise ask one by one, right after installing or
changing a setting: are the settings complete, does InfluxDB answer, does it accept the token
and know the organization, may that token create the meta bucket and write into it, does
Grafana answer, and is the configured login a Grafana server admin (the playbooks create
organizations, which only a server admin may do)?

Each check prints one line (``ok``, ``FAIL`` or ``skip`` and why). A check that cannot run
because an earlier one failed is skipped rather than failed, so the first ``FAIL`` is the
thing to fix. The exit code follows ``tsv_parser.py``: 0 everything is fine, 2 a setting is
missing or malformed, 4 a server refused the credentials or the organization, 3 a server is
unreachable or unhealthy. When several kinds fail, the first in that order wins.

The InfluxDB write check writes one ``powerview_health`` point into the meta bucket
(``TSV_META_BUCKET``, created when missing, as the parser would): the only way to prove a
token may write is to write.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import requests

from core.influx_admin import CONFIGURATION, TEMPORARY
from core.influx_writer import DATA, InfluxWriter, WriteError
from core.lineprotocol import format_point
from core.outcomes import ExitCode
from core.settings import VARIABLES, Settings, SettingsError, load_environment, load_settings

OK = "ok"
FAIL = "FAIL"
SKIP = "skip"

# Why a check failed, in the order in which the exit code picks them.
SETTINGS = "settings"
REFUSED = "refused"
UNREACHABLE = "unreachable"
_EXIT_CODES = {
    SETTINGS: ExitCode.USAGE,
    REFUSED: ExitCode.CONFIGURATION,
    UNREACHABLE: ExitCode.TEMPORARY,
}

HEALTH_MEASUREMENT = "powerview_health"
GRAFANA_TIMEOUT_S = 10.0
REQUIRED_GROUPS = ("influxdb", "grafana")


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: what was checked, the outcome, and what to do about it."""

    name: str
    outcome: str
    detail: str
    failure: str | None = None  # SETTINGS, REFUSED or UNREACHABLE when outcome is FAIL


class _Report:
    """Collects results and prints each one as soon as it is known (a slow server shows)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.results: list[CheckResult] = []

    def add(self, name: str, outcome: str, detail: str, failure: str | None = None) -> bool:
        result = CheckResult(name, outcome, detail, failure)
        self.results.append(result)
        print(f"  {outcome:<5} {name}: {detail}", file=self.out, flush=True)
        return outcome == OK

    def exit_code(self) -> int:
        failures = {result.failure for result in self.results if result.outcome == FAIL}
        for kind in (SETTINGS, REFUSED, UNREACHABLE):
            if kind in failures:
                return _EXIT_CODES[kind]
        return ExitCode.OK


def missing_settings(settings: Settings, groups: tuple[str, ...] = REQUIRED_GROUPS) -> list[str]:
    """Names of the variables of ``groups`` that have no value and no default."""
    missing = []
    for variable in VARIABLES:
        optional = variable.default is not None or variable.name == "INFLUXDB_URL"
        if variable.group not in groups or optional:
            continue
        if variable.name == "INFLUXDB_HOST":
            if not settings.influxdb_url:
                missing.append("INFLUXDB_HOST")
            continue
        if settings[variable.name] in (None, ""):
            missing.append(variable.name)
    return missing


def _influx_failure(error: WriteError) -> str:
    if error.kind == TEMPORARY:
        return UNREACHABLE
    return REFUSED if error.kind in (CONFIGURATION, DATA) else UNREACHABLE


def check_influxdb(settings: Settings, report: _Report) -> None:
    """Health endpoint, then the organization with the token, then a write to the meta bucket."""
    url = settings.influxdb_url
    timeout_s = settings["INFLUXDB_TIMEOUT_S"] or None
    name = f"InfluxDB {url}"
    try:
        response = requests.get(f"{url}/health", timeout=timeout_s)
        body = response.json() if response.content else {}
    except requests.RequestException as error:
        report.add(name, FAIL, f"cannot connect ({_short(error)})", UNREACHABLE)
        return
    except ValueError:
        body = {}
    if response.status_code != 200 or body.get("status") != "pass":
        detail = body.get("message") or response.reason
        report.add(name, FAIL, f"unhealthy: HTTP {response.status_code} {detail}", UNREACHABLE)
        return
    report.add(name, OK, f"healthy (version {body.get('version', 'unknown')})")

    # No retries: a check must answer quickly, and the parser retries on its own.
    writer = InfluxWriter(Settings({**settings.values, "INFLUXDB_MAX_RETRIES": 0}))
    try:
        org = settings["INFLUXDB_ORG"]
        try:
            writer.check()
        except WriteError as error:
            report.add(f"InfluxDB organization {org!r}", FAIL, str(error), _influx_failure(error))
            return
        report.add(f"InfluxDB organization {org!r}", OK, "found with INFLUXDB_ADMIN_TOKEN")
        bucket = settings["TSV_META_BUCKET"]
        try:
            writer.ensure_bucket(bucket)
            record = format_point(
                HEALTH_MEASUREMENT, {"check": "tsv_parser"}, {"ok": 1}, time.time_ns()
            )
            writer.write_now(bucket, record, precision="ns")
        except WriteError as error:
            report.add(f"InfluxDB bucket {bucket!r}", FAIL, str(error), _influx_failure(error))
            return
        report.add(f"InfluxDB bucket {bucket!r}", OK, "exists, and the token may write to it")
    finally:
        writer.close()


def check_grafana(settings: Settings, report: _Report) -> None:
    """Health endpoint, then the admin login (basic auth), then the optional API token."""
    url = settings["GRAFANA_URL"]
    name = f"Grafana {url}"
    try:
        response = requests.get(f"{url}/api/health", timeout=GRAFANA_TIMEOUT_S)
    except requests.RequestException as error:
        report.add(name, FAIL, f"cannot connect ({_short(error)})", UNREACHABLE)
        return
    body = _json(response)
    if response.status_code != 200 or body.get("database") != "ok":
        report.add(
            name,
            FAIL,
            f"unhealthy: HTTP {response.status_code}, database {body.get('database', '?')}",
            UNREACHABLE,
        )
        return
    report.add(name, OK, f"healthy (version {body.get('version', 'hidden')})")

    login = settings["GRAFANA_USERNAME"]
    check = f"Grafana login {login!r}"
    try:
        response = requests.get(
            f"{url}/api/user",
            auth=(login, settings["GRAFANA_PASSWORD"]),
            timeout=GRAFANA_TIMEOUT_S,
        )
    except requests.RequestException as error:
        report.add(check, FAIL, f"cannot connect ({_short(error)})", UNREACHABLE)
        return
    if response.status_code in (401, 403):
        report.add(
            check,
            FAIL,
            f"refused (HTTP {response.status_code}): check GRAFANA_USERNAME and GRAFANA_PASSWORD",
            REFUSED,
        )
        return
    if response.status_code != 200:
        report.add(check, FAIL, f"unexpected answer HTTP {response.status_code}", UNREACHABLE)
        return
    if not _json(response).get("isGrafanaAdmin"):
        report.add(
            check,
            FAIL,
            "accepted, but not a Grafana server admin: the playbooks cannot create organizations",
            REFUSED,
        )
        return
    report.add(check, OK, "accepted, Grafana server admin")

    token = settings["GRAFANA_API_TOKEN"]
    if not token:
        return
    try:
        response = requests.get(
            f"{url}/api/org",
            headers={"Authorization": f"Bearer {token}"},
            timeout=GRAFANA_TIMEOUT_S,
        )
    except requests.RequestException as error:
        report.add("Grafana API token", FAIL, f"cannot connect ({_short(error)})", UNREACHABLE)
        return
    if response.status_code != 200:
        report.add(
            "Grafana API token",
            FAIL,
            f"refused (HTTP {response.status_code}): check GRAFANA_API_TOKEN or leave it empty",
            REFUSED,
        )
        return
    report.add("Grafana API token", OK, f"accepted in organization {_json(response).get('name')!r}")


def run_health_check(settings: Settings, out: TextIO) -> int:
    """Check settings, InfluxDB and Grafana; print one line per check to ``out``.

    Returns 0 only when every check passed; otherwise the exit code described in the module
    docstring. ``settings`` may come from ``load_settings()`` without ``require``: missing
    values are reported here as failed checks instead of stopping everything.
    """
    report = _Report(out)
    print("PowerView health check", file=out)
    missing = missing_settings(settings)
    if missing:
        report.add("settings", FAIL, "not set: " + ", ".join(missing), SETTINGS)
    else:
        report.add("settings", OK, "every required variable is set and well-formed")
    influx_missing = missing_settings(settings, ("influxdb",))
    grafana_missing = missing_settings(settings, ("grafana",))
    if influx_missing:
        report.add("InfluxDB", SKIP, "settings missing")
    else:
        check_influxdb(settings, report)
    if grafana_missing:
        report.add("Grafana", SKIP, "settings missing")
    else:
        check_grafana(settings, report)
    code = report.exit_code()
    failed = sum(result.outcome == FAIL for result in report.results)
    verdict = "all good" if code == ExitCode.OK else f"{failed} check(s) failed"
    print(f"result: {verdict} (exit code {code})", file=out)
    return code


def check_from_environment(out: TextIO, environ: Mapping[str, str] | None = None) -> int:
    """Load the settings as the parser does, then ``run_health_check``.

    A malformed value (``INFLUXDB_HOST=localhost``, say) makes the whole settings load fail;
    it is reported as a failed check, with the other problems, and nothing is contacted.
    """
    env = load_environment() if environ is None else dict(environ)
    try:
        settings = load_settings(env)
    except SettingsError as error:
        print("PowerView health check", file=out)
        report = _Report(out)
        for problem in error.problems:
            report.add("settings", FAIL, problem, SETTINGS)
        report.add("InfluxDB", SKIP, "settings malformed")
        report.add("Grafana", SKIP, "settings malformed")
        print(f"result: settings malformed (exit code {ExitCode.USAGE:d})", file=out)
        return ExitCode.USAGE
    return run_health_check(settings, out)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _short(error: BaseException) -> str:
    """The last, most specific part of a connection error (``Connection refused``...)."""
    text = str(error)
    for marker in ("] ", "): "):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    return text.strip(" ')\"") or error.__class__.__name__
