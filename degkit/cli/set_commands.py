"""``degkit sets`` and ``degkit export-set``: list the test sets, and write one as PNGs."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register", "run_sets", "run_export_set"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sets`` and ``export-set`` sub-commands."""
    p = sub.add_parser(
        "sets",
        help="list the evaluation test sets (pairs, LR size, content hash), or describe one",
    )
    p.add_argument("name", nargs="?", help="describe this set (name or YAML path) as JSON")
    p.set_defaults(run=run_sets)

    p = sub.add_parser(
        "export-set",
        help="write a test set's LR (and HR) images as PNGs plus set.json",
        description="Write DIR/LR/<id>.png, DIR/HR/<id>.png and DIR/set.json, so a method "
        "outside degkit can be run on the set. A non-empty DIR that is not an export of "
        "the same set is refused.",
    )
    p.add_argument("name", help="set name (see degkit sets) or YAML path")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=run_export_set)


def run_sets(args: argparse.Namespace) -> int:
    """Print one line per shipped set, or one set's description as JSON."""
    from tqdm import tqdm

    from degkit.evaluate.sets import available_sets, load_set, lr_sizes

    if args.name:
        print(json.dumps(load_set(args.name).describe(), indent=2))
        return 0
    print(f"{'name':28s} {'kind':8s} {'scale':>5s} {'n':>4s}  {'LR size':10s} hash")
    names = available_sets()
    for name in tqdm(names, desc="sets", file=sys.stderr, leave=False, disable=None):
        test_set = load_set(name)
        pairs = test_set.pairs()
        sizes = lr_sizes(pairs)
        size = sizes[0] if len(sizes) == 1 else f"{len(sizes)} sizes"
        tqdm.write(
            f"{name:28s} {test_set.kind:8s} {'x' + str(test_set.scale):>5s} {len(pairs):4d}  "
            f"{size:10s} {test_set.hash[:16]}",
            file=sys.stdout,
        )
    return 0


def run_export_set(args: argparse.Namespace) -> int:
    """Export a set and say where it went."""
    from degkit.evaluate.export import export_set
    from degkit.evaluate.sets import load_set

    test_set = load_set(args.name)
    n = export_set(test_set, args.out)
    print(f"wrote {n} pairs of {test_set.name} (hash {test_set.hash[:16]}) to {args.out}")
    return 0
