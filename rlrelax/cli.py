"""The ``rlrelax`` command line."""

import argparse
from collections.abc import Sequence

from rlrelax import __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``rlrelax`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="rlrelax", description="Learning through discrete choices in reinforcement learning."
    )
    parser.add_argument("--version", action="version", version=f"rlrelax {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rlrelax`` command.

    :param argv: the arguments after the program name; ``sys.argv[1:]`` when ``None``
    :return: the process exit status
    """
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
