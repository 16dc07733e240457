"""Content captions: the source's caption column first, else a captioner model, else empty.

The captioner is a tiny randomly initialised BLIP saved to a temp folder (offline).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from data_corpus import file_digests, photo_like, png_bytes, write_fast_recipe
from PIL import Image

from degkit.data.build import BuildConfig, build_dataset
from degkit.data.captioner import ContentCaptioner


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory) -> Path:
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder = tmp_path_factory.mktemp("tiny_blip")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(59)]
    (folder / "vocab.txt").write_text("\n".join(words))
    text = dict(
        vocab_size=64, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=64, bos_token_id=2, sep_token_id=3,
        pad_token_id=0, eos_token_id=3,
    )  # fmt: skip
    vision = dict(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8,
    )  # fmt: skip
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(
        BlipConfig(text_config=text, vision_config=vision, projection_dim=32)
    )
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=BertTokenizer(str(folder / "vocab.txt")),
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def listed_source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("captioned")
    lines = ["path,caption"]
    for i in range(6):
        (root / f"{i}.png").write_bytes(png_bytes(Image.fromarray(photo_like(24, 24, i))))
        lines.append(f"{i}.png,{'a photo number ' + str(i) if i % 2 else ''}")
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    write_fast_recipe(root)
    return root


def _build(root: Path, out: str, **kwargs) -> Path:
    config = BuildConfig(
        recipe=str(root / "fast.yaml"),
        out=root / out,
        source=str(root / "list.csv"),
        crop=16,
        progress=False,
        **{"workers": 0, **kwargs},
    )
    build_dataset(config)
    return root / out


def _captions(out: Path) -> dict[str, str]:
    table = pq.read_table(
        next(out.glob("data/*.parquet")), columns=["source_id", "content_caption"]
    )
    return dict(
        zip(table["source_id"].to_pylist(), table["content_caption"].to_pylist(), strict=True)
    )


def test_source_captions_then_model_fill_the_rest(tiny_blip, listed_source):
    out = _build(listed_source, "model", captioner=str(tiny_blip), batch_size=4)
    captions = _captions(out)
    for i in range(6):
        if i % 2:
            assert captions[f"{i}.png"] == f"a photo number {i}"
        else:
            assert captions[f"{i}.png"].startswith("w")  # generated from the tiny vocabulary
    again = _build(listed_source, "model_batch1", captioner=str(tiny_blip), batch_size=1, workers=2)
    assert file_digests(again) == file_digests(out)
    card = (out / "README.md").read_text()
    assert "3 rows take it from the source's captions" in card
    assert f"3 rows were captioned by the model `{tiny_blip}`" in card


def test_without_captioner_missing_captions_stay_empty(listed_source):
    out = _build(listed_source, "plain")
    captions = _captions(out)
    assert [captions[f"{i}.png"] for i in (0, 1)] == ["", "a photo number 1"]
    assert "3 rows have none (empty string)" in (out / "README.md").read_text()


def test_captioner_is_deterministic_and_reports_bad_models(tiny_blip, tmp_path):
    captioner = ContentCaptioner(str(tiny_blip))
    images = [photo_like(20, 20, i) for i in range(3)]
    assert captioner(images) == captioner(images) and captioner([]) == []
    with pytest.raises(
        ValueError, match="BuildConfig.captioner.* cannot be loaded: no such folder"
    ):
        ContentCaptioner(str(tmp_path / "no-model"))
