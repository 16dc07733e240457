"""Trained SR checkpoints in use: loading (EMA preferred, clear errors), the prior computed once
per image and reused by every tile, tiled ~ untiled, ``degkit sr``, ``degkit eval`` with
oracle priors read from a synthetic set's records."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from data_corpus import photo_like
from eval_fakes import FakePair, FakeSet, psnr_rgb, tiny_set
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from degkit.cli import main
from degkit.data.build import BuildConfig, build_dataset
from degkit.evaluate.models import load_model, super_resolve
from degkit.evaluate.run import evaluate
from degkit.evaluate.sets import load_set
from degkit.levels import PAPER_TYPES
from degkit.models.adaptor import write_safetensors
from degkit.models.estimator import LEVEL_SCALES, levels_from_records
from degkit.models.sr_checkpoint import load_sr_checkpoint
from degkit.train.regressor import RegressorConfig, train_regressor
from degkit.train.sr import SRTrainConfig, train_sr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs: compact_tiny / dat_tiny with a regressor prior, an oracle-params one."""
    root = tmp_path_factory.mktemp("srinfer")
    data = root / "set"
    build_dataset(BuildConfig(recipe="deplsr", out=data, crop=64, seed=3, progress=False))
    regressor = train_regressor(
        RegressorConfig(data=data, out=root / "reg", steps=1, batch_size=2, width=4, progress=False)
    )
    options = dict(prior_dim=8, steps=2, batch_size=2, patch=8, lr=2e-3, ema=0, progress=False)
    made = {}
    for name, backbone, prior in [
        ("compact", "compact_tiny", "regressor"),
        ("dat", "dat_tiny", "regressor"),
        ("oracle", "compact_tiny", "oracle-params"),
    ]:
        extra = {"regressor": regressor} if prior == "regressor" else {}
        cfg = SRTrainConfig(
            data=data, out=root / name, backbone=backbone, prior=prior, **extra, **options
        )
        made[name] = train_sr(cfg)
    return made


def _lr(h: int = 44, w: int = 36, seed: int = 0) -> torch.Tensor:
    """A smooth-ish image, darker in its top half (so tiles differ)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, h, w, generator=g), 3, 1, 1)
    x[..., : h // 2, :] *= 0.3
    return x


def test_loaded_checkpoint_computes_what_training_ended_with(runs):
    result = runs["compact"]
    model = load_model(str(result.checkpoint), 4)
    assert model.kind == "degkit" and model.scale == 4 and model.name == "compact"
    lr = _lr()
    result.model.eval()
    with torch.no_grad():
        expected = result.model(lr, result.prior(lr)).clamp(0, 1)
    torch.testing.assert_close(super_resolve(model, lr), expected, atol=1e-6, rtol=0)


# DAT's attention windows see other neighbours near a tile's edge, so it differs more
@pytest.mark.parametrize("run, atol, mean_atol", [("compact", 2e-3, 2e-4), ("dat", 2e-2, 4e-3)])
def test_tiled_equals_untiled_with_the_prior_of_the_whole_image(
    runs, run, atol, mean_atol, monkeypatch
):
    model = load_model(str(runs[run].checkpoint), 4)
    prior = model.module["prior"]
    seen = []
    real = prior.estimate
    monkeypatch.setattr(prior, "estimate", lambda lr, b=None: seen.append(lr.shape) or real(lr, b))
    lr = _lr()
    whole = super_resolve(model, lr)
    tiled = super_resolve(model, lr, tile=28, overlap=12)
    assert seen == [lr.shape, lr.shape]  # once per image, never per tile
    difference = (tiled - whole).abs()
    assert difference.max() < atol and difference.mean() < mean_atol
    seen.clear()
    per_tile = super_resolve(model, lr, tile=28, overlap=12, prior_per_tile=True)
    assert len(seen) == 4 and all(s[-2:] == (28, 28) for s in seen)  # 2 x 2 tiles
    assert per_tile.shape == whole.shape


def test_ema_weights_are_preferred(runs, tmp_path):
    source = runs["compact"].checkpoint
    tensors = load_file(str(source))
    ema = {f"ema.{k}": v + 0.01 for k, v in tensors.items() if k.startswith(("model.", "prior."))}

    with safe_open(str(source), framework="pt") as f:
        metadata = f.metadata()
    path = tmp_path / "ema.safetensors"
    write_safetensors({**tensors, **ema}, path, metadata)
    model, prior, meta = load_sr_checkpoint(path)
    assert meta["weights"] == "ema" and meta["config"]["backbone"] == "compact_tiny"
    for key, value in model.state_dict().items():
        assert torch.equal(value, ema[f"ema.model.{key}"])
    assert torch.equal(prior.levels.inp.weight, ema["ema.prior.levels.inp.weight"])
    assert load_sr_checkpoint(source)[2]["weights"] == "model"
    model_only = {k: v for k, v in ema.items() if k.startswith("ema.model.")}
    write_safetensors({**tensors, **model_only}, path, metadata)
    model, prior, meta = load_sr_checkpoint(path)  # the prior's own tensors, no EMA of them
    assert meta["weights"] == "ema"
    assert torch.equal(prior.levels.inp.weight, tensors["prior.levels.inp.weight"])


def test_checkpoint_errors_name_the_file_and_the_flag(runs, tmp_path):
    with pytest.raises(ValueError, match=r"trunk\.safetensors: not a degkit SR checkpoint"):
        load_sr_checkpoint(runs["compact"].trunk)
    # the regressor the prior was trained with has gone: named, with the flag to give it
    meta_source = runs["compact"].checkpoint
    tensors = load_file(str(meta_source))
    with safe_open(str(meta_source), framework="pt") as f:
        meta = json.loads(f.metadata()["degkit"])
    regressor = Path(meta["train"]["regressor"])
    meta["train"]["regressor"] = str(tmp_path / "gone.safetensors")
    moved = tmp_path / "moved.safetensors"
    write_safetensors(tensors, moved, {"degkit": json.dumps(meta)})
    with pytest.raises(FileNotFoundError, match=r"moved\.safetensors: .*gone\.safetensors.*--regr"):
        load_sr_checkpoint(moved)
    model = load_model(str(moved), 4, regressor=regressor)
    assert (
        model.describe()["regressor"]["sha256"]
        == hashlib.sha256(regressor.read_bytes()).hexdigest()
    )
    with pytest.raises(ValueError, match="--adaptor: the prior 'regressor'"):
        load_model(str(moved), 4, adaptor=regressor)
    with pytest.raises(ValueError, match="--regressor: model 'bicubic' is not a degkit"):
        load_model("bicubic", 4, regressor=regressor)
    with pytest.raises(ValueError, match=r"a x4 compact_tiny model, but the test set is x2"):
        load_model(str(moved), 2, regressor=regressor)


def test_a_copied_run_folder_finds_its_regressor_beside_it_and_checks_its_content(runs, tmp_path):
    source = runs["compact"].checkpoint
    with safe_open(str(source), framework="pt") as f:
        meta = json.loads(f.metadata()["degkit"])
    regressor = Path(meta["train"]["regressor"])
    assert meta["train"]["regressor_relative"] == os.path.join("..", "reg", regressor.name)
    # the copy: the run and its regressor, in the same places relative to each other
    copied = tmp_path / "copy" / "compact" / "last.safetensors"
    copied.parent.mkdir(parents=True)
    (tmp_path / "copy" / "reg").mkdir()
    shutil.copy(regressor, tmp_path / "copy" / "reg" / regressor.name)
    meta["train"]["regressor"] = str(tmp_path / "original-gone" / regressor.name)
    write_safetensors(load_file(str(source)), copied, {"degkit": json.dumps(meta)})
    lr = _lr()
    with torch.no_grad():
        expected = super_resolve(load_model(str(source), 4), lr)
        torch.testing.assert_close(super_resolve(load_model(str(copied), 4), lr), expected)
    # another file in the regressor's place is refused, named
    (tmp_path / "copy" / "reg" / regressor.name).write_bytes(b"not the trained regressor")
    with pytest.raises(ValueError, match=r"reg/regressor\.safetensors is not the regressor"):
        load_sr_checkpoint(copied)


def _png(path: Path, h: int, w: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo_like(h, w, seed)).save(path)


def test_cli_sr_on_a_file_and_a_folder(runs, tmp_path, capsys):
    ckpt = str(runs["compact"].checkpoint)
    _png(tmp_path / "in" / "a.png", 20, 26, 0)
    _png(tmp_path / "in" / "b.png", 33, 17, 1)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    one = ["sr", str(tmp_path / "in" / "a.png"), "--checkpoint", ckpt]
    assert main([*one, "--out", str(tmp_path / "one")]) == 0
    assert Image.open(tmp_path / "one" / "a.png").size == (26 * 4, 20 * 4)
    out = tmp_path / "out"
    args = ["sr", str(tmp_path / "in"), "--checkpoint", ckpt, "--out", str(out), "--tile", "16"]
    assert main([*args, "--tile-overlap", "4", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 2 image(s)" in printed and "notes.txt: not a recognised image format" in printed
    assert Image.open(out / "a.png").size == (26 * 4, 20 * 4)
    assert Image.open(out / "b.png").size == (17 * 4, 33 * 4)
    before = (out / "a.png").read_bytes()
    (out / "a.png").write_bytes(b"kept")
    assert main([*args, "--quiet"]) == 0
    assert (out / "a.png").read_bytes() == b"kept" and "exists" in capsys.readouterr().out
    assert main([*args, "--tile-overlap", "4", "--quiet", "--overwrite"]) == 0
    assert (out / "a.png").read_bytes() == before
    assert main(["sr", str(tmp_path / "in"), "--checkpoint", "bicubic", "--out", str(out)]) == 2
    assert "give the scale (--scale)" in capsys.readouterr().err
    inputs = tmp_path / "in"
    same = ["sr", str(inputs), "--checkpoint", "bicubic", "--scale", "2", "--out", str(inputs)]
    assert main([*same, "--overwrite"]) == 2
    assert "would replace the input image" in capsys.readouterr().err
    assert Image.open(inputs / "a.png").size == (26, 20)


def test_cli_sr_refuses_oracle_priors(runs, tmp_path, capsys):
    _png(tmp_path / "a.png", 12, 12, 0)
    ckpt = str(runs["oracle"].checkpoint)
    out = str(tmp_path / "out")
    assert main(["sr", str(tmp_path / "a.png"), "--checkpoint", ckpt, "--out", out]) == 2
    err = capsys.readouterr().err
    assert "prior 'oracle-params' reads each image's true degradations" in err
    assert "degkit eval" in err and "\n" not in err.strip()


def test_eval_of_a_trained_checkpoint_records_its_provenance(runs, tmp_path):
    ckpt = runs["dat"].checkpoint
    summary = evaluate(tiny_set(n=2, scale=4), str(ckpt), [psnr_rgb()], tmp_path, progress=False)
    model = summary.model
    assert model["kind"] == "degkit" and model["backbone"] == "dat_tiny"
    assert model["prior"] == "regressor" and model["weights"] == "model" and model["step"] == 2
    assert model["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert summary.n == 2 and np.isfinite(summary.scores["psnr_rgb"])


def test_oracle_prior_reads_each_pair_s_records(runs, tmp_path, monkeypatch):
    _png(tmp_path / "photos" / "p0.png", 40, 48, 0)
    _png(tmp_path / "photos" / "p1.png", 44, 44, 1)
    (tmp_path / "s.yaml").write_text("source: photos\nrecipe: deplsr\nseed: 3\ncrop: 32\n")
    test_set = load_set(tmp_path / "s.yaml")
    model = load_model(str(runs["oracle"].checkpoint), test_set.scale)
    prior = model.module["prior"]
    estimates = []
    real = prior.estimate

    def estimate(lr, batch=None):
        estimates.append(real(lr, batch))
        return estimates[-1]

    monkeypatch.setattr(prior, "estimate", estimate)
    summary = evaluate(test_set, model, [psnr_rgb()], tmp_path / "e", progress=False)
    assert summary.n == 2 and summary.model["prior"] == "oracle-params"
    # the true levels of each pair's records at its HR size, as the estimator's targets
    pairs = test_set.pairs()
    scales = torch.tensor([LEVEL_SCALES[t] for t in PAPER_TYPES])
    for pair, got in zip(pairs, torch.cat(estimates), strict=True):
        levels, present = levels_from_records(pair.meta["records"], pair.hr.shape[:2])
        expected = torch.stack([torch.tensor(levels) / scales, torch.tensor(present).float()], -1)
        torch.testing.assert_close(got, expected)
    assert any(p.meta["records"] != pairs[0].meta["records"] for p in pairs)
    bare = FakeSet("no_records", 4, [FakePair("a", pairs[0].lr, pairs[0].hr, {})])
    with pytest.raises(ValueError, match="set no_records has no degradation records"):
        evaluate(bare, model, [psnr_rgb()], tmp_path / "f", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_on_cuda_is_close_to_fp32(runs, precision):
    model = load_model(str(runs["dat"].checkpoint), 4).to("cuda")
    lr = _lr().cuda()
    low = super_resolve(model, lr, tile=28, overlap=12, precision=precision)
    assert (low - super_resolve(model, lr)).abs().mean() < 1e-2
