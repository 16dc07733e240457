"""Worker processes of a build never outlive it: SIGKILL the main process, the workers go too."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from data_corpus import photo_like, png_bytes
from PIL import Image

from degkit.data.parallel import _start_guarded_worker

GRACE_S = 20.0  # how long the workers may take to notice (they need well under a second)


def _wait_for_children(process: subprocess.Popen, count: int, timeout: float = 120) -> list[int]:
    """Pids of the process's children once it has ``count`` of them (fails if it exits first)."""
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        children = [c.pid for c in parent.children(recursive=True)]
        if len(children) >= count:
            return children
        time.sleep(0.05)
    raise AssertionError(f"the process never had {count} children")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_main_and_wait(process: subprocess.Popen, children: list[int]) -> list[int]:
    """SIGKILL only the main process; return the children still alive after the grace time."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    deadline = time.monotonic() + GRACE_S
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in children if _alive(pid)]
    for pid in survivors:  # never leak them into the rest of the test session
        os.kill(pid, signal.SIGKILL)
    return survivors


def test_sigkilled_build_leaves_no_worker(tmp_path: Path):
    source = tmp_path / "images"
    source.mkdir()
    for i in range(24):
        (source / f"{i:02d}.png").write_bytes(png_bytes(Image.fromarray(photo_like(96, 96, i))))
    command = [
        sys.executable, "-m", "degkit.cli", "build", "realesrgan", "--source", str(source),
        "--out", str(tmp_path / "out"), "--crop", "64", "--per-image", "8",
        "--workers", "2", "--batch-size", "2", "--quiet",
    ]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE)
    children = _wait_for_children(process, 2)
    assert _kill_main_and_wait(process, children) == []


def test_workers_of_a_pool_started_off_the_main_thread_die_with_it():
    # PR_SET_PDEATHSIG would fire when the starting thread ends, so these
    # workers rely on the watchdog that polls the parent pid.
    script = textwrap.dedent(
        """
        import threading, time
        from degkit.data.parallel import ordered_map

        def run():
            for _ in ordered_map(time.sleep, [600] * 4, workers=2):
                pass

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stderr=subprocess.PIPE
    )
    children = _wait_for_children(process, 2)
    time.sleep(0.5)  # let the workers start their watchdog (a parent gone earlier is also caught)
    assert _kill_main_and_wait(process, children) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks a process")
@pytest.mark.parametrize("main_thread", [True, False])
def test_a_worker_whose_parent_is_already_gone_exits_before_its_initializer(main_thread):
    fork = multiprocessing.get_context("fork")
    # parent pid -1: the process that started the pool is already gone
    orphan = fork.Process(target=_start_guarded_worker, args=(-1, main_thread, os._exit, (7,)))
    orphan.start()
    orphan.join()
    assert orphan.exitcode == 1
    # with its parent alive, the worker goes on to the pool's initializer
    worker = fork.Process(
        target=_start_guarded_worker, args=(os.getpid(), main_thread, os._exit, (7,))
    )
    worker.start()
    worker.join()
    assert worker.exitcode == 7
