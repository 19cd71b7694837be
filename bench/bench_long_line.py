"""A 100 MB line without a newline: refused within seconds, peak RSS under 150 MB.

A damaged upload can hold one endless line (a logger cut off mid-write, a binary file named
.tsv). The parser reads lines of at most ``core.formats.MAX_LINE_BYTES`` and refuses a longer
one as ``line_too_long`` as soon as it has read that much of it, so neither memory nor time
grows with the line. This script writes such files in ``bench/out/`` and runs the real
``tsv_parser.py --dry-run`` on each in a fresh process, measuring its wall time and its peak
resident memory (``ru_maxrss`` of the child), best of three.

    .venv/bin/python bench/bench_long_line.py            # 100 MB lines
    .venv/bin/python bench/bench_long_line.py --size-mb 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "long-line"
HEADER = b"02001283\t02001283\t02001283\nMV_T302_V002\tPh 1 V\tVoie1 W\n"
ROW = b"01/01/26 00:00:00\t230.1\t5.0\n"
TIME_BAR_S = 10.0
RSS_BAR_MB = 150.0
CHUNK = b"7" * (1 << 20)


def write_case(path: Path, size_mb: int, where: str) -> None:
    """A file whose one long line is the first header line or a data row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:
        if where == "data":
            stream.write(HEADER + ROW * 10 + b"01/01/26 00:10:00\t")
        for _ in range(size_mb):
            stream.write(CHUNK)


def run_once(data: Path, path: Path) -> tuple[float, float, int, dict]:
    """(seconds, peak RSS in MB, exit code, the file's entry of the report) of one run."""
    command = [
        sys.executable, str(ROOT / "tsv_parser.py"), "--dataFolder", str(data),
        "--tsvFile", str(path), "--dry-run",
    ]  # fmt: skip
    env = {**os.environ, "POWERVIEW_ENV_FILE": os.devnull}
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT
    )
    output = process.stdout.read() if process.stdout else b""
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    entry = json.loads(output)["files"][0]
    return elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100, help="length of the line in MB")
    args = parser.parse_args()
    data = OUT / "data"
    ok = True
    for where in ("header", "data"):
        path = data / "acme" / "site" / "02001283" / f"long_{where}.tsv"
        write_case(path, args.size_mb, where)
        runs = [run_once(data, path) for _ in range(3)]
        seconds = min(run[0] for run in runs)
        rss = min(run[1] for run in runs)
        _, _, code, entry = runs[0]
        error = entry["error"] or {}
        print(
            f"{args.size_mb} MB line in the {where}: exit {code}, {error.get('code')} at line "
            f"{error.get('line')}, {seconds:.2f} s, peak RSS {rss:.1f} MB "
            f"(bars: {TIME_BAR_S:g} s, {RSS_BAR_MB:g} MB)"
        )
        ok &= error.get("code") == "line_too_long" and seconds <= TIME_BAR_S
        ok &= rss <= RSS_BAR_MB
        path.unlink()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
