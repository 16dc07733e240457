"""Where HR images come from: folders, path lists, parquet / HF datasets, embedded photos.

Every source resolves to a list of :class:`SourceImage`, sorted by its
``source_id``: a stable, unique string (the path relative to the folder, the
path as written in a CSV / JSONL, ``<parquet file>#<row>``, or
``embedded/<package>/<name>``). A build derives each sample's global index
from the position in this sorted list, so the ids must not depend on the
machine, the walk order or the time.

A :class:`SourceImage` only *locates* the encoded image; :meth:`SourceImage.read_bytes`
fetches it, in whatever process decodes it. Source kinds:

* a folder, searched recursively for ``png, jpg, jpeg, webp, bmp, tif, tiff``
  files (hidden files and folders skipped). Its other files (other types,
  broken symbolic links) are not source images, so they take no sample index,
  but they are reported as :class:`SkippedFile` with the reason, for
  ``skipped.jsonl``;
* a ``.csv`` (header row) or ``.jsonl`` file with a path column (``path``,
  ``image``, ``file``, ``filepath`` or ``filename``; relative paths are relative
  to the file) and an optional content caption column (``caption``, ``text``,
  ``title`` or ``content_caption``);
* a ``.parquet`` file, or a folder of them (e.g. a Hub dataset snapshot), or a
  ``datasets.save_to_disk`` folder, with an image column (HF ``Image`` struct of
  ``bytes`` / ``path``, or raw bytes) and an optional caption column;
* ``None`` / ``"embedded"``: real photos that ship inside installed packages
  (scikit-image, pyiqa, matplotlib), so a build works with no download,
  less the held-out ones (:data:`HELDOUT_PHOTOS`); each carries a short
  hand-written content caption;
* ``"embedded-heldout"``: only the held-out photos, which the test sets of
  :mod:`degkit.evaluate.sets` are made from, so training data built from the
  default source and the test sets never share a photo.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib.metadata
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "IMAGE_EXTENSIONS",
    "SourceImage",
    "SkippedFile",
    "SourceListing",
    "list_source",
    "scan_folder",
    "HELDOUT_PHOTOS",
    "embedded_images",
    "heldout_images",
    "folder_images",
    "listed_images",
    "parquet_images",
    "saved_dataset_images",
    "resolve_source",
    "describe_source",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
PATH_COLUMNS = ("path", "image", "file", "filepath", "filename")
CAPTION_COLUMNS = ("caption", "content_caption", "text", "title")
IMAGE_COLUMNS = ("image", "hr", "img", "picture")

# (distribution, file inside it, source id, content caption): real photographs
# only (no drawings, test patterns, distorted copies or near-duplicate stereo
# views). The captions were written by hand, looking at each photo: what it
# shows, never how it looks (no words about blur, noise, compression, ...).
_EMBEDDED_PHOTOS: tuple[tuple[str, str, str, str], ...] = (
    (
        "scikit-image",
        "skimage/data/astronaut.png",
        "skimage/astronaut",
        "an astronaut in an orange spacesuit beside an American flag and a space shuttle model",
    ),
    (
        "scikit-image",
        "skimage/data/brick.png",
        "skimage/brick",
        "a brick wall seen at an angle, long bricks in staggered rows",
    ),
    (
        "scikit-image",
        "skimage/data/camera.png",
        "skimage/camera",
        "a man in a dark coat looking through a camera on a tripod outdoors",
    ),
    (
        "scikit-image",
        "skimage/data/chelsea.png",
        "skimage/chelsea",
        "a close-up of a tabby cat's face with green eyes and a pink nose",
    ),
    (
        "scikit-image",
        "skimage/data/coffee.png",
        "skimage/coffee",
        "a cup of espresso on a red saucer with a spoon on a wooden table",
    ),
    (
        "scikit-image",
        "skimage/data/coins.png",
        "skimage/coins",
        "rows of ancient silver coins with heads and figures on a dark background",
    ),
    (
        "scikit-image",
        "skimage/data/grass.png",
        "skimage/grass",
        "a patch of grass blades and small clover leaves seen from above",
    ),
    (
        "scikit-image",
        "skimage/data/gravel.png",
        "skimage/gravel",
        "a ground covered with small angular gravel stones seen from above",
    ),
    (
        "scikit-image",
        "skimage/data/hubble_deep_field.jpg",
        "skimage/hubble_deep_field",
        "countless distant galaxies of many colours scattered across black space",
    ),
    (
        "scikit-image",
        "skimage/data/ihc.png",
        "skimage/immunohistochemistry",
        "a tissue section under a microscope: brown-stained glands among blue cell nuclei",
    ),
    (
        "scikit-image",
        "skimage/data/moon.png",
        "skimage/moon",
        "the grey surface of the Moon with small round craters and dark patches",
    ),
    (
        "scikit-image",
        "skimage/data/motorcycle_left.png",
        "skimage/motorcycle",
        "a red Yamaha motorcycle parked in a garage in front of metal shelves",
    ),
    (
        "scikit-image",
        "skimage/data/retina.jpg",
        "skimage/retina",
        "a human retina with branching red blood vessels and the optic disc",
    ),
    (
        "scikit-image",
        "skimage/data/rocket.jpg",
        "skimage/rocket",
        "a white rocket on its launch pad between lattice towers at dusk",
    ),
    (
        "pyiqa",
        "ResultsCalibra/ref_dir/I03.bmp",
        "pyiqa/I03",
        "yellow, orange and green baseball caps hanging on a wooden wall under blue sky",
    ),
    (
        "pyiqa",
        "ResultsCalibra/ref_dir/I04.bmp",
        "pyiqa/I04",
        "a young blonde woman in a red hat and red net scarf smiling",
    ),
    (
        "pyiqa",
        "ResultsCalibra/ref_dir/I06.bmp",
        "pyiqa/I06",
        "a small sailboat anchored in turquoise water near a shore with palm trees",
    ),
    (
        "pyiqa",
        "ResultsCalibra/ref_dir/I08.bmp",
        "pyiqa/I08",
        "half-timbered houses with steep tiled roofs and green shutters in an old town",
    ),
    (
        "pyiqa",
        "ResultsCalibra/ref_dir/I19.bmp",
        "pyiqa/I19",
        "a white lighthouse and cottages behind a white picket fence with a life ring",
    ),
    (
        "pyiqa",
        "tests/test_efficiency_img_dir/SPAQ_10241.jpg",
        "pyiqa/SPAQ_10241",
        "a wet paved street at night with trees and a tall street lamp",
    ),
    (
        "pyiqa",
        "tests/test_efficiency_img_dir/frame_4wrwr48cdk6rbcjl.jpg",
        "pyiqa/frame_4wrw",
        "a formal garden with a glass sculpture fountain, clipped hedges and wooden benches",
    ),
    (
        "pyiqa",
        "tests/test_efficiency_img_dir/frame_7gzdcz9sif0ekg31.jpg",
        "pyiqa/frame_7gzd",
        "a woman in a long dress walking along a beach as the sun sets",
    ),
    (
        "pyiqa",
        "tests/test_efficiency_img_dir/frame_9ogwhvvy7gfj6jzh.jpg",
        "pyiqa/frame_9ogw",
        "cars, a truck and police cars stopped on a wintry highway, seen from above",
    ),
    (
        "matplotlib",
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "matplotlib/grace_hopper",
        "an elderly woman in a navy uniform, cap and glasses before an American flag",
    ),
)

# Held out of the default build source for the test sets: varied content
# (a portrait, an animal, a texture, a garden, buildings, an object).
HELDOUT_PHOTOS: tuple[str, ...] = (
    "embedded/pyiqa/I04",
    "embedded/skimage/chelsea",
    "embedded/skimage/gravel",
    "embedded/pyiqa/frame_4wrw",
    "embedded/pyiqa/I08",
    "embedded/skimage/coffee",
)


@dataclasses.dataclass(frozen=True)
class SourceImage:
    """One HR source image: a stable id, where its bytes are, and its content caption.

    ``location`` is a file path; for an image stored inside a table, ``row``
    is its row in that parquet file or ``save_to_disk`` folder and ``column``
    the image column.
    """

    source_id: str
    location: str
    caption: str = ""
    row: int | None = None
    column: str | None = None

    def read_bytes(self) -> bytes:
        """The encoded image (PNG, JPEG, ...) as stored."""
        if self.row is None:
            return Path(self.location).read_bytes()
        if self.location.endswith(".parquet"):
            return _parquet_cell(self.location, self.row, self.column)
        return _saved_dataset_cell(self.location, self.row, self.column)


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file of a source folder that is not used as an image, and why."""

    source_id: str
    location: str
    reason: str


@dataclasses.dataclass(frozen=True)
class SourceListing:
    """The sorted images of a source and the files of it left out (sorted by id)."""

    images: list[SourceImage]
    skipped: list[SkippedFile]


# -- embedded photos ----------------------------------------------------------
def embedded_images() -> list[SourceImage]:
    """The training photos: embedded photos (ids ``embedded/<pkg>/<name>``) not held out.

    Photos of packages that are not installed are left out; the list is never
    empty because scikit-image and pyiqa are dependencies of degkit.
    """
    found = [s for s in _installed_photos() if s.source_id not in HELDOUT_PHOTOS]
    if not found:
        raise FileNotFoundError(
            "no embedded photos found: install scikit-image, pyiqa or matplotlib, "
            "or set BuildConfig.source"
        )
    return found


def heldout_images() -> list[SourceImage]:
    """The held-out embedded photos (:data:`HELDOUT_PHOTOS`), sorted by id.

    Raises:
        FileNotFoundError: a held-out photo's package is not installed (a test
            set made without it would not be the published one).
    """
    found = [s for s in _installed_photos() if s.source_id in HELDOUT_PHOTOS]
    missing = sorted(set(HELDOUT_PHOTOS) - {s.source_id for s in found})
    if missing:
        packages = sorted({d for d, _, n, _ in _EMBEDDED_PHOTOS if f"embedded/{n}" in missing})
        raise FileNotFoundError(
            f"held-out photos {missing} are missing: install {', '.join(packages)}"
        )
    return found


def _installed_photos() -> list[SourceImage]:
    found = []
    for dist, rel_path, name, caption in _EMBEDDED_PHOTOS:
        path = _distribution_file(dist, rel_path)
        if path is not None:
            found.append(SourceImage(f"embedded/{name}", str(path), caption))
    return sorted(found, key=lambda s: s.source_id)


@functools.cache
def _distribution_files(dist: str) -> dict[str, Path]:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    return {str(f).replace("\\", "/"): Path(str(f.locate())) for f in files}


def _distribution_file(dist: str, rel_path: str) -> Path | None:
    path = _distribution_files(dist).get(rel_path)
    return path if path is not None and path.is_file() else None


# -- folders --------------------------------------------------------------------
def folder_images(root: str | Path) -> list[SourceImage]:
    """Image files under ``root`` (recursive), id = POSIX path relative to ``root``."""
    return scan_folder(root).images


def scan_folder(root: str | Path) -> SourceListing:
    """Image files under ``root`` (recursive; id = POSIX path relative to ``root``).

    Hidden files and folders are ignored; every other file that is not a
    readable image file (another type, a broken symbolic link) is listed in
    ``skipped`` with the reason.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"BuildConfig.source folder {str(root)!r} does not exist")
    found, skipped = [], []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or path.is_dir():
            continue
        reason = _not_an_image_file(path)
        if reason is None:
            found.append(SourceImage(rel.as_posix(), str(path)))
        else:
            skipped.append(SkippedFile(rel.as_posix(), str(path), reason))
    return SourceListing(
        sorted(found, key=lambda s: s.source_id), sorted(skipped, key=lambda s: s.source_id)
    )


def _not_an_image_file(path: Path) -> str | None:
    """Why a (non-folder) path of a source folder is not used, or None for an image file."""
    if path.is_symlink() and not path.exists():
        return f"broken symbolic link to {os.readlink(path)}"
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        kind = f"file type {suffix!r}" if suffix else "file without an extension"
        return f"unsupported {kind}; image files end in {', '.join(IMAGE_EXTENSIONS)}"
    if not path.is_file():
        return "not a regular file"
    return None


# -- CSV / JSONL lists ---------------------------------------------------------------
def listed_images(
    list_file: str | Path, path_column: str | None = None, caption_column: str | None = None
) -> list[SourceImage]:
    """Images named in a CSV (with header) or JSONL file; id = the path as written."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"BuildConfig.source list {str(list_file)!r} does not exist")
    rows = _read_rows(list_file)
    if not rows:
        raise ValueError(f"BuildConfig.source list {str(list_file)!r} has no rows")
    columns = list(rows[0])
    path_col = _pick_column(
        list_file, columns, path_column, PATH_COLUMNS, "BuildConfig.path_column"
    )
    caption_col = _pick_optional_column(list_file, columns, caption_column, CAPTION_COLUMNS)
    seen: dict[str, int] = {}
    found = []
    for line, row in enumerate(rows, start=2 if list_file.suffix.lower() == ".csv" else 1):
        written = str(row.get(path_col) or "").strip()
        if not written:
            raise ValueError(f"{list_file}: line {line} has an empty {path_col!r}")
        if written in seen:
            raise ValueError(
                f"{list_file}: line {line} repeats the path {written!r} of line {seen[written]}"
            )
        seen[written] = line
        path = Path(written) if Path(written).is_absolute() else list_file.parent / written
        caption = str(row.get(caption_col) or "") if caption_col else ""
        found.append(SourceImage(written, str(path), caption.strip()))
    return sorted(found, key=lambda s: s.source_id)


def _read_rows(list_file: Path) -> list[dict]:
    suffix = list_file.suffix.lower()
    if suffix == ".csv":
        with list_file.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for line, text in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
            if text.strip():
                try:
                    rows.append(json.loads(text))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{list_file}: line {line} is not JSON: {exc}") from None
        return rows
    raise ValueError(f"BuildConfig.source list {str(list_file)!r} must be .csv or .jsonl")


def _pick_column(
    where: Path | str,
    columns: Sequence[str],
    wanted: str | None,
    candidates: Iterable[str],
    option: str,
) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise ValueError(f"{where}: no column {wanted!r} ({option}); columns: {list(columns)}")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise ValueError(
        f"{where}: cannot tell which column holds the images; columns: {list(columns)}; "
        f"name one with {option}"
    )


def _pick_optional_column(
    where: Path | str, columns: Sequence[str], wanted: str | None, candidates: Iterable[str]
) -> str | None:
    if wanted is not None:
        return _pick_column(where, columns, wanted, (), "BuildConfig.caption_column")
    return next((name for name in candidates if name in columns), None)


# -- parquet and saved HF datasets -------------------------------------------------------
def parquet_images(
    path: str | Path, image_column: str | None = None, caption_column: str | None = None
) -> list[SourceImage]:
    """Rows of a parquet file or of every ``*.parquet`` under a folder.

    The id of a row is ``<file relative to path>#<row>`` (zero-padded row).
    """
    import pyarrow.parquet as pq

    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"BuildConfig.source {str(path)!r} holds no .parquet files")
    found = []
    for file in files:
        columns = pq.ParquetFile(file).schema_arrow.names
        image_col = _pick_column(
            file, columns, image_column, IMAGE_COLUMNS, "BuildConfig.image_column"
        )
        caption_col = _pick_optional_column(file, columns, caption_column, CAPTION_COLUMNS)
        n_rows = pq.ParquetFile(file).metadata.num_rows
        captions = (
            pq.read_table(file, columns=[caption_col]).column(0).to_pylist()
            if caption_col
            else [""] * n_rows
        )
        rel = file.name if path.is_file() else file.relative_to(path).as_posix()
        for row, caption in enumerate(captions):
            found.append(
                SourceImage(f"{rel}#{row:09d}", str(file), str(caption or ""), row, image_col)
            )
    return found


def saved_dataset_images(
    folder: str | Path, image_column: str | None = None, caption_column: str | None = None
) -> list[SourceImage]:
    """Rows of a ``datasets.Dataset.save_to_disk`` folder; id = ``<folder name>#<row>``."""
    ds = _load_saved_dataset(str(folder))
    columns = ds.column_names
    image_col = _pick_column(
        folder, columns, image_column, IMAGE_COLUMNS, "BuildConfig.image_column"
    )
    caption_col = _pick_optional_column(folder, columns, caption_column, CAPTION_COLUMNS)
    captions = ds[caption_col] if caption_col else [""] * len(ds)
    name = Path(folder).name
    return [
        SourceImage(f"{name}#{row:09d}", str(folder), str(caption or ""), row, image_col)
        for row, caption in enumerate(captions)
    ]


@functools.lru_cache(maxsize=4)
def _load_saved_dataset(folder: str):
    import datasets

    ds = datasets.load_from_disk(folder)
    if isinstance(ds, datasets.DatasetDict):
        raise ValueError(
            f"BuildConfig.source {folder!r} is a DatasetDict with splits {list(ds)}; "
            "point BuildConfig.source at one split's folder"
        )
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
    return ds


def _saved_dataset_cell(folder: str, row: int, column: str | None) -> bytes:
    value = _load_saved_dataset(folder)[row][column]
    return _image_cell_bytes(value, folder)


@functools.lru_cache(maxsize=8)
def _parquet_file(path: str):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    starts = [0]
    for i in range(pf.metadata.num_row_groups):
        starts.append(starts[-1] + pf.metadata.row_group(i).num_rows)
    return pf, starts


@functools.lru_cache(maxsize=2)
def _parquet_row_group(path: str, group: int, column: str) -> list:
    pf, _ = _parquet_file(path)
    return pf.read_row_group(group, columns=[column]).column(0).to_pylist()


def _parquet_cell(path: str, row: int, column: str | None) -> bytes:
    import bisect

    _, starts = _parquet_file(path)
    group = bisect.bisect_right(starts, row) - 1
    value = _parquet_row_group(path, group, column)[row - starts[group]]
    return _image_cell_bytes(value, path)


def _image_cell_bytes(value: object, where: str) -> bytes:
    """Bytes of an image cell: raw bytes, or an HF ``Image`` struct of bytes / path."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return Path(value["path"]).read_bytes()
    raise ValueError(f"{where}: image cell holds neither bytes nor a path")


# -- one entry point ---------------------------------------------------------------------
def resolve_source(
    source: str | Path | None,
    image_column: str | None = None,
    caption_column: str | None = None,
    path_column: str | None = None,
) -> list[SourceImage]:
    """The sorted images of a ``--source`` argument (kind detected from the path).

    ``None`` or ``"embedded"`` gives :func:`embedded_images` (the training
    photos), ``"embedded-heldout"`` :func:`heldout_images`.
    """
    return list_source(source, image_column, caption_column, path_column).images


def list_source(
    source: str | Path | None,
    image_column: str | None = None,
    caption_column: str | None = None,
    path_column: str | None = None,
) -> SourceListing:
    """Like :func:`resolve_source`, plus the files of a source folder that are left out."""
    if source is None or str(source) == "embedded":
        return SourceListing(embedded_images(), [])
    if str(source) == "embedded-heldout":
        return SourceListing(heldout_images(), [])
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"BuildConfig.source {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    skipped: list[SkippedFile] = []
    if path.is_file() and suffix in (".csv", ".jsonl", ".ndjson"):
        images = listed_images(path, path_column, caption_column)
    elif path.is_file() and suffix == ".parquet":
        images = parquet_images(path, image_column, caption_column)
    elif path.is_dir() and (path / "dataset_info.json").is_file():
        images = saved_dataset_images(path, image_column, caption_column)
    elif path.is_dir() and next(path.rglob("*.parquet"), None) is not None:
        images = parquet_images(path, image_column, caption_column)
    elif path.is_dir():
        listing = scan_folder(path)
        images, skipped = listing.images, listing.skipped
    else:
        raise ValueError(
            f"BuildConfig.source {str(path)!r}: expected a folder, a .csv / .jsonl list, "
            "a .parquet file or a saved dataset folder"
        )
    if not images:
        left_out = "".join(f"; {f.source_id}: {f.reason}" for f in skipped[:3])
        raise ValueError(f"BuildConfig.source {str(path)!r} holds no images{left_out}")
    return SourceListing(sorted(images, key=lambda s: s.source_id), skipped)


def describe_source(source: str | Path | None) -> str:
    """A one-line human description of a ``--source`` argument (for the card)."""
    if source is None or str(source) == "embedded":
        return (
            "embedded real photos from scikit-image, pyiqa and matplotlib "
            "(less the ones held out for test sets)"
        )
    if str(source) == "embedded-heldout":
        return "embedded real photos held out for test sets: " + ", ".join(HELDOUT_PHOTOS)
    return str(source)
