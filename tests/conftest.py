"""Fixtures every test module may use; the helpers behind them are in ``tests/helpers.py``.

- the doubles' fixtures (``influxdb``, ``influxdb_env``, ``grafana``, ``grafana_env``...), from
  ``tests/doubles/influxdb_fixtures.py`` and ``tests/doubles/grafana_fixtures.py``;
- ``samples``: the bundled logger files;
- ``stack``: a temporary installation of the upload hook, with a fresh InfluxDB double.

``--reverse-order`` runs the collected tests last to first: no test may depend on what an
earlier one left (``pytest --reverse-order tests/grafana``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Helpers assert too: their failures are shown like a test's. The doubles' fixture modules are
# registered before tests.helpers imports them, so that they are rewritten as plugins.
pytest.register_assert_rewrite(
    "tests.helpers", "tests.doubles.influxdb_fixtures", "tests.doubles.grafana_fixtures"
)

from tests.doubles.influxdb import InfluxDBDouble  # noqa: E402
from tests.helpers import SAMPLES, HookInstallation  # noqa: E402

pytest_plugins = ["tests.doubles.influxdb_fixtures", "tests.doubles.grafana_fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reverse-order",
        action="store_true",
        help="run the tests last to first, to show that none depends on an earlier one",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--reverse-order"):
        items.reverse()


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def stack(tmp_path: Path, influxdb: InfluxDBDouble) -> HookInstallation:
    """The upload hook installed in ``tmp_path`` (data, logs, .env, stand-ins), its .env
    pointing at the ``influxdb`` double."""
    return HookInstallation.create(tmp_path, influxdb)
