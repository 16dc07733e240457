"""Optional content captioner: a transformers image-to-text model (e.g. BLIP).

The user names the model (a Hub id already in the local cache, or a folder
saved with ``save_pretrained``); it is loaded with ``AutoProcessor`` and
``AutoModelForImageTextToText`` and decodes greedily (no sampling), so the same
crop always gets the same caption. It runs in the build's main process on the
HR crops, on the build's device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["ContentCaptioner"]


class ContentCaptioner:
    """Caption uint8 ``H x W x 3`` RGB images with an image-to-text model.

    Args:
        model: Hub id or local folder of a transformers image-to-text model.
        device: torch device to run on.
        max_new_tokens: longest caption, in tokens.
    """

    def __init__(self, model: str, device: str = "cpu", max_new_tokens: int = 30) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(model)
            self.model = AutoModelForImageTextToText.from_pretrained(model).to(device).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"--captioner {model!r} cannot be loaded: {exc}") from None
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
