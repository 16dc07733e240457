"""degkit build --engine ray: the same bytes as a local build, resume included."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from data_corpus import file_digests, photo_like, png_bytes, write_fast_recipe
from PIL import Image

from degkit.data.build import BuildConfig, build_dataset
from degkit.data.ray_engine import import_ray


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
    with pytest.raises(ValueError, match=r'pip install "degkit\[ray\]"'):
        import_ray()
