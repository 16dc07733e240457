"""degkit train-sr: the loss going down, validation, exact resume, runs independent of the
worker count, checkpoint and spandrel round trips, --init, DDP over gloo, the command line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import spandrel
import torch
from adaptor_helpers import TINY, interrupt_on_call, run_two_ranks
from safetensors import safe_open
from safetensors.torch import load_file
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from degkit.cli import main, sr_commands
from degkit.data.build import BuildConfig, build_dataset
from degkit.metrics import create_metric
from degkit.models.adaptor import DegradationAdaptor, save_adaptor
from degkit.models.backbones import available_backbones, build_backbone
from degkit.models.sr_checkpoint import file_options_record, load_sr_checkpoint
from degkit.train import sr as sr_train
from degkit.train.optim import ema_updater, multistep_lr_at
from degkit.train.sr import PRIOR_CHOICES, SRTrainConfig, train_sr
from degkit.train.sr_data import DEFAULT_CACHE_MB, WholePairs, collate_pairs


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
        ema=0.9,
    )
    return SRTrainConfig(data=data, out=out, progress=False, **{**options, **overrides})


def _whole(data) -> dict:
    return collate_pairs([WholePairs(data)[i] for i in range(8)])


def _images(batch) -> tuple[torch.Tensor, torch.Tensor]:
    return batch["lr"].float() / 255, batch["hr"].float() / 255


def _eval_l1(result, data) -> float:
    batch = _whole(data)
    lr, hr = _images(batch)
    result.model.eval()
    with torch.no_grad():
        sr = result.model(lr, result.prior(lr, batch))
    return float((sr - hr).abs().mean())


def test_a_few_steps_reduce_the_loss(tiny_dataset, tmp_path):
    one = train_sr(_config(tiny_dataset, tmp_path / "one", steps=1, ema=0))
    more = train_sr(_config(tiny_dataset, tmp_path / "more", steps=30, save_every=30, ema=0))
    assert _eval_l1(more, tiny_dataset) < 0.95 * _eval_l1(one, tiny_dataset)


def test_validation_is_mean_psnr_y_of_the_whole_images(tiny_dataset, tmp_path):
    out = tmp_path / "val"
    options = dict(val_data=tiny_dataset, val_every=2, steps=3, ema=0)
    result = train_sr(_config(tiny_dataset, out, **options))
    lines = [json.loads(line) for line in (out / "val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in lines] == [2, 3] and lines == result.validation
    rows = WholePairs(tiny_dataset)
    metric, scores = create_metric("psnr_y", scale=4), []
    result.model.eval()
    for batch in DataLoader(rows, collate_fn=collate_pairs):  # one whole image at a time
        lr, hr = _images(batch)
        with torch.no_grad():
            sr = result.model(lr, result.prior(lr, batch)).clamp(0, 1)
        scores.append(float(metric(sr, hr)))
    assert lines[-1]["images"] == len(rows)
    assert lines[-1]["psnr_y"] == pytest.approx(sum(scores) / len(scores), abs=1e-9)
    speed = json.loads((out / "train.json").read_text())
    assert speed["steps"] == 3 and speed["steps_per_s"] > 0 and 0 <= speed["data_wait_share"] < 1


def test_resume_continues_exactly(tiny_dataset, tmp_path, monkeypatch):
    options = dict(backbone="dat_tiny")  # stochastic depth: torch's random state is restored
    straight = train_sr(_config(tiny_dataset, tmp_path / "a", **options)).checkpoint
    real = interrupt_on_call(monkeypatch, sr_train, "multistep_lr_at")
    with pytest.raises(KeyboardInterrupt):
        train_sr(_config(tiny_dataset, tmp_path / "b", **options))
    monkeypatch.setattr(sr_train, "multistep_lr_at", real)
    resumed = train_sr(_config(tiny_dataset, tmp_path / "b", resume=True, **options)).checkpoint
    a, b = load_file(str(straight)), load_file(str(resumed))
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="another train"):
        train_sr(_config(tiny_dataset, tmp_path / "b", resume=True, lr=1e-3, **options))


@pytest.mark.parametrize("recipe", [None, "deplsr"], ids=["stored", "on-the-fly"])
def test_a_run_is_the_same_whatever_the_workers_and_the_image_cache(tiny_dataset, tmp_path, recipe):
    options = dict(recipe=recipe, target="usm", steps=2, batch_size=2, save_every=2)
    runs = []
    for workers, cache_mb in ((0, 0), (0, 64), (2, 64)):
        out = tmp_path / f"w{workers}-c{cache_mb}"
        result = train_sr(_config(tiny_dataset, out, workers=workers, cache_mb=cache_mb, **options))
        assert result.summary["images_in_memory"] == (cache_mb > 0)
        runs.append(load_file(str(result.checkpoint)))
    for run in runs[1:]:
        assert run.keys() == runs[0].keys()
        assert all(torch.equal(run[k], runs[0][k]) for k in run)


def test_degrading_whole_batches_in_the_step_gives_the_loaders_run(tiny_dataset, tmp_path):
    """On the fly, a batch degraded at once on the device has each sample's records and
    LR bytes, so the two placements train the same weights (on the CPU)."""
    options = dict(recipe="deplsr", steps=2, batch_size=3, save_every=2)
    runs = []
    for degrade_on, workers in (("loader", 0), ("device", 0), ("device", 2)):
        out = tmp_path / f"{degrade_on}-{workers}"
        config = _config(tiny_dataset, out, degrade_on=degrade_on, workers=workers, **options)
        result = train_sr(config)
        assert result.summary["degraded_on"] == degrade_on
        runs.append(load_file(str(result.checkpoint)))
    for run in runs[1:]:
        assert run.keys() == runs[0].keys()
        assert all(torch.equal(run[k], runs[0][k]) for k in run)


def test_checkpoint_holds_weights_ema_and_config_and_the_trunk_loads_in_spandrel(
    tiny_dataset, tmp_path
):
    result = train_sr(_config(tiny_dataset, tmp_path / "run", steps=2))
    tensors = load_file(str(result.checkpoint))
    for name, value in result.model.state_dict().items():
        assert torch.equal(tensors[f"model.{name}"], value)
    for name, value in result.ema.state_dict().items():
        assert torch.equal(tensors[f"ema.model.{name}"], value)
    assert not torch.equal(result.ema.projector.mlp[0].weight, result.model.projector.mlp[0].weight)
    with safe_open(str(result.checkpoint), framework="pt") as f:
        meta = json.loads(f.metadata()["degkit"])
    assert meta["config"] == {
        "backbone": "compact_tiny",
        "scale": 4,
        "prior": "oracle-params",
        "prior_dim": 8,
        "num_types": 5,
    }
    assert meta["step"] == 2 and meta["train"]["ema"] == 0.9 and meta["world_size"] == 1
    loaded, prior, meta = load_sr_checkpoint(result.checkpoint)
    assert meta["weights"] == "ema" and prior.name == "oracle-params"
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, result.ema.state_dict()[name]), name
    descriptor = spandrel.ModelLoader().load_from_file(result.trunk)
    assert descriptor.architecture.id == "Compact" and descriptor.scale == 4
    lr = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the exported trunk is the EMA's
        assert torch.equal(descriptor.model.eval()(lr), result.ema.eval()(lr))


def test_init_starts_from_a_spandrel_format_state_dict(tiny_dataset, tmp_path):
    torch.manual_seed(42)
    state = build_backbone("compact_tiny", 4).state_dict()
    init = tmp_path / "net_g.pth"
    torch.save({"params_ema": state}, init)  # the BasicSR / Real-ESRGAN layout
    result = train_sr(
        _config(tiny_dataset, tmp_path / "run", prior="bare", init=init, steps=1, lr=1e-9, ema=0)
    )
    for name, value in result.model.trunk.state_dict().items():
        torch.testing.assert_close(value, state[name], atol=1e-6, rtol=0)


def test_a_run_folder_copied_midway_resumes_and_knows_its_files_by_content(
    tiny_dataset, tmp_path, monkeypatch
):
    """Paths of --init / --adaptor / --regressor may change (a copied work folder); their
    content may not."""
    torch.manual_seed(7)
    first = tmp_path / "first"
    first.mkdir()
    torch.save(build_backbone("compact_tiny", 4).state_dict(), first / "trunk.pth")
    options = dict(prior="bare", ema=0)
    straight = train_sr(
        _config(tiny_dataset, tmp_path / "straight", init=first / "trunk.pth", **options)
    ).checkpoint
    real = interrupt_on_call(monkeypatch, sr_train, "multistep_lr_at")
    with pytest.raises(KeyboardInterrupt):
        train_sr(_config(tiny_dataset, first / "run", init=first / "trunk.pth", **options))
    monkeypatch.setattr(sr_train, "multistep_lr_at", real)
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    shutil.rmtree(first)
    trunk = copy / "trunk.pth"
    original = trunk.read_bytes()
    torch.save(build_backbone("compact_tiny", 4).state_dict(), trunk)  # other weights
    with pytest.raises(ValueError, match="another train.*init_sha256"):
        train_sr(_config(tiny_dataset, copy / "run", init=trunk, resume=True, **options))
    trunk.write_bytes(original)
    resumed = train_sr(_config(tiny_dataset, copy / "run", init=trunk, resume=True, **options))
    a, b = load_file(str(straight)), load_file(str(resumed.checkpoint))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with safe_open(str(resumed.checkpoint), framework="pt") as f:
        train = json.loads(f.metadata()["degkit"])["train"]
    assert train["init"] == str(trunk) and train["init_relative"] == os.path.join("..", "trunk.pth")
    assert train["init_sha256"] == hashlib.sha256(original).hexdigest()


def test_a_checkpoint_from_before_file_hashes_resumes_when_its_paths_match():
    saved = {"lr": 0.1, "adaptor": None, "regressor": None, "init": "/a/trunk.pth"}
    wanted = {**saved, **file_options_record({"init": None}, Path("/a"))}
    wanted["init"] = "/a/trunk.pth"
    sr_train._check_resumable({"train": saved}, {"train": wanted}, Path("last.safetensors"))
    with pytest.raises(ValueError, match="another train"):
        sr_train._check_resumable(
            {"train": saved}, {"train": {**wanted, "init": "/b/trunk.pth"}}, Path("x")
        )


def _ddp_worker(rank: int, world_size: int, port: int, data, out) -> None:
    import torch.distributed as dist

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(1)
    config = _config(data, out, steps=1, batch_size=2, val_data=data, val_every=1)
    result = train_sr(config)
    weights = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
    torch.save({"weights": weights, "validation": result.validation}, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_cpu_processes_over_gloo_keep_equal_weights(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    run_two_ranks(_ddp_worker, tiny_dataset, out)
    rank0, rank1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    for name, value in rank0["weights"].items():
        assert torch.equal(value, rank1["weights"][name]), name
    assert rank0["validation"] == rank1["validation"]
    assert rank0["validation"][0]["images"] == len(WholePairs(tiny_dataset))
    saved = load_file(str(out / "last.safetensors"))
    for name, value in rank0["weights"].items():
        assert torch.equal(saved[f"model.{name}"], value), name


def test_cli_trains_with_the_adaptor_prior_and_names_bad_flags(tiny_dataset, tmp_path, capsys):
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
    capsys.readouterr()
    for extra, message in (
        (["--init", str(dat / "trunk.safetensors")], "not a Compact checkpoint"),
        (["--ema", "1"], "--ema 1.0"),
        (["--batch-size", "64"], "--batch-size: batch size 64 is larger than the 18 rows"),
        (["--recipe", "no-such-recipe"], "--recipe 'no-such-recipe'"),
        (["--patch", "17"], "--patch 17 / --data"),
        (["--cache-mb", "-1"], "--cache-mb must be >= 0"),
    ):
        assert main([*common, "--out", str(tmp_path / "bad"), *extra]) == 2, extra
        assert message in capsys.readouterr().err


def test_ema_updates_are_those_of_torchs_averaged_model():
    torch.manual_seed(0)
    model = build_backbone("compact_tiny", 4)
    ours, torchs = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9)) for _ in "ab")
    update = ema_updater(ours, model, 0.9)
    for _ in range(3):
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param))
        update()
        torchs.update_parameters(model)
        expected = torchs.state_dict()
        assert ours.state_dict().keys() == expected.keys()
        assert all(torch.equal(v, expected[k]) for k, v in ours.state_dict().items())


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
    assert sr_commands.CACHE_MB == DEFAULT_CACHE_MB
    assert sr_commands.DEGRADE_ON == sr_train.DEGRADE_ON


def test_cli_help_explains_the_image_cache(capsys):
    with pytest.raises(SystemExit):
        main(["train-sr", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--cache-mb" in help_text and "keep them in memory" in help_text
    assert f"0: no cache (default {DEFAULT_CACHE_MB})" in help_text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_run_uses_bf16_autocast_and_keeps_fp32_weights(tiny_dataset, tmp_path):
    options = dict(device="cuda", target="usm", steps=2, val_data=tiny_dataset, val_every=2)
    result = train_sr(_config(tiny_dataset, tmp_path / "cuda", backbone="dat_tiny", **options))
    assert all(p.dtype == torch.float32 and p.is_cuda for p in result.model.parameters())
    assert 0 < result.validation[-1]["psnr_y"] < 100


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_run_degrades_on_the_fly_batches_on_the_device(tiny_dataset, tmp_path):
    options = dict(device="cuda", recipe="deplsr", steps=2, batch_size=3, save_every=2)
    result = train_sr(_config(tiny_dataset, tmp_path / "cuda-otf", **options))
    assert result.summary["degraded_on"] == "device"
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
