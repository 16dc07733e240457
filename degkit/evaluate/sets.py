"""Test sets for SR evaluation: YAML files -> deterministic, content-hashed HR / LR pairs.

``available_sets()`` lists the shipped set files (``benchmarks/sets/*.yaml``,
installed as ``degkit/set_files``); ``load_set(name or path)`` gives a
:class:`TestSet`, whose :meth:`TestSet.pairs` are generated on first use
(synthetic sets are cached on disk, see :mod:`degkit.evaluate.set_cache`) and
whose :attr:`TestSet.hash` is the SHA-256 of the pairs' ids and pixels
(:func:`degkit.evaluate.pairs.content_hash`), the set's identity in every
report. The file format is described in :mod:`degkit.evaluate.set_spec`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from degkit.evaluate.pairs import Pair, content_hash
from degkit.evaluate.set_spec import SetError, SetSpec, read_spec
from degkit.shipped import shipped_dir

__all__ = ["SETS_DIR", "Pair", "SetError", "TestSet", "available_sets", "load_set", "lr_sizes"]


SETS_DIR = shipped_dir("set_files", "benchmarks/sets")


def _portable_path(path: Path) -> str:
    """A shipped set file as ``benchmarks/sets/<name>.yaml`` (the same on every machine),
    any other set file as given."""
    if path.resolve().parent == SETS_DIR.resolve():
        return f"benchmarks/sets/{path.name}"
    return str(path)


def available_sets() -> list[str]:
    """Names of the shipped test sets, sorted."""
    return sorted(p.stem for p in SETS_DIR.glob("*.yaml"))


def _locate(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        if not Path(text).is_file():
            raise FileNotFoundError(f"{text}: no such test-set file")
        return Path(text)
    path = SETS_DIR / f"{text}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown test set {text!r}; available: {', '.join(available_sets())}")
    return path


def load_set(name_or_path: str | Path) -> TestSet:
    """A shipped test set by name (``"realesrgan_x4"``) or any set file by path.

    The file, its recipe and its folders are checked now; pixels are made on
    the first :meth:`TestSet.pairs` call.
    """
    return TestSet(read_spec(_locate(name_or_path)))


def lr_sizes(pairs: list[Pair]) -> list[str]:
    """The distinct LR sizes of the pairs as ``WxH`` strings, sorted."""
    return sorted({f"{p.lr.shape[1]}x{p.lr.shape[0]}" for p in pairs})


class TestSet:
    """A loaded test set: ``name``, ``scale``, ``kind`` (``paired`` / ``lr_only``), pairs, hash."""

    __test__ = False  # not a pytest test class

    def __init__(self, spec: SetSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.path = spec.path
        self.kind = "lr_only" if spec.kind == "lr_folder" else "paired"
        self.recipe = None
        self._variants: list = []
        self._sources: list = []
        self._scale = spec.scale
        self._pairs_made: tuple[Pair, ...] | None = None
        self._hash_made: str | None = None
        if spec.kind == "synthetic":
            from degkit.evaluate.synthetic import level_recipes, load_recipe, set_sources

            self.recipe = load_recipe(spec)
            self._variants = level_recipes(spec)
            self._sources = set_sources(spec)
            self._scale = spec.scale or self.recipe.scale
            if spec.crop is not None and spec.crop % self._scale:
                raise spec.error(
                    "crop", f"{spec.crop} is not a multiple of the scale {self._scale}"
                )

    def __repr__(self) -> str:
        return f"TestSet({self.name!r}, kind={self.kind!r}, scale={self._scale})"

    @property
    def scale(self) -> int:
        """The SR factor (for paired folders without ``scale``: inferred from the images)."""
        if self._scale is None:
            self.pairs()
        return self._scale

    def pairs(self) -> list[Pair]:
        """The pairs, sorted by id; made (or read from the cache) on the first call."""
        return list(self._pairs())

    @property
    def hash(self) -> str:
        """Hex SHA-256 of the pairs (ids, LR and HR pixels), the scale and the kind."""
        if self._hash_made is None:
            self._hash_made = content_hash(self._pairs(), self.scale, self.kind)
        return self._hash_made

    def _pairs(self) -> tuple[Pair, ...]:
        if self._pairs_made is None:
            self._pairs_made = self._checked(self._cached_or_made())
        return self._pairs_made

    def _checked(self, pairs: list[Pair]) -> tuple[Pair, ...]:
        """The pairs sorted by id, read-only, after checking that ids are unique."""
        seen: set[str] = set()
        for pair in pairs:
            if pair.id in seen:
                field = "source" if self.spec.kind == "synthetic" else "lr"
                raise self.spec.error(field, f"two images give the same pair id {pair.id!r}")
            seen.add(pair.id)
            for image in (pair.lr, pair.hr):
                if image is not None:
                    image.flags.writeable = False
        return tuple(sorted(pairs, key=lambda p: p.id))

    def make_pairs(self, batch_size: int = 16) -> list[Pair]:
        """Make the pairs afresh, bypassing the cache (the same for any ``batch_size``,
        the number of crops degraded together)."""
        if self.spec.kind == "paired_folders":
            from degkit.evaluate.folders import paired_folder_pairs

            pairs, self._scale = paired_folder_pairs(self.spec)
            return pairs
        if self.spec.kind == "lr_folder":
            from degkit.evaluate.folders import lr_folder_pairs

            return lr_folder_pairs(self.spec)
        from degkit.evaluate.synthetic import synthetic_pairs

        return synthetic_pairs(self.spec, self._variants, self._sources, batch_size)

    def _cached_or_made(self) -> list[Pair]:
        """Synthetic sets: the cached pairs when intact, else made and cached."""
        if self.spec.kind != "synthetic":
            return self.make_pairs()
        from degkit.evaluate.set_cache import cache_dir, cache_key, read_cached, write_cached

        settings = {
            "set": self.spec.content,
            "source": self.spec.source,
            "recipe_hashes": [recipe.hash for _, recipe in self._variants],
            "scale": self._scale,
        }
        files = [s.location for s in self._sources]
        path = cache_dir() / f"{self.name}-{cache_key(settings, files)}.npz"
        pairs = read_cached(path, self._scale, self.kind)
        if pairs is None:
            pairs = self.make_pairs()
            write_cached(path, pairs, content_hash(pairs, self._scale, self.kind))
        return pairs

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance: name, hash, scale, kind, n, LR sizes, file, and the
        source, recipe (name and hash), seed and crop policy, or the folders."""
        from degkit.rng import STREAM_VERSION

        pairs = self._pairs()
        spec = self.spec
        info: dict[str, Any] = {
            "name": self.name,
            "hash": self.hash,
            "scale": self.scale,
            "kind": self.kind,
            "layout": spec.kind,
            "n": len(pairs),
            "lr_sizes": lr_sizes(list(pairs)),
            "file": _portable_path(self.path),
            "description": spec.description,
        }
        if spec.kind == "synthetic":
            from degkit.data.sources import describe_source

            info.update(
                source=spec.source,
                source_description=describe_source(spec.source),
                source_ids=sorted({p.meta["source_id"] for p in pairs}),
                recipe=self.recipe.name,
                recipe_hash=self.recipe.hash,
                seed=spec.seed,
                crop={
                    "crop": spec.crop,
                    "crops_per_image": spec.crops_per_image,
                    "crop_mode": spec.crop_mode,
                },
                levels=list(spec.levels),
                level_recipe_hashes={
                    level: recipe.hash for level, recipe in self._variants if level is not None
                },
                stream_version=STREAM_VERSION,
            )
        else:
            info.update({k: str(getattr(spec, k)) for k in ("hr", "lr") if getattr(spec, k)})
        return info
