"""Shared fixtures: the bundled sample files, the contract files, the parser as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.doubles.influxdb_fixtures", "tests.doubles.grafana_fixtures"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES = PROJECT_ROOT / "examples" / "data"
EXPECTED = Path(__file__).resolve().parent / "data" / "expected"
PARSER = PROJECT_ROOT / "tsv_parser.py"


def run_parser(
    env: dict[str, str], data: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    """The real ``tsv_parser.py`` over ``data`` (files of any age), as a separate process."""
    return subprocess.run(
        [sys.executable, str(PARSER), "--dataFolder", str(data), "--min-age", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def last_report(env: dict[str, str]) -> dict:
    """The newest JSON run report in ``TSV_REPORT_DIR``."""
    reports = sorted(Path(env["TSV_REPORT_DIR"]).glob("tsv_parser_*.json"), key=os.path.getmtime)
    return json.loads(reports[-1].read_text())


def sample_files() -> list[Path]:
    """Every bundled real logger file, as paths relative to the sample data folder."""
    return sorted(path.relative_to(SAMPLES) for path in SAMPLES.rglob("*.tsv"))


@pytest.fixture
def samples() -> Path:
    return SAMPLES
