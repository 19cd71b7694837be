"""A sweep of 1,000 daily files into a real InfluxDB storage engine (issue #12, item 4).

    .venv/bin/python bench/bench_influxd_sweep.py             # 1,000 files, best of 3
    .venv/bin/python bench/bench_influxd_sweep.py --files 100 --runs 1

The server is the real-influxd test tier (``tests/realinflux/server.py``: influxd 1.x, the
TSM engine and line-protocol parser 2.x still uses, behind the small v2 adapter), started
once. Each run: an empty server, 1,000 daily files shaped like the bundled 143-row sample
(``bench/bench_burst.py``'s generator: each file its own 30 series, 20 companies, so 20
buckets to create), then one fresh ``tsv_parser.py`` process sweeping the data folder, timed
from its start to its exit (Python start-up, bucket creation, every file's points, ingestion
records and moves included). Checked after each run: every file in ``parsed/``, the parser's
exit code 0, every value written (its run report), and every value of 25 files spread over
the companies stored (InfluxQL ``count(*)`` of each file's series; counting a whole
company's 1,500 fields is more than influxd 1.6 answers in minutes).

Bar: under 10 s on this 2-core machine. Prints the runs and a JSON line (also written to
``bench/out/influxd_sweep.json``). Exit status 0 when the best run meets the bar and every
check holds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_burst import make_uploads  # noqa: E402
from tests.realinflux.server import RealInflux  # noqa: E402

OUT = ROOT / "bench" / "out"
WORK = OUT / "influxd_sweep"
BAR_S = 10.0
SAMPLE = 25  # files whose stored values are counted in influxd after each run


def stored_values(server: RealInflux, company: str, master: str) -> int:
    """The values stored for one file (its master serial's series): InfluxQL ``count(*)``
    over one file's 30 fields (a count over a whole company's fields is too slow for
    influxd 1.6 to serve here)."""
    query = f'SELECT count(*) FROM "electrical" WHERE "device_master_sn" = \'{master}\''
    answer = server.query(query, company)
    total = 0
    for result in answer.get("results", []):
        for series in result.get("series", []):
            for row in series.get("values", []):
                total += sum(value for value in row[1:] if isinstance(value, int))
    return total


def one_run(server: RealInflux, count: int) -> dict[str, object]:
    server.drop_all()
    shutil.rmtree(WORK, ignore_errors=True)
    data = WORK / "data"
    uploads, shape = make_uploads(count, data)
    for upload in uploads:
        upload.path.parent.mkdir(parents=True, exist_ok=True)
        upload.path.write_bytes(upload.content)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        **server.env(),
        "POWERVIEW_ENV_FILE": os.devnull,
        "TSV_REPORT_DIR": str(WORK / "reports"),
        "TSV_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, str(ROOT / "tsv_parser.py"), "--dataFolder", str(data)]
    command += ["--min-age", "0"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    parsed = sum(1 for upload in uploads if (upload.path.parent / "parsed" / upload.name).exists())
    per_file = shape.rows * shape.channels
    reports = sorted((WORK / "reports").glob("tsv_parser_*.json"))
    totals = json.loads(reports[-1].read_text(encoding="utf-8"))["totals"] if reports else {}
    sample = uploads[:: max(1, count // SAMPLE)]
    stored = [stored_values(server, upload.company, upload.master) for upload in sample]
    return {
        "seconds": round(seconds, 2),
        "exit_code": done.returncode,
        "files": count,
        "in_parsed": parsed,
        "values_written": totals.get("values_written"),
        "values_expected": count * per_file,
        "sampled_files": len(sample),
        "sampled_files_complete": sum(1 for found in stored if found == per_file),
        "ok": done.returncode == 0
        and parsed == count
        and totals.get("values_written") == count * per_file
        and all(found == per_file for found in stored),
        "stderr_tail": done.stderr.strip().splitlines()[-3:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with RealInflux.start() as server:
        for number in range(1, args.runs + 1):
            run = one_run(server, args.files)
            runs.append(run)
            print(
                f"run {number}: {run['seconds']:.2f} s, exit {run['exit_code']}, "
                f"{run['in_parsed']}/{run['files']} in parsed/, "
                f"{run['values_written']:,}/{run['values_expected']:,} values written, "
                f"{run['sampled_files_complete']}/{run['sampled_files']} sampled files "
                "complete in influxd",
                flush=True,
            )
    best = min(float(run["seconds"]) for run in runs)  # type: ignore[arg-type]
    result = {
        "benchmark": "influxd_sweep",
        "files": args.files,
        "best_s": best,
        "bar_s": BAR_S,
        "met": best < BAR_S and all(run["ok"] for run in runs),
        "runs": runs,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "influxd_sweep.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({key: value for key, value in result.items() if key != "runs"}))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
