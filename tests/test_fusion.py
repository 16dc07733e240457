"""The fusion wrapper: exactly the bare spandrel trunk without a prior (and when fresh),
guided by the prior once trained, saved and reloaded whole, trunk still spandrel's."""

from __future__ import annotations

import pytest
import spandrel
import torch

from degkit.models.backbones import build_backbone, save_trunk
from degkit.models.fusion import FusedSR, FusionBlock

TINY = ("dat_tiny", "compact_tiny")
D, K = 24, 5


def _lr(n=2, size=16, seed=0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _prior(n=2, seed=1) -> torch.Tensor:
    return torch.randn(n, 1 + K, D, generator=torch.Generator().manual_seed(seed))


def _model(name: str, scale: int, seed: int = 0) -> FusedSR:
    torch.manual_seed(seed)
    return FusedSR(build_backbone(name, scale), prior_dim=D, group=2)


def _train_step(model: FusedSR, lr: torch.Tensor, prior: torch.Tensor) -> None:
    """One Adam step of L1 to a random target, on the fusion parameters only."""
    optimizer = torch.optim.Adam([p for _, p in model.fusion_parameters()], lr=1e-2)
    target = torch.rand(model(lr, prior).shape, generator=torch.Generator().manual_seed(9))
    loss = (model(lr, prior) - target).abs().mean()
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", TINY)
def test_without_prior_or_fresh_it_is_exactly_the_bare_trunk(name, scale):
    model = _model(name, scale).eval()
    lr = _lr()
    with torch.no_grad():
        bare = model.trunk(lr)
        assert bare.shape == (2, 3, 16 * scale, 16 * scale)
        assert torch.equal(model(lr), bare)
        assert torch.equal(model(lr, _prior()), bare)  # zero-initialised residuals


@pytest.mark.parametrize("name", TINY)
def test_without_prior_training_mode_matches_too(name):
    model = _model(name, 2).train()  # DAT's stochastic depth draws the same numbers
    lr = _lr()
    torch.manual_seed(3)
    bare = model.trunk(lr)
    torch.manual_seed(3)
    assert torch.equal(model(lr), bare)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", TINY)
def test_after_a_step_the_prior_steers_the_output(name, scale):
    model = _model(name, scale)
    lr, prior = _lr(), _prior()
    trunk_before = {k: v.clone() for k, v in model.trunk.named_parameters()}
    _train_step(model.train(), lr, prior)
    model.eval()
    with torch.no_grad():
        guided = model(lr, prior)
        assert guided.shape == (2, 3, 16 * scale, 16 * scale)
        assert not torch.equal(guided, model(lr))
        assert not torch.equal(guided, model(lr, _prior(seed=2)))
        assert torch.equal(model(lr), model.trunk(lr))
    trunk_after = dict(model.trunk.named_parameters())
    assert all(torch.equal(v, trunk_after[k]) for k, v in trunk_before.items())


def test_dat_with_fusion_has_the_published_size():
    torch.manual_seed(0)
    model = FusedSR(build_backbone("dat", 4), prior_dim=512)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 18.06


def test_one_block_per_residual_group():
    assert len(_model("dat_tiny", 2).blocks) == 2  # two residual groups
    assert len(_model("compact_tiny", 2).blocks) == 2  # 4 body convs, a block every 2
    torch.manual_seed(0)
    compact = FusedSR(build_backbone("compact", 4), prior_dim=D)
    assert len(compact.blocks) == 4  # 32 body convs, a block every 8


def test_state_dict_round_trip_and_trunk_stays_spandrel(tmp_path):
    model = _model("dat_tiny", 3)
    lr, prior = _lr(), _prior()
    _train_step(model.train(), lr, prior)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    again = _model("dat_tiny", 3, seed=5)
    again.load_state_dict(torch.load(tmp_path / "model.pt"))
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(again(lr, prior), model(lr, prior))
    trunk_keys = {k[len("trunk.") :] for k in model.state_dict() if k.startswith("trunk.")}
    assert trunk_keys == set(model.trunk.state_dict())
    save_trunk(model.trunk, tmp_path / "trunk.safetensors")
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / "trunk.safetensors")
    assert descriptor.architecture.id == "DAT" and descriptor.scale == 3
    with torch.no_grad():
        assert torch.equal(descriptor.model.eval()(lr), model(lr))


def test_fusion_block_updates_tokens_and_keeps_shapes():
    torch.manual_seed(0)
    block = FusionBlock(16)
    image, content, degradation = (
        torch.randn(2, 30, 16),
        torch.randn(2, 1, 16),
        torch.randn(2, K, 16),
    )
    out_image, out_content, out_degradation = block(image, content, degradation)
    assert torch.equal(out_image, image)  # zero-initialised writes into the image tokens
    assert out_content.shape == content.shape and not torch.equal(out_content, content)
    assert out_degradation.shape == degradation.shape
    assert not torch.equal(out_degradation, degradation)


def test_bad_prior_shape_is_an_error():
    model = _model("compact_tiny", 2)
    with pytest.raises(ValueError, match="prior must be N x"):
        model(_lr(), torch.zeros(3, 1 + K, D))
