"""Fixtures of the Grafana automation tests; the helpers behind them are in ``tests/helpers.py``
(which also makes ``ansible.module_utils.powerview_*`` importable, as inside Ansible).

- ``site_factory``: fresh Grafana sites (both doubles and a HOME) for one test;
- ``site``: a private copy of the module's ``baseline``, a site that module builds once
  (``scope="module"``) because its playbook runs cost seconds; no test sees another's changes.

The Grafana double's own fixtures come from ``tests.doubles.grafana_fixtures``, registered in
``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Baseline, GrafanaSite


def _check_contract(problems: list[str]) -> None:
    assert not problems, "requests outside Grafana's API description:\n" + "\n".join(problems)


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[Callable[..., GrafanaSite]]:
    """Start a site for this test (a ``kind`` of GrafanaSite, with ``GrafanaSite.start``'s
    options: ``env``, ``database``...);
    the test fails if its Grafana received a request Grafana's API description refuses."""
    started: list[GrafanaSite] = []

    def start(kind: type[GrafanaSite] = GrafanaSite, **options: Any) -> GrafanaSite:
        site = kind.start(tmp_path / f"home{len(started)}", **options)
        started.append(site)
        return site

    yield start
    _check_contract([problem for site in started for problem in site.stop()])


@pytest.fixture
def site(baseline: Baseline) -> Iterator[GrafanaSite]:
    """The module's ``baseline``, copied for this test alone."""
    copy = baseline.copy()
    yield copy
    _check_contract(copy.stop())
