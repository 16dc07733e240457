"""A build killed with SIGKILL at several points, then resumed, equals an uninterrupted build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from data_corpus import file_digests, photo_like, png_bytes
from PIL import Image

from degkit.data.build import BuildConfig, build_dataset

N_IMAGES, PER_IMAGE, ROWS_PER_SHARD = 40, 2, 4
OPTIONS = [
    "--crop", "64", "--per-image", str(PER_IMAGE), "--seed", "3",
    "--splits", "train=0.8,test=0.2", "--rows-per-shard", str(ROWS_PER_SHARD),
]  # fmt: skip


def _cli(out: Path, source: Path, *extra: str) -> list[str]:
    entry = "import sys; from degkit.cli import main; sys.exit(main())"
    return [sys.executable, "-c", entry, "build", "deplsr", "--source", str(source),
            "--out", str(out), *OPTIONS, "--batch-size", "2", "--quiet", *extra]  # fmt: skip


def _shards(out: Path) -> int:
    return len(list((out / "data").glob("*.parquet"))) if (out / "data").is_dir() else 0


def _run_and_kill(command: list[str], ready, timeout: float = 120) -> int:
    """Start the build, SIGKILL its process group once ``ready()`` holds; return its exit code."""
    process = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while process.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.005)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    return process.returncode


def test_killed_builds_resume_to_the_uninterrupted_result(tmp_path):
    source = tmp_path / "images"
    source.mkdir()
    for i in range(N_IMAGES):
        (source / f"{i:03d}.png").write_bytes(png_bytes(Image.fromarray(photo_like(72, 80, i))))
    (source / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")

    clean = tmp_path / "clean"
    build_dataset(
        BuildConfig(
            recipe="deplsr", out=clean, source=str(source), crop=64, per_image=PER_IMAGE,
            seed=3, splits="train=0.8,test=0.2", rows_per_shard=ROWS_PER_SHARD, workers=0,
            progress=False,
        )
    )  # fmt: skip
    total = _shards(clean)
    assert total >= 15

    out = tmp_path / "killed"
    # 1: killed as soon as the build has recorded its settings (first shard in flight)
    code = _run_and_kill(_cli(out, source), lambda: (out / ".degkit" / "build.json").exists())
    assert code == -signal.SIGKILL
    # 2: killed after a few shards; 3: killed a moment after more shards (mid-shard)
    code = _run_and_kill(_cli(out, source, "--resume", "--workers", "1"), lambda: _shards(out) >= 4)
    assert code == -signal.SIGKILL
    before = _shards(out)
    code = _run_and_kill(
        _cli(out, source, "--resume", "--workers", "0"),
        lambda: _shards(out) >= before + 2 and time.sleep(0.01) is None,
    )
    assert code == -signal.SIGKILL
    assert _shards(out) < total
    # 4: the last resume completes
    finished = subprocess.run(_cli(out, source, "--resume"), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "dataset complete" in finished.stdout

    assert file_digests(out) == file_digests(clean)
    assert not list((out / "data").glob(".*"))
    for name in ("README.md", "skipped.jsonl"):
        text = (out / name).read_text().replace(str(out), str(clean))
        assert text == (clean / name).read_text()
