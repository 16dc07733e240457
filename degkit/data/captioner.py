"""Optional content captioner: a transformers image-to-text model (e.g. BLIP).

The user names the model (a Hub id already in the local cache, or a folder
saved with ``save_pretrained``); it is loaded with ``AutoProcessor`` and
``AutoModelForImageTextToText`` and decodes greedily (no sampling), so the same
crop always gets the same caption. It runs in the build's main process on the
HR crops, on the build's device.

Nothing is downloaded: the weights are looked up locally first (the folder, or
the Hugging Face cache) and loaded with ``local_files_only=True``, so a model
that is not there fails at once with a message saying where it must be.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from degkit.extras import require

__all__ = ["ContentCaptioner", "local_model"]

_OPTION = "BuildConfig.captioner"
_HUB_ID = re.compile(r"[\w-][\w.-]*(/[\w-][\w.-]*)?")


def local_model(model: str) -> str:
    """The folder or cached Hub id ``model``, checked to be on this machine (no network).

    Raises:
        ValueError: ``model`` is a file, or neither a folder nor a model in the
            local Hugging Face cache (the message names the cache folder).
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(
                f"{_OPTION} {model!r} cannot be loaded: it is a file; pass a folder "
                "saved with save_pretrained or the Hub id of a cached model"
            )
        return str(path)
    if not _HUB_ID.fullmatch(model):
        raise ValueError(f"{_OPTION} {model!r} cannot be loaded: no such folder")
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model, "config.json")
    except ValueError:  # an id the Hub would refuse
        cached = None
    if not isinstance(cached, str):
        raise ValueError(
            f"{_OPTION} {model!r} cannot be loaded: no such folder, and not in the local "
            f"Hugging Face cache {constants.HF_HUB_CACHE} (degkit never downloads); fetch it "
            f"first (e.g. `hf download {model}`) or pass a folder saved with save_pretrained"
        )
    return model


class ContentCaptioner:
    """Caption uint8 ``H x W x 3`` RGB images with an image-to-text model.

    Args:
        model: local folder, or Hub id of a model in the local cache, of a
            transformers image-to-text model.
        device: torch device to run on.
        max_new_tokens: longest caption, in tokens.
    """

    def __init__(self, model: str, device: str = "cpu", max_new_tokens: int = 30) -> None:
        where = local_model(model)
        transformers = require("transformers", "caption", _OPTION)
        AutoModelForImageTextToText = transformers.AutoModelForImageTextToText
        AutoProcessor = transformers.AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(where, local_files_only=True)
            self.model = (
                AutoModelForImageTextToText.from_pretrained(where, local_files_only=True)
                .to(device)
                .eval()
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{_OPTION} {model!r} cannot be loaded: {exc}") from None
        self.name = model
        self.device = torch.device(device)
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray]) -> list[str]:
        """One caption per image (stripped; empty input gives an empty list)."""
        if not images:
            return []
        inputs = self.processor(images=list(images), return_tensors="pt").to(self.device)
        tokens = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return [
            text.strip() for text in self.processor.batch_decode(tokens, skip_special_tokens=True)
        ]
