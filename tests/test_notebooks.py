"""The notebooks run, in their fast mode (``JAXDL_NOTEBOOK_FAST=1``), and show their figures; each
``.ipynb`` holds the same cells as its paired jupytext ``.py`` (percent format), so that diffs stay
readable, and carries the outputs of a full run (regenerate them with
``jupytext --sync notebooks/NAME.py && jupyter execute --inplace notebooks/NAME.ipynb``)."""

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PAIRED = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_are_notebooks():
    assert PAIRED, f"no notebooks found in {NOTEBOOKS}"


def images(notebook) -> int:
    """How many PNG figures the notebook's outputs hold."""
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


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
def test_committed_notebook_carries_the_outputs_of_a_full_run(notebook):
    saved = nbformat.read(notebook, as_version=4)
    code = [cell for cell in saved.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), f"{notebook.name} has cells that never ran"
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), "run it top to bottom"
    assert not any(output.get("output_type") == "error" for cell in code for output in cell.outputs)
    assert images(saved) >= 4, f"{notebook.name} shows {images(saved)} figures"
    assert "JAXDL_NOTEBOOK_FAST" not in str(saved.metadata)
    first_output = "".join(str(output.get("data", {}).get("text/plain", "")) for output in code[0].outputs)
    assert "num_train=256" in first_output, "the committed outputs are not those of the full configuration"


@pytest.mark.parametrize("notebook", PAIRED, ids=lambda path: path.name)
@pytest.mark.slow
def test_notebook_runs_in_fast_mode_and_shows_its_figures(notebook, monkeypatch):
    """Executed as Jupyter would (the kernel's inline backend): importing jaxdl.experiments used to
    switch matplotlib to Agg, and the notebook then showed no figure at all."""
    monkeypatch.setenv("JAXDL_NOTEBOOK_FAST", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    executed = nbformat.read(notebook, as_version=4)
    for cell in executed.cells:
        if cell.cell_type == "code":
            cell.outputs = []  # the committed outputs must not count
    NotebookClient(executed, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [output for cell in executed.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors
    assert images(executed) >= 4
