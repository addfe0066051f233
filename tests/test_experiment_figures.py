"""Figures a reader can trust: :func:`jaxdl.experiments.report.figure_problems` finds each defect
it looks for (so the checks on the experiments' figures can fail), no experiment changes
matplotlib's backend or touches pyplot, and every experiment's figure passes the checks
(each experiment's own test checks its fast-run figure; the walk over all of them, which
runs every experiment, is behind the slow marker)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from jaxdl import experiments
from jaxdl.experiments import report


def labelled_figure(fast=False):
    fig, ax = report.new_figure("a clean figure", fast)
    ax.plot([1, 2], [1, 2], color="C0", label="one")
    ax.plot([1, 2], [2, 1], color="C1", label="two")
    ax.set(xlabel="x", ylabel="y")
    report.legend_outside(ax)
    return fig, ax


def test_a_clean_figure_has_no_problems_and_says_fast_mode_exactly_when_fast():
    assert report.figure_problems(labelled_figure()[0], fast=False) == []
    fast_fig = labelled_figure(fast=True)[0]
    assert "fast mode" in fast_fig.get_suptitle()
    assert report.figure_problems(fast_fig, fast=True) == []
    assert report.figure_problems(fast_fig, fast=False) == ["full-run figure whose title says 'fast mode'"]
    assert report.figure_problems(labelled_figure()[0], fast=True) == [
        "fast-mode figure whose title does not say 'fast mode'"]


def test_figure_problems_finds_missing_labels_repeated_colours_and_legends_on_the_data():
    fig, ax = labelled_figure()
    ax.set_ylabel("")
    ax.plot([1, 2], [1.5, 1.5], color="C0", label="three")  # C0 again
    ax.legend(loc="center")  # on the data
    problems = report.figure_problems(fig, fast=False)
    assert len(problems) == 3, problems
    assert "no y label" in problems[0]
    assert "'one' and 'three' share a colour" in problems[1]
    assert "legend sits on the data area" in problems[2]
    fig, ax = labelled_figure()
    ax.set_xlabel(" ")
    assert [p.split(") ")[-1] for p in report.figure_problems(fig, fast=False)] == ["has no x label"]


def test_colours_do_not_repeat_among_many_lines():
    for n in (3, 10, 12, 20, 27):
        palette = [tuple(np.round(to_rgba(c), 3)) for c in report.colors(n)]
        assert len(palette) == n and len(set(palette)) == n, n


def test_importing_the_experiments_leaves_the_backend_and_pyplot_alone():
    """A notebook's inline backend must survive ``import jaxdl.experiments`` (it used to become Agg)."""
    code = (
        "import matplotlib, sys\n"
        "matplotlib.use('svg')\n"
        "from jaxdl import experiments, cli\n"
        "experiments.available()\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["svg", "False"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(experiments.available()))
def test_every_experiment_draws_a_figure_a_reader_can_trust(name, tmp_path, monkeypatch):
    drawn = []
    save = report.save_figure

    def keep(fig, out_dir, filename):
        drawn.append((fig, filename))
        return save(fig, out_dir, filename)

    monkeypatch.setattr(report, "save_figure", keep)
    module = experiments.available()[name]
    monkeypatch.setattr(module, "save_figure", keep, raising=False)
    experiments.run(name, tmp_path, fast=True, seed=0)
    assert [filename for _, filename in drawn] == [f"{name}.png"]
    assert report.figure_problems(drawn[0][0], fast=True) == []
    if hasattr(module, "figure"):  # redrawn from the JSON, as a full run would be
        saved = json.loads((tmp_path / f"{name}.json").read_text())
        assert report.figure_problems(module.figure({**saved, "fast": False}), fast=False) == []
