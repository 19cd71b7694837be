#!/usr/bin/env python3
"""Print the read-only InfluxDB token of one company's bucket, creating bucket and token if needed.

The Grafana automation gives each company a datasource that must read that company's bucket and
nothing else; this script is how it gets the token. Only the token goes to stdout, so a playbook
or a shell can capture it; everything else goes to stderr.

The work is ``core/influx_admin.py``'s, through the client of ``core/influx_client.py`` made
from the InfluxDB settings section; the exit codes are ``tsv_parser.py``'s
(``core/outcomes.py``): the same failure gives the same code whichever tool met it.
"""

from __future__ import annotations

import core.venv  # noqa: F401  # isort: skip  (first: run with the project's virtualenv)
import argparse
import logging
import os
import sys

from core.influx_admin import (
    InfluxAdminError,
    TokenOutcome,
    ensure_company_bucket,
    ensure_read_token,
    find_org_id,
    read_token_description,
    rotate_read_token,
)
from core.influx_client import connect
from core.names import UnsafeNameError, check_name
from core.outcomes import ExitCode, exit_code_for
from core.settings import SettingsError, load_settings

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

exit codes: those of tsv_parser.py, for the same failures
  {ExitCode.OK:d}  the token is on stdout
  {ExitCode.USAGE:d}  bad arguments or settings: a bad bucket name, a reserved company name or one
     that differs from an existing company only by case, a missing or malformed setting
  {ExitCode.TEMPORARY:d}  InfluxDB unreachable or temporarily failing (refused, timeout, 429, 5xx):
     try again later
  {ExitCode.CONFIGURATION:d}  InfluxDB refused the admin token (HTTP 401/403) or does not know the
     organization: check INFLUXDB_ADMIN_TOKEN and INFLUXDB_ORG
  {ExitCode.UNEXPECTED:d}  unexpected error (a bug, or an answer InfluxDB should not give)
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
    """Run the command; returns the exit code (an unexpected error is 5, with its traceback)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="manage_influx_tokens: %(message)s")  # fmt: skip
    try:
        return run(args)
    except Exception:
        log.exception("unexpected error (exit code %d)", ExitCode.UNEXPECTED)
        return ExitCode.UNEXPECTED


def run(args: argparse.Namespace) -> ExitCode:
    """Check the name and the settings, then find or make the bucket and its read token."""
    try:
        bucket = check_name(args.bucket, "bucket")
    except UnsafeNameError as error:
        log.error("%s", error)
        return ExitCode.USAGE
    try:
        influx = load_settings(require=("influxdb",)).influx
    except SettingsError as error:
        log.error("%s", error)
        return ExitCode.USAGE
    except OSError as error:  # .env unreadable (permissions), a folder named .env...
        where = error.filename or os.environ.get("POWERVIEW_ENV_FILE") or ".env"
        log.error("cannot read the settings file %s: %s", where, error.strerror or error)
        return ExitCode.USAGE
    try:
        with connect(influx) as client:
            org_id = find_org_id(client, influx.org)
            bucket_id = ensure_company_bucket(
                client, org_id, bucket, influx.bucket_retention_s, influx.meta_bucket
            )
            if args.rotate:
                outcome = rotate_read_token(client, org_id, bucket_id, bucket)
            else:
                outcome = ensure_read_token(client, org_id, bucket_id, bucket)
    except InfluxAdminError as error:
        log.error("%s", error)
        return exit_code_for([error.kind])
    report(outcome, bucket)
    sys.stdout.write(outcome.token + "\n")
    sys.stdout.flush()
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
