"""degkit build --engine ray: the same bytes as a local build, resume included."""

from __future__ import annotations

import errno
import pickle
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from data_corpus import file_digests, photo_like, png_bytes, write_fast_recipe
from PIL import Image

from degkit.cli import main
from degkit.data import ray_engine
from degkit.data.build import BuildConfig, DiskFullError, build_dataset, disk_full_error
from degkit.data.ray_engine import import_ray
from degkit.extras import MissingExtra


@pytest.fixture(scope="module")
def local_ray():
    """A two-CPU Ray instance on this machine, shut down (with its processes) afterwards."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    assert not ray.is_initialized()
    deadline = time.monotonic() + 30
    while psutil.Process().children(recursive=True) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [c.name() for c in psutil.Process().children(recursive=True)] == []


def test_ray_build_resumes_to_the_local_build(local_ray, tmp_path: Path):
    (tmp_path / "images").mkdir()
    for i in range(6):
        image = Image.fromarray(photo_like(40, 44, i))
        (tmp_path / "images" / f"{i}.png").write_bytes(png_bytes(image))
    options = dict(
        recipe=str(write_fast_recipe(tmp_path)), source=str(tmp_path / "images"), crop=32,
        per_image=2, seed=5, splits="train=0.7,test=0.3", rows_per_shard=3, batch_size=2,
        progress=False,
    )  # fmt: skip
    local = build_dataset(BuildConfig(out=tmp_path / "local", workers=0, **options))
    out = tmp_path / "ray"
    # half of the shards exist already (a killed build); Ray writes the rest
    build_dataset(BuildConfig(out=out, workers=0, shard="0/2", **options))
    done_before = file_digests(out)
    summary = build_dataset(BuildConfig(out=out, engine="ray", resume=True, **options))
    assert summary.shards_done == summary.shards_total == local.shards_total
    assert summary.shards_written == local.shards_total - len(done_before)
    new = [f for f in file_digests(out) if f not in done_before]
    assert summary.rows == sum(pq.ParquetFile(out / f).metadata.num_rows for f in new)
    assert file_digests(out) == file_digests(tmp_path / "local")
    card = (out / "README.md").read_text().replace(str(out), str(tmp_path / "local"))
    assert card == (tmp_path / "local" / "README.md").read_text()


def test_missing_ray_is_a_one_line_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(MissingExtra, match=r"pip install 'degkit\[ray\]'"):
        import_ray()


def test_ray_build_explains_unusable_images_and_lists_other_files(local_ray, tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        (images / f"{i}.png").write_bytes(png_bytes(Image.fromarray(photo_like(20, 24, i))))
    (images / "notes.txt").write_text("not an image")
    options = dict(
        recipe=str(write_fast_recipe(tmp_path)), source=str(images), seed=5, rows_per_shard=2,
        batch_size=2, workers=0, progress=False,
    )  # fmt: skip
    out = tmp_path / "ray"
    with pytest.raises(ValueError) as caught:  # every image is smaller than the crop
        build_dataset(BuildConfig(out=out, crop=64, engine="ray", **options))
    message = str(caught.value)
    assert "no usable image: all 3 source images this run read were skipped" in message
    assert "smaller than the crop: 24x20 < 64x64" in message and "lower BuildConfig.crop" in message
    summary = build_dataset(BuildConfig(out=out, crop=16, engine="ray", **options))
    assert "replaced the settings of an earlier build that wrote no shard" in summary.text()
    assert "crop: 64 -> 16" in summary.text() and summary.skipped_files == 1
    local = tmp_path / "local"
    build_dataset(BuildConfig(out=local, crop=16, **options))
    assert file_digests(out) == file_digests(local)
    for name in ("skipped.jsonl", "README.md"):
        assert (out / name).read_text().replace(str(out), str(local)) == (local / name).read_text()
    assert "notes.txt" in (out / "skipped.jsonl").read_text()


class _Task:
    """A ``ray.remote`` function: submitting returns a fresh object reference."""

    def options(self, **resources):
        return self

    def remote(self, *args) -> object:
        return object()


class _FailingRay:
    """Stands in for ``ray``: every task fails with ``cause``, wrapped as Ray wraps it."""

    def __init__(self, cause: BaseException):
        self.exceptions = pytest.importorskip("ray").exceptions
        self.cause = cause

    def is_initialized(self) -> bool:
        return True

    def remote(self, function) -> _Task:
        return _Task()

    def wait(self, refs, num_returns):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        error = self.exceptions.RayTaskError(
            "build_one_shard", "Traceback (most recent call last): ...",
            pickle.loads(pickle.dumps(self.cause)),  # sent from the task's process
            proctitle="ray::build_one_shard", pid=1, ip="127.0.0.1",
        )  # fmt: skip
        raise error.as_instanceof_cause()

    def cancel(self, ref) -> None:
        pass


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (disk_full_error(Path("/data/out"), 1e6, 1), "no space left on device in "),
        (ValueError("the model is not on this node"), "the model is not on this node"),
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    ],
)
def test_a_ray_task_error_reaches_the_user_in_one_line(
    tmp_path: Path, monkeypatch, capsys, cause, expected
):
    (tmp_path / "images").mkdir()
    for i in range(4):
        image = Image.fromarray(photo_like(20, 24, i))
        (tmp_path / "images" / f"{i}.png").write_bytes(png_bytes(image))
    fake = _FailingRay(cause)
    monkeypatch.setattr(ray_engine, "import_ray", lambda: fake)
    out = tmp_path / "out"
    argv = [
        "build", str(write_fast_recipe(tmp_path)), "--source", str(tmp_path / "images"),
        "--out", str(out), "--crop", "16", "--rows-per-shard", "1", "--engine", "ray", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("degkit build: error: ") and error.count("\n") == 1, error
    assert expected in error and "Traceback" not in error
    if isinstance(cause, DiskFullError):  # counted over the 4 rows left, at 1 MB a row
        assert f"in {str(out)!r}: the rest of this build needs about 4.0 MB" in error
