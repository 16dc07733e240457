"""Split builds: --shard auto from job-array variables, degkit merge, degkit info on a part."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from data_corpus import file_digests, photo_like, png_bytes, write_fast_recipe
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from degkit.cli import main
from degkit.data.build import BuildConfig, build_dataset
from degkit.data.info import info_text
from degkit.data.jobs import record_job, recorded_jobs, shard_from_environment
from degkit.data.merge import merge_parts

N_GOOD = 7
STATE_FILES = ".degkit/empty/*.json"


def _config(root: Path, out: str, **overrides) -> BuildConfig:
    options = dict(
        recipe=str(root / "fast.yaml"), out=root / out, source=str(root / "images"), crop=32,
        per_image=2, seed=7, splits="train=0.7,test=0.3", rows_per_shard=2, batch_size=3,
        workers=0, progress=False,
    )  # fmt: skip
    options.update(overrides)
    return BuildConfig(**options)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """The single build, and its parts for n = 2 and n = 3 (one image is broken, so one
    shard holds no rows and exists only as its empty marker)."""
    root = tmp_path_factory.mktemp("merge")
    (root / "images").mkdir()
    for i in range(N_GOOD):
        image = Image.fromarray(photo_like(40, 48, i))
        (root / "images" / f"{i}.png").write_bytes(png_bytes(image))
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    write_fast_recipe(root)
    build_dataset(_config(root, "single"))
    for n in (2, 3):
        for k in range(n):
            build_dataset(_config(root, f"part{k}of{n}", shard=f"{k}/{n}"))
    return root


def _parts(root: Path, n: int, ks=None) -> list[Path]:
    return [root / f"part{k}of{n}" for k in (range(n) if ks is None else ks)]


def _text(folder: Path, name: str, out_folder: Path) -> str:
    return (folder / name).read_text().replace(str(out_folder), "OUT")


@pytest.mark.parametrize("n", [2, 3])
def test_merged_parts_are_the_single_build(builds, tmp_path, n):
    single = builds / "single"
    assert len(file_digests(single, STATE_FILES)) == 1  # the broken image's shard
    out = tmp_path / "merged"
    summary = merge_parts(list(reversed(_parts(builds, n))), out)  # any order
    assert summary.shards == len(json.loads((single / ".degkit/build.json").read_text())["shards"])
    assert file_digests(out) == file_digests(single)
    assert file_digests(out, STATE_FILES) == file_digests(single, STATE_FILES)
    for name in ("README.md", "skipped.jsonl"):  # the card is written for the whole dataset
        assert _text(out, name, out) == _text(single, name, single)
    assert "incomplete" not in (out / "README.md").read_text()
    assert "part" not in info_text(out).splitlines()[4]
    # a second run (e.g. after a killed merge) changes nothing
    merge_parts(_parts(builds, n), out)
    assert file_digests(out) == file_digests(single)


def test_merge_copies_where_hard_links_fail(builds, tmp_path, monkeypatch):
    def no_links(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    summary = merge_parts(_parts(builds, 2), tmp_path / "copied")
    assert (summary.linked, summary.copied) == (0, summary.shards)
    assert file_digests(tmp_path / "copied") == file_digests(builds / "single")


def _merge_error(parts: list[Path], out: Path) -> str:
    with pytest.raises(ValueError) as error:
        merge_parts(parts, out)
    assert not out.exists()  # nothing is written when a merge is refused
    return str(error.value)


def test_merge_refuses_parts_of_another_build(builds, tmp_path):
    other_seed = build_dataset(_config(builds, "seed8", seed=8, shard="1/2")).out
    message = _merge_error([builds / "part0of2", other_seed], tmp_path / "m")
    assert repr(str(other_seed)) in message and "seed: 7 -> 8" in message

    recipe = builds / "other.yaml"
    recipe.write_text((builds / "fast.yaml").read_text().replace("[1, 10]", "[1, 11]"))
    other_recipe = build_dataset(_config(builds, "recipe2", recipe=str(recipe), shard="1/2")).out
    message = _merge_error([builds / "part0of2", other_recipe], tmp_path / "m")
    assert repr(str(other_recipe)) in message and "recipe_hash" in message


def test_merge_refuses_a_missing_shard_naming_the_job(builds, tmp_path):
    message = _merge_error(_parts(builds, 3, [0, 2]), tmp_path / "m")
    expected = json.loads((builds / "part1of3/.degkit/build.json").read_text())["shards"][1]
    assert f"shard {expected['file']}" in message and "job 1 of 3" in message

    unfinished = tmp_path / "unfinished"
    shutil.copytree(builds / "part1of3", unfinished)
    victim = sorted((unfinished / "data").glob("*.parquet"))[0]
    victim.unlink()
    message = _merge_error([*_parts(builds, 3, [0, 2]), unfinished], tmp_path / "m")
    assert victim.relative_to(unfinished).as_posix() in message
    assert repr(str(unfinished)) in message and "BuildConfig.resume=True" in message


def test_merge_refuses_a_shard_given_twice(builds, tmp_path):
    message = _merge_error([*_parts(builds, 2), builds / "part1of3"], tmp_path / "m")
    assert repr(str(builds / "part1of3")) in message and "is in part" in message
    message = _merge_error([*_parts(builds, 2), builds / "part0of2"], tmp_path / "m")
    assert "given twice" in message


def test_merge_command_prints_one_line_errors(builds, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["merge", str(builds / "part0of3"), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("degkit merge: error: shard ") and "\n" not in error
    assert main(["merge", *map(str, _parts(builds, 3)), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("merged 3 parts")


def test_merge_refuses_an_out_of_other_files_and_leaves_them(builds, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert main(["merge", *map(str, _parts(builds, 2)), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"degkit merge: error: --out {str(out)!r} is not empty") and (
        error.count("\n") == 1
    )
    assert "holds no degkit build (it has notes.txt)" in error
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "my notes"
    with pytest.raises(ValueError, match="holds no degkit build"):  # checked before the parts
        merge_parts(_parts(builds, 2, [0]), out)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        merge_parts(_parts(builds, 2), tmp_path / "a-file")


def _markers(out: Path) -> dict[str, str]:
    """Fingerprint of every empty-shard and job marker in ``out``."""
    return {
        p.relative_to(out).as_posix(): json.loads(p.read_text())["fingerprint"]
        for p in sorted(out.glob(".degkit/*/*.json"))
    }


def test_split_jobs_replacing_a_build_that_wrote_no_shard_keep_each_others_markers(
    builds, tmp_path
):
    """A first try (job 1 of 3, every image too small) wrote only markers; jobs of the
    corrected build replace it, forget its markers, and never delete one another's."""
    out = tmp_path / "shared"
    with pytest.raises(ValueError, match="no usable image"):
        build_dataset(_config(builds, out, crop=64, shard="1/3"))
    old = json.loads((out / ".degkit/build.json").read_text())["fingerprint"]
    assert recorded_jobs(out) == [(1, 3)] and set(_markers(out).values()) == {old}
    new = json.loads((builds / "single/.degkit/build.json").read_text())["fingerprint"]
    # job 0 of 2 of the corrected build got in first (between job 1 reading the old
    # build.json and replacing it), as two jobs starting together may
    record_job(out, 0, 2, new)
    summary = build_dataset(_config(builds, out, shard="1/2"))
    assert "replaced the settings of an earlier build that wrote no shard" in summary.text()
    assert "crop: 64 -> 32" in summary.text()
    assert recorded_jobs(out) == [(0, 2), (1, 2)] and set(_markers(out).values()) == {new}
    build_dataset(_config(builds, out, shard="0/2"))
    single = builds / "single"
    assert file_digests(out) == file_digests(single)
    assert file_digests(out, STATE_FILES) == file_digests(single, STATE_FILES)
    assert _text(out, "skipped.jsonl", out) == _text(single, "skipped.jsonl", single)


def test_info_on_a_part_names_it_and_its_shards(builds):
    part = builds / "part1of3"
    lines = info_text(part).splitlines()
    assert "part 1 of 3" in lines[4] and "incomplete" not in lines[4]
    held = sorted(lines[5].removeprefix("part       holds ").split(", "))
    files = [p.relative_to(part).as_posix() for p in part.glob("data/*.parquet")]
    files += [f"data/{p.stem}.parquet" for p in part.glob(STATE_FILES)]  # shards with no rows
    assert held == sorted(files)  # the part lacks none of its shards: they are the ones on disk
    assert "part 0, 1 of 2" not in info_text(builds / "single")


@given(
    count=st.integers(1, 64),
    first=st.integers(0, 1000),
    step=st.integers(1, 5),
    data=st.data(),
)
def test_shard_auto_reads_a_slurm_array(count, first, step, data):
    k = data.draw(st.integers(0, count - 1))
    env = {
        "SLURM_ARRAY_TASK_ID": str(first + k * step),
        "SLURM_ARRAY_TASK_COUNT": str(count),
        "SLURM_ARRAY_TASK_MIN": str(first),
        "SLURM_ARRAY_TASK_STEP": str(step),
        "RANK": "99",  # an array wins over a launcher's rank
        "WORLD_SIZE": "100",
    }
    assert shard_from_environment(env) == f"{k}/{count}"
    if step > 1:
        env["SLURM_ARRAY_TASK_ID"] = str(first + k * step + 1)
        with pytest.raises(ValueError, match="not one of"):
            shard_from_environment(env)


def test_shard_auto_reads_torchrun_and_explains_when_nothing_is_set(builds, monkeypatch):
    for name in list(os.environ):
        if name.startswith("SLURM_") or name in ("RANK", "WORLD_SIZE"):
            monkeypatch.delenv(name)
    with pytest.raises(ValueError, match=r"BuildConfig\.shard 'auto': no job array found"):
        _config(builds, "auto", shard="auto")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK and WORLD_SIZE"):
        _config(builds, "auto", shard="auto")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert _config(builds, "auto", shard="auto").shard == "2/3"
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "4")
    assert _config(builds, "auto", shard="auto").shard == "1/4"


def test_card_and_push_of_a_part_point_to_merge(builds):
    from degkit.data.hub import files_to_upload

    part = builds / "part0of2"
    card = (part / "README.md").read_text()
    assert "part 0 of 2 of a split build: join the parts with degkit merge" in card
    assert "--resume" not in card.split("## ")[0] + card[card.index("# ") :].split("\n\n")[1]
    with pytest.raises(ValueError, match="part 0 of 2 of a split build.*degkit merge"):
        files_to_upload(part)
