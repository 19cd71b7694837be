"""The name allowlist shared by the parser, the hook and the playbooks."""

import pytest

from core.names import (
    MAX_NAME_LENGTH,
    UnsafeNameError,
    check_name,
    company_case_conflict,
    company_key,
    is_safe_name,
    main,
    reserved_company_reason,
)


@pytest.mark.parametrize(
    "name", ["acme", "company1", "02001084", "a", "Acme-Corp.2024_v2", "A" * 64]
)
def test_safe_names_are_accepted(name):
    assert is_safe_name(name)
    assert check_name(name, "company") == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        ".hidden",
        "_system",
        "-rf",
        "a b",
        "a;rm -rf x",
        "{{ lookup('pipe','id') }}",
        "a\nb",
        "a/b",
        "é",
        "a\x00",
        "A" * (MAX_NAME_LENGTH + 1),
        "$(id)",
        "a`id`",
    ],
)
def test_unsafe_names_are_refused_with_a_reason(name):
    assert not is_safe_name(name)
    with pytest.raises(UnsafeNameError) as excinfo:
        check_name(name, "campaign")
    assert "campaign name" in str(excinfo.value)


def test_command_line_checker_exit_codes():
    assert main(["acme", "campaign1"]) == 0
    assert main(["acme", "a;b"]) == 1
    assert main([]) == 2


@pytest.mark.parametrize(
    ("name", "meta_bucket", "words"),
    [
        ("powerview_meta", "powerview_meta", "TSV_META_BUCKET"),
        ("PowerView_Meta", "powerview_meta", "TSV_META_BUCKET"),
        ("records", "Records", "TSV_META_BUCKET"),
        ("_monitoring", "powerview_meta", "InfluxDB's own buckets"),
        ("_tasks", "powerview_meta", "InfluxDB's own buckets"),
        ("main org.", "powerview_meta", "main organization"),
        ("GENERAL", "powerview_meta", "root folder"),
    ],
)
def test_reserved_company_names_are_refused_with_a_reason(name, meta_bucket, words):
    reason = reserved_company_reason(name, meta_bucket)
    assert reason is not None
    assert repr(name) in reason and words in reason


@pytest.mark.parametrize("name", ["acme", "powerview_meta2", "meta", "generally", "Main"])
def test_ordinary_company_names_are_not_reserved(name):
    assert reserved_company_reason(name, "powerview_meta") is None


def test_company_names_conflict_when_they_differ_by_case_only():
    existing = ["acme", "beta"]
    assert company_case_conflict("ACME", existing) == "acme"
    assert company_case_conflict("Beta", iter(existing)) == "beta"
    assert company_case_conflict("acme", existing) is None  # the same company
    assert company_case_conflict("gamma", existing) is None
    assert company_key("AcMe") == company_key("acme")
