"""Large synthetic MV2 files shaped like a real sample file.

The header (serials, labels, format) is the real file's. Each channel's values follow a
random walk that stays within the range the channel has in the real file, moves by steps of
the size seen between its real successive readings, and is written with the same number of
decimals. That keeps what matters for speed realistic: row width, value lengths and how often
a value repeats (the benchmark prints the share of distinct values, for comparison with the
real files).
"""

from __future__ import annotations

import itertools
import random
import statistics
from datetime import UTC, datetime
from pathlib import Path


def _channel_models(rows: list[list[str]]) -> list[tuple[float, float, float, int, float]]:
    """(low, high, typical step, decimals, start) per value column of the real rows."""
    models = []
    for column in zip(*rows, strict=True):
        numbers = [float(value) for value in column]
        decimals = max((len(value.partition(".")[2]) for value in column), default=0)
        steps = [abs(b - a) for a, b in itertools.pairwise(numbers)]
        step = statistics.median(steps) if steps else 0.0
        step = step or 10**-decimals
        models.append((min(numbers), max(numbers), step, decimals, numbers[0]))
    return models


def make_file(
    template: Path,
    target: Path,
    size_bytes: int,
    *,
    interval_s: int = 10,
    start: int = 1735689600,
    seed: int = 7,
) -> dict[str, float]:
    """Write ``target`` (about ``size_bytes``) with ``template``'s header; returns its shape."""
    lines = template.read_text().splitlines()
    header, body = lines[:2], lines[2:]
    width = len(header[0].split("\t"))
    real_rows = [line.split("\t")[1:] for line in body if line.count("\t") == width - 1]
    real_rows = [row for row in real_rows if any(float(v) != 0 for v in row)]
    models = _channel_models(real_rows)
    generator = random.Random(seed)
    values = [model[4] for model in models]
    formats = [f"%.{model[3]}f" for model in models]
    written, rows, distinct = 0, 0, set()
    stamp = start
    with open(target, "w", encoding="ascii", newline="\n") as out:
        for line in header:
            out.write(line + "\n")
        while written < size_bytes:
            text_values = []
            for index, (low, high, step, _, _) in enumerate(models):
                value = values[index] + generator.gauss(0.0, step)
                value = min(max(value, low), high)
                values[index] = value
                text_values.append(formats[index] % value)
            if rows < 200_000:
                distinct.update(enumerate(text_values))
            moment = datetime.fromtimestamp(stamp, UTC).strftime("%d/%m/%y %H:%M:%S")
            row = moment + "\t" + "\t".join(text_values) + "\n"
            out.write(row)
            written += len(row)
            stamp += interval_s
            rows += 1
    sampled = min(rows, 200_000) * len(models)
    return {"rows": rows, "channels": len(models), "distinct_share": len(distinct) / sampled}
