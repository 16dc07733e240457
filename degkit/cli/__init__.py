"""The ``degkit`` command line: one sub-command module per job."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from degkit.cli import (
    adaptor_commands,
    bench_commands,
    data_commands,
    estimation_commands,
    eval_commands,
    infer_commands,
    merge_commands,
    ops_commands,
    recipe_commands,
    set_commands,
    sr_commands,
)
from degkit.extras import MissingExtra

__all__ = ["main"]

COMMAND_MODULES = (
    ops_commands,
    recipe_commands,
    data_commands,
    merge_commands,
    set_commands,
    eval_commands,
    adaptor_commands,
    sr_commands,
    bench_commands,
    infer_commands,
    estimation_commands,
)

# Library errors name config fields (``BuildConfig.crop``); the command line shows its options.
_FIELD = re.compile(r"\bBuildConfig\.(\w+)(=True|=None)?")
_OPTIONS = {
    ("recipe", ""): "RECIPE",
    ("progress", ""): "--quiet",
    ("crop", "=None"): "--no-crop",
    ("resume", "=True"): "--resume",
}


def option_names(message: str) -> str:
    """``message`` with each ``BuildConfig.<field>`` replaced by its ``degkit build`` option."""

    def option(match: re.Match[str]) -> str:
        field, value = match.group(1), match.group(2) or ""
        return _OPTIONS.get((field, value), "--" + field.replace("_", "-"))

    return _FIELD.sub(option, message)


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

    Only user errors are caught: bad input (``ValueError``, including degkit's
    own error types), conditions of the machine and network (``OSError``: a
    missing file, a full disk, no network to the Hub (``ConnectionError``), no
    token (``PermissionError``)) and a missing optional dependency
    (:class:`degkit.extras.MissingExtra`). Anything else, e.g. a ``KeyError``,
    is a bug and keeps its traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        sys.stderr.close()
        return 0
    except (ValueError, OSError, MissingExtra) as exc:
        print(f"degkit {args.command}: error: {option_names(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
