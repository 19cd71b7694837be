"""Ansible module: the InfluxDB data source of one company, token included, never shown."""

from __future__ import annotations

DOCUMENTATION = r"""
module: powerview_grafana_datasource
short_description: Ensure the InfluxDB data source of one PowerView company
description:
  - Creates or updates the data source keyed on its uid; C(url), C(type), C(name) and
    C(json_data) are compared with what Grafana returns and rewritten when they differ.
  - Grafana never returns a secure field. To know whether the stored token is the current
    one without reading it back, the module stores a fingerprint of it (the first 16 hex
    digits of its SHA-256) in jsonData C(powerviewTokenSha256) and sends the token again
    only when that fingerprint changed (rotation) or no token is stored.
  - The token comes from C(token), or from the standard output of C(token_command), which
    is run only when the data source is missing, has no token, or fails Grafana's health
    check (a rotated or revoked token). An InfluxDB that stores tokens hashed (OSS 2.9+)
    cannot print an existing token again, so calling it on every run would rotate the token
    every time. It is never run in check mode (it may create the bucket and its token).
options:
  org_id: {description: Organization id; null means only planned (check mode)., type: int}
  uid: {description: Data source uid., type: str, required: true}
  name: {description: Data source name., type: str}
  type:
    description: Plugin id, influxdb or influxdb-adecwatts-datasource.
    type: str
    default: influxdb
  url: {description: URL of InfluxDB as Grafana reaches it., type: str}
  json_data:
    description: jsonData (version, organization, defaultBucket...).
    type: dict
    default: {}
  token: {description: Read-only InfluxDB token., type: str, no_log: true}
  token_command:
    description: Command (argv) printing the token on stdout.
    type: list
    elements: str
  check_health:
    description: Ask Grafana to test the data source after a change (warns only).
    type: bool
    default: true
  state: {description: present or absent., type: str, default: present}
"""

RETURN = r"""
datasource_uid: {description: The data source uid., type: str}
token_fingerprint: {description: Fingerprint of the token now stored (not the token)., type: str}
"""

import hashlib  # noqa: E402
from collections.abc import Callable  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.powerview_grafana import (  # noqa: E402
    GrafanaClient,
    GrafanaError,
    api_path,
    changes,
    run_module,
)

FINGERPRINT_KEY = "powerviewTokenSha256"
COMPARED_FIELDS = ("name", "type", "access", "url", "isDefault", "basicAuth", "jsonData")


def token_fingerprint(token: str) -> str:
    """16 hex digits of SHA-256: enough to notice a rotation, useless to recover a token of
    InfluxDB's length (it is visible to the organization's members through jsonData)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def desired_body(params: dict, fingerprint: str | None) -> dict:
    json_data = dict(params.get("json_data") or {})
    if fingerprint:
        json_data[FINGERPRINT_KEY] = fingerprint
    return {
        "uid": params["uid"],
        "name": params.get("name") or params["uid"],
        "type": params.get("type") or "influxdb",
        "access": "proxy",
        "url": params.get("url") or "",
        "isDefault": False,
        "basicAuth": False,
        "jsonData": json_data,
    }


def shown(body: dict | None) -> dict:
    """What ``--diff`` shows: the compared fields, never a secret."""
    if not body:
        return {}
    return {field: body.get(field) for field in COMPARED_FIELDS}


def datasource_healthy(org: GrafanaClient, uid: str) -> bool:
    """Whether Grafana can query the data source with the token it stores."""
    status, health = org.call(
        "GET", api_path("datasources", "uid", uid, "health"), accept=(400, 404, 500, 502, 503)
    )
    return status == 200 and isinstance(health, dict) and health.get("status") == "OK"


def ensure_datasource(
    client: GrafanaClient,
    params: dict,
    check_mode: bool,
    fetch_token: Callable[[], str] | None = None,
) -> dict:
    """Create, update (token only when needed) or delete the data source ``params["uid"]``.

    ``fetch_token`` is called (never in check mode) only when a token must be sent."""
    uid, state, org_id = params["uid"], params["state"], params["org_id"]
    token = params.get("token") or None
    result: dict = {"datasource_uid": uid, "token_fingerprint": None}
    if org_id is None:
        after = shown(desired_body(params, None)) if state == "present" else {}
        return {**result, "changed": state == "present", "diff": changes({}, after)}
    org = client.in_org(org_id)
    status, current = org.call("GET", api_path("datasources", "uid", uid), accept=(404,))
    if status == 404:
        current = None
    if state == "absent":
        if current is not None and not check_mode:
            org.call("DELETE", api_path("datasources", "uid", uid), accept=(404,))
        return {**result, "changed": current is not None, "diff": changes(shown(current), {})}

    stored_fingerprint = ((current or {}).get("jsonData") or {}).get(FINGERPRINT_KEY)
    token_stored = bool(((current or {}).get("secureJsonFields") or {}).get("token"))
    needs_token = current is None or not token_stored or not datasource_healthy(org, uid)
    if token is None and needs_token and fetch_token is not None and not check_mode:
        token = fetch_token()
    fingerprint = token_fingerprint(token) if token else None
    result["token_fingerprint"] = fingerprint or stored_fingerprint
    # Without a new token (healthy data source, or check mode) the stored fingerprint stays.
    wanted = desired_body(params, fingerprint or stored_fingerprint)
    if current is None:
        if not check_mode:
            if token is None:
                raise GrafanaError(f"no InfluxDB token to create data source {uid!r} with")
            status, _ = org.call(
                "POST",
                "/api/datasources",
                {**wanted, "secureJsonData": {"token": token}},
                accept=(409,),
            )
            if status == 409:
                found, _ = org.call("GET", api_path("datasources", "uid", uid), accept=(404,))
                if found == 404:
                    raise GrafanaError(
                        f"a data source named {wanted['name']!r} already exists with another "
                        "uid: rename or delete it in Grafana, then run again"
                    )
                # created meanwhile by a parallel run: compare with it instead
                return ensure_datasource(client, {**params, "token": token}, check_mode)
            _health_warning(org, uid, params, result)
        return {**result, "changed": True, "diff": changes({}, shown(wanted))}

    if check_mode and needs_token:
        send_token = True  # the token would be fetched and compared
    else:
        send_token = token is not None and (not token_stored or stored_fingerprint != fingerprint)
    differs = any(current.get(field) != wanted[field] for field in COMPARED_FIELDS)
    if not (differs or send_token):
        return {**result, "changed": False, "diff": changes(shown(current), shown(wanted))}
    if not check_mode:
        body = dict(wanted)
        if send_token:
            body["secureJsonData"] = {"token": token}
        # Secure fields left out of an update are kept by Grafana, so an unchanged token is
        # simply not sent.
        org.call("PUT", api_path("datasources", "uid", uid), body)
        _health_warning(org, uid, params, result)
    before = shown(current)
    if send_token:
        old = stored_fingerprint if token_stored else "(no token stored)"
        before["jsonData"] = {**before.get("jsonData", {}), FINGERPRINT_KEY: old}
        if check_mode:
            wanted["jsonData"][FINGERPRINT_KEY] = "(token to be fetched again)"
    return {**result, "changed": True, "diff": changes(before, shown(wanted))}


def _health_warning(org: GrafanaClient, uid: str, params: dict, result: dict) -> None:
    """A data source Grafana cannot query is worth a warning, not a failure: InfluxDB may be
    restarting while Grafana's own objects are already right."""
    if not params.get("check_health", True):
        return
    status, health = org.call(
        "GET", api_path("datasources", "uid", uid, "health"), accept=(400, 404, 500, 502, 503)
    )
    if status != 200 or not isinstance(health, dict) or health.get("status") != "OK":
        message = health.get("message") if isinstance(health, dict) else health
        result.setdefault("warnings", []).append(
            f"Grafana cannot query data source {uid!r} yet (HTTP {status}: {message})"
        )


def token_reader(module: AnsibleModule) -> Callable[[], str] | None:
    """A function running ``token_command`` that keeps its output out of every log."""
    command = module.params.get("token_command")
    if not command:
        return None

    def read() -> str:
        rc, out, err = module.run_command(command)
        token = out.strip()
        if token:
            module.no_log_values.add(token)
        if rc != 0 or not token:
            raise GrafanaError(f"{' '.join(command[1:3])} failed (exit {rc}): {err.strip()}")
        return token

    return read


ARGUMENT_SPEC = {
    "org_id": {"type": "int"},
    "uid": {"type": "str", "required": True},
    "name": {"type": "str"},
    "type": {"type": "str", "default": "influxdb"},
    "url": {"type": "str"},
    "json_data": {"type": "dict", "default": {}},
    "token": {"type": "str", "no_log": True},
    "token_command": {"type": "list", "elements": "str"},
    "check_health": {"type": "bool", "default": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("token", "token_command")],
        supports_check_mode=True,
    )
    run_module(module, ensure_datasource, fetch_token=token_reader(module))


if __name__ == "__main__":
    main()
