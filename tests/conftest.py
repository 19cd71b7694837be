"""Shared fixtures: the bundled sample files and the contract files."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.doubles.influxdb_fixtures", "tests.doubles.grafana_fixtures"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES = PROJECT_ROOT / "examples" / "data"
EXPECTED = Path(__file__).resolve().parent / "data" / "expected"


def sample_files() -> list[Path]:
    """Every bundled real logger file, as paths relative to the sample data folder."""
    return sorted(path.relative_to(SAMPLES) for path in SAMPLES.rglob("*.tsv"))


@pytest.fixture
def samples() -> Path:
    return SAMPLES
