"""Training the adaptor: what moves, what stays frozen, loss falls, checkpoints resume exactly."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from adaptor_helpers import (
    TINY,
    contrastive_losses,
    ddp_loss_worker,
    ddp_worker,
    global_batch,
    interrupt_on_call,
    rows,
    run_two_ranks,
)
from safetensors import safe_open
from safetensors.torch import save_file

import degkit.train.adaptor as trainer
from degkit.captions import PAPER_TYPES
from degkit.cli import main as cli_main
from degkit.data.build import BuildConfig, build_dataset
from degkit.models import config as model_config
from degkit.models.adaptor import DegradationAdaptor, build_clip, load_adaptor, preprocess
from degkit.models.estimator import LevelRegressor
from degkit.models.losses import AdaptorLoss
from degkit.train.adaptor import TrainConfig, train_adaptor, training_step
from degkit.train.data import dataset_summary
from degkit.train.distributed import SINGLE
from degkit.train.optim import adamw, lr_at
from degkit.train.regressor import load_regressor

CAPTIONS = {
    "degradation_caption": ["blur a", "noise b", "blur a", "jpeg c"],
    "fine_captions": [["b1", "n0"], ["b0", "n1"], ["b1", "n0"], ["b0", "n0"]],
    "content_caption": ["a red wall", "grass", "a red wall", "sky"],
}


def _batch() -> dict:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4, 3, 1, 1, generator=g).expand(4, 3, 16, 16)
    return {"lr": (base + 0.2 * torch.rand(4, 3, 16, 16, generator=g)).clamp(0, 1), **CAPTIONS}


def _setup(loss: str = "siglip"):
    torch.manual_seed(0)
    model = DegradationAdaptor(model_config.get_config("small", **_tiny_fields(num_types=2)))
    loss_fn = AdaptorLoss(loss)
    optimizer = adamw(model.trainable_parameters() + list(loss_fn.named_parameters()), 3e-3)
    return model, loss_fn, optimizer


def _tiny_fields(**overrides):
    return {**{k: v for k, v in TINY.to_dict().items() if k != "name"}, **overrides}


def test_only_controller_zero_layers_heads_and_temperatures_train():
    model, loss_fn, optimizer = _setup()
    frozen = {k: v.clone() for k, v in model.clip.state_dict().items()}
    trainable_before = {n: p.detach().clone() for n, p in model.trainable_parameters()}
    for _ in range(3):
        training_step(model, loss_fn, optimizer, _batch(), 3e-3)
        assert all(p.grad is None for p in model.clip.parameters())
    for name, value in model.clip.state_dict().items():
        assert torch.equal(value, frozen[name]), name
    grads = {n: p.grad for n, p in model.trainable_parameters()}
    for prefix in ("controller.", "zero_layers.", "type_head."):
        assert any(
            g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith(prefix)
        )
    moved = [n for n, p in model.trainable_parameters() if not torch.equal(p, trainable_before[n])]
    assert any(n.startswith("zero_layers.") for n in moved)
    used = [p for n, p in loss_fn.named_parameters() if not n.startswith("levels.")]
    assert all(p.grad is not None for p in used)  # no level prompts given: that term is off
    assert model.clip.training is False and model.controller.training is True


@pytest.mark.parametrize("loss", ["siglip", "infonce"])
def test_loss_falls_on_a_fixed_batch(loss):
    model, loss_fn, optimizer = _setup(loss)
    losses = [training_step(model, loss_fn, optimizer, _batch(), 3e-3)["loss"] for _ in range(12)]
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_step_runs_in_bf16_autocast_and_keeps_fp32_weights():
    model, loss_fn, optimizer = _setup()
    model.cuda(), loss_fn.cuda()
    optimizer = adamw(model.trainable_parameters() + list(loss_fn.named_parameters()), 3e-3)
    frozen = {k: v.clone() for k, v in model.clip.state_dict().items()}
    numbers = training_step(model, loss_fn, optimizer, _batch(), 3e-3)
    assert math.isfinite(numbers["loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for name, value in model.clip.state_dict().items():
        assert torch.equal(value, frozen[name]), name


def test_scratch_pretraining_teaches_the_text_tower_the_fine_captions():
    """The degradation captions are all equal, so only the per-type terms can make the
    image of a noisy row retrieve its own fine caption afterwards."""
    import open_clip

    g = torch.Generator().manual_seed(0)
    noisy = torch.tensor([i % 2 == 1 for i in range(8)])
    base = torch.rand(8, 3, 1, 1, generator=g).expand(8, 3, 16, 16)
    lr = (base + 0.4 * noisy.view(8, 1, 1, 1) * torch.randn(8, 3, 16, 16, generator=g)).clamp(0, 1)
    captions = ["noise with sigma:5.0", "noise with sigma:30.0"]
    batch = {
        "lr": lr,
        "degradation_caption": ["a photo"] * 8,
        "fine_captions": [[captions[int(n)]] for n in noisy],
        "content_caption": [""] * 8,
    }
    config = model_config.get_config("small", num_types=1)
    torch.manual_seed(0)
    clip = build_clip(config)
    trainer.widen_token_embeddings(clip)
    trainer.pretrain_clip(clip, iter([batch] * 40), 40, 3e-3, 2, 64, torch.device("cpu"))
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=clip.context_length)
    with torch.no_grad():
        text = clip.encode_text(tokenizer(captions), normalize=True)
        image = clip.encode_image(preprocess(lr, 64), normalize=True)
    assert torch.equal((image @ text.T).argmax(dim=1), noisy.long())


def test_scratch_pretraining_reads_the_levels_the_fine_captions_print():
    """With the level columns in the batch the text tower keeps a type's prompt levels apart."""
    import open_clip

    from degkit.captions import caption_types
    from degkit.evaluate.estimation import PROTOCOL, prompts

    g = torch.Generator().manual_seed(0)
    blur = [0.5 * (i % 8) for i in range(16)]
    levels = {"blur": blur, "gaussian noise": [None] * 16, "poisson noise": [None] * 16}
    levels |= {"jpeg": [30.0 + 4 * i for i in range(16)], "ringing": [None] * 16}
    kinds = caption_types()
    batch = {
        "lr": torch.rand(16, 3, 16, 16, generator=g),
        "degradation_caption": [f"A photo with blur {b}" for b in blur],
        "fine_captions": [
            [f"A photo with {kinds[t].level_fragment(levels[t][i])}" for t in PAPER_TYPES]
            for i in range(16)
        ],
        "content_caption": [""] * 16,
        "blur_level": blur,
        "gaussian_noise_level": [None] * 16,
        "poisson_noise_level": [None] * 16,
        "jpeg_level": levels["jpeg"],
        "ringing": [False] * 16,
    }
    torch.manual_seed(0)
    clip = build_clip(model_config.get_config("small", num_types=5))
    trainer.widen_token_embeddings(clip)
    trainer.pretrain_clip(clip, iter([batch] * 60), 60, 1e-3, 5, 64, torch.device("cpu"))
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=clip.context_length)
    with torch.no_grad():
        text = clip.encode_text(tokenizer(prompts(PROTOCOL[0])), normalize=True)
    apart = (text @ text.T)[~torch.eye(len(text), dtype=torch.bool)]
    assert apart.max() < 0.9


def test_prompt_level_targets_are_the_nearest_protocol_level():
    batch = {
        "blur_level": [2.2, None, 0.4, 3.9],
        "gaussian_noise_level": [7.0, 8.0, None, 40.0],
        "poisson_noise_level": [None, 1.6, 0.2, 2.4],
        "jpeg_level": [65.0, 30.0, 95.0, 41.0],
        "ringing": [True, False, False, True],
    }
    want = [[2, 0, 0, 2, 1], [0, 1, 2, 0, 0], [0, 0, 0, 3, 0], [3, 2, 2, 1, 1]]
    assert trainer.level_targets(batch).tolist() == want


def test_prompt_level_term_needs_the_protocols_five_types():
    prompts = trainer.protocol_prompts("A photo with {}", len(PAPER_TYPES))
    assert prompts[0] == [f"A photo with blur with sigma:{s}.0" for s in (0, 1, 2, 3)]
    assert [len(p) for p in prompts] == [4, 3, 4, 4, 2]
    assert trainer.protocol_prompts("A photo with {}", 2) is None


def test_adamw_decays_weight_matrices_only():
    model, loss_fn, _ = _setup()
    named = model.trainable_parameters() + list(loss_fn.named_parameters())
    optimizer = adamw(named, 1e-3, 0.2)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    assert optimizer.defaults["betas"] == (0.9, 0.98) and optimizer.defaults["eps"] == 1e-6
    ids = {id(p) for p in no_decay["params"]}
    for name, param in named:
        is_matrix = param.ndim >= 2
        assert (id(param) not in ids) == is_matrix, name
        if name.endswith(("bias", "logit_scale")) or ".ln_" in name:
            assert id(param) in ids, name


def test_lr_warms_up_then_follows_a_cosine():
    assert [lr_at(s, 10, 2, 1.0) for s in (0, 1)] == [0.5, 1.0]
    for s in range(2, 10):
        assert lr_at(s, 10, 2, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * (s - 2) / 8)))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("adaptor") / "set"
    build_dataset(BuildConfig(recipe="deplsr", out=out, crop=64, seed=3, progress=False))
    return out


@pytest.fixture(scope="module")
def uncaptioned_dataset(tiny_dataset, tmp_path_factory):
    """The tiny dataset's shards with every content caption emptied."""
    out = tmp_path_factory.mktemp("adaptor") / "uncaptioned"
    (out / "data").mkdir(parents=True)
    for shard in (tiny_dataset / "data").glob("*.parquet"):
        table = pq.read_table(shard)
        column = table.schema.get_field_index("content_caption")
        empty = pa.array([""] * table.num_rows, pa.string())
        pq.write_table(
            table.set_column(column, "content_caption", empty), out / "data" / shard.name
        )
    assert not dataset_summary(out)["has_content_captions"]
    return out


@pytest.fixture
def tiny_model(monkeypatch):
    monkeypatch.setitem(model_config.CONFIGS, "tiny", TINY)


def _config(data, out, **overrides) -> TrainConfig:
    options = dict(
        model="tiny", steps=4, pretrain_steps=2, batch_size=4, warmup=1, save_every=2, seed=5
    )
    return TrainConfig(data=data, out=out, progress=False, **{**options, **overrides})


def test_resume_continues_exactly_and_checkpoints_record_provenance(
    tiny_dataset, tiny_model, tmp_path, monkeypatch
):
    straight = train_adaptor(_config(tiny_dataset, tmp_path / "a")).checkpoint

    real_step = interrupt_on_call(monkeypatch, trainer, "training_step")
    with pytest.raises(KeyboardInterrupt):
        train_adaptor(_config(tiny_dataset, tmp_path / "b"))
    monkeypatch.setattr(trainer, "training_step", real_step)
    _, meta, _ = load_adaptor(tmp_path / "b" / "last.safetensors")
    assert meta["step"] == 2
    with pytest.raises(ValueError, match="already holds last.safetensors; pass --resume"):
        train_adaptor(_config(tiny_dataset, tmp_path / "b"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "clip-pretrained.safetensors").write_bytes(b"mine")
    with pytest.raises(ValueError, match="already holds clip-pretrained.safetensors"):
        train_adaptor(_config(tiny_dataset, tmp_path / "c"))
    assert (tmp_path / "c" / "clip-pretrained.safetensors").read_bytes() == b"mine"
    resumed = train_adaptor(_config(tiny_dataset, tmp_path / "b", resume=True)).checkpoint

    with safe_open(str(straight), "pt") as a, safe_open(str(resumed), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        assert any(k.startswith("optim.") for k in a.keys())
        for key in a.keys():
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key
    model, meta, _ = load_adaptor(resumed)
    hashes = pq.read_table(next((tiny_dataset / "data").glob("*.parquet")), columns=["recipe_hash"])
    assert meta["step"] == 4 and meta["init"] == "scratch" and meta["seed"] == 5
    assert meta["content_term"] is True  # the embedded photos' content captions
    assert meta["recipe_hashes"] == sorted(set(hashes.column("recipe_hash").to_pylist()))
    assert model.config.num_types == 5  # the deplsr recipe's per-type captions
    assert (tmp_path / "b" / "clip-pretrained.safetensors").is_file()


def test_resume_refuses_other_settings(tiny_dataset, tiny_model, tmp_path):
    train_adaptor(_config(tiny_dataset, tmp_path, steps=2))
    with pytest.raises(ValueError, match="another seed"):
        train_adaptor(_config(tiny_dataset, tmp_path, steps=2, seed=6, resume=True))


def test_cli_evidence_trains_the_evidence_head_and_resume_keeps_the_choice(
    tiny_dataset, tiny_model, tmp_path
):
    out = tmp_path / "run"
    argv = ["train-adaptor", "--data", str(tiny_dataset), "--out", str(out), "--model", "tiny"]
    argv += ["--steps", "2", "--pretrain-steps", "1", "--batch-size", "4", "--quiet"]
    assert cli_main([*argv, "--evidence"]) == 0
    model, meta, _ = load_adaptor(out / "last.safetensors")
    assert model.config.evidence and meta["train"]["evidence"] is True
    assert any(torch.count_nonzero(p) for p in model.evidence_head.mlp[-1].parameters())
    same_but_plain = dict(model="tiny", steps=2, pretrain_steps=1, batch_size=4, resume=True)
    with pytest.raises(ValueError, match='another train.*"evidence": true'):
        train_adaptor(TrainConfig(data=tiny_dataset, out=out, progress=False, **same_but_plain))


def test_a_checkpoint_from_before_the_evidence_option_resumes(tiny_dataset, tiny_model, tmp_path):
    train_adaptor(_config(tiny_dataset, tmp_path, steps=2))
    path = tmp_path / "last.safetensors"
    with safe_open(str(path), "pt") as f:
        header = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta = json.loads(header["degkit"])
    del meta["train"]["evidence"]
    config = json.loads(header["config"])
    del config["evidence"]
    header.update(degkit=json.dumps(meta), config=json.dumps(config))
    save_file(tensors, str(path), metadata=header)
    result = train_adaptor(_config(tiny_dataset, tmp_path, steps=2, resume=True))
    assert result.step == 2 and not result.model.config.evidence


def test_cli_trains_and_says_the_content_term_is_dropped(
    uncaptioned_dataset, tiny_model, tmp_path, capsys
):
    out = tmp_path / "run"
    argv = ["train-adaptor", "--data", str(uncaptioned_dataset), "--out", str(out)]
    argv += ["--model", "tiny"]
    argv += ["--steps", "1", "--pretrain-steps", "1", "--batch-size", "4", "--quiet"]
    assert cli_main(argv) == 0
    captured = capsys.readouterr()
    assert "no content captions: the content term of the loss is dropped" in captured.err
    assert captured.out.strip() == str(out / "last.safetensors")
    with safe_open(str(out / "last.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["degkit"])
    assert meta["init"] == "scratch" and meta["content_term"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--init", "missing.pt"], "--init missing.pt: no such file"),
        (["--loss-weights", "0.2,0.8"], "--loss-weights '0.2,0.8'"),
        (["--batch-size", "1"], "--batch-size must be >= 2"),
        (["--model", "huge"], "unknown adaptor config 'huge'"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, extra, message):
    argv = ["train-adaptor", "--data", str(tmp_path), "--out", str(tmp_path / "o"), *extra]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("degkit train-adaptor: error:") and message in err
    assert len(err.splitlines()) == 1


def test_two_cpu_processes_over_gloo_keep_equal_weights(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    run_two_ranks(ddp_worker, tiny_dataset, out)
    rank0, rank1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name
    model, meta, _ = load_adaptor(out / "last.safetensors")
    assert meta["world_size"] == 2 and meta["step"] == 1
    for name, param in model.trainable_parameters():
        assert torch.equal(param, rank0[name]), name


def test_two_gloo_ranks_compute_the_loss_and_gradients_of_the_concatenated_batch(tmp_path):
    run_two_ranks(ddp_loss_worker, tmp_path)
    batch = global_batch()
    single = contrastive_losses(batch, SINGLE)
    local = contrastive_losses(rows(batch, 0, 4), SINGLE)
    for rank in (0, 1):
        ranked = torch.load(tmp_path / f"losses{rank}.pt")
        for phase, (loss, grads) in single.items():
            assert ranked[phase][0] == pytest.approx(loss, rel=1e-5), phase
            assert ranked[phase][0] != pytest.approx(local[phase][0], rel=1e-3), phase
            assert ranked[phase][1].keys() == grads.keys()
            for name, grad in grads.items():
                torch.testing.assert_close(
                    ranked[phase][1][name], grad, rtol=1e-4, atol=1e-6, msg=f"{phase} {name}"
                )


def test_cli_trains_the_level_regressor(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "reg"
    argv = ["train-regressor", "--data", str(tiny_dataset), "--out", str(out)]
    argv += ["--steps", "3", "--batch-size", "4", "--width", "8", "--stem", "1", "--quiet"]
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out / "regressor.safetensors")
    model, meta = load_regressor(out / "regressor.safetensors")
    assert meta["step"] == 3 and meta["types"] == list(PAPER_TYPES)
    assert (meta["width"], meta["stem"], meta["pool"]) == (8, 1, "mean_std")
    assert meta["jpeg_grid"] and model.grid is not None
    assert meta["level_bins"] == model.level_bins == 16
    assert model.head.out_features == len(PAPER_TYPES) * (1 + 16)
    assert len(model.stem) == 2 and model.pool == "mean_std"  # one conv + its activation
    out_levels = model(torch.rand(2, 3, 16, 16)).levels
    assert out_levels.shape == (2, len(PAPER_TYPES))
    assert cli_main(argv) == 2  # never overwrites a checkpoint
    assert "already holds regressor.safetensors" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert cli_main([*argv[:4], str(plain), *argv[5:], "--no-jpeg-grid", "--level-bins", "0"]) == 0
    model, meta = load_regressor(plain / "regressor.safetensors")
    assert not meta["jpeg_grid"] and model.grid is None
    assert meta["level_bins"] == model.level_bins == 0
    assert model.head.out_features == 2 * len(PAPER_TYPES)


def test_a_regressor_checkpoint_from_before_the_jpeg_grid_and_histogram_head_loads(tmp_path):
    plain = LevelRegressor(width=8, stem=1, jpeg_grid=False, level_bins=0)
    meta = {"types": list(PAPER_TYPES), "width": 8, "stem": 1, "pool": "mean_std"}
    path = tmp_path / "old.safetensors"
    save_file(plain.state_dict(), str(path), {"degkit": json.dumps(meta)})
    model, _ = load_regressor(path)
    assert model.grid is None and model.level_bins == 0
    image = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(model(image).levels, plain(image).levels)


def test_cli_init_file_freezes_those_weights_and_records_the_init(
    tiny_dataset, tiny_model, tmp_path, capsys
):
    torch.manual_seed(9)
    weights = {k: v.contiguous() for k, v in build_clip(TINY).state_dict().items()}
    init = tmp_path / "clip.safetensors"
    save_file(weights, str(init))
    out = tmp_path / "run"
    argv = ["train-adaptor", "--data", str(tiny_dataset), "--out", str(out), "--model", "tiny"]
    argv += ["--init", str(init), "--quick-gelu", "--steps", "2", "--batch-size", "4", "--quiet"]
    assert cli_main(argv) == 0, capsys.readouterr().err
    model, meta, _ = load_adaptor(out / "last.safetensors")
    assert meta["init"] == str(init)
    assert model.config.quick_gelu is True and meta["train"]["quick_gelu"] is True
    assert not (out / "clip-pretrained.safetensors").exists()  # no pre-training with a file
    for name, value in weights.items():
        assert torch.equal(model.clip.state_dict()[name], value), name
