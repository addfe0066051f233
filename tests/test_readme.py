"""The README as a newcomer meets it: every ```python block runs as written, every
shell command names a real program, script, experiment, option or extra, the
table of contents points at real headings, and the first two commands keep the
CI contract (``.ci/run`` runs the line after ``# run the tests``).

Each Python block runs in its own fresh interpreter (``sys.executable``, the
environment jaxdl is installed in), without the test suite's XLA flags, in an
empty directory that links the repository's ``tests``, ``benchmarks``,
``notebooks`` and ``docs`` folders, so that relative paths work as from the
repository root and nothing is written into the checkout. An HTML comment on the
line before a block changes how it is run:

* ``<!-- readme-test: slow -->``: only under ``pytest -m slow``;
* ``<!-- readme-test: needs PATH -->``: skipped (saying why) when ``PATH``,
  relative to the repository root, does not exist, e.g. the pinned
  neural-tangents environment ``benchmarks/.legacy-env``.

Keep the blocks small (a few training steps, small widths): the default run of
this file should stay under a minute on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINKED_FOLDERS = ("tests", "benchmarks", "notebooks", "docs")
MARKER = re.compile(r"^<!--\s*readme-test:\s*(?P<kind>\S+)\s*(?P<arg>\S*)\s*-->$")
RUNNABLE_LANGUAGES = {"python", "bash"}


@dataclasses.dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # 1-based line of the opening fence
    marker: tuple[str, str] | None  # (kind, argument) of a readme-test comment right above
    section: str = ""  # anchor of the heading the block sits under


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def parse_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text``, with the readme-test marker right above each."""
    blocks, lines, i, section = [], text.splitlines(), 0, ""
    while i < len(lines):
        match = re.match(r"^```(\S*)\s*$", lines[i])
        if not match:
            if re.match(r"^#{1,6} ", lines[i]):
                section = github_anchor(lines[i].lstrip("#"))
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md: the code block opened on line {i + 1} is never closed")
        previous = lines[i - 1].strip() if i > 0 else ""
        found = MARKER.match(previous)
        marker = (found["kind"], found["arg"]) if found else None
        if previous.startswith("<!--") and "readme-test" in previous and not found:
            raise ValueError(f"README.md line {i}: malformed readme-test marker {previous!r}")
        blocks.append(Block(match[1], "\n".join(lines[i + 1:end]) + "\n", i + 1, marker, section))
        i = end + 1
    return blocks


def prose(text: str) -> str:
    """``text`` with its fenced code blocks blanked out (line numbers kept)."""
    return re.sub(r"^```.*?^```[ \t]*$", lambda block: "\n" * block[0].count("\n"), text, flags=re.S | re.M)


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))
PYTHON_BLOCKS = [block for block in BLOCKS if block.language == "python"]
SHELL_BLOCKS = [block for block in BLOCKS if block.language == "bash"]


def python_block_param(block: Block):
    marks = []
    if block.marker is not None:
        kind, arg = block.marker
        if kind == "slow":
            marks.append(pytest.mark.slow)
        elif kind == "needs":
            if not arg:
                raise ValueError(f"README.md line {block.line - 1}: 'needs' marker without a path")
            if not (ROOT / arg).exists():
                marks.append(pytest.mark.skip(reason=f"needs {arg}, which this checkout does not have"))
        else:
            raise ValueError(f"README.md line {block.line - 1}: unknown readme-test marker {kind!r}")
    return pytest.param(block, marks=marks, id=f"{block.section or 'top'}-line{block.line}")


def test_the_readme_has_python_examples_and_every_block_is_python_or_bash():
    assert len(PYTHON_BLOCKS) >= 5
    others = [(block.line, block.language or "(none)") for block in BLOCKS
              if block.language not in RUNNABLE_LANGUAGES]
    assert not others, f"code blocks that are neither python nor bash (line, language): {others}"


@pytest.mark.parametrize("block", [python_block_param(block) for block in PYTHON_BLOCKS])
def test_python_block_runs_as_written(block, tmp_path):
    workdir = tmp_path / "repo"
    workdir.mkdir()
    for name in LINKED_FOLDERS:
        if (ROOT / name).exists():
            (workdir / name).symlink_to(ROOT / name, target_is_directory=True)
    script = tmp_path / f"readme_line{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    env["MPLBACKEND"] = "Agg"
    completed = subprocess.run([sys.executable, str(script)], cwd=workdir, env=env, capture_output=True,
                               text=True, timeout=900, check=False)
    assert completed.returncode == 0, (
        f"README.md block at line {block.line} failed (exit {completed.returncode}):\n"
        f"{completed.stderr[-3000:]}"
    )


# --- shell commands ------------------------------------------------------------------------------

def shell_commands() -> list[tuple[int, list[str]]]:
    """(line, argv) of every command in the bash blocks and in the prose's inline code spans that
    start with a program below; ``[--opt]`` brackets (optional arguments) dropped."""
    commands = []
    for block in SHELL_BLOCKS:
        for offset, line in enumerate(block.code.splitlines(), start=1):
            commands += [(block.line + offset, argv) for argv in split_command_line(line)]
    text = README.read_text(encoding="utf-8")
    body = prose(text)
    for match in re.finditer(r"`([^`\n]+)`", body):
        span = match[1]
        first = span.split()[0] if span.split() else ""
        if Path(first).name in {"jaxdl", "python", "python3", "pytest", "pip", "bash", "jupytext", "jupyter"} \
                and " " in span:
            line = body.count("\n", 0, match.start()) + 1
            commands += [(line, argv) for argv in split_command_line(span)]
    return commands


def split_command_line(line: str) -> list[list[str]]:
    """The commands of one shell line: comments dropped, split at ``&&``, ``||`` and ``;``."""
    line = re.sub(r"\[(--[^\]]*)\]", r"\1", line)  # `[--fast]` documents an optional argument
    commands, current = [], []
    for token in shlex.split(line, comments=True):
        if token in {"&&", "||", ";"}:
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [command for command in [*commands, current] if command]


def extras() -> set[str]:
    """The optional extras of pyproject.toml (tomllib is Python >= 3.11; 3.10 reads the installed metadata)."""
    try:
        import tomllib
    except ModuleNotFoundError:
        return set(metadata.metadata("jaxdl").get_all("Provides-Extra") or ())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return set(project.get("optional-dependencies", {}))


def is_placeholder(word: str) -> bool:
    """``NAME``, ``DIR``, ``N``: words a reader replaces."""
    return word.isupper() and word.isalpha()


def check_command(argv: list[str]) -> str | None:
    """What is wrong with ``argv`` (None when nothing is); other programs only get their repository
    paths checked."""
    from jaxdl import cli, experiments

    program, args = Path(argv[0]).name, argv[1:]
    missing = [arg for arg in args if re.match(r"(tests|benchmarks|notebooks|docs|jaxdl)/", arg)
               and "*" not in arg and not (ROOT / arg.split("::")[0]).exists()]
    if missing:
        return f"no such path {missing}"
    if program == "source" or argv[0] == "deactivate":
        return None
    if program in {"python", "python3"}:
        if args[:2] == ["-m", "pytest"]:
            program, args = "pytest", args[2:]
        elif args[:1] in (["-m"], ["-c"]) or not args:
            return None
        else:
            script = args[0]
            return None if (ROOT / script).is_file() else f"no script {script}"
    if program == "bash":
        return None if args and (ROOT / args[0]).is_file() else f"no script {args[:1]}"
    if program == "pip":
        for arg in args:
            found = re.fullmatch(r"\.\[([\w,-]+)\]", arg)
            if found:
                unknown = {name for name in found[1].split(",") if not is_placeholder(name)} - extras()
                if unknown:
                    return f"unknown extras {sorted(unknown)} (pyproject.toml has {sorted(extras())})"
        return None
    if program == "jaxdl":
        args = ["0" if is_placeholder(arg) and previous == "--seed" else arg
                for previous, arg in zip(["", *args], args)]
        if {"-h", "--help", "--version"} & set(args):
            return None
        try:
            parsed = cli._parser().parse_args(args)
        except SystemExit:
            return "jaxdl rejects these arguments"
        if parsed.command == "run" and not is_placeholder(parsed.name) \
                and parsed.name not in experiments.available():
            return f"no experiment {parsed.name!r} (jaxdl list: {sorted(experiments.available())})"
    return None


def test_every_shell_command_names_real_scripts_experiments_options_and_extras():
    commands = shell_commands()
    programs = {Path(argv[0]).name for _, argv in commands}
    assert {"jaxdl", "pip", "python"} <= programs
    problems = [(line, " ".join(argv), problem) for line, argv in commands
                if (problem := check_command(argv)) is not None]
    assert not problems, f"README.md commands that cannot work (line, command, why): {problems}"


def test_command_checker_catches_wrong_commands():
    assert check_command(["jaxdl", "run", "kernel-limit", "--fast", "--out", "runs"]) is None
    assert "no experiment" in check_command(["jaxdl", "run", "hopfield_capacity"])
    assert "rejects" in check_command(["jaxdl", "run", "cover", "--quick"])
    assert "unknown extras" in check_command(["pip", "install", "-e", ".[test,gpu]"])
    assert "no such path" in check_command(["python", "benchmarks/not_there.py"])
    assert "no script" in check_command(["python", "train.py"])
    assert "no such path" in check_command(["pytest", "tests/test_not_there.py"])
    assert "no such path" in check_command(["jupytext", "--sync", "notebooks/not_there.py"])
    assert check_command(["jaxdl", "run", "NAME", "--fast", "--out", "DIR", "--seed", "N"]) is None
    assert check_command(["jaxdl", "--help"]) is None and check_command(["jaxdl", "run", "--help"]) is None


# --- structure -----------------------------------------------------------------------------------

def test_table_of_contents_links_point_at_headings():
    body = prose(README.read_text(encoding="utf-8"))
    assert "\n## Contents\n" in body, "README.md has no '## Contents' section"
    anchors = {github_anchor(title) for title in re.findall(r"^#{1,6} (.+)$", body, flags=re.M)}
    contents = body.split("## Contents", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    assert len(links) >= 10
    assert not set(links) - anchors, f"contents links without a heading: {sorted(set(links) - anchors)}"
    level_two = {github_anchor(title) for title in re.findall(r"^## (.+)$", body, flags=re.M)} - {"contents"}
    assert not level_two - set(links), f"sections missing from the contents: {sorted(level_two - set(links))}"
    every_link = re.findall(r"\]\(#([^)]+)\)", body)
    assert not set(every_link) - anchors, f"broken links: {sorted(set(every_link) - anchors)}"


def test_the_readme_starts_with_the_two_ci_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    main_job = lines.index("# run the main job")
    tests = lines.index("# run the tests")
    assert main_job < tests < 20
    assert "jaxdl run kernel-limit" in lines[main_job + 1]
    assert "pip install -e '.[test]'" in lines[tests + 1] and "pytest" in lines[tests + 1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "grep -A1 '^# run the tests$' README.md" in ci


def test_markers_are_parsed_and_unknown_ones_are_refused():
    text = ("intro\n<!-- readme-test: slow -->\n```python\nprint(1)\n```\n"
            "<!-- readme-test: needs benchmarks/.legacy-env -->\n```python\nx = 1\n```\n```bash\nls\n```\n")
    slow, needs, shell = parse_blocks(text)
    assert (slow.marker, slow.line, slow.code, slow.section) == (("slow", ""), 3, "print(1)\n", "")
    assert needs.marker == ("needs", "benchmarks/.legacy-env") and shell.marker is None
    with pytest.raises(ValueError, match="unknown readme-test marker"):
        python_block_param(Block("python", "pass\n", 2, ("sometimes", "")))
    with pytest.raises(ValueError, match="never closed"):
        parse_blocks("```python\nprint(1)\n")
    assert github_anchor("Infinite-width kernels (`jaxdl.kernels`)") == "infinite-width-kernels-jaxdlkernels"
