"""Settings from the environment and an optional ``.env`` file, checked before any work starts.

Every variable PowerView reads is declared once in ``VARIABLES`` with its default and meaning;
the README's configuration table and ``.env.sample`` are checked against this list by the
tests. Values in the process environment win over the ``.env`` file, so a deployment can keep
secrets in ``.env`` and an operator can still override one setting for a single run.

An entry point calls ``load_settings`` once and hands each component its own typed, frozen
section, never the whole:

- ``InfluxSettings``: the InfluxDB client and writer (``core/influx_client.py``,
  ``core/influx_writer.py``), the admin functions, ``manage_influx_tokens.py``;
- ``ParserSettings``: how files are read and runs are reported (``tsv_parser.py``, the
  drainer; ``ParseOptions.from_settings`` in ``core/engine.py``);
- ``GrafanaSettings``: the Grafana client (``core/grafana_client.py``), the playbooks'
  modules and the dashboards.

Rules that involve more than one variable live in the loader only: ``INFLUXDB_HOST`` falls back
to ``INFLUXDB_URL`` there, and ``Settings.missing`` names what is unset, so no reader checks a
variable by name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from core.names import check_name

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """One or more settings are missing or malformed; the message lists each of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


def parse_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL with a host")
    return value.rstrip("/")


def parse_positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("expected a positive integer")
    return number


def parse_non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("expected an integer >= 0")
    return number


def parse_non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError("expected a number >= 0")
    return number


_DURATION = re.compile(r"(\d+)([smhdw])")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration_seconds(value: str) -> int:
    """Parse ``0`` (forever), ``3600``, ``30d``, ``1w2d``... into seconds."""
    text = value.strip().lower()
    if text.isdigit():
        return int(text)
    pos, total = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _DURATION_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError("expected seconds or a duration such as 30d, 12h, 1w")
    return total


MIN_RETENTION_S = 3600


def parse_retention(value: str) -> int:
    """A bucket retention: 0 (forever) or at least one hour.

    InfluxDB 2.7 accepts a shorter retention over HTTP, then its storage engine refuses it
    (``v1/services/meta/client.go``: ``ErrRetentionPolicyDurationTooLow``) and the API answers
    a bare 500, which would look like a server outage at every sweep.
    """
    seconds = parse_duration_seconds(value)
    if 0 < seconds < MIN_RETENTION_S:
        raise ValueError(
            f"{seconds} s is shorter than InfluxDB's minimum retention of 1 h (3600 s); "
            "use 0 to keep data forever"
        )
    return seconds


def parse_timestamp_floor(value: str) -> int:
    """An ISO 8601 instant (``2021-01-01T00:00:00Z``) to Unix seconds."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("expected a time zone, e.g. 2021-01-01T00:00:00Z")
    return int(moment.timestamp())


def parse_time_zone(value: str) -> str:
    if value.upper() == "UTC":
        return "UTC"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("expected UTC or an IANA time zone name such as Europe/Paris") from exc
    return value


def parse_dashboard_uid(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", value):
        raise ValueError("expected a Grafana dashboard uid: 1 to 40 of A-Z a-z 0-9 _ -")
    return value


def parse_bool(value: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def parse_log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return level


def parse_bucket_name(value: str) -> str:
    return check_name(value, "bucket")


def parse_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


@dataclass(frozen=True)
class Variable:
    """One environment variable: its default (None: no default), meaning and parser."""

    name: str
    default: str | None
    description: str
    parse: Callable[[str], Any] = parse_text
    secret: bool = False
    group: str = "parser"


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "INFLUXDB_HOST",
        None,
        "URL of InfluxDB, e.g. http://localhost:8086 (INFLUXDB_URL is read when unset).",
        parse_url,
        group="influxdb",
    ),
    Variable("INFLUXDB_URL", None, "Fallback for INFLUXDB_HOST.", parse_url, group="influxdb"),
    Variable("INFLUXDB_ORG", None, "InfluxDB organization name.", group="influxdb"),
    Variable(
        "INFLUXDB_ADMIN_TOKEN",
        None,
        "InfluxDB token allowed to create buckets and tokens and to write.",
        secret=True,
        group="influxdb",
    ),
    Variable(
        "INFLUXDB_BUCKET_RETENTION",
        "0",
        "Retention of the company buckets the parser creates: 0 keeps data forever, "
        "otherwise at least 1 h, in seconds or a duration such as 400d.",
        parse_retention,
        group="influxdb",
    ),
    Variable(
        "INFLUXDB_TIMEOUT_S",
        "30",
        "Timeout of one HTTP request to InfluxDB, in seconds.",
        parse_non_negative_float,
        group="influxdb",
    ),
    Variable(
        "INFLUXDB_BATCH_SIZE",
        "5000",
        "Points per write request (InfluxDB recommends 5000).",
        parse_positive_int,
        group="influxdb",
    ),
    Variable(
        "INFLUXDB_INLINE_MAX_BYTES",
        "4194304",
        "Files up to this size (bytes) are sent from the run's own process; larger ones "
        "through a sender process that sends while the next batch is parsed (0: always the "
        "sender).",
        parse_non_negative_int,
        group="influxdb",
    ),
    Variable(
        "INFLUXDB_MAX_RETRIES",
        "5",
        "Retries of a write that failed with a temporary error (unreachable, timeout, 429, "
        "5xx) before the file is left for the next sweep.",
        parse_non_negative_int,
        group="influxdb",
    ),
    Variable(
        "INFLUXDB_RETRY_INTERVAL_MS",
        "2000",
        "First retry delay in milliseconds; doubles at each retry (a Retry-After header wins).",
        parse_positive_int,
        group="influxdb",
    ),
    Variable(
        "TSV_META_BUCKET",
        "powerview_meta",
        "Bucket for the run and per-file ingestion records (tsv_parser_run, tsv_parser_file).",
        parse_bucket_name,
    ),
    Variable(
        "TSV_REPORT_DIR",
        "",
        "Folder for the JSON run reports; empty means <data folder>/../logs/reports.",
        str,
    ),
    Variable("TSV_LOG_LEVEL", "INFO", "Log level of tsv_parser.py.", parse_log_level),
    Variable(
        "TSV_MIN_FILE_AGE_S",
        "60",
        "Sweep mode skips files modified less than this many seconds ago (upload in progress).",
        parse_non_negative_float,
    ),
    Variable(
        "TSV_TIMESTAMP_FLOOR",
        "2021-01-01T00:00:00Z",
        "Rows stamped earlier than this are not written (loggers with an unset clock write "
        "year-2020 stamps).",
        parse_timestamp_floor,
    ),
    Variable(
        "TSV_V002_TIMEZONE",
        "UTC",
        "Time zone of V002 files (which carry no time zone): UTC or an IANA name such as "
        "Europe/Paris for loggers set to local time.",
        parse_time_zone,
    ),
    Variable(
        "TSV_SKIP_ZERO_ROWS",
        "true",
        "Skip rows whose values are all 0 (logger start-up markers, stamped with a wrong "
        "clock); false writes them.",
        parse_bool,
    ),
    Variable(
        "GRAFANA_URL",
        None,
        "URL of Grafana, e.g. http://localhost:3000.",
        parse_url,
        group="grafana",
    ),
    Variable("GRAFANA_USERNAME", None, "Grafana server admin login (basic auth).", group="grafana"),
    Variable(
        "GRAFANA_PASSWORD", None, "Password of GRAFANA_USERNAME.", secret=True, group="grafana"
    ),
    Variable(
        "GRAFANA_API_TOKEN",
        "",
        "Optional service account token, used only for calls inside one organization.",
        str,
        secret=True,
        group="grafana",
    ),
    Variable(
        "GRAFANA_MASTER_DASHBOARD_UID",
        "",
        "Uid of the master dashboard, designed in Grafana's UI, from which every company's "
        "dashboards are made; empty: the bundled template (grafana-automation/templates/).",
        parse_dashboard_uid,
        group="grafana",
    ),
    Variable(
        "GRAFANA_MASTER_DASHBOARD_ORG_ID",
        "1",
        "Id of the Grafana organization holding the master dashboard (1: the main one).",
        parse_positive_int,
        group="grafana",
    ),
    Variable(
        "GRAFANA_DASHBOARD_TIMEZONE",
        "Europe/Paris",
        "IANA time zone of the dashboards: daily energy per local day, axes in local time.",
        parse_time_zone,
        group="grafana",
    ),
)

VARIABLES_BY_NAME = {variable.name: variable for variable in VARIABLES}


def _default(name: str) -> Any:
    """The parsed default of a declared variable: the sections' defaults come from the table."""
    variable = VARIABLES_BY_NAME[name]
    return variable.parse(variable.default) if variable.default else variable.default


@dataclass(frozen=True)
class InfluxSettings:
    """How to reach InfluxDB and write to it. ``url``, ``org`` and ``token`` are "" when unset
    (a dry run needs none of them); ``url`` is INFLUXDB_HOST, else INFLUXDB_URL."""

    url: str = ""
    org: str = ""
    token: str = field(default="", repr=False)
    bucket_retention_s: int = _default("INFLUXDB_BUCKET_RETENTION")
    timeout_s: float = _default("INFLUXDB_TIMEOUT_S")
    batch_size: int = _default("INFLUXDB_BATCH_SIZE")
    inline_max_bytes: int = _default("INFLUXDB_INLINE_MAX_BYTES")
    max_retries: int = _default("INFLUXDB_MAX_RETRIES")
    retry_interval_ms: int = _default("INFLUXDB_RETRY_INTERVAL_MS")
    meta_bucket: str = _default("TSV_META_BUCKET")


@dataclass(frozen=True)
class ParserSettings:
    """How the parser reads files and where it reports. ``batch_points`` is
    INFLUXDB_BATCH_SIZE: the engine cuts its batches at the size of a write request."""

    report_dir: str = _default("TSV_REPORT_DIR")
    log_level: str = _default("TSV_LOG_LEVEL")
    min_file_age_s: float = _default("TSV_MIN_FILE_AGE_S")
    timestamp_floor: int = _default("TSV_TIMESTAMP_FLOOR")
    v002_time_zone: str = _default("TSV_V002_TIMEZONE")
    skip_zero_rows: bool = _default("TSV_SKIP_ZERO_ROWS")
    batch_points: int = _default("INFLUXDB_BATCH_SIZE")

    def report_folder(self, data_folder: Path) -> Path:
        """Where run reports go: TSV_REPORT_DIR, else ``logs/reports`` beside the data folder."""
        if self.report_dir:
            return Path(self.report_dir)
        return data_folder.resolve().parent / "logs" / "reports"


@dataclass(frozen=True)
class GrafanaSettings:
    """The server admin's connection to Grafana and the dashboards' source and time zone;
    ``url``, ``username`` and ``password`` are "" when unset."""

    url: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    api_token: str = field(default="", repr=False)
    master_dashboard_uid: str = _default("GRAFANA_MASTER_DASHBOARD_UID")
    master_dashboard_org_id: int = _default("GRAFANA_MASTER_DASHBOARD_ORG_ID")
    dashboard_timezone: str = _default("GRAFANA_DASHBOARD_TIMEZONE")


@dataclass(frozen=True)
class Settings:
    """The sections, and ``missing``: the variables (in ``VARIABLES`` order) that have no value
    and no default, whether or not the caller required their group."""

    influx: InfluxSettings = InfluxSettings()
    parser: ParserSettings = ParserSettings()
    grafana: GrafanaSettings = GrafanaSettings()
    missing: tuple[str, ...] = ()

    def missing_in(self, *groups: str) -> list[str]:
        """The missing variables of ``groups`` (``influxdb``, ``grafana``, ``parser``)."""
        return [name for name in self.missing if VARIABLES_BY_NAME[name].group in groups]


def load_environment(
    dotenv_path: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Merge ``.env`` (if present) under the process environment; the environment wins.

    ``dotenv_path`` defaults to ``$POWERVIEW_ENV_FILE`` or ``.env`` at the project root.
    """
    environ = os.environ if environ is None else environ
    if dotenv_path is None:
        dotenv_path = Path(environ.get("POWERVIEW_ENV_FILE") or PROJECT_ROOT / ".env")
    merged: dict[str, str] = {}
    if dotenv_path.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(environ)
    return merged


def _parse_all(env: Mapping[str, str]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Every declared variable parsed (None: unset or malformed), the problems of the
    malformed ones, and the names of those that have no value and no default."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    invalid: set[str] = set()
    for variable in VARIABLES:
        raw = env.get(variable.name)
        if raw is None or raw == "":
            raw = variable.default
        if raw is None:
            values[variable.name] = None
            continue
        try:
            values[variable.name] = variable.parse(raw) if raw else raw
        except ValueError as exc:
            values[variable.name] = None
            invalid.add(variable.name)
            shown = "***" if variable.secret else repr(raw)
            problems.append(f"{variable.name}={shown}: {exc}")
    # INFLUXDB_URL is only a fallback: INFLUXDB_HOST is missing when neither is set.
    unset = {name for name, value in values.items() if value is None and name not in invalid}
    if values["INFLUXDB_URL"] is not None:
        unset.discard("INFLUXDB_HOST")
    unset.discard("INFLUXDB_URL")
    missing = [variable.name for variable in VARIABLES if variable.name in unset]
    return values, problems, missing


def load_settings(
    environ: Mapping[str, str] | None = None, require: tuple[str, ...] = ()
) -> Settings:
    """Parse every declared variable into the sections; ``require`` names groups
    (``influxdb``, ``grafana``) whose variables without a default must be set. Raises
    SettingsError listing all problems."""
    env = load_environment() if environ is None else dict(environ)
    values, problems, missing = _parse_all(env)
    for name in missing:
        variable = VARIABLES_BY_NAME[name]
        if variable.group in require:
            problems.append(f"{name} is not set ({variable.description})")
    if problems:
        raise SettingsError(problems)
    return _sections(values, tuple(missing))


def _sections(values: Mapping[str, Any], missing: tuple[str, ...]) -> Settings:
    """The parsed variables sorted into sections; the INFLUXDB_URL fallback is resolved here."""

    def text(name: str) -> str:
        return values[name] or ""

    influx = InfluxSettings(
        url=values["INFLUXDB_HOST"] or text("INFLUXDB_URL"),
        org=text("INFLUXDB_ORG"),
        token=text("INFLUXDB_ADMIN_TOKEN"),
        bucket_retention_s=values["INFLUXDB_BUCKET_RETENTION"],
        timeout_s=values["INFLUXDB_TIMEOUT_S"],
        batch_size=values["INFLUXDB_BATCH_SIZE"],
        inline_max_bytes=values["INFLUXDB_INLINE_MAX_BYTES"],
        max_retries=values["INFLUXDB_MAX_RETRIES"],
        retry_interval_ms=values["INFLUXDB_RETRY_INTERVAL_MS"],
        meta_bucket=values["TSV_META_BUCKET"],
    )
    parser = ParserSettings(
        report_dir=text("TSV_REPORT_DIR"),
        log_level=values["TSV_LOG_LEVEL"],
        min_file_age_s=values["TSV_MIN_FILE_AGE_S"],
        timestamp_floor=values["TSV_TIMESTAMP_FLOOR"],
        v002_time_zone=values["TSV_V002_TIMEZONE"],
        skip_zero_rows=values["TSV_SKIP_ZERO_ROWS"],
        batch_points=values["INFLUXDB_BATCH_SIZE"],
    )
    grafana = GrafanaSettings(
        url=text("GRAFANA_URL"),
        username=text("GRAFANA_USERNAME"),
        password=text("GRAFANA_PASSWORD"),
        api_token=text("GRAFANA_API_TOKEN"),
        master_dashboard_uid=text("GRAFANA_MASTER_DASHBOARD_UID"),
        master_dashboard_org_id=values["GRAFANA_MASTER_DASHBOARD_ORG_ID"],
        dashboard_timezone=values["GRAFANA_DASHBOARD_TIMEZONE"],
    )
    return Settings(influx, parser, grafana, missing)
