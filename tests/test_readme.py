"""The README as a newcomer meets it: every ```python block runs as written, every
shell command names a real program, script, experiment, option or extra, the
table of contents points at real headings, and the first two commands keep the
CI contract (``.ci/run`` runs the line after ``# run the tests``).

The Python blocks run in one fresh interpreter (``sys.executable``, the
environment jaxdl is installed in), never in the test process, without the test
suite's XLA flags, each in a namespace of its own and with JAX's global options
(x64, rank promotion, ...) reset after it, in an empty directory that links the
repository's ``tests``, ``benchmarks``, ``notebooks`` and ``docs`` folders, so
that relative paths work as from the repository root and nothing is written into
the checkout. One interpreter for all blocks instead of one per block saves the
import and start-up of JAX twenty times over. An HTML comment on the line before
a block changes how it is run:

* ``<!-- readme-test: slow -->``: only under ``pytest -m slow``;
* ``<!-- readme-test: needs PATH -->``: skipped (saying why) when ``PATH``,
  relative to the repository root, does not exist, e.g. the pinned
  neural-tangents environment ``benchmarks/.legacy-env``.

Keep the blocks small (a few training steps, small widths): the default run of
this file should stay under a minute on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import json
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


def block_marks(block: Block) -> tuple[bool, str | None]:
    """(whether the block is slow, why it is skipped or None) from its readme-test marker."""
    if block.marker is None:
        return False, None
    kind, arg = block.marker
    if kind == "slow":
        return True, None
    if kind == "needs":
        if not arg:
            raise ValueError(f"README.md line {block.line - 1}: 'needs' marker without a path")
        return False, None if (ROOT / arg).exists() else f"needs {arg}, which this checkout does not have"
    raise ValueError(f"README.md line {block.line - 1}: unknown readme-test marker {kind!r}")


#: Runs the blocks given as a JSON list of [line, code] one after the other, each in a fresh namespace,
#: restoring JAX's global options after each; prints one line per block: the tag readme-block-result and the
#: JSON [line, error or null] (the blocks print too).
RUNNER = r"""
import json, sys, traceback
import jax
OPTIONS = ("jax_enable_x64", "jax_numpy_rank_promotion", "jax_default_matmul_precision", "jax_debug_nans",
           "jax_disable_jit", "jax_default_prng_impl")
for line, code in json.load(open(sys.argv[1])):
    saved = {name: getattr(jax.config, name) for name in OPTIONS}
    try:
        exec(compile(code, f"README.md block at line {line}", "exec"), {"__name__": "__main__"})
        error = None
    except BaseException:
        error = traceback.format_exc()[-3000:]
    for name, value in saved.items():
        jax.config.update(name, value)
    print("readme-block-result", json.dumps([line, error]), flush=True)
"""


def run_blocks(blocks: list[Block], tmp_path: Path) -> dict[int, str | None]:
    """``{line: error or None}`` for ``blocks`` run by :data:`RUNNER` in one fresh interpreter."""
    workdir = tmp_path / "repo"
    workdir.mkdir()
    for name in LINKED_FOLDERS:
        if (ROOT / name).exists():
            (workdir / name).symlink_to(ROOT / name, target_is_directory=True)
    (tmp_path / "blocks.json").write_text(json.dumps([[block.line, block.code] for block in blocks]))
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    env["MPLBACKEND"] = "Agg"
    completed = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "blocks.json")],
                               cwd=workdir, env=env, capture_output=True, text=True, timeout=1800, check=False)
    tag = "readme-block-result "
    results = dict(json.loads(line[len(tag):]) for line in completed.stdout.splitlines() if line.startswith(tag))
    for block in blocks:  # a block that killed the interpreter, and those after it
        results.setdefault(block.line, f"not run: the interpreter exited with {completed.returncode}:\n"
                                       f"{completed.stderr[-3000:]}")
    return results


def check_blocks(slow: bool, tmp_path: Path):
    chosen, skipped = [], []
    for block in PYTHON_BLOCKS:
        is_slow, skip = block_marks(block)
        if skip is not None:
            skipped.append(block.line)
        elif is_slow == slow:
            chosen.append(block)
    if not chosen:
        pytest.skip(f"no {'slow ' if slow else ''}Python blocks to run (skipped: lines {skipped})")
    failures = {line: error for line, error in run_blocks(chosen, tmp_path).items() if error is not None}
    assert not failures, "README.md Python blocks that fail (by the line of their opening fence):\n" + \
        "\n".join(f"--- line {line}:\n{error}" for line, error in sorted(failures.items()))


def test_python_blocks_run_as_written(tmp_path):
    check_blocks(False, tmp_path)


@pytest.mark.slow
def test_slow_python_blocks_run_as_written(tmp_path):
    check_blocks(True, tmp_path)


def test_block_runner_reports_each_failure_and_resets_jax_options(tmp_path):
    blocks = [Block("python", 'import jax\njax.config.update("jax_enable_x64", True)\n', 1, None),
              Block("python", "import jax.numpy as jnp\nassert jnp.ones(1).dtype == jnp.float32\n", 5, None),
              Block("python", "x = 1\n", 9, None),
              Block("python", "print(x)\n", 13, None)]  # each block has a namespace of its own
    results = run_blocks(blocks, tmp_path)
    assert results[1] is None and results[5] is None and results[9] is None
    assert "NameError" in results[13] and "README.md block at line 13" in results[13]


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
        block_marks(Block("python", "pass\n", 2, ("sometimes", "")))
    with pytest.raises(ValueError, match="never closed"):
        parse_blocks("```python\nprint(1)\n")
    assert github_anchor("Infinite-width kernels (`jaxdl.kernels`)") == "infinite-width-kernels-jaxdlkernels"
