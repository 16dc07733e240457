"""``degkit merge``: join the parts of a ``--shard k/n`` build into one dataset."""

from __future__ import annotations

import argparse

__all__ = ["register", "run_merge"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``merge`` sub-command."""
    p = sub.add_parser(
        "merge",
        help="join the part folders of a --shard k/n build into one dataset",
        description="Check that the parts come from one build and hold every shard exactly "
        "once, then hard-link (or copy) the shards into --out and write its card.",
    )
    p.add_argument("parts", nargs="+", help="part folders (the --out of each degkit build job)")
    p.add_argument("--out", required=True, help="folder of the merged dataset")
    p.set_defaults(run=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    """Merge the parts and print the summary."""
    from degkit.data.merge import merge_parts

    print(merge_parts(args.parts, args.out).text())
    return 0
