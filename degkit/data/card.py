"""The dataset card (``README.md``) of a built folder, Hugging Face Hub style.

YAML front matter: ``license`` (with ``license_name: unspecified`` when it is
``other``, as the Hub requires; see :func:`license_fields`), ``task_categories``, ``tags``,
``size_categories``, ``configs`` (one ``default`` config whose ``data_files``
map each split to ``data/<split>-*``, which matches every shard of that split
and nothing else), and ``dataset_info`` (features and split sizes). The body
gives the recipe, its hash, the seed, counts, where content captions came
from, a sample of captions, the exact command, the columns and how to load
it. Nothing time-dependent is written, so a resumed build gets the same card.
"""

from __future__ import annotations

from typing import Any

import yaml

from degkit.data.info import completeness
from degkit.data.shards import column_specs
from degkit.data.stats import DatasetStats

__all__ = [
    "LICENSE_KEYS",
    "UNSPECIFIED_LICENSE_NAME",
    "render_card",
    "size_category",
    "data_files_config",
    "feature_list",
    "license_fields",
    "read_license_fields",
]

# libyaml's emitter where PyYAML has it: the same text, written in C.
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

LICENSE_KEYS = ("license", "license_name", "license_link")
# The Hub wants ``license_name`` beside ``license: other``; the build knows no name.
UNSPECIFIED_LICENSE_NAME = "unspecified"

_SIZE_BINS = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` label of ``n`` rows."""
    for limit, label in _SIZE_BINS:
        if n < limit:
            return label
    return "n>1B"


def data_files_config(splits: list[str]) -> list[dict[str, Any]]:
    """The ``configs`` entry mapping every split to its shard files."""
    files = [{"split": s, "path": f"data/{s}-*"} for s in splits]
    return [{"config_name": "default", "data_files": files}]


def license_fields(license: str) -> dict[str, str]:
    """The card's license keys: ``license``, plus ``license_name`` when it is ``other``.

    A license id the Hub knows (``cc-by-4.0``, ``mit``, ...) stands alone; ``other``
    needs a ``license_name``, and the build cannot know one, so it is ``unspecified``
    (edit the card before pushing to name the terms and add a ``license_link``).
    """
    if license == "other":
        return {"license": license, "license_name": UNSPECIFIED_LICENSE_NAME}
    return {"license": license}


def read_license_fields(card_text: str) -> dict[str, str]:
    """The :data:`LICENSE_KEYS` present in a card's YAML front matter (empty if none)."""
    if not card_text.startswith("---\n"):
        return {}
    header = card_text[4:].split("\n---", 1)[0]
    data = yaml.load(header, Loader=_YAML_LOADER) or {}
    return {k: str(data[k]) for k in LICENSE_KEYS if k in data}


def _columns(stats: DatasetStats) -> dict[str, dict[str, Any]]:
    return column_specs(stats.info["settings"]["flat_columns"])


def feature_list(columns: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``dataset_info.features`` in the Hub's YAML form (from :func:`column_specs`)."""
    out: list[dict[str, Any]] = []
    for name, spec in columns.items():
        if spec["dtype"] == "list<string>":
            out.append({"name": name, "list": "string"})
        elif spec["dtype"] == "class_label":
            names = {str(code): label for code, label in enumerate(spec["labels"])}
            out.append({"name": name, "dtype": {"class_label": {"names": names}}})
        else:
            out.append({"name": name, "dtype": spec["dtype"]})
    return out


def _front_matter(stats: DatasetStats) -> dict[str, Any]:
    splits = list(stats.splits)
    return {
        **license_fields(stats.info["settings"]["license"]),
        "task_categories": ["image-to-image"],
        "tags": [
            "super-resolution",
            "image-degradation",
            "degkit",
            stats.info["settings"]["recipe"],
        ],
        "size_categories": [size_category(stats.rows)],
        "configs": data_files_config(splits),
        "dataset_info": {
            "features": feature_list(_columns(stats)),
            "splits": [
                {"name": s.name, "num_bytes": s.bytes, "num_examples": s.rows}
                for s in stats.splits.values()
            ],
        },
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "(empty)"


def _content_caption_text(stats: DatasetStats) -> str:
    counts = stats.content_captions
    captioner = stats.info["settings"].get("captioner")
    total = sum(counts.values())
    if total and counts["none"] == total:
        return (
            "Content captions are **empty** in every row: the source has no caption "
            "column and no `--captioner` model was given."
        )
    parts = []
    if counts["source"]:
        parts.append(f"{counts['source']} rows take it from the source's captions")
    if counts["model"]:
        parts.append(f"{counts['model']} rows were captioned by the model `{captioner}`")
    if counts["none"]:
        parts.append(f"{counts['none']} rows have none (empty string)")
    return "Content captions: " + "; ".join(parts) + "." if parts else "No rows yet."


def render_card(stats: DatasetStats) -> str:
    """The full ``README.md`` text."""
    settings = stats.info["settings"]
    yaml_text = yaml.dump(
        _front_matter(stats), Dumper=_YAML_DUMPER, sort_keys=False, allow_unicode=True
    )
    note, _ = completeness(stats.out, stats)
    status = f"**{note}**" if note else "complete"
    lines = [
        "---",
        yaml_text.rstrip("\n"),
        "---",
        "",
        f"# {settings['recipe']} x{settings['scale']} degradation dataset",
        "",
        "Pairs of HR crops and LR images degraded with the degkit recipe "
        f"`{settings['recipe']}`; every LR image is labelled with captions of the "
        "degradations that made it and keeps the exact parameters (records) that replay it.",
        "",
        "## Build",
        "",
        "| | |",
        "|---|---|",
        f"| recipe | `{settings['recipe']}` |",
        f"| recipe hash | `{settings['recipe_hash']}` |",
        f"| scale | x{settings['scale']} |",
        f"| HR crop | {settings['crop'] or 'whole image'} ({settings['crop_mode']}), "
        f"{settings['per_image']} per image |",
        f"| seed | {settings['seed']} |",
        f"| source | {stats.info['source']} ({settings['images']} images) |",
        f"| rows | {stats.rows} |",
        f"| shards | {stats.shards_done} of {stats.shards_total} ({status}) |",
        f"| skipped images | {len(stats.skipped)} (listed in `skipped.jsonl`) |",
        f"| fingerprint | `{stats.info['fingerprint']}` |",
        "",
        "| split | rows | shards | bytes |",
        "|---|---|---|---|",
    ]
    for s in stats.splits.values():
        lines.append(f"| {s.name} | {s.rows} | {s.files_done} / {s.files_total} | {s.bytes} |")
    lines += [
        "",
        "Command:",
        "",
        "```bash",
        stats.info["command"],
        "```",
        "",
        "## Captions",
        "",
        _content_caption_text(stats),
        "",
        "| id | content caption | degradation caption | severity caption |",
        "|---|---|---|---|",
    ]
    for row in stats.examples:
        lines.append(
            f"| {row['id']} | {_cell(row['content_caption'])} | "
            f"{_cell(row['degradation_caption'])} | {_cell(row['severity_caption'])} |"
        )
    lines += [
        "",
        "## Columns",
        "",
    ]
    for name, spec in _columns(stats).items():
        kind = spec["dtype"]
        if kind == "class_label":
            kind = "class label: " + ", ".join(spec["labels"])
        lines.append(f"- `{name}` ({kind}): {spec['doc']}")
    lines += [
        "",
        "## HR preparation",
        "",
        "Source images are decoded upright (EXIF orientation applied) to 8-bit RGB: grayscale "
        "replicated, 16-bit reduced to its high byte, transparency composited over white, "
        "palette and CMYK converted by Pillow, ICC profiles ignored. Crops come from "
        "each sample's own random stream; images smaller than the crop, unreadable or over "
        "the pixel limit are skipped and listed in `skipped.jsonl`. Splits are by source "
        "image, so crops of one image never land in two splits.",
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("parquet", data_files={'
        + ", ".join(f'"{s}": "data/{s}-*.parquet"' for s in stats.splits)
        + "})",
        "",
        "from degkit.data.loaders import make_dataloader",
        'loader = make_dataloader(".", split="'
        + next(iter(stats.splits), "train")
        + '", batch_size=16, shuffle=True)',
        "```",
        "",
        "## License",
        "",
        f"`{settings['license']}`"
        + (
            f" with `license_name: {UNSPECIFIED_LICENSE_NAME}`: name the terms (`license_name`, "
            "`license_link` in the YAML header) before publishing; a `--license` id the Hub "
            "knows (e.g. `cc-by-4.0`) needs neither"
            if settings["license"] == "other"
            else ""
        )
        + ". The images keep the terms of their source"
        + (
            "; these are the sample photos shipped with scikit-image, pyiqa and matplotlib."
            if stats.info["source"].startswith("embedded")
            else "."
        ),
        "",
    ]
    return "\n".join(lines)
