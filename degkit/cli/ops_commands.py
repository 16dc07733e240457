"""``degkit ops``: list the registered operators with their configuration defaults."""

from __future__ import annotations

import argparse

__all__ = ["register", "run_ops"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ops`` sub-command."""
    p = sub.add_parser("ops", help="list degradation operators, their parameters and defaults")
    p.add_argument("name", nargs="?", help="show only this op")
    p.set_defaults(run=run_ops)


def run_ops(args: argparse.Namespace) -> int:
    """Print every op (or one): family, summary, config defaults, captions and columns."""
    from degkit.ops import registered_ops

    ops = registered_ops()
    if args.name:
        if args.name not in ops:
            raise ValueError(f"unknown op {args.name!r}; known ops: {', '.join(ops)}")
        ops = {args.name: ops[args.name]}
    for name, cls in ops.items():
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name}  [{cls.family}]  version {cls.version}  {summary}")
        for field, default in cls.config_fields():
            print(f"    {field} = {default!r}")
        if cls.param_limits or cls.categories or cls.optional_params:
            limits = [
                f"{k} in [{lo:g}, {hi:g}]"
                for k, (lo, hi) in cls.param_limits.items()
                if k not in cls.categories
            ]
            cats = [f"{k} in {v}" for k, v in cls.categories.items()]
            optional = [
                f"{k} in [{lo:g}, {hi:g}] (optional)" for k, (lo, hi) in cls.optional_params.items()
            ]
            print(f"    per-sample parameters: {'; '.join(limits + cats + optional)}")
        for kind in cls.caption_types:
            lo, hi = kind.bins
            heavier = "lower" if kind.heavier_when_lower else "higher"
            print(
                f"    caption {kind.template!r}; {kind.phrase} light / medium / heavy split "
                f"at {lo:g} and {hi:g} ({heavier} is heavier)"
            )
        for column in cls.flat_columns:
            print(f"    column {column.name} ({column.dtype}): {column.doc}")
    return 0
