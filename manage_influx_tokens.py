#!/usr/bin/env python3
"""Print the read-only InfluxDB token of one company's bucket, creating bucket and token if needed.

The Grafana automation gives each company a datasource that must read that company's bucket and
nothing else; this script is how it gets the token. Only the token goes to stdout, so a playbook
or a shell can capture it; everything else goes to stderr.
"""

from __future__ import annotations

import core.venv  # noqa: F401  # isort: skip  (first: run with the project's virtualenv)
import argparse
import logging
import sys

from core.influx_admin import (
    CONFIGURATION,
    REFUSED,
    TEMPORARY,
    InfluxAdminError,
    TokenOutcome,
    ensure_company_bucket,
    ensure_read_token,
    find_org_id,
    make_client,
    read_token_description,
    rotate_read_token,
)
from core.names import UnsafeNameError, check_name
from core.settings import SettingsError, load_settings

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_CONFIG = 2
EXIT_TEMPORARY = 3
EXIT_PERMISSION = 4

EPILOG = f"""\
The token has exactly one permission, read on the bucket, and is described
'{read_token_description("<company>")}'. Running the script again prints the same
token (nothing is created). InfluxDB OSS 2.9 and later store tokens hashed and never return
their values again: there the script cannot reprint a token, so it creates a new one, deletes
the old one and says so on stderr.

settings (environment or .env, see README): INFLUXDB_HOST (or INFLUXDB_URL), INFLUXDB_ORG,
INFLUXDB_ADMIN_TOKEN, INFLUXDB_BUCKET_RETENTION (for a bucket it creates), INFLUXDB_TIMEOUT_S.

examples:
  # print the read token of company acme (creating the bucket and the token if missing)
  ./manage_influx_tokens.py --bucket acme
  # store it for the Grafana datasource
  TOKEN=$(./manage_influx_tokens.py --bucket acme)
  # replace it: the new token is created first, then the old one is deleted
  ./manage_influx_tokens.py --bucket acme --rotate

exit codes:
  {EXIT_OK}  the token is on stdout
  {EXIT_OTHER}  unexpected error
  {EXIT_CONFIG}  usage or configuration error (bad bucket name, a reserved company name or one
     that differs from an existing company only by case, missing setting, unknown org)
  {EXIT_TEMPORARY}  InfluxDB unreachable or temporarily failing (refused, timeout, 429, 5xx):
     try again later
  {EXIT_PERMISSION}  InfluxDB refused the admin token (HTTP 401/403): check INFLUXDB_ADMIN_TOKEN
"""

log = logging.getLogger("manage_influx_tokens")


def build_parser() -> argparse.ArgumentParser:
    """The command line, with examples and exit codes in --help."""
    parser = argparse.ArgumentParser(
        prog="manage_influx_tokens.py",
        description="Print a token that can only read the InfluxDB bucket of one company.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--bucket", required=True, metavar="COMPANY", help="the company, i.e. its bucket name"
    )
    parser.add_argument(
        "--rotate",
        action="store_true",
        help="replace the token: create a new one, then delete the old one(s)",
    )
    return parser


def exit_code_for(error: InfluxAdminError) -> int:
    """Map an error kind to the documented exit code."""
    if error.is_permission:
        return EXIT_PERMISSION
    if error.kind in (CONFIGURATION, REFUSED):
        return EXIT_CONFIG
    if error.kind == TEMPORARY:
        return EXIT_TEMPORARY
    return EXIT_OTHER


def report(outcome: TokenOutcome, bucket: str) -> None:
    """Say on stderr what happened to the tokens."""
    if outcome.action == "found":
        log.info("reusing the read token of bucket %r (authorization %s)", bucket,
                 outcome.authorization_id)  # fmt: skip
    elif outcome.action == "created":
        log.info("created the read token of bucket %r (authorization %s)", bucket,
                 outcome.authorization_id)  # fmt: skip
    elif outcome.unretrievable:
        log.warning(
            "this InfluxDB does not return the values of existing tokens (OSS 2.9+ stores them "
            "hashed), so the read token of bucket %r was rotated: authorization %s replaces %s; "
            "update every datasource that used the old token",
            bucket, outcome.authorization_id, ", ".join(outcome.replaced),
        )  # fmt: skip
    else:
        log.warning(
            "rotated the read token of bucket %r: authorization %s replaces %s; the old token "
            "no longer works",
            bucket, outcome.authorization_id, ", ".join(outcome.replaced),
        )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="manage_influx_tokens: %(message)s")  # fmt: skip
    try:
        bucket = check_name(args.bucket, "bucket")
    except UnsafeNameError as error:
        log.error("%s", error)
        return EXIT_CONFIG
    try:
        settings = load_settings(require=("influxdb",))
    except SettingsError as error:
        log.error("%s", error)
        return EXIT_CONFIG
    url = settings.influxdb_url
    try:
        with make_client(url, settings["INFLUXDB_ADMIN_TOKEN"], settings["INFLUXDB_ORG"],
                         settings["INFLUXDB_TIMEOUT_S"]) as client:  # fmt: skip
            org_id = find_org_id(client, settings["INFLUXDB_ORG"])
            bucket_id = ensure_company_bucket(
                client, org_id, bucket, settings["INFLUXDB_BUCKET_RETENTION"],
                settings["TSV_META_BUCKET"],
            )  # fmt: skip
            if args.rotate:
                outcome = rotate_read_token(client, org_id, bucket_id, bucket)
            else:
                outcome = ensure_read_token(client, org_id, bucket_id, bucket)
    except InfluxAdminError as error:
        log.error("%s", error)
        return exit_code_for(error)
    report(outcome, bucket)
    sys.stdout.write(outcome.token + "\n")
    sys.stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
