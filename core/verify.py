"""``--verify``: read back from InfluxDB how many points a file's series hold once written.

After a file is written, and before it is moved to ``parsed/``, one Flux query counts the
points of the file's master unit and campaign over the file's time range. The report's
``verify`` entry says how many were expected (the values written) and found; fewer found
than written is a note of the file. The file's fate does not depend on it: a read-back that
fails (or finds fewer, e.g. a series written by another file meanwhile) is reported only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.layout import FileLocation
from core.report import FileResult
from core.summary import FileSummary
from core.timestamps import iso_utc

if TYPE_CHECKING:  # the InfluxDB client is imported by runs that write only
    from core.influx_writer import InfluxWriter


def count_query(location: FileLocation, summary: FileSummary, measurement: str) -> str:
    """The Flux query counting the points of the file's series over its time range."""
    start, stop = iso_utc(summary.first_timestamp), iso_utc((summary.last_timestamp or 0) + 1)
    return (
        f'from(bucket: "{location.company}")\n'
        f"  |> range(start: {start}, stop: {stop})\n"
        f'  |> filter(fn: (r) => r._measurement == "{measurement}"'
        f' and r.campaign == "{location.campaign}"'
        f' and r.device_master_sn == "{summary.master_sn}")\n'
        "  |> count()\n  |> group()\n  |> sum()"
    )


def verify_file(
    writer: InfluxWriter,
    location: FileLocation,
    summary: FileSummary,
    measurement: str,
    result: FileResult,
) -> None:
    """Fill ``result.verify`` with the points expected and found (a note when fewer)."""
    from core.influx_writer import WriteError  # noqa: PLC0415 - see the imports

    expected = summary.values_written
    try:
        found = writer.query_count(count_query(location, summary, measurement))
    except WriteError as error:
        result.verify = {"expected": expected, "found": None, "error": str(error)}
        return
    result.verify = {"expected": expected, "found": found, "ok": found >= expected}
    if found < expected:
        result.notes.append(f"verify: {found} points found for {expected} written")
