"""The installation check behind ``tsv_parser.py --check``: can PowerView work here, now?

An upload hook that fails at three in the morning leaves only a line in a log. This check
answers the questions an operator would otherwise ask one by one, right after installing or
changing a setting: are the settings complete, does InfluxDB answer, does it accept the token
and know the organization, may that token create the meta bucket and write into it, does
Grafana answer, and is the configured login a Grafana server admin (the playbooks create
organizations, which only a server admin may do)?

Each check prints one line (``ok``, ``FAIL`` or ``skip`` and why). A check that cannot run
because an earlier one failed is skipped rather than failed, so the first ``FAIL`` is the
thing to fix. The exit code is ``tsv_parser.py``'s (``core/outcomes.py``): 0 everything is
fine, 2 a setting is missing or malformed, 4 a server refused the credentials or the
organization, 3 a server is unreachable or unhealthy; when several kinds fail, the first in
that order wins, and an unexpected error is 5 (``tsv_parser.py`` catches it).

Each server is reached through its one client: InfluxDB through the writer's clients
(``core/influx_client.py``), Grafana through ``core/grafana_client.py``, the playbooks'
client; each component gets only its settings section.

The InfluxDB write check writes one ``powerview_health`` point into the meta bucket
(``TSV_META_BUCKET``, created when missing, as the parser would): the only way to prove a
token may write is to write.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TextIO

from core.grafana_client import GrafanaClient, GrafanaError
from core.influx_client import CLIENT_ERRORS, server_health, server_message, status_of
from core.influx_writer import InfluxWriter, WriteError
from core.lineprotocol import format_point
from core.outcomes import ErrorKind, ExitCode, exit_code_for
from core.settings import (
    GrafanaSettings,
    InfluxSettings,
    Settings,
    SettingsError,
    load_environment,
    load_settings,
)

OK = "ok"
FAIL = "FAIL"
SKIP = "skip"

HEALTH_MEASUREMENT = "powerview_health"
GRAFANA_TIMEOUT_S = 10.0
REQUIRED_GROUPS = ("influxdb", "grafana")


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: what was checked, the outcome, and what to do about it."""

    name: str
    outcome: str
    detail: str
    failure: ErrorKind | None = None  # USAGE, CONFIGURATION or TEMPORARY when outcome is FAIL


class _Report:
    """Collects results and prints each one as soon as it is known (a slow server shows)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.results: list[CheckResult] = []

    def add(self, name: str, outcome: str, detail: str, failure: ErrorKind | None = None) -> bool:
        result = CheckResult(name, outcome, detail, failure)
        self.results.append(result)
        print(f"  {outcome:<5} {name}: {detail}", file=self.out, flush=True)
        return outcome == OK

    def exit_code(self) -> ExitCode:
        return exit_code_for(result.failure for result in self.results if result.outcome == FAIL)


def _influx_failure(error: WriteError) -> ErrorKind:
    """A write's failure as the check counts it: anything but an outage is a refusal."""
    return ErrorKind.TEMPORARY if error.kind == ErrorKind.TEMPORARY else ErrorKind.CONFIGURATION


def check_influxdb(settings: InfluxSettings, report: _Report) -> None:
    """Health endpoint, then the organization with the token, then a write to the meta bucket.

    One writer, without retries (a check must answer quickly, and the parser retries on its
    own): its admin client reads the health, then it checks and writes as the parser would.
    """
    name = f"InfluxDB {settings.url}"
    writer = InfluxWriter(replace(settings, max_retries=0))
    try:
        try:
            health = server_health(writer.admin)
        except CLIENT_ERRORS as error:
            status = status_of(error)
            if status is None:
                report.add(name, FAIL, f"cannot connect ({_short(error)})", ErrorKind.TEMPORARY)
            else:
                reason = server_message(error) if getattr(error, "body", None) else ""
                detail = f"unhealthy: HTTP {status} {reason or getattr(error, 'reason', '')}"
                report.add(name, FAIL, detail, ErrorKind.TEMPORARY)
            return
        if health.status != "pass":
            detail = f"unhealthy: HTTP 200 {health.message}"
            report.add(name, FAIL, detail, ErrorKind.TEMPORARY)
            return
        report.add(name, OK, f"healthy (version {health.version or 'unknown'})")

        org = settings.org
        try:
            writer.check()
        except WriteError as error:
            report.add(f"InfluxDB organization {org!r}", FAIL, str(error), _influx_failure(error))
            return
        report.add(f"InfluxDB organization {org!r}", OK, "found with INFLUXDB_ADMIN_TOKEN")
        bucket = settings.meta_bucket
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


def check_grafana(settings: GrafanaSettings, report: _Report) -> None:
    """Health endpoint, then the admin login (basic auth), then the optional API token."""
    client = GrafanaClient.from_settings(settings, timeout=GRAFANA_TIMEOUT_S)
    name = f"Grafana {client.url}"
    try:
        status, body = client.call("GET", "/api/health")
    except GrafanaError as error:
        if error.status is None:
            report.add(name, FAIL, f"cannot connect ({_cause(error)})", ErrorKind.TEMPORARY)
        else:
            database = _field(error.body, "database", "?")
            detail = f"unhealthy: HTTP {error.status}, database {database}"
            report.add(name, FAIL, detail, ErrorKind.TEMPORARY)
        return
    if status != 200 or _field(body, "database", "?") != "ok":
        detail = f"unhealthy: HTTP {status}, database {_field(body, 'database', '?')}"
        report.add(name, FAIL, detail, ErrorKind.TEMPORARY)
        return
    report.add(name, OK, f"healthy (version {_field(body, 'version', 'hidden')})")

    check = f"Grafana login {settings.username!r}"
    try:
        status, me = client.call("GET", "/api/user", accept=(401, 403))
    except GrafanaError as error:
        if error.status is None:
            report.add(check, FAIL, f"cannot connect ({_cause(error)})", ErrorKind.TEMPORARY)
        else:
            detail = f"unexpected answer HTTP {error.status}"
            report.add(check, FAIL, detail, ErrorKind.TEMPORARY)
        return
    if status in (401, 403):
        report.add(
            check,
            FAIL,
            f"refused (HTTP {status}): check GRAFANA_USERNAME and GRAFANA_PASSWORD",
            ErrorKind.CONFIGURATION,
        )
        return
    if status != 200:
        report.add(check, FAIL, f"unexpected answer HTTP {status}", ErrorKind.TEMPORARY)
        return
    if not _field(me, "isGrafanaAdmin", False):
        report.add(
            check,
            FAIL,
            "accepted, but not a Grafana server admin: the playbooks cannot create organizations",
            ErrorKind.CONFIGURATION,
        )
        return
    report.add(check, OK, "accepted, Grafana server admin")

    if not settings.api_token:
        return
    try:
        status, org = client.with_token(settings.api_token).call("GET", "/api/org")
    except GrafanaError as error:
        if error.status is None:
            detail, kind = f"cannot connect ({_cause(error)})", ErrorKind.TEMPORARY
        else:
            detail = f"refused (HTTP {error.status}): check GRAFANA_API_TOKEN or leave it empty"
            kind = ErrorKind.CONFIGURATION
        report.add("Grafana API token", FAIL, detail, kind)
        return
    if status != 200:
        detail = f"refused (HTTP {status}): check GRAFANA_API_TOKEN or leave it empty"
        report.add("Grafana API token", FAIL, detail, ErrorKind.CONFIGURATION)
        return
    report.add("Grafana API token", OK, f"accepted in organization {_field(org, 'name', None)!r}")


def run_health_check(settings: Settings, out: TextIO) -> ExitCode:
    """Check settings, InfluxDB and Grafana; print one line per check to ``out``.

    Returns 0 only when every check passed; otherwise the exit code described in the module
    docstring. ``settings`` may come from ``load_settings()`` without ``require``: missing
    values are reported here as failed checks instead of stopping everything.
    """
    report = _Report(out)
    print("PowerView health check", file=out)
    missing = settings.missing_in(*REQUIRED_GROUPS)
    if missing:
        report.add("settings", FAIL, "not set: " + ", ".join(missing), ErrorKind.USAGE)
    else:
        report.add("settings", OK, "every required variable is set and well-formed")
    if settings.missing_in("influxdb"):
        report.add("InfluxDB", SKIP, "settings missing")
    else:
        check_influxdb(settings.influx, report)
    if settings.missing_in("grafana"):
        report.add("Grafana", SKIP, "settings missing")
    else:
        check_grafana(settings.grafana, report)
    code = report.exit_code()
    failed = sum(result.outcome == FAIL for result in report.results)
    verdict = "all good" if code == ExitCode.OK else f"{failed} check(s) failed"
    print(f"result: {verdict} (exit code {code:d})", file=out)
    return code


def check_from_environment(out: TextIO, environ: Mapping[str, str] | None = None) -> ExitCode:
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
            report.add("settings", FAIL, problem, ErrorKind.USAGE)
        report.add("InfluxDB", SKIP, "settings malformed")
        report.add("Grafana", SKIP, "settings malformed")
        print(f"result: settings malformed (exit code {ExitCode.USAGE:d})", file=out)
        return ExitCode.USAGE
    return run_health_check(settings, out)


def _field(body: Any, name: str, default: Any) -> Any:
    """``body[name]`` when Grafana answered a JSON object, else ``default``."""
    return body.get(name, default) if isinstance(body, dict) else default


def _cause(error: GrafanaError) -> str:
    """Why Grafana could not be reached (``Connection refused``...)."""
    cause = error.__cause__
    return _short(getattr(cause, "reason", cause) or error)


def _short(error: BaseException) -> str:
    """The last, most specific part of a connection error (``Connection refused``...)."""
    text = str(error)
    for marker in ("] ", "): "):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    return text.strip(" ')\"") or error.__class__.__name__
