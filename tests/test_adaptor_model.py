"""The degradation adaptor: outputs, zero-init control, checkpoints, real-format CLIP weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import open_clip
import pytest
import torch
from adaptor_helpers import TINY, TINY_FIELDS
from safetensors.torch import save_file

from degkit.models.adaptor import (
    CLIP_MEAN,
    CLIP_STD,
    DegradationAdaptor,
    build_clip,
    create_adaptor,
    encode_tokens,
    load_adaptor,
    preprocess,
    save_adaptor,
)
from degkit.models.config import AdaptorConfig, available_configs, get_config


def _tiny(seed: int = 0) -> DegradationAdaptor:
    torch.manual_seed(seed)
    return DegradationAdaptor(TINY)


@pytest.mark.parametrize("size", [16, 24, 9])
def test_output_shapes_and_unit_norm(size):
    model = _tiny()
    out = model(torch.rand(3, 3, size, size))
    assert out.content.shape == out.degradation.shape == (3, TINY.embed_dim)
    assert out.per_type.shape == (3, TINY.num_types, TINY.embed_dim)
    for emb in (out.content, out.degradation, out.per_type):
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(emb.shape[:-1]))


def test_step_zero_content_degradation_and_types_are_the_frozen_clip_embedding():
    model = _tiny()
    assert all(torch.count_nonzero(p) == 0 for p in model.zero_layers.parameters())
    for name, value in model.clip.visual.state_dict().items():
        assert torch.equal(model.controller.state_dict()[name], value)
    images = torch.rand(4, 3, 16, 16)
    normalised = torch.from_numpy(
        (images.numpy() - np.array(CLIP_MEAN, np.float32)[:, None, None])
        / np.array(CLIP_STD, np.float32)[:, None, None]
    )
    plain = model.clip.encode_image(normalised, normalize=True)
    out = model(images)
    torch.testing.assert_close(out.content, plain, atol=1e-6, rtol=0)
    # the controller starts as a copy of the vision tower: same embedding
    torch.testing.assert_close(out.degradation, plain, atol=1e-6, rtol=0)
    # and every type starts at it: the frozen CLIP's zero-shot answer
    torch.testing.assert_close(
        out.per_type, plain[:, None].expand_as(out.per_type), atol=1e-6, rtol=0
    )


def test_control_changes_content_once_zero_layers_move():
    model = _tiny()
    images = torch.rand(2, 3, 16, 16)
    before = model(images).content
    with torch.no_grad():
        model.zero_layers[0].bias.fill_(0.5)
    assert not torch.allclose(model(images).content, before)


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_encode_tokens_equals_open_clips_encode_text_on_all_77_tokens(quick_gelu):
    torch.manual_seed(0)
    clip = build_clip(dataclasses.replace(TINY, context_length=77, quick_gelu=quick_gelu))
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=77)
    tokens = tokenizer(
        ["blur with sigma:1.5", "no jpeg", "A photo with gaussian noise with sigma:12"]
    )
    with torch.no_grad():
        expected = clip.encode_text(tokens, normalize=True)
        assert torch.allclose(encode_tokens(clip, tokens), expected, atol=1e-5)


def test_preprocess_normalises_with_clip_statistics_and_resizes_whole_image():
    x = torch.rand(2, 3, 16, 16)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(preprocess(x, 16), (x - mean) / std)
    flat = torch.full((1, 3, 10, 14), 0.25)  # resizing a constant image keeps it constant
    out = preprocess(flat, 16)
    assert out.shape == (1, 3, 16, 16)
    torch.testing.assert_close(out, ((flat[:, :, :1, :1] - mean) / std).expand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        preprocess(torch.rand(3, 16, 16), 16)


def test_vit_b32_config_is_open_clips_vit_b32():
    shipped = open_clip.get_model_config("ViT-B-32")
    ours = get_config("vit_b32").open_clip_config()
    assert ours["embed_dim"] == shipped["embed_dim"] == 512
    assert ours["vision_cfg"] == shipped["vision_cfg"]
    assert ours["text_cfg"] == shipped["text_cfg"]
    assert available_configs() == ["small", "vit_b32"]


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        dataclasses.replace(TINY, image_size=20)
    with pytest.raises(ValueError, match="vision_layers"):
        dataclasses.replace(TINY, vision_layers=0)
    with pytest.raises(ValueError, match="unknown adaptor config 'big'"):
        get_config("big")
    with pytest.raises(ValueError, match="unknown field"):
        AdaptorConfig.from_dict({**TINY.to_dict(), "depth": 3})


def test_checkpoint_round_trip(tmp_path):
    model = _tiny()
    with torch.no_grad():  # make every part non-trivial
        for p in model.zero_layers.parameters():
            p.normal_()
    path = tmp_path / "ckpt.safetensors"
    extra = {"loss.logit_scale": torch.tensor(2.5)}
    save_adaptor(model, path, extra, {"init": "scratch", "step": 7})
    loaded, meta, others = load_adaptor(path)
    assert loaded.config == TINY
    assert meta == {"init": "scratch", "step": 7}
    assert torch.equal(others["loss.logit_scale"], extra["loss.logit_scale"])
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    images = torch.rand(2, 3, 16, 16)
    assert torch.equal(loaded(images).per_type, model(images).per_type)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a degkit adaptor checkpoint"):
        load_adaptor(tmp_path / "other.safetensors")


def _activations(model: torch.nn.Module) -> set[type]:
    kinds = (torch.nn.GELU, open_clip.transformer.QuickGELU)
    return {type(m) for m in model.modules() if isinstance(m, kinds)}


def test_quick_gelu_builds_quickgelu_towers_and_survives_a_checkpoint(tmp_path):
    shipped = open_clip.get_model_config("ViT-B-32-quickgelu")  # OpenAI's weights' model
    assert get_config("vit_b32", quick_gelu=True).open_clip_config() == shipped
    torch.manual_seed(0)
    quick = DegradationAdaptor(dataclasses.replace(TINY, quick_gelu=True))
    assert _activations(quick) == {open_clip.transformer.QuickGELU}  # both towers, controller
    assert _activations(_tiny()) == {torch.nn.GELU}
    with torch.no_grad():
        for p in quick.zero_layers.parameters():
            p.normal_()
    path = tmp_path / "quick.safetensors"
    save_adaptor(quick, path)
    loaded, _, _ = load_adaptor(path)
    assert loaded.config.quick_gelu is True
    assert _activations(loaded) == {open_clip.transformer.QuickGELU}
    images = torch.rand(2, 3, 16, 16)
    assert torch.equal(loaded(images).content, quick(images).content)
    gelu = DegradationAdaptor(TINY)
    gelu.load_state_dict(quick.state_dict())  # same weights, other activation
    assert not torch.allclose(gelu(images).content, quick(images).content)
    older = {k: v for k, v in TINY.to_dict().items() if k != "quick_gelu"}
    assert AdaptorConfig.from_dict(older).quick_gelu is False  # checkpoints before the field


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_init_loads_real_format_open_clip_weights(tmp_path, fmt, monkeypatch):
    from degkit.models import config

    monkeypatch.setitem(config.CONFIGS, "tiny", TINY)
    torch.manual_seed(123)
    reference = open_clip.CLIP(**TINY.open_clip_config())
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    path = tmp_path / f"clip.{fmt}"
    if fmt == "pt":  # open_clip training checkpoints: {"state_dict": {"module.<key>": ...}}
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    torch.manual_seed(0)  # a different random init, which the file must replace
    model = create_adaptor("tiny", init=path)
    for name, value in state.items():
        assert torch.equal(model.clip.state_dict()[name], value), name
    for name, value in model.controller.state_dict().items():
        assert torch.equal(value, state[f"visual.{name}"]), name
    assert all(not p.requires_grad for p in model.clip.parameters())


def test_init_rejects_missing_or_mismatched_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="--init"):
        create_adaptor("small", init=tmp_path / "none.pt")
    other = build_clip(dataclasses.replace(TINY, vision_layers=3))
    path = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    with pytest.raises(ValueError, match="not weights of this CLIP architecture"):
        create_adaptor("small", init=path, **TINY_FIELDS)
