"""The bookkeeping records a run writes about itself, beside the points of the files.

Three measurements, so that dashboards can show what was ingested, and when:

====================  ===============  =============================================  ========
measurement           bucket           tags                                            one per
====================  ===============  =============================================  ========
``powerview_ingest``  the company's    campaign, device_folder, device_master_sn,     file
                                       status
``tsv_parser_file``   the meta bucket  company, campaign, device_folder, status,      file
                                       error_kind
``tsv_parser_run``    the meta bucket  mode                                           run
====================  ===============  =============================================  ========

Only files ingested or set aside (status ``ok`` or ``error``) are recorded, and only by runs
that write. A file refused because of its company's name gets no ``powerview_ingest``
record: that company has no bucket of its own, and a name like the meta bucket's would
otherwise put its record among the parser's records.

The records wait in memory (a few hundred bytes per file) and are written together when the
run ends: one request per bucket, the company buckets first, then the meta bucket. A
failure to write them is a note of each file concerned (and a message of the run), never the
file's fate: the file was already ingested and moved.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from core.layout import FileLocation
from core.lineprotocol import format_point
from core.report import FileResult, RunReport
from core.summary import FileSummary

if TYPE_CHECKING:  # the InfluxDB client is imported by runs that write only
    from core.influx_writer import InfluxWriter

INGEST_MEASUREMENT = "powerview_ingest"  # per file, in the company's own bucket
RUN_MEASUREMENT = "tsv_parser_run"  # per run, in the meta bucket
FILE_MEASUREMENT = "tsv_parser_file"  # per file, in the meta bucket
# Codes of a file set aside because its company name is refused (core.influx_admin).
REFUSED_COMPANY_CODES = frozenset({"reserved_company_name", "company_case_conflict"})


class RunRecords:
    """The records of one run, per bucket, each with the notes where its failure goes."""

    def __init__(self, meta_bucket: str, run_id: str) -> None:
        self.meta_bucket = meta_bucket
        self.run_id = run_id
        self._waiting: dict[str, list[tuple[bytes, list[str]]]] = {}

    def add_file(self, location: FileLocation, result: FileResult) -> None:
        """The records of one file ingested or set aside."""
        summary = result.summary or FileSummary(file=location.relative)
        now_ns = time.time_ns()
        if (result.error or {}).get("code") not in REFUSED_COMPANY_CODES:
            self._add(location.company, ingest_record(location, result, summary, now_ns), result)
        self._add(self.meta_bucket, self._file_record(location, result, summary, now_ns), result)

    def add_run(self, report: RunReport) -> None:
        """The run's own record; a failure to write it is a message of the run."""
        totals = report.totals()
        fields: dict[str, object] = {"run_id": report.run_id}
        fields |= {key: totals[key] for key in ("files", "ok", "error", "retry", "skipped")}
        fields |= {
            "points_written": totals["points_written"],
            "duration_s": round(report.duration_s, 6),
            "exit_code": report.exit_code,
        }
        record = format_point(RUN_MEASUREMENT, {"mode": report.mode}, fields, time.time_ns())
        self._waiting.setdefault(self.meta_bucket, []).append((record, report.messages))

    def flush(self, writer: InfluxWriter) -> None:
        """Write every waiting record: one request per bucket, the meta bucket last."""
        from core.influx_writer import WriteError  # noqa: PLC0415 - see the imports

        waiting, self._waiting = self._waiting, {}
        for bucket in sorted(waiting, key=lambda name: name == self.meta_bucket):
            entries = waiting[bucket]
            try:
                writer.ensure_bucket(bucket)
                writer.write_now(bucket, b"".join(record for record, _ in entries), precision="ns")
            except WriteError as error:
                for notes in {id(notes): notes for _, notes in entries}.values():
                    notes.append(
                        f"warning: the ingestion record for bucket {bucket} was not written: "
                        f"{error}"
                    )

    def discard(self) -> None:
        """Forget the waiting records (a run stopped by its settings writes none)."""
        self._waiting = {}

    def _add(self, bucket: str, record: bytes, result: FileResult) -> None:
        self._waiting.setdefault(bucket, []).append((record, result.notes))

    def _file_record(
        self, location: FileLocation, result: FileResult, summary: FileSummary, now_ns: int
    ) -> bytes:
        tags = {
            "company": location.company,
            "campaign": location.campaign,
            "device_folder": location.device_folder,
            "status": result.status,
            "error_kind": result.error_kind or "",
        }
        fields = {
            "file": result.file,
            "run_id": self.run_id,
            "points_written": result.points_written,
            "rows_written": summary.rows_written,
            "rows_skipped": summary.rows_skipped,
            "values_skipped": summary.values_skipped,
            "duration_s": round(result.duration_s, 6),
            "error_code": (result.error or {}).get("code"),
        }
        return format_point(FILE_MEASUREMENT, tags, fields, now_ns)


def ingest_record(
    location: FileLocation, result: FileResult, summary: FileSummary, now_ns: int
) -> bytes:
    """The ``powerview_ingest`` record of one file, for its company's bucket."""
    tags = {
        "campaign": location.campaign,
        "device_folder": location.device_folder,
        "device_master_sn": summary.master_sn or "",
        "status": result.status,
    }
    fields = {
        "points_written": result.points_written,
        "rows": summary.rows_written,
        "file": location.path.name,
        "first_ts": summary.first_timestamp,
        "last_ts": summary.last_timestamp,
    }
    return format_point(INGEST_MEASUREMENT, tags, fields, now_ns)
