"""SR backbones: the named settings are spandrel's architectures (published sizes, detected
by spandrel from the saved trunk), and --init loads spandrel-format checkpoints."""

from __future__ import annotations

import pytest
import spandrel
import torch

from degkit.models.backbones import (
    BACKBONES,
    build_backbone,
    load_trunk_weights,
    save_trunk,
)

TINY = ("dat_tiny", "compact_tiny")


def _lr(n=1, size=16, seed=0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("name", "millions"), [("dat", 14.80), ("dat_s", 11.21), ("dat_light", 0.573)]
)
def test_dat_settings_have_the_published_sizes_at_x4(name, millions):
    trunk = build_backbone(name, 4)
    count = sum(p.numel() for p in trunk.parameters())
    assert round(count / 1e6, 2 if millions > 1 else 3) == millions


def _detected(trunk, path) -> spandrel.ImageModelDescriptor:
    save_trunk(trunk, path)
    return spandrel.ModelLoader().load_from_file(path)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_spandrel_detects_every_setting_at_x4(tmp_path, name):
    torch.manual_seed(0)
    trunk = build_backbone(name, 4)
    descriptor = _detected(trunk, tmp_path / "trunk.safetensors")
    spec = BACKBONES[name]
    assert descriptor.architecture.id == spec.family and descriptor.scale == 4
    detected = descriptor.model.hyperparameters
    for key, value in spec.kwargs.items():
        assert detected[key] == value, key
    state = descriptor.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in trunk.state_dict().items())


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", TINY)
def test_saved_tiny_trunk_runs_the_same_in_spandrel(tmp_path, name, scale):
    torch.manual_seed(scale)
    trunk = build_backbone(name, scale).eval()
    descriptor = _detected(trunk, tmp_path / "trunk.pth")
    assert descriptor.scale == scale
    lr = _lr()
    with torch.no_grad():
        assert torch.equal(descriptor.model.eval()(lr), trunk(lr))


def _spandrel_dat_tiny(scale: int, seed: int) -> torch.nn.Module:
    """A tiny DAT built with spandrel's class directly (not through the registry)."""
    from spandrel.architectures.DAT import DAT

    torch.manual_seed(seed)
    return DAT(
        upscale=scale,
        embed_dim=32,
        depth=[2, 2],
        num_heads=[2, 2],
        split_size=[2, 4],
        expansion_factor=2.0,
    )


def test_init_loads_a_wrapped_spandrel_checkpoint(tmp_path):
    public = _spandrel_dat_tiny(2, seed=7).eval()
    path = tmp_path / "public.pth"
    torch.save({"params_ema": {f"module.{k}": v for k, v in public.state_dict().items()}}, path)
    torch.manual_seed(0)
    trunk = build_backbone("dat_tiny", 2).eval()
    assert load_trunk_weights(trunk, path) == []
    with torch.no_grad():
        assert torch.equal(trunk(_lr()), public(_lr()))


def test_init_x4_from_x2_loads_all_but_the_upsampler(tmp_path):
    path = tmp_path / "x2.safetensors"
    save_trunk(_spandrel_dat_tiny(2, seed=7), path)
    trunk = build_backbone("dat_tiny", 4)
    with pytest.raises(ValueError, match="not this DAT setting"):
        load_trunk_weights(trunk, path)
    left = load_trunk_weights(trunk, path, strict=False)
    assert left and all(k.startswith("upsample.") for k in left)
    x2 = _spandrel_dat_tiny(2, seed=7).state_dict()
    assert torch.equal(trunk.state_dict()["conv_first.weight"], x2["conv_first.weight"])


def test_init_rejects_another_architecture_and_missing_files(tmp_path):
    path = tmp_path / "compact.pth"
    save_trunk(build_backbone("compact_tiny", 2), path)
    with pytest.raises(ValueError, match="not a DAT checkpoint"):
        load_trunk_weights(build_backbone("dat_tiny", 2), path)
    with pytest.raises(FileNotFoundError, match="--init"):
        load_trunk_weights(build_backbone("dat_tiny", 2), tmp_path / "none.pth")


def test_unknown_backbone_and_scale_are_errors():
    with pytest.raises(ValueError, match="unknown backbone 'rcan'"):
        build_backbone("rcan", 4)
    with pytest.raises(ValueError, match="scale must be one of"):
        build_backbone("dat_tiny", 8)
