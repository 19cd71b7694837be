"""Pytest fixtures around the Grafana test double (register with ``pytest_plugins``).

- ``grafana_contract``: Grafana's Swagger 2 API description from ``../shared/specs/`` (AGPL,
  so it is read there and never copied into the project), completed with the calls Grafana
  documents since that Grafana 8-era description was generated; None when the file is absent,
  which skips only the contract check;
- ``grafana_factory`` / ``grafana``: doubles checking every request against that contract; a
  test fails when its double received a request the contract refuses;
- ``grafana_env``: environment variables that point a PowerView process at ``grafana``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contracts.openapi_check import ApiContract
from tests.doubles.grafana import GrafanaDouble

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = PROJECT_ROOT.parent / "shared" / "specs" / "grafana-api-merged.json"


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": "body", "in": "body", "required": True, "schema": schema}


def _path(name: str, type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "type": type_}


_OK = {"200": {"description": "OK"}}

# Calls PowerView (or a company user's browser, in the isolation tests) makes that Grafana
# documents but the Grafana 8-era description lacks or describes wrongly. Written from the
# documentation pages named beside each entry (docs/sources/developers/http_api/).
DOCUMENTED_LATER: dict[tuple[str, str], dict[str, Any]] = {
    # other.md, "Returns health information about Grafana"
    ("/health", "get"): {"parameters": [], "responses": _OK},
    # data_source.md, "Update an existing data source" (by uid, Grafana 9+)
    ("/datasources/uid/{datasource_uid}", "put"): {
        "parameters": [
            _path("datasource_uid"),
            _body({"$ref": "#/definitions/UpdateDataSourceCommand"}),
        ],
        "responses": _OK,
    },
    # data_source.md, "Check data source health" (by uid)
    ("/datasources/uid/{datasource_uid}/health", "get"): {
        "parameters": [_path("datasource_uid")],
        "responses": _OK,
    },
    # dashboard_permissions.md, permissions by dashboard uid (Grafana 9+)
    ("/dashboards/uid/{uid}/permissions", "get"): {
        "parameters": [_path("uid")],
        "responses": _OK,
    },
    ("/dashboards/uid/{uid}/permissions", "post"): {
        "parameters": [_path("uid"), _body({"$ref": "#/definitions/UpdateDashboardAclCommand"})],
        "responses": _OK,
    },
    # team.md, "Add Team Member": the body {"userId": N} is missing from the description
    ("/teams/{team_id}/members", "post"): {
        "parameters": [
            _path("team_id"),
            _body(
                {
                    "type": "object",
                    "required": ["userId"],
                    "properties": {"userId": {"type": "integer"}},
                }
            ),
        ],
        "responses": _OK,
    },
    # data_source.md, "Query a data source"
    ("/ds/query", "post"): {
        "parameters": [
            _body(
                {
                    "type": "object",
                    "required": ["queries"],
                    "properties": {
                        "queries": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                        "from": {"type": "string"},
                        "to": {"type": "string"},
                    },
                }
            )
        ],
        "responses": _OK,
    },
    # Read by Grafana's own frontend on every page (pkg/api/frontendsettings.go); not part of
    # the documented HTTP API, used here only by the isolation tests.
    ("/frontend/settings", "get"): {"parameters": [], "responses": _OK},
}


def grafana_contract_document(spec: dict[str, Any]) -> dict[str, Any]:
    """The Swagger document completed with ``DOCUMENTED_LATER`` (the spec is not modified)."""
    document = copy.deepcopy(spec)
    for (path, method), operation in DOCUMENTED_LATER.items():
        document["paths"].setdefault(path, {})[method] = operation
    return document


def load_grafana_contract(path: Path = SPEC_PATH) -> ApiContract | None:
    """The completed contract, or None when the description is not on this machine."""
    if not path.is_file():
        return None
    return ApiContract(grafana_contract_document(json.loads(path.read_text(encoding="utf-8"))))


@pytest.fixture(scope="session")
def grafana_contract() -> ApiContract | None:
    return load_grafana_contract()


@pytest.fixture
def grafana_factory(
    grafana_contract: ApiContract | None,
) -> Iterator[Callable[..., GrafanaDouble]]:
    """Start doubles with any GrafanaDouble options; they are stopped after the test, and the
    test fails if one of them received a request Grafana's API description refuses."""
    started: list[GrafanaDouble] = []

    def start(**options: Any) -> GrafanaDouble:
        options.setdefault("contract", grafana_contract)
        double = GrafanaDouble(**options).start()
        started.append(double)
        return double

    yield start
    problems = [problem for double in started for problem in double.contract_problems]
    for double in started:
        double.stop()
    assert not problems, "requests outside Grafana's API description:\n" + "\n".join(problems)


@pytest.fixture
def grafana(grafana_factory: Callable[..., GrafanaDouble]) -> GrafanaDouble:
    """A running double: Main Org. (id 1) and a server admin, Grafana's default settings."""
    return grafana_factory()


def grafana_environment(double: GrafanaDouble) -> dict[str, str]:
    """The process environment plus the settings that point PowerView at ``double``.

    ``POWERVIEW_ENV_FILE=/dev/null`` keeps a developer's ``.env`` out of the test."""
    env = dict(os.environ)
    env.update(
        GRAFANA_URL=double.url,
        GRAFANA_USERNAME=double.admin_login,
        GRAFANA_PASSWORD=double.admin_password,
        POWERVIEW_ENV_FILE=os.devnull,
    )
    env.pop("GRAFANA_API_TOKEN", None)
    return env


@pytest.fixture
def grafana_env(grafana: GrafanaDouble) -> dict[str, str]:
    return grafana_environment(grafana)
