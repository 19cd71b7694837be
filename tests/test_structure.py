"""The shape of the code stays the one the README describes: every core module opens with what
it is for and is named in "Layout of the code"; tests share helpers through tests/helpers.py
and tests/doubles/, never by importing another test module; one exit-code policy."""

from __future__ import annotations

import ast
import json

import pytest

from core.outcomes import ErrorKind, ExitCode, SkipReason, Status, exit_code_for
from tests.helpers import PROJECT_ROOT

CORE_MODULES = sorted(
    path for path in (PROJECT_ROOT / "core").glob("*.py") if path.name != "__init__.py"
)
TEST_MODULES = sorted((PROJECT_ROOT / "tests").rglob("*.py"))


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda path: path.name)
def test_each_core_module_opens_with_what_it_is_for_and_the_readme_names_it(path):
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring and len(docstring.split()) >= 5, f"{path.name} has no opening docstring"
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout of the code") :]
    assert f"`{path.name}`" in layout, f"README's Layout of the code does not name {path.name}"


def test_no_test_module_imports_another():
    test_module_names = {
        ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        for path in TEST_MODULES
        if path.name.startswith("test_") or path.name == "conftest.py"
    }
    offenders = {
        str(path.relative_to(PROJECT_ROOT)): sorted(imported_modules(path) & test_module_names)
        for path in TEST_MODULES
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_most_severe_failure_decides_the_exit_code():
    ranked = [
        ErrorKind.UNEXPECTED,
        ErrorKind.USAGE,
        ErrorKind.CONFIGURATION,
        ErrorKind.TEMPORARY,
        ErrorKind.DATA,
    ]
    codes = [
        ExitCode.UNEXPECTED,
        ExitCode.USAGE,
        ExitCode.CONFIGURATION,
        ExitCode.TEMPORARY,
        ExitCode.DATA,
    ]
    for index in range(len(ranked)):
        assert exit_code_for([None, *ranked[index:]]) == codes[index]
        assert exit_code_for(reversed(ranked[index:])) == codes[index]
    assert exit_code_for([]) == exit_code_for([None]) == ExitCode.OK == 0
    assert [int(code) for code in codes] == [5, 2, 4, 3, 1]


def test_the_vocabulary_keeps_the_values_reports_and_logs_carry():
    entry = {"status": Status.SKIPPED, "skip_reason": SkipReason.TOO_YOUNG, "kind": ErrorKind.DATA}
    assert json.loads(json.dumps(entry)) == {
        "status": "skipped",
        "skip_reason": "too_young",
        "kind": "data",
    }
    assert f"{Status.RETRY:<7}|" == "retry  |"
