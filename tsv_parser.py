#!/usr/bin/env python3
"""PowerView parser: MV2 logger files in the SFTP data folder to InfluxDB.

Everything it does lives in ``core/``; this file turns command-line arguments into a run
and the run into an exit code.
"""

from __future__ import annotations

import core.venv  # noqa: F401  # isort: skip  (first: run with the project's virtualenv)
import argparse
import logging
import math
import os
import sys
import tempfile
import textwrap
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from core import __version__
from core.engine import ParseOptions
from core.layout import ERROR_DIR, PARSED_DIR, LayoutError, locate
from core.lifecycle import move_to_error, take
from core.names import is_safe_name
from core.outcomes import ErrorKind, ExitCode, SkipReason, Status, exit_code_for
from core.report import (
    FileResult,
    RunReport,
    print_human_summary,
    printable,
    utc_now_iso,
    write_json_atomically,
)
from core.runner import RunConfig, Runner
from core.runtime import tune_allocator
from core.settings import ParserSettings, Settings, SettingsError, load_settings

EXAMPLES = """\
examples:
  try every pending file without writing or moving anything:
    tsv_parser.py --dataFolder /srv/sftpgo/data --dry-run
  try one file and keep the line protocol it would send:
    tsv_parser.py --dataFolder /srv/sftpgo/data \\
        --tsvFile /srv/sftpgo/data/acme/site1/02001283/T302_251128_031740.tsv \\
        --dry-run --lp-out /tmp/points.lp
  ingest one file (what the SFTPGo hook does after an upload):
    tsv_parser.py --dataFolder /srv/sftpgo/data --tsvFile <path of the uploaded file>
  sweep the whole data folder, checking what was written:
    tsv_parser.py --dataFolder /srv/sftpgo/data --verify
  sweep one company's folder (what the SFTPGo hook does after a disconnect):
    tsv_parser.py --dataFolder /srv/sftpgo/data --company acme
  check the settings, InfluxDB and Grafana (exit code 0 only when all is well):
    tsv_parser.py --check

"""

# What each exit code means for this command; the codes and their ranking (the most severe
# failure wins) are core/outcomes.py's, shared with --check and manage_influx_tokens.py.
EXIT_CODE_HELP = {
    ExitCode.OK: "every file was ingested (or, in a dry run, could be), or there was nothing to do",
    ExitCode.DATA: "at least one file has bad content: moved to error/ (dry run: would be)",
    ExitCode.USAGE: "bad arguments or settings, or the report folder is not writable: nothing "
    "was read, written or moved",
    ExitCode.TEMPORARY: "InfluxDB was unreachable or overloaded (after retries): those files "
    "stay for the next sweep",
    ExitCode.CONFIGURATION: "InfluxDB refused the token or the organization: the run stopped, "
    "files stay",
    ExitCode.UNEXPECTED: "unexpected error (a bug, or the environment: a full disk, a parsed/ "
    "that is a file, an unreadable file): recorded against the file, which is moved to error/ "
    "when it can be, else left in place; the other files were processed and the report written",
}


def exit_codes_help() -> str:
    """The ``exit codes:`` section of ``--help``, from EXIT_CODE_HELP."""
    return "exit codes:\n" + "".join(
        textwrap.fill(meaning, 89, initial_indent=f"  {code:d}  ", subsequent_indent=" " * 5) + "\n"
        for code, meaning in EXIT_CODE_HELP.items()
    )


EPILOG = (
    EXAMPLES
    + exit_codes_help()
    + """
Settings come from the environment and .env (see README.md, "Configuration").
"""
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsv_parser.py",
        description="Ingest MV2 logger files (TSV) from the SFTP data folder into InfluxDB.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataFolder",
        "--data-folder",
        dest="data_folder",
        type=Path,
        help="the SFTP data folder: <company>/<campaign>/<device>/<file>.tsv below it",
    )
    parser.add_argument(
        "--tsvFile",
        "--tsv-file",
        dest="tsv_file",
        type=Path,
        help="one file to process (must lie inside --dataFolder); without it, every "
        "pending file is swept",
    )
    parser.add_argument(
        "--company",
        metavar="NAME",
        help="sweep only <dataFolder>/NAME (one company's files); not with --tsvFile",
    )
    parser.add_argument(
        "--dry-run",
        "--dryRun",
        dest="dry_run",
        action="store_true",
        help="read and check only: no InfluxDB connection, no file moved; the JSON run "
        "report goes to stdout, a summary to stderr",
    )
    parser.add_argument(
        "--lp-out",
        dest="lp_out",
        help="also write the line protocol to FILE ('-' for stdout, which then carries only "
        "the line protocol)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="after writing a file, count its points in InfluxDB and report expected/found",
    )
    parser.add_argument(
        "--min-age",
        dest="min_age",
        type=seconds,
        help="sweep: skip files modified less than this many seconds ago "
        "(default: TSV_MIN_FILE_AGE_S, 60)",
    )
    parser.add_argument(
        "--reject",
        metavar="REASON",
        help="do not ingest --tsvFile: set it aside in error/ with this reason (used by the "
        "upload hook for uploads that did not complete)",
    )
    parser.add_argument(
        "--report-dir",
        dest="report_dir",
        type=Path,
        help="where the JSON run report is written (default: TSV_REPORT_DIR, else "
        "<dataFolder>/../logs/reports)",
    )
    parser.add_argument(
        "--report-file",
        dest="report_file",
        type=Path,
        metavar="FILE",
        help="also write the JSON run report to FILE (the upload hook reads each outcome "
        "from it); with --reject, the only report written",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the settings, InfluxDB (token, org, write) and Grafana (health, admin "
        "login), print what is wrong, and exit: 0 only when all is well (then 2 settings, "
        "4 refused, 3 unreachable); needs no --dataFolder",
    )
    parser.add_argument("--version", action="version", version=f"PowerView parser {__version__}")
    return parser


def seconds(text: str) -> float:
    """A number of seconds, 0 or more (argparse turns the ValueError into a usage error)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, 0 or more")
    return value


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> int:
    print(f"tsv_parser.py: error: {printable(message)}", file=sys.stderr)
    return code


def resolve_tsv_file(data_folder: Path, tsv_file: Path) -> Path:
    """A relative --tsvFile is taken from the current folder, else from the data folder."""
    if tsv_file.is_absolute() or tsv_file.exists():
        return tsv_file
    return data_folder / tsv_file


def already_processed(path: Path) -> bool:
    """True when a file of that name sits in the folder's parsed/ or error/: a concurrent run
    (another hook for the same upload, or a sweep) took it first."""
    return any((path.parent / folder / path.name).exists() for folder in (PARSED_DIR, ERROR_DIR))


def report_folder(args: argparse.Namespace, settings: ParserSettings) -> Path:
    return args.report_dir or settings.report_folder(args.data_folder)


def report_path(args: argparse.Namespace, settings: ParserSettings, report: RunReport) -> Path:
    folder = report_folder(args, settings)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"tsv_parser_{stamp}_{report.run_id}.json"


def check_report_folder(folder: Path) -> str | None:
    """Why run reports cannot be written in ``folder`` (None when they can): checked before
    any file is touched, so a run never moves files it cannot report."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as error:
        return f"run reports cannot be written in {folder}: {error.strerror or error}"
    return None


def reject_upload(
    data_folder: Path, tsv_file: Path, reason: str, dry_run: bool, report_file: Path | None
) -> int:
    """Set a file aside in error/ without reading it (an upload that did not complete)."""
    try:
        location = locate(data_folder, tsv_file)
    except LayoutError as error:
        return fail(f"refused: {error}")
    report = RunReport(mode="dry-run" if dry_run else "reject", data_folder=str(data_folder))
    refusal = {"code": "upload_incomplete", "line": None, "reason": reason}
    result = FileResult(file=location.relative, status=Status.ERROR, error_kind=ErrorKind.DATA)
    result.error = refusal
    report.files.append(result)
    if dry_run:
        result.notes.append("dry run: would be set aside in error/, not moved")
    else:
        with take(location.path) as held:
            if held:
                details = {
                    **refusal,
                    "file": location.relative,
                    "error_kind": ErrorKind.DATA,
                    "parser_version": __version__,
                    "time": datetime.now(UTC).isoformat(),
                }
                moved = move_to_error(held, details)
                if moved.target is not None:
                    result.moved_to = str(moved.target.relative_to(location.data_folder))
                result.notes += [moved.left_in_place] if moved.left_in_place else []
            else:
                result.status, result.error_kind, result.skip_reason = (
                    Status.SKIPPED,
                    None,
                    SkipReason.TAKEN,
                )
                result.notes.append("taken by another process; not moved")
    report.finished_at = utc_now_iso()
    print_human_summary(report, sys.stderr)
    if report_file is not None:
        write_json_atomically(report_file, report.as_dict())
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    """The exit code of a run; an error that escapes everything else is exit code 5 with its
    traceback on stderr (never 1, the code of bad content, which the sweep unit accepts)."""
    try:
        return run(argv)
    except BrokenPipeError:
        return stdout_closed()
    except Exception:
        traceback.print_exc()
        code = exit_code_for([ErrorKind.UNEXPECTED])
        print(f"tsv_parser.py: unexpected error (exit code {code:d})", file=sys.stderr)
        return code


def stdout_closed() -> int:
    """The reader of stdout went away (``... | head``): no more output, no traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return ExitCode.OK


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.check:
        # Imported here: an ingestion run needs neither the Grafana client nor the check.
        from core.health import check_from_environment  # noqa: PLC0415

        return check_from_environment(sys.stdout)
    if args.data_folder is None:
        parser.error("the following arguments are required: --dataFolder")
    try:
        settings = load_settings(require=() if args.dry_run or args.reject else ("influxdb",))
    except SettingsError as error:
        return fail(f"{error}\n(nothing was read, written or moved)")
    except OSError as error:  # .env unreadable (permissions), a folder named .env...
        where = error.filename or os.environ.get("POWERVIEW_ENV_FILE") or ".env"
        return fail(
            f"cannot read the settings file {where}: {error.strerror or error}\n"
            "(nothing was read, written or moved)"
        )
    logging.basicConfig(
        level=settings.parser.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    refused = check_folders(args.data_folder, args.company, args.tsv_file)
    if refused is not None:
        return refused
    explicit = None
    if args.tsv_file is not None:
        explicit = resolve_tsv_file(args.data_folder, args.tsv_file)
        refused = check_tsv_file(args.data_folder, explicit)
        if refused is not None:
            return refused
    if args.reject is not None:
        if explicit is None:
            return fail("--reject needs --tsvFile")
        return reject_upload(
            args.data_folder, explicit, args.reject, args.dry_run, args.report_file
        )
    return ingest(args, settings, explicit)


def check_folders(data_folder: Path, company: str | None, tsv_file: Path | None) -> int | None:
    """The exit code of a refused --dataFolder or --company (None when they are good)."""
    if not data_folder.is_dir():
        return fail(f"--dataFolder {data_folder} is not a folder")
    if company is not None:
        if tsv_file is not None:
            return fail("--company sweeps a company's folder: not with --tsvFile")
        if not is_safe_name(company):
            return fail(f"--company {company!r} is not an allowed company name")
        company_folder = data_folder / company
        if company_folder.is_symlink() or not company_folder.is_dir():
            return fail(f"--company: {company_folder} is not a folder")
    return None


def check_tsv_file(data_folder: Path, explicit: Path) -> int | None:
    """The exit code of a --tsvFile that is not to be processed (None when it is): refused,
    or already moved by a concurrent run. Other layout problems are the run's to report."""
    try:
        locate(data_folder, explicit)
    except LayoutError as error:
        if error.code == "not_found" and already_processed(explicit):
            shown = printable(str(explicit))
            print(f"{shown}: already moved by another run; nothing to do", file=sys.stderr)
            return ExitCode.OK
        if error.code in ("outside_data_folder", "not_found", "not_a_file"):
            return fail(f"--tsvFile refused: {error}")
    return None


def ingest(args: argparse.Namespace, settings: Settings, explicit: Path | None) -> int:
    """A dry run or an ingestion of the explicit file or of a sweep; its exit code."""
    if not args.dry_run:
        problem = check_report_folder(report_folder(args, settings.parser))
        if problem:
            return fail(f"{problem}\n(nothing was read, written or moved)")
    tune_allocator()
    lp_stream: BinaryIO | None = None
    if args.lp_out == "-":
        lp_stream = sys.stdout.buffer
    elif args.lp_out:
        lp_stream = open(args.lp_out, "wb")  # noqa: SIM115 - closed below
    config = run_config(args, settings, lp_stream)
    writer = None
    try:
        if not args.dry_run:
            # Imported here: a dry run or a reject never loads the InfluxDB client.
            from core.influx_writer import InfluxWriter, WriteError  # noqa: PLC0415

            writer = InfluxWriter(settings.influx)
            try:
                writer.check()
            except WriteError as error:
                refused = error.kind == ErrorKind.CONFIGURATION
                kind = ErrorKind.CONFIGURATION if refused else ErrorKind.TEMPORARY
                return fail(f"{error}\n(no file was touched)", exit_code_for([kind]))
        report = Runner(config, writer).run(explicit)
    finally:
        if writer is not None:
            writer.close()
        if lp_stream is not None and lp_stream is not sys.stdout.buffer:
            lp_stream.close()
    if lp_stream is sys.stdout.buffer:
        try:
            if config.lp_out is None:  # the reader closed it during the run
                raise BrokenPipeError
            lp_stream.flush()
        except BrokenPipeError:
            stdout_closed()
    return publish(args, settings, report)


def run_config(
    args: argparse.Namespace, settings: Settings, lp_stream: BinaryIO | None
) -> RunConfig:
    return RunConfig(
        data_folder=args.data_folder,
        dry_run=args.dry_run,
        parse=ParseOptions.from_settings(settings.parser),
        min_file_age_s=(
            args.min_age if args.min_age is not None else settings.parser.min_file_age_s
        ),
        verify=args.verify,
        meta_bucket=settings.influx.meta_bucket,
        lp_out=lp_stream,
        progress=sys.stderr.isatty(),  # a bar, also within one large file
        company=args.company,
        state_dir=None if args.dry_run else report_folder(args, settings.parser),
        inline_max_bytes=settings.influx.inline_max_bytes,
    )


def publish(args: argparse.Namespace, settings: Settings, report: RunReport) -> int:
    """The summary on stderr; the JSON report on stdout (dry run) or in the report folder,
    and in --report-file; the run's exit code."""
    print_human_summary(report, sys.stderr)
    if args.dry_run:
        if args.lp_out != "-":
            try:
                print(report.to_json(), flush=True)
            except BrokenPipeError:
                return stdout_closed()
    else:
        path = report_path(args, settings.parser, report)
        write_json_atomically(path, report.as_dict())
        print(f"run report: {path}", file=sys.stderr)
    if args.report_file is not None:
        write_json_atomically(args.report_file, report.as_dict())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
