"""Execute every notebook under notebooks/ top to bottom, as a reader would."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "langchain-lamatic-tests"


@pytest.fixture
def kernel_for_this_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Register a kernel spec that runs this interpreter, so notebooks see the package under test.

    A stock "python3" spec may point at another installation, for example one made with
    ``ipykernel install --user``, so the tests use a spec of their own on JUPYTER_PATH.
    """
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "langchain-lamatic tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL_NAME


def test_notebooks_exist() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert "quickstart.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_executes(
    path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kernel_for_this_interpreter: str,
) -> None:
    for name in (
        "LAMATIC_ENDPOINT",
        "LAMATIC_PROJECT_ID",
        "LAMATIC_API_KEY",
        "LAMATIC_ACCESS_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=180,
        kernel_name=kernel_for_this_interpreter,
        resources={"metadata": {"path": str(tmp_path)}},
    )

    client.execute()

    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
