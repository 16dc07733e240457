"""The degradation-estimation protocol and ``degkit eval-adaptor``."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from adaptor_helpers import TINY
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from degkit.captions import PAPER_TYPES, caption_types, parse_caption
from degkit.cli import main as cli_main
from degkit.data.build import BuildConfig, build_dataset
from degkit.evaluate import estimation
from degkit.evaluate.estimation import PROTOCOL
from degkit.evaluate.estimation_run import load_test_set, regressor_choices
from degkit.models import config as model_config
from degkit.models.adaptor import write_safetensors
from degkit.models.estimator import LevelRegressor
from degkit.train.adaptor import TrainConfig, train_adaptor
from degkit.train.data import templated
from degkit.train.regressor import RegressorConfig, train_regressor

BLUR, NOISE, POISSON, JPEG, RINGING = PROTOCOL


def test_the_protocol_covers_the_paper_types_in_order():
    assert tuple(p.name for p in PROTOCOL) == PAPER_TYPES
    assert (BLUR.levels, BLUR.tolerance) == ((0, 1, 2, 3), 0.5)
    assert (NOISE.levels, NOISE.tolerance) == ((0, 15, 30), 10)
    assert (JPEG.levels, JPEG.tolerance) == ((30, 50, 70, 90), 10)


@pytest.mark.parametrize("protocol", PROTOCOL, ids=lambda p: p.name)
def test_prompts_are_the_fine_captions_the_dataset_prints(protocol):
    kind = caption_types()[protocol.name]
    texts = estimation.prompts(protocol)
    assert all(t.startswith("A photo with ") for t in texts)
    for level, caption in zip(protocol.levels, protocol.captions(), strict=True):
        records = parse_caption(caption)
        if level == 0:
            assert caption == kind.none
        elif protocol.presence_only:
            assert records == [{"op": "ringing"}]
        else:
            (record,) = records
            assert kind.severity(record) == pytest.approx(level), caption


def test_chance_and_majority_on_a_hand_worked_example():
    true = np.array([0.0, 0.7, 1.5, 3.4])  # hits: {0}, {1}, none (0.5 is not < 0.5), {3}
    assert estimation.chance_accuracy(BLUR, true) == pytest.approx(3 / 16)
    assert estimation.majority_accuracy(BLUR, true) == (0.25, 0.0)
    true = np.array([0.0, 20.0, 25.0, 28.0])  # {0}, {15}, {30}, {30}
    assert estimation.chance_accuracy(NOISE, true) == pytest.approx(1 / 3)
    assert estimation.majority_accuracy(NOISE, true) == (0.5, 30.0)
    assert estimation.chance_accuracy(JPEG, np.array([40.0, 60.0])) == 0.0  # 10 is not < 10


levels = st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(levels, st.sampled_from(PROTOCOL))
def test_perfect_constant_and_random_scorers(values, protocol):
    true = estimation.true_levels(protocol, np.array(values), np.ones(len(values), bool))
    reachable = np.abs(true[:, None] - np.array(protocol.levels)[None, :]).min(axis=1)
    reachable = float((reachable < protocol.tolerance).mean())
    perfect = estimation.accuracy(protocol, estimation.snap(protocol, true), true)
    assert perfect == pytest.approx(reachable)  # the nearest level is right when any is
    majority, level = estimation.majority_accuracy(protocol, true)
    constant = np.full(len(true), protocol.levels.index(level))
    assert estimation.accuracy(protocol, constant, true) == majority
    every = [
        estimation.accuracy(protocol, np.full(len(true), i), true)
        for i in range(len(protocol.levels))
    ]
    assert estimation.chance_accuracy(protocol, true) == pytest.approx(np.mean(every))
    assert max(every) == majority <= perfect


def test_truth_of_absent_and_presence_only_types():
    present = np.array([True, False, True])
    assert estimation.true_levels(BLUR, [1.5, 2.0, 0.0], present).tolist() == [1.5, 0.0, 0.0]
    assert estimation.true_levels(RINGING, [1.0, 0.0, 1.0], present).tolist() == [1.0, 0.0, 1.0]


def test_snap_picks_the_nearest_level_and_the_lower_on_ties():
    assert estimation.snap(BLUR, [0.2, 0.5, 2.6, 9.0, -1.0]).tolist() == [0, 0, 3, 3, 0]
    assert estimation.snap(JPEG, [0.0, 60.0, 95.0]).tolist() == [0, 1, 3]


@settings(max_examples=30, deadline=None)
@given(levels, st.data())
def test_confusion_counts_every_sample_once_in_its_true_row(values, data):
    true = np.array(values) / 30  # blur sigmas 0 - 3.3
    choices = np.array(
        data.draw(st.lists(st.integers(0, 3), min_size=len(true), max_size=len(true)))
    )
    matrix = estimation.confusion_matrix(BLUR, choices, true)
    assert matrix.sum() == len(true)
    assert (
        matrix.sum(axis=1).tolist()
        == np.bincount(estimation.snap(BLUR, true), minlength=4).tolist()
    )
    assert matrix.sum(axis=0).tolist() == np.bincount(choices, minlength=4).tolist()


def test_pca_keeps_distances_of_points_on_a_plane():
    rng = np.random.default_rng(0)
    plane = np.linalg.qr(rng.normal(size=(12, 2)))[0].T  # two orthonormal 12-d axes
    points = rng.normal(size=(30, 2)) @ plane + rng.normal(size=12)
    projected = estimation.pca_2d(points)

    def distances(x):
        return np.linalg.norm(x[:, None] - x[None, :], axis=-1)

    np.testing.assert_allclose(distances(projected), distances(points), atol=1e-9)
    assert projected.shape == (30, 2)


def test_regressor_choices_zero_absent_types_and_snap(tmp_path):
    model = LevelRegressor(width=4, stem=0, pool="mean", jpeg_grid=False, level_bins=0)  # old
    torch.nn.init.zeros_(model.head.weight)
    presence = [-1.0, 1.0, 1.0, -1.0, 1.0]  # blur and jpeg absent
    levels = torch.tensor([2.0, 16.0, 2.6, 80.0, 0.3]) / model.scales
    with torch.no_grad():
        model.head.bias.copy_(torch.cat([torch.tensor(presence), levels]))
    path = tmp_path / "regressor.safetensors"
    meta = {"types": list(model.types), "width": 4}
    write_safetensors(model.state_dict(), path, {"degkit": json.dumps(meta)})
    choices, loaded_meta = regressor_choices(path, [torch.rand(3, 16, 16)] * 3)
    assert {t: c.tolist() for t, c in choices.items()} == {
        "blur": [0] * 3,  # absent: 0
        "gaussian noise": [1] * 3,  # 16 -> 15
        "poisson noise": [3] * 3,  # 2.6 -> 3
        "jpeg": [0] * 3,  # absent: 0 -> 30, the nearest
        "ringing": [1] * 3,  # present
    }
    assert loaded_meta["path"] == str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny test set and tiny adaptor / regressor checkpoints trained for 2 steps."""
    root = tmp_path_factory.mktemp("estimation")
    data = root / "set"
    build_dataset(
        BuildConfig(recipe="deplsr", out=data, crop=64, seed=4, splits="test=1", progress=False)
    )
    saved = model_config.CONFIGS.get("tiny")
    model_config.CONFIGS["tiny"] = TINY
    try:
        options = dict(model="tiny", steps=2, pretrain_steps=2, batch_size=4, warmup=1)
        train = dict(split="test", progress=False)
        adaptor = train_adaptor(TrainConfig(data=data, out=root / "a", **options, **train))
    finally:
        if saved is None:
            model_config.CONFIGS.pop("tiny")
    regressor = train_regressor(
        RegressorConfig(data=data, out=root / "r", steps=2, batch_size=4, width=8, **train)
    )
    return data, adaptor.checkpoint, regressor


def test_cli_writes_results_report_and_figures(trained, tmp_path, capsys):
    data, adaptor, regressor = trained
    out = tmp_path / "report"
    argv = ["eval-adaptor", "--data", str(data), "--adaptor", str(adaptor)]
    argv += ["--regressor", str(regressor), "--out", str(out)]
    assert cli_main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == list(PAPER_TYPES)
    results = json.loads((out / "results.json").read_text())
    truth = load_test_set(data).truth()
    n = len(truth["blur"])
    for protocol in PROTOCOL:
        entry = results["types"][protocol.name]
        true = truth[protocol.name]
        assert entry["n"] == n
        assert entry["chance"] == pytest.approx(estimation.chance_accuracy(protocol, true))
        for model in ("adaptor", "regressor"):
            assert 0 <= entry[model]["accuracy"] <= 1
            assert np.asarray(entry[model]["confusion"]).sum() == n
    prov = results["provenance"]
    assert prov["adaptor"]["init"] == "scratch" and prov["adaptor"]["step"] == 2
    assert set(prov["adaptor"]["wall_seconds"]) == {"pretrain", "train"}
    assert prov["regressor"]["step"] == 2 and prov["data"]["rows"] == n
    assert prov["command"][:2] == ["degkit", "eval-adaptor"]
    assert results["protocol"]["prompt_template"] == "A photo with {}"  # the trainer's default
    assert results["protocol"]["types"][0]["prompts"][1] == "A photo with blur with sigma:1.0"
    report = (out / "report.md").read_text()
    assert prov["data"]["fingerprint"] in report and "| jpeg (quality) | 30, 50, 70, 90 |" in report
    for name in ("confusion.png", "pca.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_cli_errors_name_the_file_and_what_is_wrong(trained, tmp_path, capsys):
    data, adaptor, _ = trained
    argv = ["eval-adaptor", "--data", str(data), "--out", str(tmp_path / "o")]
    assert cli_main([*argv, "--adaptor", str(tmp_path / "none.safetensors")]) == 2
    assert "--adaptor " + str(tmp_path / "none.safetensors") + ": no such checkpoint" in (
        capsys.readouterr().err
    )
    bare = tmp_path / "bare"
    (bare / "data").mkdir(parents=True)
    shard = bare / "data" / "test-00000-of-00001.parquet"
    pq.write_table(pa.table({"lr": [b""], "recipe_hash": ["x"]}), shard)
    argv = ["eval-adaptor", "--data", str(bare), "--adaptor", str(adaptor), "--out", "o"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"degkit eval-adaptor: error: {shard}: no column(s) ['blur_level'")
    assert len(err.splitlines()) == 1


def test_training_captions_go_into_the_template_the_prompts_use():
    batch = {
        "degradation_caption": ["blur with sigma:1.0"],
        "fine_captions": [["blur with sigma:1.0", "no ringing and overshoot artifacts"]],
        "content_caption": ["a cat"],
    }
    (out,) = templated(iter([batch]), estimation.PROMPT_TEMPLATE)
    assert out["degradation_caption"] == ["A photo with blur with sigma:1.0"]
    assert out["fine_captions"][0][1] == "A photo with no ringing and overshoot artifacts"
    assert out["content_caption"] == ["a cat"]
    assert estimation.prompts(BLUR, "{}") == BLUR.captions()
    for bad in ("no slot", "{} and {}", "{x} {}"):
        with pytest.raises(ValueError, match="--caption-template"):
            TrainConfig(data="d", out="o", caption_template=bad)
