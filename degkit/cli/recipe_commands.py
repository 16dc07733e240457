"""``degkit recipes`` and ``degkit preview``: list recipes, and see what one does.

``degkit preview RECIPE`` writes a contact sheet PNG: the HR crop (a centre
crop of an embedded photo, or of ``--image``), then ``--samples`` LR samples
of that crop (sample indices 0, 1, ...), each upscaled by pixel repetition to
the crop's size for viewing, with its numeric caption (one fragment a line)
and severity caption under it.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: ``degkit --help`` must not load torch
    import numpy as np
    import torch
    from PIL import Image, ImageDraw, ImageFont

__all__ = ["register", "run_recipes", "run_preview", "contact_sheet", "DEFAULT_PHOTO"]

DEFAULT_PHOTO = "embedded/skimage/astronaut"
FONT_SIZE = 12
LINE_HEIGHT = 15
GAP = 8
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``recipes`` and ``preview`` sub-commands."""
    p = sub.add_parser("recipes", help="list recipes with their content hash, or show one")
    p.add_argument("name", nargs="?", help="show this recipe (name or YAML path) in full")
    p.set_defaults(run=run_recipes)

    p = sub.add_parser(
        "preview",
        help="write a contact sheet PNG of a recipe's LR samples with their captions",
    )
    p.add_argument("recipe", help="recipe name (see degkit recipes) or YAML path")
    p.add_argument("--image", default=None, help=f"HR photo (default: {DEFAULT_PHOTO})")
    p.add_argument("--samples", type=int, default=7, help="number of LR samples (default 7)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--scale", type=int, default=None, help="SR factor (default: the recipe's)")
    p.add_argument("--crop", type=int, default=256, help="HR crop side in pixels (default 256)")
    p.add_argument("--columns", type=int, default=4, help="tiles per row (default 4)")
    p.add_argument("--out", default=None, help="output PNG (default: preview_<recipe>.png)")
    p.set_defaults(run=run_preview)


def run_recipes(args: argparse.Namespace) -> int:
    """Print every shipped recipe (name, scale, hash, summary), or one recipe in full.

    The listing comes from :mod:`degkit.recipe_index` (cached, so usually without torch).
    """
    if args.name:
        from degkit import recipes

        recipe = recipes.load(args.name)
        print(f"name: {recipe.name}\nfile: {recipe.path}\nhash: {recipe.hash}")
        print(f"scale: {recipe.scale}\ndescription: {recipe.description}")
        print("ops: " + ", ".join(recipe.pipeline.ops))
        print(json.dumps(recipe.spec, indent=2, sort_keys=True))
        return 0
    from degkit.recipe_index import summaries

    for recipe in summaries():
        summary = textwrap.shorten(recipe.description, width=70, placeholder="...")
        print(f"{recipe.name:24s} x{recipe.scale}  {recipe.hash[:16]}  {summary}")
    return 0


# -- preview --------------------------------------------------------------------
def _load_photo(path: str | None) -> tuple[np.ndarray, str]:
    """An RGB8 photo and its label: ``path``, or the default embedded photo."""
    from degkit.data.prepare import SkipImage, decode_rgb8
    from degkit.data.sources import embedded_images

    if path is not None:
        label, data = Path(path).name, Path(path).read_bytes()
    else:
        photos = {s.source_id: s for s in embedded_images()}
        source = photos.get(DEFAULT_PHOTO) or next(iter(photos.values()))
        label, data = source.source_id, source.read_bytes()
    try:
        return decode_rgb8(data), label
    except SkipImage as exc:
        raise ValueError(f"{label}: {exc}") from None


def _centre_crop(photo: np.ndarray, crop: int, scale: int) -> torch.Tensor:
    """The centre ``side x side`` crop (side: ``crop`` or less, a multiple of ``scale``)."""
    import numpy as np
    import torch

    h, w = photo.shape[:2]
    side = min(crop, h, w) // scale * scale
    if side < scale:
        raise ValueError(f"the photo ({w}x{h}) is smaller than the scale {scale}")
    top, left = (h - side) // 2, (w - side) // 2
    pixels = photo[top : top + side, left : left + side]
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float().div(255.0)


def _to_pil(img: torch.Tensor, side: int) -> Image.Image:
    """A ``3 x h x w`` image in [0, 1] as a Pillow image, repeated up to ``side`` pixels."""
    from PIL import Image

    factor = max(1, side // img.shape[-1])
    big = img.repeat_interleave(factor, dim=-1).repeat_interleave(factor, dim=-2)
    pixels = big.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def contact_sheet(
    hr: torch.Tensor, lr: list[torch.Tensor], texts: list[str], title: str, columns: int
) -> Image.Image:
    """Tiles (the HR crop, then each LR upscaled to its size) with wrapped text under each."""
    from PIL import Image, ImageDraw, ImageFont

    side = hr.shape[-1]
    tiles = [_to_pil(hr, side)] + [_to_pil(img, side) for img in lr]
    font = ImageFont.load_default(size=FONT_SIZE)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(measure, t, font, side) for t in texts]
    text_h = LINE_HEIGHT * max(len(w) for w in wrapped)
    cell_w, cell_h = side + GAP, side + GAP + text_h + GAP
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    title_h = LINE_HEIGHT + GAP
    sheet = Image.new("RGB", (columns * cell_w + GAP, title_h + rows * cell_h + GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((GAP, GAP // 2), title, fill=INK, font=font)
    for k, (tile, lines) in enumerate(zip(tiles, wrapped, strict=True)):
        x = GAP + (k % columns) * cell_w
        y = title_h + GAP + (k // columns) * cell_h
        sheet.paste(tile, (x, y))
        for j, line in enumerate(lines):
            draw.text((x, y + side + GAP // 2 + j * LINE_HEIGHT), line, fill=INK, font=font)
    return sheet


def run_preview(args: argparse.Namespace) -> int:
    """Degrade a photo crop ``--samples`` times and write the contact sheet."""
    from degkit import recipes
    from degkit.captions import captions_for, degradation_caption

    recipe = recipes.load(args.recipe)
    scale = args.scale or recipe.scale
    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    photo, label = _load_photo(args.image)
    hr = _centre_crop(photo, args.crop, scale)
    batch = hr.unsqueeze(0).expand(args.samples, -1, -1, -1).contiguous()
    result = recipe.pipeline(batch, seed=args.seed, indices=range(args.samples), scale=scale)
    lr = list(result.lr)
    texts = [f"HR {hr.shape[-1]}x{hr.shape[-2]} crop of {label}"]
    for i, records in enumerate(result.records):
        caps = captions_for(records, tuple(hr.shape[-2:]))
        numeric = degradation_caption(records).replace(",", "\n")
        texts.append(
            f"#{i} LR {lr[i].shape[-1]}x{lr[i].shape[-2]}\n{numeric}\n[{caps['severity_caption']}]"
        )
    title = f"{recipe.name}  x{scale}  hash {recipe.hash[:16]}  seed {args.seed}"
    sheet = contact_sheet(hr, lr, texts, title, args.columns)
    out = Path(args.out or f"preview_{recipe.name}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    print(f"wrote {out} ({sheet.width}x{sheet.height}, {args.samples} samples)")
    return 0
