"""The InfluxDB double of ``tests/doubles/influxdb.py`` in a process of its own, for
``bench_burst.py``.

The benchmark measures the memory and CPU of PowerView's processes; the double runs apart so
that its own cost (it parses every line in Python) is left out of those figures and can be
reported on its own.

Protocol, one line each way: on start the process prints ``{"url", "org", "token"}`` as JSON,
then answers each command read on stdin with one JSON line:

- ``progress``: ``{"stored": {bucket: values}}``, the values of measurement ``electrical``
  stored per bucket (cheap: one length per series);
- ``final``: ``{"series": [[bucket, campaign, device_master_sn, channel_id, stored,
  received], ...], "other": {bucket: {measurement: values}}}``: per series of ``electrical``,
  the values the double holds and the values it received in accepted writes. InfluxDB keeps
  one value per series, field and time, so a value written twice is stored once: only
  ``received - stored`` shows it;
- ``quit``: stops the server and exits.

``received`` is counted by wrapping ``InfluxState.apply_points``, where the double stores the
points of an accepted write; a rejected write (400, 401, 413...) never reaches it.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.doubles.influxdb import InfluxDBDouble

MEASUREMENT = "electrical"


def count_received(double: InfluxDBDouble) -> Counter:
    """Count the field values of every accepted write, per (bucket id, measurement, tags)."""
    received: Counter = Counter()
    lock = threading.Lock()
    state = double.state
    store = state.apply_points

    def apply_points(bucket_id: str, points: Any) -> list[str]:
        points = list(points)
        counts: Counter = Counter()
        for point in points:
            counts[(bucket_id, point.measurement, point.tags)] += len(point.fields)
        with lock:
            received.update(counts)
        return store(bucket_id, points)

    state.apply_points = apply_points  # type: ignore[method-assign]
    return received


def bucket_names(double: InfluxDBDouble) -> dict[str, str]:
    with double.state.lock:
        return {bucket.id: bucket.name for bucket in double.state.buckets.values()}


def progress(double: InfluxDBDouble) -> dict[str, Any]:
    names = bucket_names(double)
    stored: dict[str, int] = {}
    with double.state.lock:
        for bucket_id, series in double.state.data.items():
            stored[names.get(bucket_id, bucket_id)] = sum(
                len(values)
                for (measurement, _), fields in series.items()
                if measurement == MEASUREMENT
                for values in fields.values()
            )
    return {"stored": stored}


def final(double: InfluxDBDouble, received: Counter) -> dict[str, Any]:
    names = bucket_names(double)
    rows: list[list[Any]] = []
    other: dict[str, dict[str, int]] = {}
    seen: set[tuple] = set()
    with double.state.lock:
        for bucket_id, series in double.state.data.items():
            bucket = names.get(bucket_id, bucket_id)
            for (measurement, tags), fields in series.items():
                values = sum(len(by_time) for by_time in fields.values())
                if measurement != MEASUREMENT:
                    per_bucket = other.setdefault(bucket, {})
                    per_bucket[measurement] = per_bucket.get(measurement, 0) + values
                    continue
                key = (bucket_id, measurement, tags)
                seen.add(key)
                named = dict(tags)
                rows.append([
                    bucket, named.get("campaign"), named.get("device_master_sn"),
                    named.get("channel_id"), values, received.get(key, 0),
                ])  # fmt: skip
    for (bucket_id, measurement, tags), count in received.items():
        if measurement == MEASUREMENT and (bucket_id, measurement, tags) not in seen:
            named = dict(tags)  # received but not stored (a field type conflict)
            rows.append([
                names.get(bucket_id, bucket_id), named.get("campaign"),
                named.get("device_master_sn"), named.get("channel_id"), 0, count,
            ])  # fmt: skip
    return {"series": rows, "other": other}


def main() -> int:
    double = InfluxDBDouble(org="powerview", admin_token=secrets.token_urlsafe(32))
    received = count_received(double)
    double.start()
    print(json.dumps({"url": double.url, "org": double.org, "token": double.admin_token}))
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "progress":
                answer: dict[str, Any] = progress(double)
            elif command == "final":
                answer = final(double, received)
            elif command == "quit":
                break
            else:
                answer = {"error": f"unknown command {command!r}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        double.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
