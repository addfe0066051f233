"""The jaxdl command: jaxdl list, jaxdl run NAME to run one experiment, jaxdl bench to benchmark the devices.

Exit status: 0 done, 2 bad arguments or output directory, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from jaxdl import __version__, experiments
from jaxdl.bench import command as bench_command

FAST_HELP = ("run a reduced version (fewer sizes, seeds and steps; jaxdl list says which, for each "
             "experiment) that takes seconds to a few minutes; its numbers are not the documented "
             "ones, and its figure's title says fast mode")


def _entry(name: str, text: str, indent: int = 2) -> list[str]:
    """``name`` in a column of 19 characters, then ``text`` wrapped to 100 columns."""
    return textwrap.wrap(text, 100, initial_indent=f"{'':{indent}}{name:19s}",
                         subsequent_indent=" " * (indent + 21), break_on_hyphens=False)


def _option_lines(parser: argparse.ArgumentParser) -> list[str]:
    """One line per option of ``parser``: its flags and its help."""
    lines = []
    for action in parser._actions:
        if action.dest == "help":
            continue
        flags = ", ".join(action.option_strings) or action.dest.upper()
        if action.option_strings and action.nargs != 0:
            flags += f" {action.metavar or action.dest.upper()}"
        lines += _entry(flags, action.help)
    return lines


def _experiment_lines() -> list[str]:
    lines = []
    for name, module in experiments.available().items():
        lines += _entry(name, module.DESCRIPTION)
        if getattr(module, "FAST_MODE", None):
            lines += _entry("", f"--fast: {module.FAST_MODE}", indent=4)
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxdl", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the named, reproducible experiments of the jaxdl toolkit.",
    )
    parser.add_argument("--version", action="version", version=f"jaxdl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,run,bench}")
    commands.add_parser("list", help="list the experiments and what --fast reduces in each")
    run = commands.add_parser("run", help="run an experiment",
                              description="Run one experiment; writes OUT/NAME.json and OUT/NAME.png.")
    run.add_argument("name", metavar="NAME", help="experiment name (see jaxdl list)")
    run.add_argument("--fast", action="store_true", help=FAST_HELP)
    run.add_argument("--out", metavar="DIR", default="runs", help="output directory (default: runs)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument("--resume", action="store_true",
                     help="continue an interrupted run from the finished units of work saved in "
                          "OUT/NAME.json (same NAME, --fast and --seed)")
    bench_command.add_arguments(commands.add_parser(
        "bench", help="benchmark standard workloads on this machine's devices (MFU, throughput, memory)",
        description=bench_command.DESCRIPTION))
    parser.epilog = "\n".join([
        "options of jaxdl run NAME:", *_option_lines(run), "",
        "experiments:", *_experiment_lines(), "",
        "Ctrl-C saves the finished units of work in OUT/NAME.json (marked \"interrupted\": true)",
        "and exits with status 130; jaxdl run NAME --resume continues from there.",
    ])
    return parser


def _print_summary(name: str, results: dict) -> None:
    module = experiments.available()[name]
    if hasattr(module, "summary"):
        headline = module.summary(results)
    else:
        headline = {k: v for k, v in results.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    print(f"{name}{' (fast mode)' if results.get('fast') else ''}:")
    for label, value in headline.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        print(f"  {label}: {value}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for line in _experiment_lines():
            print(line[2:])
        return 0
    if args.command == "bench":
        return bench_command.main(args)
    try:
        results = experiments.run(args.name, args.out, fast=args.fast, seed=args.seed, resume=args.resume)
    except experiments.units.Interrupted as stop:
        print(f"jaxdl: {stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"jaxdl: {args.name} interrupted; nothing saved", file=sys.stderr)
        return 130
    except ValueError as error:
        print(f"jaxdl: {error}", file=sys.stderr)
        return 2
    _print_summary(args.name, results)
    print(f"results written to {args.out}/{args.name}.json and {args.out}/{args.name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
