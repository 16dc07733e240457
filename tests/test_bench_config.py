"""Leaderboard configs: profiles merge key by key; mistakes name the file and the key."""

from __future__ import annotations

import pytest

from degkit.bench.config import SHIPPED_FOLDER, load_bench_config


@pytest.mark.parametrize("profile", ["quick", "cpu-long", "gpu", "full"])
def test_shipped_config_loads_every_profile(profile):
    config = load_bench_config("deplsr", profile)
    assert config.profile == profile and config.seeds == (0, 1, 2)
    assert "none" in config.sr["priors"] and config.eval["sets"]


def test_profile_overrides_only_what_it_names():
    quick, long = load_bench_config("deplsr", "quick"), load_bench_config("deplsr", "cpu-long")
    assert long.sr["steps"] > quick.sr["steps"]
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
