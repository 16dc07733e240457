"""Test-wide settings: offline caches in a temporary folder, small thread pools."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import torch
from hypothesis import settings

_CACHE = tempfile.mkdtemp(prefix="degkit-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)  # test sets cache tens of MB here
for var in ("HF_HOME", "TORCH_HOME", "XDG_CACHE_HOME", "HF_DATASETS_CACHE"):
    os.environ[var] = os.path.join(_CACHE, var.lower())
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# pytest-xdist runs one worker per core: one torch thread each avoids oversubscription.
torch.set_num_threads(1)

settings.register_profile("degkit", deadline=None, max_examples=20, derandomize=True)
settings.load_profile("degkit")
