"""The real-influxd tier: one influxd (and its v2 adapter) for the whole test session.

When influxd cannot be had (not installed, and not root or no apt-get to install it), every
test of the tier is skipped with one line saying why, unless ``POWERVIEW_REQUIRE_INFLUXD=1``
(set by ``.ci/run``): then the tier fails, so CI cannot pass without the real engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.realinflux.server import REQUIRE_VARIABLE, InfluxdUnavailableError, RealInflux


@pytest.fixture(scope="session")
def real_influx() -> Iterator[RealInflux]:
    """influxd 1.x on 127.0.0.1 (temporary config and data folder) behind the v2 adapter."""
    try:
        with RealInflux.start() as server:
            yield server
    except InfluxdUnavailableError as error:
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"real-influxd tier required ({REQUIRE_VARIABLE}=1) but {error}")
        pytest.skip(f"real-influxd tier skipped: {error}")


@pytest.fixture
def real_env(real_influx: RealInflux, tmp_path) -> Iterator[dict[str, str]]:
    """An empty server and the environment of a parser process pointed at it."""
    real_influx.drop_all()
    env = dict(os.environ)
    env.pop("INFLUXDB_URL", None)
    env.update(
        real_influx.env(),
        POWERVIEW_ENV_FILE=os.devnull,
        TSV_REPORT_DIR=str(tmp_path / "reports"),
        TSV_LOG_LEVEL="WARNING",
        INFLUXDB_MAX_RETRIES="1",
        INFLUXDB_RETRY_INTERVAL_MS="50",
    )
    yield env
