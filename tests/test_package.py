"""Package metadata, the CLI, and the README's opening commands."""

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import jaxdl
from jaxdl import cli, experiments

ROOT = Path(__file__).resolve().parents[1]


def test_version_matches_citation():
    citation = (ROOT / "CITATION.cff").read_text()
    assert f'version: "{jaxdl.__version__}"' in citation


def test_citation_cff_validates():
    result = subprocess.run(
        [sys.executable, "-m", "cffconvert", "--validate", "-i", str(ROOT / "CITATION.cff")],
        capture_output=True, text=True,
    )  # fmt: skip
    if "No module named cffconvert" in result.stderr:
        bin_dir = Path(sys.executable).parent
        result = subprocess.run([bin_dir / "cffconvert", "--validate", "-i", ROOT / "CITATION.cff"],
                                capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_cli_lists_every_experiment(capsys):
    assert cli.main(["list"]) == 0
    listed = capsys.readouterr().out
    for name, module in experiments.available().items():
        flat = " ".join(listed.split())  # descriptions wrap to the terminal width
        assert name in listed and " ".join(module.DESCRIPTION.split()) in flat


def test_every_experiment_declares_the_contract():
    found = experiments.available()
    assert "mlp-digits" in found
    for name, module in found.items():
        assert module.NAME == name
        assert isinstance(module.DESCRIPTION, str) and module.DESCRIPTION
        assert callable(module.run)
        assert {"fast", "seed", "resume"} <= set(inspect.signature(module.run).parameters), name


def test_every_experiment_shows_a_progress_bar_and_a_summary():
    """Each experiment drives its work through ``report.progress`` (directly, or through
    ``units.run_units`` / ``units.run_fit``, which show one), so a terminal sees a bar,
    and has a ``summary(results)`` for the headline figures the CLI prints."""
    bar_calls = ("progress(", "run_units(", "run_fit(")
    for name, module in experiments.available().items():
        source = inspect.getsource(module)
        assert any(call in source for call in bar_calls), f"{name} shows no progress bar"
        assert callable(getattr(module, "summary", None)), f"{name} has no summary(results)"


def test_cli_rejects_unknown_experiments(capsys):
    assert cli.main(["run", "no-such-experiment"]) == 2
    assert "unknown experiment 'no-such-experiment'" in capsys.readouterr().err


def test_cli_usage_errors_exit_nonzero():
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code != 0


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).splitlines()
    assert first_block[0] == "# run the main job" and "jaxdl run" in first_block[1]
    assert first_block[2] == "# run the tests" and "pytest" in first_block[3]
    assert "grep -A1 '^# run the tests$' README.md" in (ROOT / ".ci" / "run").read_text()


# The README's Python blocks run in fresh interpreters in tests/test_readme.py
# (in-process exec leaked global JAX settings such as x64 into later tests).
