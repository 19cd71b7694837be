"""Energy as the dashboards compute it, checked against an independent computation.

The energy panels of ``grafana-automation/templates/electrical.json`` run, per channel:
``duplicate`` + ``difference(keepFirst: true)`` + ``elapsed(unit: 1s)`` (one row per pair of
consecutive readings), ``quantile(q: 0.5, method: "exact_selector")`` of the spacing (the
logger's own interval), ``join.inner`` of the two, a ``map`` giving each pair its trapezoid in
kWh, or 0 when it spans more than ``GAP_FACTOR`` intervals, stamped at the pair's first
reading; then ``sum()`` for the range, or ``aggregateWindow(every: 1d, fn: sum, location:
<zone>, timeSrc: "_start")`` for local days.

No InfluxDB runs here and the InfluxDB double implements only a Flux subset, so
``flux_pipeline`` below models those Flux functions one by one, with the semantics of Flux's
source (``getQuantileIndex``: sorted rows, index ceil(q*n)-1; ``elapsed`` drops each table's
first row; windows in a location are local calendar days, clipped to the range). It is
checked against hand-computed figures, and against ``reference_energy``, a plain loop written
from the rule as the README states it, on data with gaps, restarts and DST changes.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import PROJECT_ROOT
from tests.reference import reference_points

TEMPLATE = PROJECT_ROOT / "grafana-automation" / "templates" / "electrical.json"
GAP_FACTOR = 3.0
PARIS = ZoneInfo("Europe/Paris")
Series = dict[str, list[tuple[int, float]]]  # channel id -> (unix seconds, watts)


# ---------------------------------------------------------------- the Flux pipeline, modelled


def _pairs(readings: list[tuple[int, float]]) -> list[dict]:
    """duplicate(_value as step) |> difference(columns: [step], keepFirst: true) |> elapsed()"""
    rows = sorted(readings)
    return [
        {"_time": t1, "_value": v1, "step": v1 - v0, "elapsed": t1 - t0, "seconds": float(t1 - t0)}
        for (t0, v0), (t1, v1) in itertools.pairwise(rows)
    ]


def _exact_selector(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def _contributions(readings: list[tuple[int, float]]) -> list[tuple[int, float]]:
    pairs = _pairs(readings)
    if not pairs:
        return []
    interval = _exact_selector([p["seconds"] for p in pairs], 0.5)  # joined to every pair
    return [
        (
            p["_time"] - p["elapsed"],
            (p["_value"] - p["step"] / 2.0) * p["seconds"] / 3600000.0
            if p["seconds"] <= GAP_FACTOR * interval
            else 0.0,
        )
        for p in pairs
    ]


def _in_range(series: Series, start: int, stop: int) -> Series:
    return {key: [(t, v) for t, v in rows if start <= t < stop] for key, rows in series.items()}


def flux_range_energy(series: Series, start: int, stop: int) -> dict[str, float]:
    """The "Energy per channel over the range" panel: energy |> sum()."""
    return {
        key: sum(value for _, value in _contributions(rows))
        for key, rows in _in_range(series, start, stop).items()
        if len(rows) > 1
    }


def _local_windows(start: int, stop: int, zone: ZoneInfo) -> list[tuple[int, int]]:
    """aggregateWindow(every: 1d, location: zone): local midnights, clipped to the range."""
    day = datetime.fromtimestamp(start, zone).date()
    windows = []
    while True:
        begin = int(datetime.combine(day, datetime.min.time(), zone).timestamp())
        end = int(datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).timestamp())
        if begin >= stop:
            return windows
        windows.append((max(begin, start), min(end, stop)))
        day += timedelta(days=1)


def flux_daily_energy(
    series: Series, start: int, stop: int, zone: ZoneInfo
) -> dict[str, dict[int, float]]:
    """The "Daily energy" panel: {channel: {window _start (unix s): kWh}} (createEmpty false)."""
    daily: dict[str, dict[int, float]] = {}
    for key, rows in _in_range(series, start, stop).items():
        contributions = _contributions(rows)
        for begin, end in _local_windows(start, stop, zone):
            inside = [value for time, value in contributions if begin <= time < end]
            if inside:
                daily.setdefault(key, {})[begin] = sum(inside)
    return daily


# ---------------------------------------------------------------- the independent reference


def reference_energy(
    readings: list[tuple[int, float]], zone: ZoneInfo
) -> tuple[float, dict[date, float]]:
    """From the README's rule: the trapezoid of each pair of consecutive readings, unless they
    are more than 3 times the logger's interval apart (the median spacing, the lower middle one
    for an even count); a pair belongs to the local day of its first reading. kWh."""
    rows = sorted(readings)
    spacings = sorted(b[0] - a[0] for a, b in itertools.pairwise(rows))
    if not spacings:
        return 0.0, {}
    interval = spacings[(len(spacings) + 1) // 2 - 1]
    total, days = 0.0, {}
    for (t0, p0), (t1, p1) in itertools.pairwise(rows):
        joules = (p0 + p1) / 2 * (t1 - t0) if t1 - t0 <= 3 * interval else 0.0
        day = datetime.fromtimestamp(t0, zone).date()
        days[day] = days.get(day, 0.0) + joules / 3.6e6
        total += joules / 3.6e6
    return total, days


# ---------------------------------------------------------------- data


def at(text: str, zone: ZoneInfo = PARIS) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp())


def steady(start: int, stop: int, watts: float, every: int = 600) -> list[tuple[int, float]]:
    return [(t, watts) for t in range(start, stop, every)]


def logger_with_gaps_restarts_and_dst() -> Series:
    """Two channels of a 10-minute logger from 20 March to 10 April 2026 (Paris goes to
    summer time on 29 March): a varying load, a restart (an all-zero row 3 minutes after a
    reading, then readings on a shifted clock), a 5-day hole and a 50-minute one."""
    start, stop = at("2026-03-20T00:00:00"), at("2026-04-10T00:00:00")
    hole = (at("2026-04-01T08:00:00"), at("2026-04-06T17:00:00"))
    short_hole = (at("2026-03-25T10:00:00"), at("2026-03-25T10:50:00"))
    restart = at("2026-03-27T12:03:00")
    series: Series = {"M1_Ch1": [], "M1_Ch2": []}
    for t in range(start, stop, 600):
        if hole[0] < t < hole[1] or short_hole[0] < t < short_hole[1]:
            continue
        shift = 120 if t > restart else 0
        hour = datetime.fromtimestamp(t, PARIS).hour
        series["M1_Ch1"].append((t + shift, 2000.0 + 100 * (hour % 7)))
        series["M1_Ch2"].append((t + shift, 500.0 if 8 <= hour < 18 else 50.0))
    for rows in series.values():
        rows.append((restart, 0.0))
    return series


# ---------------------------------------------------------------- tests


def test_a_gap_adds_nothing_where_integral_bridged_it():
    """2 kW for half an hour, a 2-month hole, 2 kW for half an hour again: 2 kWh, not the
    ~2,900 kWh that Flux integral() adds by drawing a straight line across the hole."""
    before = steady(at("2026-01-05T12:00:00"), at("2026-01-05T12:40:00"), 2000.0)
    after = steady(at("2026-03-05T12:00:00"), at("2026-03-05T12:40:00"), 2000.0)
    series = {"M1_Ch1": before + after}
    energy = flux_range_energy(series, at("2026-01-01T00:00:00"), at("2026-04-01T00:00:00"))
    assert energy["M1_Ch1"] == pytest.approx(2 * 3 * 600 * 2000 / 3.6e6)  # 6 pairs of 10 min
    rows = sorted(series["M1_Ch1"])
    bridged = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(rows)) / 3.6e6
    assert bridged - energy["M1_Ch1"] > 2800  # what integral(unit: 1h) would have shown


def test_a_restart_row_of_zeros_counts_as_a_reading():
    readings = [(0, 1000.0), (600, 1000.0), (780, 0.0), (1200, 1000.0), (1800, 1000.0)]
    energy = flux_range_energy({"c": readings}, 0, 3600)["c"]
    # 600 s at 1 kW, 180 s from 1 kW to 0, 420 s from 0 to 1 kW, 600 s at 1 kW
    assert energy == pytest.approx((600_000 + 90_000 + 210_000 + 600_000) / 3.6e6)


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2026-03-28", 24), ("2026-03-29", 23), ("2026-03-30", 24), ("2025-10-26", 25)],
)
def test_local_days_follow_daylight_saving(day, hours):
    """A steady 1 kW over local days: 23 kWh on the spring day, 25 on the autumn one; each
    window starts at local midnight."""
    first = datetime.fromisoformat(day).date()
    start = at(f"{first - timedelta(days=1)}T00:00:00")
    stop = at(f"{first + timedelta(days=2)}T00:00:00")
    daily = flux_daily_energy({"c": steady(start, stop, 1000.0)}, start, stop, PARIS)["c"]
    midnight = at(f"{day}T00:00:00")
    assert daily[midnight] == pytest.approx(hours)
    assert datetime.fromtimestamp(midnight, PARIS).time().hour == 0


def test_days_add_up_to_the_range_and_match_the_reference():
    series = logger_with_gaps_restarts_and_dst()
    start, stop = at("2026-03-20T00:00:00"), at("2026-04-10T00:00:00")
    total = flux_range_energy(series, start, stop)
    daily = flux_daily_energy(series, start, stop, PARIS)
    for channel, readings in series.items():
        expected_total, expected_days = reference_energy(readings, PARIS)
        assert total[channel] == pytest.approx(expected_total, rel=1e-12)
        assert sum(daily[channel].values()) == pytest.approx(total[channel], rel=1e-12)
        got_days = {datetime.fromtimestamp(t, PARIS).date(): v for t, v in daily[channel].items()}
        assert got_days.keys() == expected_days.keys()
        for day, value in expected_days.items():
            assert got_days[day] == pytest.approx(value, rel=1e-12, abs=1e-12)
    # the 5-day hole adds nothing: those days have no bar, or only their readings' energy
    assert date(2026, 4, 3) not in {
        datetime.fromtimestamp(t, PARIS).date() for t in daily["M1_Ch1"]
    }


def test_the_model_is_the_pipeline_the_template_runs():
    """The constants and stages modelled above are those of the shipped queries."""
    panels = {p["title"]: p for p in json.loads(TEMPLATE.read_text(encoding="utf-8"))["panels"]}
    daily = panels["Daily energy"]["targets"][0]["query"]
    total = panels["Energy per channel over the range"]["targets"][0]["query"]
    for query in (daily, total):
        stages = re.findall(r"\|> (\w+)\(", query)
        assert stages[:6] == ["range", "filter", "filter", "duplicate", "difference", "elapsed"]
        assert 'quantile(column: "seconds", q: 0.5, method: "exact_selector")' in query
        assert f"if r.seconds <= {GAP_FACTOR} * r.interval" in query
        assert "(r._value - r.step / 2.0) * r.seconds / 3600000.0" in query
        assert "time(v: int(v: r._time) - r.elapsed * 1000000000)" in query
    assert "energy\n  |> sum()" in total
    assert re.search(r'aggregateWindow\(\s*every: 1d,\s*fn: sum,\s*location: timezone\.location'
                     r'\(name: "\$\{timezone\}"\),\s*timeSrc: "_start",', daily)  # fmt: skip


def test_the_bundled_samples_across_a_hole_of_eleven_days():
    """The two V003 files of dominique/v003 are 11 days apart: integral() would put some
    60 kWh on channel Ch2 across the hole; the dashboards count only what was measured."""
    device = PROJECT_ROOT / "examples" / "data" / "dominique" / "v003" / "02000800"
    series: Series = {}
    for path in sorted(device.glob("*.tsv")):
        for point in reference_points(path, "v003", now=2e9):
            if point._tags.get("channel_unit") == "W":
                (value,) = point._fields.values()
                series.setdefault(point._tags["channel_id"], []).append((point._time, value))
    rows = sorted(series["M02000800_Ch2"])
    assert max(b[0] - a[0] for a, b in itertools.pairwise(rows)) > 10 * 86400
    energy = flux_range_energy(series, 0, 2**40)
    for channel, readings in series.items():
        assert energy.get(channel, 0.0) == pytest.approx(reference_energy(readings, PARIS)[0])
    bridged = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(rows)) / 3.6e6
    assert bridged > 50 and energy["M02000800_Ch2"] < 1
