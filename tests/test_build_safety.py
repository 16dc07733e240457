"""degkit build never harms a user's files, checks every option first, and fails in one line.

Each test reproduces a way a build used to lose a user's file, build the
wrong thing silently, or end in a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from pathlib import Path

import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from data_corpus import file_digests, photo_like, png_bytes, write_fast_recipe
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from degkit.cli import main
from degkit.data import rows, shards
from degkit.data.build import BuildConfig, DiskFullError, build_dataset
from degkit.data.captioner import ContentCaptioner
from degkit.data.state import STATE_DIR

N_IMAGES, CROP = 6, 16
OPTIONS = dict(crop=CROP, seed=5, splits="train", rows_per_shard=2, batch_size=2, workers=0)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("safety")
    images = root / "images"
    images.mkdir()
    for i in range(N_IMAGES):
        image = Image.fromarray(photo_like(24, 28, i))
        (images / f"{i}.png").write_bytes(png_bytes(image))
    write_fast_recipe(root)
    return images


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory) -> Path:
    """A clean build of ``source`` with :data:`OPTIONS`."""
    out = tmp_path_factory.mktemp("reference") / "out"
    build_dataset(_config(source, out))
    return out


def _recipe(source: Path) -> str:
    return str(source.parent / "fast.yaml")


def _config(source: Path, out: Path, **overrides) -> BuildConfig:
    options = {**OPTIONS, **overrides}
    return BuildConfig(
        recipe=_recipe(source), out=out, source=str(source), progress=False, **options
    )


def _argv(source: Path, out: Path | str, *extra: str) -> list[str]:
    return [
        "build", _recipe(source), "--source", str(source), "--out", str(out), "--crop", str(CROP),
        "--seed", "5", "--rows-per-shard", "2", "--batch-size", "2", "--workers", "0", "--quiet",
        *extra,
    ]  # fmt: skip


def _cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect status 2 and exactly one ``degkit build: error:`` line; return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("degkit build: error: "), err
    return err


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _users_parquet(path: Path) -> bytes:
    """A parquet file a user wrote (no degkit metadata); returns its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"image": [b"mine"], "label": [1]}), path)
    return path.read_bytes()


# -- 1. never overwrite or delete what degkit did not write ---------------------------
def test_a_folder_of_user_files_is_refused_and_left_as_it_was(source, tmp_path, capsys):
    out = tmp_path / "p"
    out.mkdir()
    (out / "README.md").write_text("# notes\n")
    err = _cli_error(capsys, _argv(source, out))
    assert "not empty and holds no degkit build" in err and "README.md" in err
    assert _tree(out) == {"README.md": b"# notes\n"}


def test_out_empty_a_file_or_inside_the_source_is_refused(source, tmp_path, capsys):
    before = _tree(source)
    assert "--out must name a folder" in _cli_error(capsys, _argv(source, ""))
    a_file = tmp_path / "out.txt"
    a_file.write_text("keep")
    assert "is a file, not a folder" in _cli_error(capsys, _argv(source, a_file))
    assert a_file.read_text() == "keep"
    for out in (source, source / "sub"):
        assert "is the source folder or inside it" in _cli_error(capsys, _argv(source, out))
    assert _tree(source) == before and not (source / "sub").exists()


def test_following_the_resume_hint_never_deletes_a_users_parquet(source, tmp_path, capsys):
    out = tmp_path / "hub-snapshot"
    mine = _users_parquet(out / "data" / "train-00000-of-00003.parquet")
    _cli_error(capsys, _argv(source, out))
    _cli_error(capsys, _argv(source, out, "--resume"))
    assert (out / "data" / "train-00000-of-00003.parquet").read_bytes() == mine
    assert not (out / STATE_DIR).exists()


@pytest.mark.parametrize("kind", ["user's table", "another build's shard"])
def test_resume_refuses_a_foreign_file_at_a_shard_path(source, reference, tmp_path, kind):
    """Inside a degkit build, a file the build did not write is named, never deleted."""
    out = tmp_path / "build"
    build_dataset(_config(source, out))
    shard = out / "data" / "train-00001-of-00003.parquet"
    if kind == "user's table":
        mine = _users_parquet(shard)
    else:
        other = tmp_path / "other"
        build_dataset(_config(source, other, seed=6))
        mine = (other / "data" / shard.name).read_bytes()
        shard.write_bytes(mine)
    with pytest.raises(ValueError, match="holds data/train-00001-of-00003.parquet, which does"):
        build_dataset(_config(source, out, resume=True))
    assert shard.read_bytes() == mine
    shard.unlink()  # the user moves it away: the build completes as if never disturbed
    build_dataset(_config(source, out, resume=True))
    assert file_digests(out) == file_digests(reference)


def test_resume_replaces_only_files_carrying_this_builds_fingerprint(source, reference, tmp_path):
    out = tmp_path / "build"
    build_dataset(_config(source, out))
    data = out / "data"
    # a shard of this build missing a row: it carries the fingerprint, so it is redone
    first = data / "train-00000-of-00003.parquet"
    short = pq.read_table(first).slice(0, 1)
    pq.write_table(short, first)
    (data / ".train-00001-of-00003.parquet.tmp").write_bytes(b"half")  # its own temp file
    summary = build_dataset(_config(source, out, resume=True))
    assert summary.shards_written == 1
    assert file_digests(out) == file_digests(reference)
    assert not list(data.glob(".*"))
    # a shard cut short carries no readable fingerprint: it is named, not deleted
    last = data / "train-00002-of-00003.parquet"
    cut = last.read_bytes()[:300]
    last.write_bytes(cut)
    with pytest.raises(ValueError, match="holds data/train-00002-of-00003.parquet, which does"):
        build_dataset(_config(source, out, resume=True))
    assert last.read_bytes() == cut


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["--device", "tpu"], "--device must be cpu, cuda"),
        (["--seed", str(2**70)], "--seed must be an integer from"),
        (["--captioner", "nobody/no-such-captioner"], "not in the local Hugging Face cache"),
        (["--crop", "4096"], "no usable image"),
    ],
)
def test_a_failed_first_run_does_not_block_the_corrected_run(
    source, reference, tmp_path, capsys, bad, message
):
    out = tmp_path / "first"
    assert message in _cli_error(capsys, _argv(source, out, *bad))
    assert main(_argv(source, out)) == 0
    assert "dataset complete" in capsys.readouterr().out
    assert file_digests(out) == file_digests(reference)
    assert _tree(out)["README.md"] == _tree(reference)["README.md"].replace(
        str(reference).encode(), str(out).encode()
    )


def test_settings_of_a_build_that_wrote_no_shard_are_replaced(
    source, reference, tmp_path, monkeypatch
):
    """A first run that dies before its first shard (here: in the recipe) blocks nothing."""
    out = tmp_path / "crashed"

    def crash(self, batch):
        raise RuntimeError("recipe crashed")

    with monkeypatch.context() as patch:
        patch.setattr(rows.RowMaker, "rows", crash)
        with pytest.raises(RuntimeError, match="recipe crashed"):
            build_dataset(_config(source, out, seed=99))
    assert (out / STATE_DIR / "build.json").is_file() and not list(out.glob("data/*"))
    summary = build_dataset(_config(source, out))
    assert "replaced the settings of an earlier build that wrote no shard" in summary.text()
    assert "seed: 99 -> 5" in summary.text()
    assert file_digests(out) == file_digests(reference)
    with pytest.raises(ValueError, match="holds a build with other settings"):
        build_dataset(_config(source, out, seed=99))


# -- 3. every argument checked before work starts ----------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--scale", "0"], "--scale must be a positive integer, got 0"),
        (["--rows-per-shard", "0"], "--rows-per-shard must be a"),
        (["--seed", "-" + str(2**64)], "--seed must be an integer from"),
        (["--device", "meta"], "--device must be cpu, cuda, cuda:N or mps"),
        (["--splits", "train=0.9,validation=0.2"], "fractions must sum to 1, got train=0.9"),
        (["--splits", "train=0.5"], "--splits fractions must sum to 1"),
        (["--per-image", "0"], "--per-image must be a positive"),
        (["--per-image", "-2"], "--per-image must be a positive"),
        (["--workers", "-1"], "--workers must be an integer >= 0"),
        (["--max-pixels", "0"], "--max-pixels must be a positive"),
        (["--crop", "0"], "--crop must be a positive integer"),
        (["--crop", "18"], "--crop must be a positive multiple of the scale 4"),
        (["--crop", "12", "--scale", "8"], "multiple of the scale 8, got 12"),
        (["--batch-size", "0"], "--batch-size must be a positive"),
        (["--png-level", "10"], "--png-level must be an integer from 0"),
        (["--shard", "3/3"], "--shard k/n needs 0 <= k < n"),
        (["--license", ""], "--license must be a non-empty"),
    ],
)
def test_bad_options_are_refused_in_one_line_before_anything_is_written(
    source, tmp_path, capsys, flags, message
):
    out = tmp_path / "never"
    assert message in _cli_error(capsys, _argv(source, out, *flags))
    assert not out.exists()


def test_crop_mode_and_types_are_checked_for_library_users(source, tmp_path):
    with pytest.raises(ValueError, match=r"BuildConfig.crop_mode must be one of"):
        _config(source, tmp_path / "o", crop_mode="diagonal")
    with pytest.raises(ValueError, match=r"BuildConfig.scale must be an integer"):
        _config(source, tmp_path / "o", scale=2.0)
    with pytest.raises(ValueError, match=r"BuildConfig.workers must be an integer"):
        _config(source, tmp_path / "o", workers=True)
    with pytest.raises(ValueError, match=r"BuildConfig.resume must be True or"):
        _config(source, tmp_path / "o", resume="yes")
    with pytest.raises(ValueError, match=r"BuildConfig.per_image must be 1 when"):
        _config(source, tmp_path / "o", crop=None, per_image=2)
    with pytest.raises(ValueError, match=r"BuildConfig.engine must be one of local"):
        _config(source, tmp_path / "o", engine="dask")


_INT_FIELDS = {  # field: (smallest, largest) allowed
    "scale": (1, None),
    "crop": (1, None),
    "per_image": (1, None),
    "seed": (-(2**63), 2**63 - 1),
    "rows_per_shard": (1, None),
    "workers": (0, None),
    "batch_size": (1, None),
    "png_level": (0, 9),
    "max_pixels": (1, None),
}


@given(field=st.sampled_from(sorted(_INT_FIELDS)), value=st.integers(-(2**70), 2**70))
def test_integer_fields_are_accepted_exactly_in_their_range(field, value):
    low, high = _INT_FIELDS[field]
    allowed = value >= low and (high is None or value <= high)
    # crop must also be a multiple of the scale: give it a scale of 1 to test the range alone
    scale = 1 if field == "crop" else None
    options = (
        {"scale": scale, **{field: value}} if field != "scale" else {field: value, "crop": None}
    )
    if allowed:
        config = BuildConfig(recipe="deplsr", out="unused", **options)
        assert getattr(config, field) == value
    else:
        with pytest.raises(ValueError, match=rf"^BuildConfig\.{field} must be"):
            BuildConfig(recipe="deplsr", out="unused", **options)


def test_no_usable_image_is_an_error_that_says_why(source, tmp_path):
    out = tmp_path / "too-big"
    with pytest.raises(ValueError) as caught:
        build_dataset(_config(source, out, crop=4096))
    message = str(caught.value)
    assert f"all {N_IMAGES} source images this run read were skipped" in message
    assert (
        "smaller than the crop: 28x24 < 4096x4096" in message
        and "lower BuildConfig.crop" in message
    )
    lines = (out / "skipped.jsonl").read_text().splitlines()
    assert len(lines) == N_IMAGES  # the reasons stay on disk for the user to read


# -- 4. no raw tracebacks for conditions a user causes --------------------------------
def test_a_full_disk_stops_in_one_line_and_resume_finishes(
    source, reference, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "full"
    written: list[str] = []

    class FullAtThirdShard(pq.ParquetWriter):
        def write_table(self, table, *args, **kwargs):
            written.append(self.where)
            if len(written) == 3:
                assert Path(self.where).is_file()  # the temp file exists when the disk fills
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write_table(table, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(shards.pq, "ParquetWriter", FullAtThirdShard)
        err = _cli_error(capsys, _argv(source, out))
    assert f"no space left on device in {str(out)!r}" in err
    assert " MB (" in err and "MB free" in err and "--resume" in err
    assert sorted(Path(w).name for w in written) == [
        ".train-00000-of-00003.parquet.tmp",
        ".train-00001-of-00003.parquet.tmp",
        ".train-00002-of-00003.parquet.tmp",
    ]
    assert not [p for p in out.rglob(".*") if p.is_file()]  # temp files removed
    expected = file_digests(reference)
    assert file_digests(out) == {k: v for k, v in expected.items() if "00002" not in k}
    assert main(_argv(source, out, "--resume")) == 0
    assert file_digests(out) == expected


def test_disk_full_error_is_an_oserror_with_errno_enospc(source, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("degkit.data.build.write_shard", full)
    with pytest.raises(DiskFullError) as caught:
        build_dataset(_config(source, tmp_path / "full"))
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert str(caught.value).startswith("no space left on device")


def test_a_missing_captioner_fails_at_once_without_network(source, tmp_path, monkeypatch):
    """The model is looked up locally before transformers is even imported; no socket opens."""
    attempts: list[object] = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("network use in a test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setitem(sys.modules, "transformers", None)  # importing it would fail
    with pytest.raises(ValueError) as caught:
        ContentCaptioner("Salesforce/blip-image-captioning-base")
    message = str(caught.value)
    assert "BuildConfig.captioner" in message
    assert huggingface_hub.constants.HF_HUB_CACHE in message and "hf download" in message
    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"")
    with pytest.raises(ValueError, match="cannot be loaded: it is a file"):
        ContentCaptioner(str(a_file))
    out = tmp_path / "captioned"
    with pytest.raises(ValueError, match="not in the local Hugging Face cache"):
        build_dataset(_config(source, out, captioner="nobody/no-such-captioner"))
    assert attempts == [] and not out.exists()


def test_non_images_and_broken_links_are_listed_as_skipped(source, reference, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_fast_recipe(tmp_path)  # _config finds the recipe beside the source folder
    for image in source.iterdir():
        (folder / image.name).write_bytes(image.read_bytes())
    Image.fromarray(photo_like(24, 28, 9)).save(folder / "anim.gif")
    (folder / "notes.txt").write_text("shot on a sunny day")
    (folder / "LICENSE").write_text("CC0")
    os.symlink(tmp_path / "gone.png", folder / "link.png")
    out = tmp_path / "out"
    summary = build_dataset(_config(folder, out))
    # the images keep their indices: the shards equal a build of the images alone
    assert file_digests(out) == file_digests(reference)
    assert summary.skipped_files == 4 and "and 4 other files" in summary.text()
    entries = {e["source_id"]: e for e in map(json.loads, (out / "skipped.jsonl").open())}
    assert sorted(entries) == ["LICENSE", "anim.gif", "link.png", "notes.txt"]
    assert entries["anim.gif"]["reason"].startswith("unsupported file type '.gif'")
    assert entries["notes.txt"]["reason"].startswith("unsupported file type '.txt'")
    assert entries["LICENSE"]["reason"].startswith("unsupported file without an extension")
    assert entries["link.png"]["reason"] == f"broken symbolic link to {tmp_path / 'gone.png'}"
    assert all(e["indices"] == [] and e["row"] is None for e in entries.values())
    assert entries["link.png"]["location"] == str(folder / "link.png")


def test_a_source_with_no_images_names_what_it_holds(tmp_path, capsys):
    folder = tmp_path / "gifs"
    folder.mkdir()
    Image.fromarray(photo_like(24, 28, 1)).save(folder / "a.gif")
    argv = ["build", "deplsr", "--source", str(folder), "--out", str(tmp_path / "o"), "--quiet"]
    err = _cli_error(capsys, argv)
    assert "holds no images; a.gif: unsupported file type '.gif'" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_is_refused_where_there_is_none(tmp_path):
    with pytest.raises(ValueError, match=r"^BuildConfig.device 'cuda': cuda is not"):
        BuildConfig(recipe="deplsr", out=tmp_path / "o", device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_index_past_the_last_gpu_is_refused(tmp_path):
    count = torch.cuda.device_count()
    assert BuildConfig(recipe="deplsr", out=tmp_path / "o", device="cuda:0").device == "cuda:0"
    with pytest.raises(ValueError, match=f"this machine has {count} cuda device"):
        BuildConfig(recipe="deplsr", out=tmp_path / "o", device=f"cuda:{count}")
