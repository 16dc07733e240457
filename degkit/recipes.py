"""Recipes: YAML files that describe a pipeline, validated, hashed and extensible.

A recipe file (``recipes/<name>.yaml``; its name is the file stem) has these
top-level keys:

* ``description``: free text;
* ``scale``: the default integer downscaling factor (required unless inherited);
* ``pipeline``: a list of nodes (run in order);
* ``extends``: another recipe (a name, or a path relative to this file) whose
  description, scale and pipeline this one starts from;
* ``overrides``: ``{node path: {field: value}}`` applied after ``extends``, e.g.
  ``{"stage1/blur": {"sigma": [0.2, 2.0]}}``. A node path is an op's path
  (``stage1/blur``) or a decision node's (``stage2/maybe_blur``: ``p``;
  ``stage1/one_of``: ``weights``; ``shuffle``: ``fixed`` / ``before``).

A node is one of (``name`` is optional everywhere but in a stage):

* ``{op: <op name>, name: ..., <config field>: <value>, ...}``;
* ``{stage: <name>, steps: [<node>, ...]}``;
* ``{sequential: [<node>, ...]}``, or just a list of nodes;
* ``{one_of: [<node>, ...], weights: [...]}``;
* ``{maybe: <node>, p: <probability>}``;
* ``{shuffle: [<node>, ...], fixed: {<child name>: <position>}, before: [[a, b], ...]}``.

See :mod:`degkit.pipeline` for what they do and how paths are formed.

Every error is a :class:`RecipeError` naming the file, the field path
(``pipeline[1].steps[0]``) and what is allowed. A recipe's **hash** is the
SHA-256 of the canonical JSON (sorted keys, every number as a float) of what
determines its output: the scale, the random-stream version
(:data:`degkit.rng.STREAM_VERSION`) and the pipeline tree after ``extends``
and ``overrides``, each op given by its name, its semantic version
(``Op.version``, raised whenever its maths change) and the configuration
fields that differ from the op's defaults. So adding an op field whose
default changes nothing keeps every hash, and changing an op's maths changes
the hash of every recipe using it. The recipe's name and description do not
enter it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from degkit.ops.base import Op, OpError, create_op, op_class
from degkit.pipeline import (
    Maybe,
    Node,
    OneOf,
    OpNode,
    Pipeline,
    PipelineError,
    Sequential,
    Shuffle,
    Stage,
)
from degkit.recipe_index import RECIPES_DIR, available
from degkit.rng import STREAM_VERSION

__all__ = [
    "Recipe",
    "RecipeError",
    "RECIPES_DIR",
    "available",
    "load",
    "from_dict",
    "canonical",
    "op_config",
]


# libyaml's parser where PyYAML has it (written in C: recipes load in every worker).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
TOP_LEVEL_KEYS = ("description", "scale", "pipeline", "extends", "overrides")
NODE_KEYS = {
    "op": None,  # plus the op's config fields
    "stage": ("stage", "steps"),
    "sequential": ("sequential", "name"),
    "one_of": ("one_of", "weights", "name"),
    "maybe": ("maybe", "p", "name"),
    "shuffle": ("shuffle", "fixed", "before", "name"),
}
OVERRIDABLE = {OneOf: ("weights",), Maybe: ("p",), Shuffle: ("fixed", "before")}


class RecipeError(ValueError):
    """An invalid recipe: ``<file>: <field path>: <what is wrong and what is allowed>``."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A loaded recipe: its pipeline, default scale and content hash."""

    name: str
    path: Path
    description: str
    scale: int
    pipeline: Pipeline
    spec: dict[str, Any]
    hash: str


# -- type checks of op configuration ------------------------------------------------
def _describe_type(tp: Any) -> str:
    """A field annotation in words, e.g. ``a number or a [low, high] pair of numbers``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [p for a in args for p in _describe_type(a).split(" or ")]
        return " or ".join(dict.fromkeys(parts))
    if origin is tuple:
        if args == (float, float):
            return "a number or a [low, high] pair of numbers"
        if args == (int, int):
            return "a [low, high] pair of integers"
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of ({_describe_type(args[0])})"
        return f"a list of {len(args)}: " + ", ".join(_describe_type(a) for a in args)
    words = {bool: "true or false", int: "an integer", float: "a number", str: "text"}
    return "null" if tp is type(None) else words.get(tp, str(tp))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _conforms(value: Any, tp: Any) -> bool:
    """Whether a YAML value fits a dataclass field annotation (lists stand for tuples)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return _is_number(value)
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        if args == (float, float) and _is_number(value):
            return True  # a single number means the range [v, v]
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            _conforms(v, a) for v, a in zip(value, args, strict=True)
        )
    return True  # other annotations: the op validates


@functools.cache
def _field_types(cls: type[Op]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


# -- building nodes --------------------------------------------------------------------
class _Builder:
    """Builds nodes from YAML data, reporting errors with the file and field path."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.raw_of: dict[int, dict] = {}

    def error(self, where: str, problem: str) -> RecipeError:
        return RecipeError(f"{self.file}: {where}: {problem}")

    def nodes(self, data: Any, where: str) -> list[Node]:
        if not isinstance(data, list) or not data:
            raise self.error(where, f"must be a non-empty list of nodes, got {data!r}")
        return [self.node(item, f"{where}[{i}]") for i, item in enumerate(data)]

    def node(self, data: Any, where: str) -> Node:
        if isinstance(data, list):
            return Sequential(*self.nodes(data, where))
        if not isinstance(data, dict):
            raise self.error(where, f"a node must be a mapping or a list, got {data!r}")
        kinds = [k for k in NODE_KEYS if k in data]
        if len(kinds) != 1:
            raise self.error(
                where,
                f"a node needs exactly one of the keys {list(NODE_KEYS)}, got keys {list(data)}",
            )
        kind = kinds[0]
        allowed = NODE_KEYS[kind]
        if allowed is not None:
            unknown = [k for k in data if k not in allowed]
            if unknown:
                raise self.error(
                    where, f"unknown key(s) {unknown} in a {kind} node; allowed: {list(allowed)}"
                )
        try:
            node = getattr(self, f"_{kind}")(data, where)
        except (PipelineError, OpError, TypeError) as exc:
            raise self.error(where, str(exc)) from None
        self.raw_of[id(node)] = data
        return node

    def _op(self, data: dict, where: str) -> Node:
        name = data["op"]
        if not isinstance(name, str):
            raise self.error(f"{where}.op", f"must be an op name, got {name!r}")
        cls = op_class(name)  # unknown op -> OpError listing the known ones
        config = {k: v for k, v in data.items() if k not in ("op", "name")}
        field_types = _field_types(cls)
        for key, value in config.items():
            if key in field_types and not _conforms(value, field_types[key]):
                raise self.error(
                    f"{where}.{key}",
                    f"{name}.{key} must be {_describe_type(field_types[key])}, got {value!r}",
                )
        return OpNode(create_op(name, **config), name=data.get("name"))

    def _stage(self, data: dict, where: str) -> Node:
        if "steps" not in data:
            raise self.error(where, "a stage needs 'steps': a list of nodes")
        return Stage(data["stage"], *self.nodes(data["steps"], f"{where}.steps"))

    def _sequential(self, data: dict, where: str) -> Node:
        return Sequential(
            *self.nodes(data["sequential"], f"{where}.sequential"),
            name=data.get("name", "sequential"),
        )

    def _one_of(self, data: dict, where: str) -> Node:
        weights = data.get("weights")
        if weights is not None and (
            not isinstance(weights, list) or not all(_is_number(w) for w in weights)
        ):
            raise self.error(f"{where}.weights", f"must be a list of numbers, got {weights!r}")
        return OneOf(
            *self.nodes(data["one_of"], f"{where}.one_of"),
            weights=weights,
            name=data.get("name", "one_of"),
        )

    def _maybe(self, data: dict, where: str) -> Node:
        if "p" not in data:
            raise self.error(where, "a maybe node needs 'p', the probability its child runs")
        return Maybe(self.node(data["maybe"], f"{where}.maybe"), data["p"], name=data.get("name"))

    def _shuffle(self, data: dict, where: str) -> Node:
        fixed = data.get("fixed", {})
        if not isinstance(fixed, dict):
            raise self.error(f"{where}.fixed", f"must map child names to positions, got {fixed!r}")
        before = data.get("before", [])
        if not isinstance(before, list) or not all(isinstance(p, list) for p in before):
            raise self.error(f"{where}.before", f"must be a list of [a, b] pairs, got {before!r}")
        return Shuffle(
            *self.nodes(data["shuffle"], f"{where}.shuffle"),
            fixed=fixed,
            before=before,
            name=data.get("name", "shuffle"),
        )


# -- canonical form and hash ------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON-ready copy: tuples as lists, every non-bool number as a float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if _is_number(value):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    raise TypeError(f"cannot put {value!r} into a recipe's canonical form")


@functools.cache
def _default_config(cls: type[Op]) -> dict[str, Any]:
    """The canonical form of every field of an op class built with its defaults."""
    default = cls()
    return {f.name: _plain(getattr(default, f.name)) for f in dataclasses.fields(default)}


def op_config(op: Op) -> dict[str, Any]:
    """An op's configuration without the fields left at their defaults (canonical form)."""
    defaults = _default_config(type(op))
    config = {f.name: _plain(getattr(op, f.name)) for f in dataclasses.fields(op)}
    return {key: value for key, value in config.items() if value != defaults[key]}


def canonical(node: Node) -> dict[str, Any]:
    """The canonical description of a node tree: each op's name, semantic version and
    the configuration fields that differ from its defaults."""
    if isinstance(node, OpNode):
        return {
            "op": node.op.name,
            "version": float(node.op.version),
            "name": node.name,
            "config": op_config(node.op),
        }
    items = [canonical(c) for c in node.children()]
    if isinstance(node, Stage):
        return {"stage": node.name, "steps": items}
    if isinstance(node, OneOf):
        return {"one_of": items, "weights": _plain(node.weights), "name": node.name}
    if isinstance(node, Maybe):
        return {"maybe": items[0], "p": float(node.p), "name": node.name}
    if isinstance(node, Shuffle):
        return {
            "shuffle": items,
            "fixed": _plain(node.fixed),
            "before": _plain(node.before),
            "name": node.name,
        }
    return {"sequential": items, "name": node.name}


def _content_hash(spec: dict[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


# -- resolving files ---------------------------------------------------------------------
def _locate(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if not path.is_file():
            raise RecipeError(f"{path}: no such recipe file")
        return path
    path = RECIPES_DIR / f"{text}.yaml"
    if not path.is_file():
        raise RecipeError(f"unknown recipe {text!r}; available: {', '.join(available())}")
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(f"{path}: {where}: invalid YAML: {problem}") from None
    return data


def _check_top_level(where: str | Path, data: Any) -> None:
    if not isinstance(data, Mapping):
        raise RecipeError(
            f"{where}: the top level must be a mapping with keys {list(TOP_LEVEL_KEYS)}"
        )
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise RecipeError(
            f"{where}: unknown top-level key(s) {unknown}; allowed: {list(TOP_LEVEL_KEYS)}"
        )


def _resolve(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe file's description, scale and raw pipeline after extends and overrides."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(p.stem for p in (*chain, path))
        raise RecipeError(f"{path}: extends: cycle {cycle}")
    return _resolve_data(_read(path), path, path.parent, (*chain, path))


def _resolve_data(
    data: Any, path: str | Path, base_dir: Path | None, chain: tuple[Path, ...]
) -> dict[str, Any]:
    """Recipe data (a file's content or a dict) after extends and overrides.

    ``extends`` paths are relative to ``base_dir`` (the working directory when
    None); ``chain`` holds the files being resolved (to report cycles).
    """
    _check_top_level(path, data)
    resolved: dict[str, Any] = {"description": "", "scale": None, "pipeline": None}
    if "extends" in data:
        parent = data["extends"]
        if not isinstance(parent, str):
            raise RecipeError(f"{path}: extends: must be a recipe name or path, got {parent!r}")
        try:
            resolved = _resolve(_locate(parent, base_dir), chain)
        except RecipeError as exc:
            raise RecipeError(f"{path}: extends: {exc}") from None
    for key in ("description", "scale", "pipeline"):
        if key in data:
            resolved[key] = copy.deepcopy(data[key])
    if not isinstance(resolved["description"], str):
        raise RecipeError(f"{path}: description: must be text, got {resolved['description']!r}")
    scale = resolved["scale"]
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise RecipeError(f"{path}: scale: must be a positive integer (e.g. 4), got {scale!r}")
    if resolved["pipeline"] is None:
        raise RecipeError(f"{path}: pipeline: missing (give one, or extend a recipe)")
    if "overrides" in data:
        _apply_overrides(path, resolved["pipeline"], data["overrides"])
    return resolved


def _apply_overrides(path: str | Path, pipeline: Any, overrides: Any) -> None:
    """Set fields of the nodes named by path in ``pipeline`` (raw YAML data), in place."""
    if not isinstance(overrides, dict):
        raise RecipeError(f"{path}: overrides: must map node paths to {{field: value}} mappings")
    builder = _Builder(str(path))
    root = builder.node(pipeline, "pipeline")
    nodes = dict(Pipeline(root).root.stream_paths(""))
    for node_path, fields in overrides.items():
        where = f"overrides[{node_path!r}]"
        if node_path not in nodes:
            raise RecipeError(f"{path}: {where}: no node has this path; paths: {sorted(nodes)}")
        if not isinstance(fields, dict) or not fields:
            raise RecipeError(f"{path}: {where}: must be a non-empty {{field: value}} mapping")
        node = nodes[node_path]
        raw = builder.raw_of[id(node)]
        if isinstance(node, OpNode):
            structural = [k for k in fields if k in ("op", "name")]
        else:
            allowed = OVERRIDABLE[type(node)]
            structural = [k for k in fields if k not in allowed]
        if structural:
            raise RecipeError(
                f"{path}: {where}: cannot override {structural}; overrides change "
                "configuration fields, not names or structure"
            )
        raw.update(copy.deepcopy(fields))
        _Builder(str(path)).node(raw, where)  # validate now, with the override's location


def from_dict(data: Mapping[str, Any], name: str = "custom", path: str | Path = "<dict>") -> Recipe:
    """Build a recipe from the content of a recipe file, as a mapping.

    Every key of a recipe file works here, ``extends`` and ``overrides``
    included, so a dict gives the same pipeline and hash as a YAML file with
    the same content. ``path`` names the data in error messages; relative
    ``extends`` paths are taken from its folder when it is a file, else from
    the working directory.
    """
    file = Path(path)
    is_file = file.is_file()
    chain = (file.resolve(),) if is_file else ()
    resolved = _resolve_data(data, path, file.parent if is_file else None, chain)
    return _build(resolved, name, file)


def _build(resolved: dict[str, Any], name: str, path: Path) -> Recipe:
    """The recipe of resolved data (description, scale and raw pipeline)."""
    builder = _Builder(str(path))
    root = builder.node(resolved["pipeline"], "pipeline")
    try:
        pipeline = Pipeline(root, name=name)
    except PipelineError as exc:
        raise RecipeError(f"{path}: pipeline: {exc}") from None
    scale = resolved["scale"]
    spec = {
        "scale": float(scale),
        "stream_version": float(STREAM_VERSION),
        "pipeline": canonical(pipeline.root),
    }
    return Recipe(
        name=name,
        path=path,
        description=resolved["description"].strip(),
        scale=int(scale),
        pipeline=pipeline,
        spec=spec,
        hash=_content_hash(spec),
    )


def load(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """Load a shipped recipe by name (``"realesrgan"``) or any recipe file by path.

    ``overrides`` (``{node path: {field: value}}``, as in a recipe file) are
    applied after the file's own; the hash reflects them.
    """
    path = _locate(name_or_path)
    resolved = _resolve(path)
    if overrides:
        _apply_overrides(path, resolved["pipeline"], dict(overrides))
    return _build(resolved, name=path.stem, path=path)
