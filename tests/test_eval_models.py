"""SR model adapters: built-in interpolations against OpenCV / Pillow / numpy, spandrel
checkpoints written here with random weights, callables, tiling and bad input."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from degkit.evaluate.models import load_model, super_resolve


def _lr(n=2, h=9, w=11, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g).float() / 255


def _tiny_compact(path, scale=2, fmt="pth"):
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    net = Compact(num_feat=8, num_conv=2, upscale=scale)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(net.state_dict(), str(path))
    else:
        torch.save(net.state_dict(), path)
    return net


def _tiny_esrgan(path, scale=2):
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(1)
    net = ESRGAN(num_filters=8, num_blocks=1, scale=scale)
    torch.save(net.state_dict(), path)
    return net


def test_bicubic_is_opencv_inter_cubic():
    lr = _lr()
    sr = super_resolve(load_model("bicubic", 3), lr)
    img = lr.permute(0, 2, 3, 1).numpy()
    ref = np.stack([cv2.resize(im, (33, 27), interpolation=cv2.INTER_CUBIC) for im in img])
    ref = torch.from_numpy(ref).permute(0, 3, 1, 2).clamp(0, 1)
    torch.testing.assert_close(sr, ref, atol=2e-6, rtol=0)


def test_lanczos_is_pillow_and_nearest_repeats_pixels():
    lr = _lr()
    sr = super_resolve(load_model("lanczos", 2), lr)
    img8 = (lr * 255).round().byte().permute(0, 2, 3, 1).numpy()
    ref = np.stack([np.asarray(Image.fromarray(im).resize((22, 18), Image.LANCZOS)) for im in img8])
    assert np.array_equal((sr * 255).round().byte().permute(0, 2, 3, 1).numpy(), ref)
    near = super_resolve(load_model("nearest", 4), lr)
    assert torch.equal(near, torch.from_numpy(np.kron(lr.numpy(), np.ones((1, 1, 4, 4)))).float())


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_compact_checkpoint_loads_and_runs(tmp_path, fmt):
    path = tmp_path / f"compact.{fmt}"
    net = _tiny_compact(path, fmt=fmt)
    model = load_model(str(path), 2)
    assert model.kind == "spandrel" and model.architecture and model.scale == 2
    assert model.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.parameters == sum(p.numel() for p in net.parameters())
    lr = _lr(h=8, w=8)
    with torch.no_grad():
        expected = net.eval()(lr).clamp(0, 1)
    torch.testing.assert_close(super_resolve(model, lr), expected)


def test_esrgan_checkpoint_loads_and_scale_must_match(tmp_path):
    path = tmp_path / "rrdb.pth"
    _tiny_esrgan(path, scale=2)
    model = load_model(str(path), 2, name="tiny-rrdb")
    assert model.name == "tiny-rrdb" and model.architecture == "ESRGAN"
    assert super_resolve(model, _lr(h=6, w=7)).shape == (2, 3, 12, 14)
    with pytest.raises(ValueError, match=r"rrdb\.pth: a x2 ESRGAN model, but the test set is x4"):
        load_model(str(path), 4)


def test_unidentifiable_and_unreadable_checkpoints(tmp_path):
    odd = tmp_path / "odd.pth"
    torch.save({"foo.weight": torch.zeros(3)}, odd)
    with pytest.raises(ValueError, match=r"odd\.pth: spandrel cannot identify the architecture"):
        load_model(str(odd), 4)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pth: cannot be read"):
        load_model(str(junk), 4)
    with pytest.raises(FileNotFoundError, match="not a built-in"):
        load_model(str(tmp_path / "absent.pth"), 4)


def test_callable_model_and_wrong_shape():
    model = load_model("eval_fakes:nearest_x2", 2)
    lr = _lr()
    assert torch.equal(super_resolve(model, lr), lr.repeat_interleave(2, 2).repeat_interleave(2, 3))
    bad = load_model("eval_fakes:wrong_shape", 2)
    with pytest.raises(ValueError, match=r"eval_fakes:wrong_shape: returned \(2, 3, 9, 11\)"):
        super_resolve(bad, lr)
    with pytest.raises(ValueError, match="has no callable 'absent'"):
        load_model("eval_fakes:absent", 2)
    with pytest.raises(ValueError, match="cannot import 'no_such_module_x'"):
        load_model("no_such_module_x:f", 2)


def test_fp16_request_runs_fp32_on_cpu():
    lr = _lr()
    model = load_model("bicubic", 2)
    assert torch.equal(super_resolve(model, lr, precision="fp16"), super_resolve(model, lr))
    with pytest.raises(ValueError, match="precision 'fp8'"):
        super_resolve(model, lr, precision="fp8")


@given(
    h=st.integers(5, 60),
    w=st.integers(5, 60),
    tile=st.integers(17, 30),
    overlap=st.sampled_from([8, 9, 11]),
)
def test_tiled_equals_untiled_for_a_small_receptive_field(h, w, tile, overlap):
    """Bicubic reads 2 LR pixels each side: exact once tiles discard overlap // 4 >= 2 pixels."""
    if tile <= 2 * overlap:
        return
    model = load_model("bicubic", 2)
    lr = _lr(n=1, h=h, w=w, seed=h * w)
    tiled = super_resolve(model, lr, tile=tile, overlap=overlap)
    torch.testing.assert_close(tiled, super_resolve(model, lr), atol=1e-5, rtol=0)


def test_tiled_compact_matches_untiled(tmp_path):
    """A 4-conv Compact net sees 4 LR pixels each side: overlap 16 discards 4."""
    path = tmp_path / "c.pth"
    _tiny_compact(path)
    model = load_model(str(path), 2)
    lr = _lr(n=2, h=40, w=37)
    torch.testing.assert_close(
        super_resolve(model, lr, tile=34, overlap=16), super_resolve(model, lr), atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="tile 20: must exceed twice the tile overlap"):
        super_resolve(model, lr, tile=20, overlap=16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_on_cuda_is_close_to_fp32(tmp_path, precision):
    path = tmp_path / "c.pth"
    _tiny_compact(path)
    model = load_model(str(path), 2).to("cuda")
    lr = _lr(h=16, w=16).cuda()
    low = super_resolve(model, lr, precision=precision)
    assert low.dtype == torch.float32 and low.device.type == "cuda"
    torch.testing.assert_close(low, super_resolve(model, lr), atol=0.05, rtol=0)
