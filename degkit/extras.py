"""Optional dependencies, installed with degkit's extras, and the error when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require"]


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtra` saying how to install it.

    Example: ``require("transformers", "caption", "BuildConfig.captioner")``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{feature} needs the {module.split('.')[0]} package: pip install 'degkit[{extra}]'"
        ) from exc
