"""The notebooks run, in their fast mode (``JAXDL_NOTEBOOK_FAST=1``), and each ``.ipynb`` holds
the same cells as its paired jupytext ``.py`` (percent format), so that diffs stay readable."""

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PAIRED = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_are_notebooks():
    assert PAIRED, f"no notebooks found in {NOTEBOOKS}"


def cells(path):
    return [(cell.cell_type, cell.source.strip()) for cell in jupytext.read(path).cells]


@pytest.mark.parametrize("notebook", PAIRED, ids=lambda path: path.name)
def test_notebook_matches_its_text_form(notebook):
    text_form = notebook.with_suffix(".py")
    assert text_form.is_file(), f"{notebook.name} has no paired {text_form.name}"
    assert cells(notebook) == cells(text_form), (
        f"{notebook.name} and {text_form.name} differ; run `jupytext --sync {text_form}`"
    )


@pytest.mark.parametrize("notebook", PAIRED, ids=lambda path: path.name)
def test_notebook_runs_in_fast_mode(notebook, monkeypatch):
    monkeypatch.setenv("JAXDL_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    executed = nbformat.read(notebook, as_version=4)
    NotebookClient(executed, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [output for cell in executed.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors
