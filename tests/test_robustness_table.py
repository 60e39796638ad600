"""The robustness table (docs/robustness.md) and the robustness tests name each other: every test
it cites exists, and every robustness test is in it."""
from __future__ import annotations

import ast
import re

from conftest import REPO

TESTS = REPO / "tests"


def robustness_section() -> str:
    return (REPO / "docs" / "robustness.md").read_text()


def functions_in(path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_cited_test_exists():
    cited = re.findall(r"`([\w/]+\.py)::(test_\w+)", robustness_section())
    assert len(cited) > 30
    for file_name, function in cited:
        path = REPO / file_name if file_name.startswith("tests/") else TESTS / "robustness" / file_name
        assert path.exists(), file_name
        assert function in functions_in(path), f"{file_name}::{function} is cited but does not exist"


def test_every_robustness_test_is_cited():
    section = robustness_section()
    for path in [*sorted((TESTS / "robustness").glob("test_*.py")), TESTS / "test_main_job.py"]:
        for function in functions_in(path):
            assert function in section, f"{path.name}::{function} is missing from docs/robustness.md"
