"""The name allowlist shared by the parser, the hook and the playbooks."""

import pytest

from core.names import MAX_NAME_LENGTH, UnsafeNameError, check_name, is_safe_name, main


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
