"""Leaderboard configs: profiles merge key by key; mistakes name the file and the key."""

from __future__ import annotations

import pytest

from degkit.bench.config import SHIPPED_FOLDER, load_bench_config, sr_steps


@pytest.mark.parametrize("profile", ["quick", "cpu-long", "gpu", "full"])
def test_shipped_config_loads_every_profile(profile):
    config = load_bench_config("deplsr", profile)
    assert config.profile == profile and config.seeds == (0, 1, 2)
    assert "none" in config.sr["priors"] and config.eval["sets"]


def test_profile_overrides_only_what_it_names():
    quick, long = load_bench_config("deplsr", "quick"), load_bench_config("deplsr", "cpu-long")
    for backbone in quick.sr["backbones"]:
        assert sr_steps(long.sr, backbone) > sr_steps(quick.sr, backbone)
    assert long.sr["priors"] == quick.sr["priors"] and long.eval == quick.eval
    assert quick.section_hash("data") != long.section_hash("data")
    assert quick.section_hash("eval") == long.section_hash("eval")


def test_errors_name_the_file_and_key(tmp_path):
    base = (SHIPPED_FOLDER / "deplsr.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(base.replace("  batch_size: 8\n", "  batchsize: 8\n"))
    with pytest.raises(ValueError, match=r"bad.yaml: sr: unknown key 'batchsize'"):
        load_bench_config(bad)
    with pytest.raises(ValueError, match="no profile 'fast'"):
        load_bench_config("deplsr", "fast")
    with pytest.raises(FileNotFoundError, match="shipped: \\['deplsr'\\]"):
        load_bench_config("nope")


def test_sr_steps_are_one_number_or_one_per_backbone(tmp_path):
    config = tmp_path / "steps.yaml"

    def sr_with(steps: str) -> dict:
        config.write_text(
            f"sr: {{backbones: [compact_tiny, dat_tiny], steps: {steps}}}\n"
            "profiles: {quick: {}, long: {sr: {steps: 9}}}\n"
        )
        return load_bench_config(config, "quick").sr

    sr = sr_with("{compact_tiny: 7, dat_tiny: 3}")
    assert (sr_steps(sr, "compact_tiny"), sr_steps(sr, "dat_tiny")) == (7, 3)
    assert sr_steps(load_bench_config(config, "long").sr, "dat_tiny") == 9
    assert sr_steps(sr_with("5"), "dat_tiny") == 5
    with pytest.raises(ValueError, match=r"steps.yaml: profile quick: sr.steps names no steps for"):
        sr_with("{compact_tiny: 7}")
    with pytest.raises(ValueError, match=r"sr.steps must be positive integers, got \{'dat_tiny'"):
        sr_with("{compact_tiny: 7, dat_tiny: 0}")
