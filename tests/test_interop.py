"""albumentations transform and torch module over degkit: the same output as a plain call."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from data_corpus import photo_like
from hypothesis import given, settings
from hypothesis import strategies as st

from degkit import recipes
from degkit.captions import captions_for, fine_captions
from degkit.interop.albumentations import DegkitTransform
from degkit.nn import Degrade
from degkit.ops import create_op
from degkit.rng import BatchStreams

RECIPE = recipes.load("deplsr")


def _batch(image: np.ndarray) -> torch.Tensor:
    """uint8 H x W x 3 -> 1 x 3 x H x W float in [0, 1] (written here, not degkit's helper)."""
    return torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]


def _uint8(x: torch.Tensor) -> np.ndarray:
    return np.clip(np.rint(x.numpy() * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)


@settings(max_examples=5)
@given(index=st.integers(0, 10**6), seed=st.integers(0, 1000))
def test_transform_in_compose_equals_the_plain_recipe_call(index: int, seed: int) -> None:
    image = photo_like(32, 32, index % 7)
    out = A.Compose([DegkitTransform(RECIPE, seed=seed)])(image=image, degkit_index=index)
    plain = RECIPE.pipeline(_batch(image), seed=seed, indices=[index], scale=4)
    assert out["image"].dtype == np.uint8 and out["image"].shape == (8, 8, 3)
    assert np.array_equal(out["image"], _uint8(plain.lr[0]))
    assert out["degkit_records"] == plain.records[0]
    assert captions_for(out["degkit_records"]) == captions_for(plain.records[0])


def test_transform_on_float_images_and_ops() -> None:
    image = photo_like(24, 20, 1).astype(np.float32) / 255
    op = create_op("gaussian_noise", sigma=(5, 20))
    out = A.Compose([DegkitTransform(op, seed=9)])(image=image, degkit_index=4)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    y, records = op(x, BatchStreams(9, [4], "gaussian_noise"))
    assert out["image"].dtype == np.float32
    assert np.array_equal(out["image"], y[0].permute(1, 2, 0).numpy())
    assert out["degkit_records"] == records


def test_without_an_index_the_transform_counts_its_calls() -> None:
    image = photo_like(32, 32, 2)
    transform = DegkitTransform("deplsr", seed=1)
    outs = [transform(image=image) for _ in range(3)]
    for i, out in enumerate(outs):
        plain = RECIPE.pipeline(_batch(image), seed=1, indices=[i], scale=4)
        assert out["degkit_records"] == plain.records[0]
    assert transform.next_index == 3


def test_transform_refuses_non_rgb_images() -> None:
    with pytest.raises(ValueError, match="H x W x 3"):
        DegkitTransform(RECIPE)(image=np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="'image' target"):
        A.Compose([DegkitTransform(RECIPE)])(images=np.zeros((2, 8, 8, 3), np.uint8))


def test_module_equals_the_plain_call_and_numbers_samples_across_calls() -> None:
    hr = torch.stack([_batch(photo_like(32, 32, i))[0] for i in range(4)])
    module = Degrade("deplsr", seed=5)
    given_lr = module(hr, indices=torch.tensor([10, 3, 7, 0]))
    plain = RECIPE.pipeline(hr, seed=5, indices=[10, 3, 7, 0], scale=4)
    assert torch.equal(given_lr, plain.lr) and module.last_records == plain.records
    first, second = module(hr[:2]), module(hr[2:])
    auto = RECIPE.pipeline(hr, seed=5, indices=[0, 1, 2, 3], scale=4)
    assert torch.equal(torch.cat([first, second]), auto.lr)
    assert module.last_records == auto.records[2:]
    captions = module.last_captions()
    assert captions == [fine_captions(r, (32, 32)) for r in auto.records[2:]]
    assert len(captions[0]) == 5 and any("noise" in c for c in captions[0])
    restored = Degrade("deplsr")
    restored.load_state_dict(module.state_dict())
    assert (restored.seed, restored.next_index) == (5, 4)
    assert torch.equal(restored(hr[:1]), RECIPE.pipeline(hr[:1], 5, [4], 4).lr)


def test_module_passes_gradients_through_a_differentiable_op() -> None:
    hr = torch.rand(2, 3, 16, 16, requires_grad=True)
    module = Degrade(create_op("blur", sigma=(0.5, 2.0), kernel_size=(5, 9)), seed=2)
    lr = module(hr)
    y, _ = create_op("blur", sigma=(0.5, 2.0), kernel_size=(5, 9))(
        hr.detach(), BatchStreams(2, [0, 1], "blur")
    )
    assert torch.equal(lr.detach(), y)
    lr.sum().backward()
    assert hr.grad is not None and torch.isfinite(hr.grad).all() and hr.grad.abs().sum() > 0


def test_a_compiled_step_runs_the_module_eagerly_with_one_graph_break() -> None:
    """Dynamo cannot trace host-side draws: the module is excluded from compilation, so a
    compiled step around it breaks its graph once and gives the eager result."""
    import torch._dynamo as dynamo

    degrade = Degrade("deplsr", seed=1)

    def step(hr: torch.Tensor) -> torch.Tensor:
        return degrade(hr * 1.0, indices=[0, 1]).mean(dim=1)

    hr = torch.stack([_batch(photo_like(32, 32, i))[0] for i in range(2)])
    explained = dynamo.explain(step)(hr)
    assert explained.graph_break_count <= 1
    compiled = torch.compile(step, backend="eager")(hr)
    assert torch.equal(compiled, RECIPE.pipeline(hr, 1, [0, 1], 4).lr.mean(dim=1))
