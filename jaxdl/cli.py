"""The ``jaxdl`` command: ``jaxdl list`` and ``jaxdl run NAME``."""

from __future__ import annotations

import argparse
import json
import sys

from jaxdl import __version__, experiments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxdl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"jaxdl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the experiments")
    run = commands.add_parser("run", help="run an experiment")
    run.add_argument("name", help="experiment name (see `jaxdl list`)")
    run.add_argument("--fast", action="store_true", help="a smaller, quicker version")
    run.add_argument("--out", default="runs", help="output directory (default: runs)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name, module in experiments.available().items():
            print(f"{name:24s} {module.DESCRIPTION}")
        return 0
    try:
        results = experiments.run(args.name, args.out, fast=args.fast, seed=args.seed)
    except ValueError as error:
        print(f"jaxdl: {error}", file=sys.stderr)
        return 2
    summary = {k: v for k, v in results.items() if isinstance(v, (int, float, str))}
    print(json.dumps(summary, indent=2))
    print(f"results written to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
