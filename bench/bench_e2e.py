"""End-to-end benchmark: the real tsv_parser.py process writing into a loopback sink.

    .venv/bin/python bench/bench_e2e.py            # about two minutes on 2 cores
    .venv/bin/python bench/bench_e2e.py --quick

Two measurements (issue #3), each the best of three runs of a fresh tsv_parser.py process,
start-up included, with gzip, into bench/sink.py (a server process on 127.0.0.1 that answers
204 and discards):

- one large file: values per second from the command's start to its exit (bar >= 1 M/s),
  and the peak RSS of the parser and of its sender process;
- a sweep of 1,000 small daily files, each moved to parsed/ with its ingestion records
  written: total seconds (bar <= 20 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synthetic import make_file  # noqa: E402

OUT = ROOT / "bench" / "out"
LARGE_TEMPLATE = ROOT / "examples/data/company1/campaign1/02001084/T302_251012_031720.tsv"
DAILY_TEMPLATE = ROOT / "examples/data/acme/base/02001283/T302_251027_031520.tsv"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sink() -> tuple[subprocess.Popen, str]:
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    sink.stdout.readline()  # "listening on ..."
    return sink, f"http://127.0.0.1:{port}"


def parser_env(url: str, reports: Path) -> dict[str, str]:
    return {
        **os.environ,
        "POWERVIEW_ENV_FILE": os.devnull,
        "INFLUXDB_HOST": url,
        "INFLUXDB_ORG": "bench",
        "INFLUXDB_ADMIN_TOKEN": "bench-token",
        "TSV_REPORT_DIR": str(reports),
        "TSV_LOG_LEVEL": "WARNING",
    }


def timed_run(env: dict[str, str], *args: str) -> tuple[float, dict]:
    reports = Path(env["TSV_REPORT_DIR"])
    shutil.rmtree(reports, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "tsv_parser.py"), *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    (report,) = reports.glob("*.json")
    return seconds, json.loads(report.read_text())


def largest_child_rss_mb() -> float:
    """The peak RSS of the largest process run so far (the parser or its sender process)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def daily_files(target: Path, count: int) -> None:
    """``count`` one-day files: the real daily sample shifted by one day each."""
    lines = DAILY_TEMPLATE.read_text().splitlines()
    header, rows = lines[:2], [line.split("\t", 1) for line in lines[2:] if line.strip()]
    base = [datetime.strptime(stamp, "%d/%m/%y %H:%M:%S") for stamp, _ in rows]
    for day in range(count):
        device = target / "acme" / "site" / f"0200{day % 4:04d}"
        device.mkdir(parents=True, exist_ok=True)
        shift = timedelta(days=day - count)
        body = [
            f"{(moment + shift).strftime('%d/%m/%y %H:%M:%S')}\t{values}"
            for moment, (_, values) in zip(base, rows, strict=True)
        ]
        serials = header[0].replace("02001283", device.name)
        text = "\n".join([serials, header[1], *body]) + "\n"
        (device / f"T302_{day:04d}.tsv").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size_mb, files, repeat = (5, 100, 1) if args.quick else (100, 1000, 3)
    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "e2e"
    sink, url = start_sink()
    env = parser_env(url, work / "reports")
    results: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        large = OUT / f"31-column-{size_mb}MB.tsv"
        if not large.exists():
            make_file(LARGE_TEMPLATE, large, size_mb * 1_000_000)
        best = None
        for _ in range(repeat):
            shutil.rmtree(work / "data", ignore_errors=True)
            target = work / "data" / "bench" / "site" / "02001171" / "T302_large.tsv"
            target.parent.mkdir(parents=True)
            shutil.copy(large, target)
            seconds, report = timed_run(env, "--dataFolder", str(work / "data"),
                                        "--tsvFile", str(target))  # fmt: skip
            values = report["totals"]["points_written"]
            assert report["exit_code"] == 0 and values > 0
            if best is None or seconds < best[0]:
                best = (seconds, values)
        assert best is not None
        results["large_file"] = {
            "file_mb": round(large.stat().st_size / 1e6, 1),
            "values": best[1],
            "seconds": round(best[0], 2),
            "values_per_s": round(best[1] / best[0]),
            "peak_rss_mb_of_any_process": round(largest_child_rss_mb(), 1),
        }
        print(f"large file: {json.dumps(results['large_file'])}", flush=True)

        best_sweep = None
        for _ in range(repeat):
            shutil.rmtree(work / "data", ignore_errors=True)
            daily_files(work / "data", files)
            seconds, report = timed_run(env, "--dataFolder", str(work / "data"), "--min-age", "0")
            assert report["totals"]["ok"] == files, report["totals"]
            if best_sweep is None or seconds < best_sweep[0]:
                best_sweep = (seconds, report["totals"]["points_written"])
        assert best_sweep is not None
        results["sweep"] = {
            "files": files,
            "values": best_sweep[1],
            "seconds": round(best_sweep[0], 2),
            "files_per_s": round(files / best_sweep[0], 1),
        }
        print(f"sweep: {json.dumps(results['sweep'])}", flush=True)
    finally:
        sink.terminate()
        sink.wait()
    (OUT / "e2e.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
