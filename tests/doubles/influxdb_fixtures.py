"""Pytest fixtures around the InfluxDB test double (register with ``pytest_plugins``).

- ``influxdb``: a fresh double per test (org ``powerview``, an operator admin token);
- ``influxdb_factory``: builds doubles with other options (``token_listing="hashed"``...);
- ``influxdb_env``: environment variables that point a PowerView process at ``influxdb``;
- ``influxdb_contract``: the OpenAPI contract, loaded once, to check recorded requests.

A double per test keeps tests independent (no leftover buckets, tokens or faults); starting one
costs a few milliseconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contracts.openapi_check import ApiContract
from tests.doubles.influxdb import InfluxDBDouble

CONTRACT_PATH = Path(__file__).resolve().parent.parent / "contracts" / "influxdb-oss-v2.yml"


@pytest.fixture
def influxdb_factory() -> Iterator[Callable[..., InfluxDBDouble]]:
    """Start doubles with any InfluxDBDouble options; all are stopped after the test."""
    started: list[InfluxDBDouble] = []

    def start(**options: Any) -> InfluxDBDouble:
        double = InfluxDBDouble(**options).start()
        started.append(double)
        return double

    yield start
    for double in started:
        double.stop()


@pytest.fixture
def influxdb(influxdb_factory: Callable[..., InfluxDBDouble]) -> InfluxDBDouble:
    """A running double with org ``powerview`` and an operator token."""
    return influxdb_factory()


@pytest.fixture
def influxdb_env(influxdb: InfluxDBDouble) -> dict[str, str]:
    """The process environment plus the settings that point PowerView at ``influxdb``.

    ``POWERVIEW_ENV_FILE=/dev/null`` keeps a developer's ``.env`` out of the test.
    """
    env = dict(os.environ)
    env.update(
        INFLUXDB_HOST=influxdb.url,
        INFLUXDB_ORG=influxdb.org,
        INFLUXDB_ADMIN_TOKEN=influxdb.admin_token,
        POWERVIEW_ENV_FILE=os.devnull,
    )
    env.pop("INFLUXDB_URL", None)
    return env


@pytest.fixture(scope="session")
def influxdb_contract() -> ApiContract:
    """The InfluxDB OSS v2 OpenAPI contract (tests/contracts/influxdb-oss-v2.yml)."""
    return ApiContract.load(CONTRACT_PATH)
