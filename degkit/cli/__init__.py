"""The ``degkit`` command line: one sub-command module per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from degkit.cli import (
    adaptor_commands,
    data_commands,
    eval_commands,
    merge_commands,
    ops_commands,
    recipe_commands,
    set_commands,
)

__all__ = ["main"]

COMMAND_MODULES = (
    ops_commands,
    recipe_commands,
    data_commands,
    merge_commands,
    set_commands,
    eval_commands,
    adaptor_commands,
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="degkit", description="Seeded, captioned image degradation for super-resolution."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sub-command; errors print one clear line and exit with status 2.

    Besides bad input (ValueError, KeyError), OSError covers the conditions a user
    causes: a missing file, a full disk, no network to the Hub (ConnectionError),
    no token (PermissionError).
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        sys.stderr.close()
        return 0
    except (ValueError, OSError, KeyError) as exc:  # OSError: e.g. a full disk, no permission
        print(f"degkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
