"""degkit train-sr: paired patches, the loss going down, exact resume, spandrel-loadable trunk,
the command line."""

from __future__ import annotations

import numpy as np
import pytest
import spandrel
import torch
from adaptor_helpers import TINY
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file

from degkit.cli import main, sr_commands
from degkit.data.build import BuildConfig, build_dataset
from degkit.data.loaders import ShardDataset, collate_rows
from degkit.models.adaptor import DegradationAdaptor, save_adaptor
from degkit.models.backbones import available_backbones
from degkit.train import sr as sr_train
from degkit.train.optim import multistep_lr_at
from degkit.train.patches import paired_patches
from degkit.train.sr import PRIOR_CHOICES, SRTrainConfig, train_sr


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sr") / "set"
    build_dataset(BuildConfig(recipe="deplsr", out=out, crop=64, seed=3, progress=False))
    return out


def _config(data, out, **overrides) -> SRTrainConfig:
    options = dict(
        backbone="compact_tiny",
        prior="oracle-params",
        prior_dim=8,
        steps=4,
        batch_size=4,
        patch=8,
        lr=2e-3,
        save_every=2,
        seed=5,
    )
    return SRTrainConfig(data=data, out=out, progress=False, **{**options, **overrides})


@given(st.integers(0, 2**32 - 1), st.sampled_from([2, 3, 4]))
def test_hr_patch_lies_under_the_lr_patch_after_the_same_flips(seed, scale):
    g = torch.Generator().manual_seed(seed % 1000)
    lr = [torch.rand(3, 9, 12, generator=g) for _ in range(3)]
    # nearest upsampling commutes with flips and transposes: an independent reference
    hr = [x.repeat_interleave(scale, -1).repeat_interleave(scale, -2) for x in lr]
    lr_patch, hr_patch = paired_patches(lr, hr, scale, 5, np.random.default_rng(seed))
    assert lr_patch.shape == (3, 3, 5, 5) and hr_patch.shape == (3, 3, 5 * scale, 5 * scale)
    expected = lr_patch.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    assert torch.equal(hr_patch, expected)


def test_patch_errors_name_the_row_and_flag():
    lr, hr = [torch.zeros(3, 8, 8)], [torch.zeros(3, 16, 16)]
    with pytest.raises(ValueError, match="--patch 9"):
        paired_patches(lr, hr, 2, 9, np.random.default_rng(0))
    with pytest.raises(ValueError, match="row 0: HR"):
        paired_patches(lr, hr, 4, 4, np.random.default_rng(0))


def _eval_l1(result, data) -> float:
    dataset = ShardDataset(data, columns=["lr", "hr", *result.prior.columns])
    batch = collate_rows([dataset[i] for i in range(8)])
    result.model.eval()
    with torch.no_grad():
        sr = result.model(batch["lr"], result.prior(batch["lr"], batch))
    return float((sr - batch["hr"]).abs().mean())


def test_a_few_steps_reduce_the_loss(tiny_dataset, tmp_path):
    one = train_sr(_config(tiny_dataset, tmp_path / "one", steps=1))
    more = train_sr(_config(tiny_dataset, tmp_path / "more", steps=30, save_every=30))
    assert _eval_l1(more, tiny_dataset) < 0.95 * _eval_l1(one, tiny_dataset)


def test_resume_continues_exactly(tiny_dataset, tmp_path, monkeypatch):
    options = dict(backbone="dat_tiny")  # stochastic depth: torch's random state is restored
    straight = train_sr(_config(tiny_dataset, tmp_path / "a", **options)).checkpoint
    calls = {"n": 0}
    real = sr_train.paired_patches

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sr_train, "paired_patches", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_sr(_config(tiny_dataset, tmp_path / "b", **options))
    monkeypatch.setattr(sr_train, "paired_patches", real)
    resumed = train_sr(_config(tiny_dataset, tmp_path / "b", resume=True, **options)).checkpoint
    a, b = load_file(str(straight)), load_file(str(resumed))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="another train"):
        train_sr(_config(tiny_dataset, tmp_path / "b", resume=True, lr=1e-3, **options))


def test_trunk_file_runs_in_spandrel_as_the_trained_trunk(tiny_dataset, tmp_path):
    result = train_sr(_config(tiny_dataset, tmp_path / "run", prior="bare", steps=2))
    descriptor = spandrel.ModelLoader().load_from_file(result.trunk)
    assert descriptor.architecture.id == "Compact" and descriptor.scale == 4
    lr = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    result.model.eval()
    with torch.no_grad():
        assert torch.equal(descriptor.model.eval()(lr), result.model(lr))


def test_cli_trains_with_the_adaptor_prior_and_names_bad_init(tiny_dataset, tmp_path, capsys):
    torch.manual_seed(0)
    adaptor = tmp_path / "adaptor.safetensors"
    save_adaptor(DegradationAdaptor(TINY), adaptor)
    common = ["train-sr", "--data", str(tiny_dataset), "--backbone", "compact_tiny"]
    common += ["--steps", "2", "--batch-size", "2", "--patch", "8", "--quiet"]
    out = tmp_path / "run"
    assert main([*common, "--out", str(out), "--prior", "deplsr", "--adaptor", str(adaptor)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "last.safetensors")
    dat = tmp_path / "dat"
    assert main([*common, "--out", str(dat), "--backbone", "dat_tiny", "--prior", "bare"]) == 0
    bad = ["--out", str(tmp_path / "bad"), "--init", str(dat / "trunk.safetensors")]
    assert main([*common, *bad]) == 2
    assert "not a Compact checkpoint" in capsys.readouterr().err


def test_multistep_schedule_halves_at_the_milestones():
    # the published DAT / DePLSR schedule: 500k steps, halved at 250k, 400k, 450k, 475k
    rates = {
        s: multistep_lr_at(s, 500_000, 2e-4, (0.5, 0.8, 0.9, 0.95))
        for s in range(0, 500_000, 5_000)
    }
    changes = [s for s in sorted(rates)[1:] if rates[s] != rates[s - 5_000]]
    assert changes == [250_000, 400_000, 450_000, 475_000]
    assert rates[0] == 2e-4 and rates[475_000] == 2e-4 / 16


def test_cli_choices_match_the_registries():
    assert list(sr_commands.BACKBONES) == available_backbones()
    assert sr_commands.PRIORS == PRIOR_CHOICES
