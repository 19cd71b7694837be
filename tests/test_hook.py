"""The SFTPGo hook, ``on-upload.sh``, run as SFTPGo runs it.

SFTPGo starts the hook with an environment holding only its ``SFTPGO_*`` variables (plus
what its ``command`` section adds), no arguments, no stdin, and throws the output away. The
tests do the same with ``env -i``, adding only the ``POWERVIEW_*`` overrides that move every
path into a temporary tree, and read what the hook did from the files and its log.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, SAMPLES

PARSER = PROJECT_ROOT / "tsv_parser.py"
COMPANY1 = "company1/campaign1/02001084/T302_251012_031720.tsv"
BAVELLA = "dominique/bavella/02000800/T302_260105_162016.tsv"
V003 = "dominique/v003/02000800/T302_260208_211459_UTC.tsv"


def copy_samples(target: Path, *relatives: str) -> Path:
    for relative in relatives:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLES / relative, target / relative)
    return target


# -- the parser's one-company sweep, which the post-disconnect event relies on ------------


def run_parser(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PARSER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_company_sweep_takes_only_that_company(influxdb_env, influxdb, tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1, BAVELLA, V003)
    env = {**influxdb_env, "TSV_REPORT_DIR": str(tmp_path / "reports")}
    result = run_parser(env, "--dataFolder", str(data), "--company", "dominique", "--min-age", "0")
    assert result.returncode == 0, result.stderr
    assert not (data / BAVELLA).exists() and not (data / V003).exists()
    assert (data / "dominique/bavella/02000800/parsed/T302_260105_162016.tsv").exists()
    assert (data / COMPANY1).exists()
    assert "company1" not in influxdb.bucket_names()


@pytest.mark.parametrize(
    ("company", "message"),
    [("..", "not an allowed company name"), ("nobody", "is not a folder")],
)
def test_a_company_sweep_refuses_bad_names_and_missing_folders(tmp_path, company, message):
    data = copy_samples(tmp_path / "data", COMPANY1)
    env = {"POWERVIEW_ENV_FILE": "/dev/null", "PATH": "/usr/bin:/bin"}
    result = run_parser(env, "--dataFolder", str(data), "--company", company, "--dry-run")
    assert result.returncode == 2
    assert message in result.stderr


def test_a_company_sweep_refuses_a_linked_company_folder(tmp_path):
    data = copy_samples(tmp_path / "data", COMPANY1)
    (data / "linked").symlink_to(data / "company1")
    env = {"POWERVIEW_ENV_FILE": "/dev/null", "PATH": "/usr/bin:/bin"}
    result = run_parser(env, "--dataFolder", str(data), "--company", "linked", "--dry-run")
    assert result.returncode == 2
    assert "is not a folder" in result.stderr
