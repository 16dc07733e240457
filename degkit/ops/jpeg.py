"""JPEG compression, per-sample quality, through libjpeg or a differentiable model.

``mode="codec"`` (default) runs the real codec: the image is rounded to 8 bits,
encoded by libjpeg(-turbo) through OpenCV at an integer quality (1..100) with
the chroma ``subsampling`` (recorded per sample), decoded and divided by 255. The result
equals Pillow's own encode-decode of the same uint8 image byte for byte (the
tests check it against Pillow; OpenCV is used for its lower per-image cost). Codec mode draws
integer qualities, so the recorded quality is the one libjpeg used; it does
not pass gradients.

On any other device (CUDA), codec mode runs :func:`degkit.ops.jpeg_tensor.jpeg_round_trip`
on the device: libjpeg's lossy steps (colour conversion, chroma subsampling,
the ``islow`` integer DCTs, quantisation, fancy upsampling) in integer tensor
arithmetic, the whole batch at once with each sample's quality. It gives the
same pixels as libjpeg (the tests check it against Pillow byte for byte), so a
codec JPEG is identical on every device, and the pixels never leave the device.

On a canvas (a ragged batch, see :mod:`degkit.ops.canvas`) codec mode runs
that round trip once for the whole batch on any device, each sample at its own
size (its own edge replication, block grid and chroma size), so a sample's
pixels do not depend on its neighbours or on the canvas size. Differentiable
mode runs Kornia on each sample's own view.

``mode="differentiable"`` runs :func:`kornia.enhance.jpeg_codec_differentiable`
with each sample's (possibly fractional) quality in ``[1, 100]``: YCbCr, 4:2:0
chroma subsampling, 8 x 8 DCT, the standard quantisation tables scaled by
libjpeg's quality rule and smooth rounding, so gradients reach the image.
Kornia pads any size to a multiple of 16 by edge replication and crops back.
Its output is clamped to ``[0, 1]`` here (Kornia's own soft clip works on the
0-255 range and leaves values slightly outside). How it differs from libjpeg:

* it scales the tables by libjpeg's quality rule through smooth floors, so its
  steps can be up to about 1.1 off libjpeg's (15% of them are off by more than
  0.5 over qualities 1..97), and where libjpeg clamps a step up to 1 (some
  from quality 98 on, all at 100) Kornia's falls to about 0.12, near lossless;
* it subsamples chroma with an antialiased bilinear filter and rounds nothing
  to 8 bits, so it lands slightly closer to the input than libjpeg.

Measured on ``skimage.data`` astronaut, chelsea and coffee (full size), the
PSNR (RGB, 0-255) between the differentiable and the codec output is at least
40.8 dB at every integer quality in 30..95, 38.5 dB at 20 and 32 dB at 1.
Kornia has no singular quality in ``[1, 100]`` (no NaN or infinite values or
gradients at 1 or 100), so qualities are only limited to that interval (the
``quality`` parameter limits).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import torch
from kornia.enhance import jpeg_codec_differentiable

from degkit.ops.base import (
    Op,
    OpError,
    Params,
    check_range,
    group_by_shape,
    map_groups,
    register,
)
from degkit.ops.canvas import Canvas
from degkit.ops.jpeg_tensor import jpeg_round_trip
from degkit.ops.labels import CaptionType, FlatColumn, field_value
from degkit.ops.quantize import level_values, to_uint8
from degkit.ops.threads import map_in_threads
from degkit.rng import BatchStreams

__all__ = ["JPEG", "MODES", "SUBSAMPLINGS", "jpeg_codec", "jpeg_differentiable"]

MODES = ("codec", "differentiable")
SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")

_OPENCV_SAMPLING = {
    "4:4:4": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    "4:2:2": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    "4:2:0": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
}


def jpeg_codec(
    x: torch.Tensor,
    quality: list[int],
    subsampling: str = "4:2:0",
    sizes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Encode and decode sample ``i`` of ``x`` (N x 3 x H x W) as libjpeg does at ``quality[i]``.

    On the CPU it runs libjpeg(-turbo) through OpenCV, whose encoder settings
    and decoder give the same bytes as Pillow's ``save(format="JPEG",
    quality=q, subsampling=...)`` and ``Image.open`` (the tests check it
    against Pillow) at a third of the per-image overhead. On other devices, or
    for a canvas (``sizes``: each sample's height and width, ``N x 2`` on the
    host), it runs :func:`~degkit.ops.jpeg_tensor.jpeg_round_trip` there: the
    same pixels.
    """
    if x.device.type != "cpu" or sizes is not None:
        qualities = torch.tensor(quality, dtype=torch.int32).to(x.device, non_blocking=True)
        pixels = jpeg_round_trip(to_uint8(x.detach()), qualities, subsampling, sizes)
        return level_values(x.device)[pixels.long()]
    sampling = _OPENCV_SAMPLING[subsampling]
    pixels = to_uint8(x.detach()).cpu().numpy()  # planar, rounded for the whole batch
    out = torch.empty(x.shape, dtype=torch.float32)
    decoded = out.numpy()

    def encode_decode(i: int) -> None:
        red, green, blue = pixels[i]
        flags = [cv2.IMWRITE_JPEG_QUALITY, int(quality[i]), cv2.IMWRITE_JPEG_SAMPLING_FACTOR]
        ok, encoded = cv2.imencode(".jpg", cv2.merge([blue, green, red]), [*flags, sampling])
        if not ok:
            raise OpError(f"jpeg: libjpeg could not encode sample {i} at quality {quality[i]}")
        blue, green, red = cv2.split(cv2.imdecode(encoded, cv2.IMREAD_COLOR))
        for channel, plane in enumerate((red, green, blue)):
            np.divide(plane, np.float32(255), out=decoded[i, channel])

    map_in_threads(encode_decode, range(len(quality)))
    return out


def jpeg_differentiable(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Kornia's differentiable JPEG of sample ``i`` at ``quality[i]`` (in [1, 100]), clamped."""
    q = quality.to(device=x.device, dtype=x.dtype, non_blocking=True)
    return jpeg_codec_differentiable(x, q).clamp(0.0, 1.0)


@register
@dataclasses.dataclass
class JPEG(Op):
    """JPEG compression with a per-sample quality (libjpeg or differentiable)."""

    name = "jpeg"
    family = "jpeg"
    version = 1
    categories = {"mode": MODES, "subsampling": SUBSAMPLINGS}
    param_limits = {"quality": (1.0, 100.0)}
    caption_types = (
        CaptionType.single(
            "jpeg",
            "jpeg",
            "quality",
            1,
            (70.0, 50.0),
            phrase="jpeg compression",
            heavier_when_lower=True,
            none=100.0,
            label="quality factor",
        ),
    )
    flat_columns = (
        FlatColumn("jpeg_count", "int64", "number of JPEG compressions", lambda rec: 1, count=True),
        FlatColumn(
            "jpeg_quality",
            "float64",
            "quality of the last JPEG (1-100; = jpeg_level)",
            field_value("quality"),
        ),
    )

    quality: tuple[float, float] = (30.0, 95.0)
    mode: str = "codec"
    subsampling: str = "4:2:0"

    def __post_init__(self) -> None:
        self.quality = check_range("jpeg.quality", self.quality, 1.0, 100.0)
        if self.mode not in MODES:
            raise OpError(f"jpeg.mode must be one of {MODES}, got {self.mode!r}")
        if self.subsampling not in SUBSAMPLINGS:
            raise OpError(
                f"jpeg.subsampling must be one of {SUBSAMPLINGS}, got {self.subsampling!r}"
            )
        if self.mode == "differentiable" and self.subsampling != "4:2:0":
            raise OpError(
                "jpeg.subsampling must be '4:2:0' in differentiable mode (Kornia's model "
                f"subsamples chroma 2 x 2), got {self.subsampling!r}"
            )
        lo, hi = self.quality
        if self.mode == "codec" and math.ceil(lo) > math.floor(hi):
            raise OpError(
                f"jpeg.quality must contain an integer in codec mode, got [{lo:g}, {hi:g}]"
            )

    def sample(self, rng: BatchStreams, n: int, context: Params | None = None) -> Params:
        lo, hi = self.quality
        if self.mode == "codec":
            quality = rng.integers(math.ceil(lo), math.floor(hi)).double()
        else:
            quality = rng.uniform(lo, hi)
        return {
            "quality": quality,
            "mode": torch.full((n,), MODES.index(self.mode)),
            "subsampling": torch.full((n,), SUBSAMPLINGS.index(self.subsampling)),
        }

    def _checked(self, channels: int, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
        """Each sample's quality and group key (its subsampling code, -1 if differentiable)."""
        if channels != 3:
            raise OpError(f"{self.name}: images must have 3 (RGB) channels, got {channels}")
        quality, mode = params["quality"].double(), params["mode"]
        subsampling = params["subsampling"]
        differentiable = mode == MODES.index("differentiable")
        if (differentiable & (subsampling != SUBSAMPLINGS.index("4:2:0"))).any():
            raise OpError(
                f"{self.name}: differentiable mode needs subsampling '4:2:0' (Kornia's model "
                f"subsamples chroma 2 x 2), got {[SUBSAMPLINGS[s] for s in subsampling.tolist()]}"
            )
        q = quality[~differentiable]
        if not torch.equal(q, q.round()):
            raise OpError(
                f"{self.name}: parameter 'quality' must be an integer in codec mode, "
                f"got {q.tolist()}"
            )
        return quality, torch.where(differentiable, -1, subsampling)

    def _apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        quality, keys = self._checked(x.shape[1], params)

        def run(xs: torch.Tensor, positions: torch.Tensor, key: int) -> torch.Tensor:
            if key < 0:
                return jpeg_differentiable(xs, quality[positions])
            qualities = [int(v) for v in quality[positions].tolist()]
            return jpeg_codec(xs, qualities, SUBSAMPLINGS[key])

        return map_groups(x, keys, run)

    def _apply_canvas(self, x: Canvas, params: Params) -> Canvas:
        """The ragged batch in one pass per chroma subsampling: codec samples run
        :func:`~degkit.ops.jpeg_tensor.jpeg_round_trip` on their canvas, each at its own
        size, on any device. Differentiable samples fall back to Kornia on each sample's
        own view (one call per distinct size), written back onto the canvas."""
        quality, keys = self._checked(x.data.shape[1], params)

        def run(data: torch.Tensor, positions: torch.Tensor, key: int) -> torch.Tensor:
            sizes = x.sizes[positions]
            if key < 0:
                return _differentiable_views(Canvas(data, sizes), quality[positions])
            qualities = [int(v) for v in quality[positions].tolist()]
            return jpeg_codec(data, qualities, SUBSAMPLINGS[key], sizes)

        return x.with_data(map_groups(x.data, keys, run))


def _differentiable_views(x: Canvas, quality: torch.Tensor) -> torch.Tensor:
    """:func:`jpeg_differentiable` of each sample's own view of ``x``, on a copy of its data."""
    out = x.data.clone()
    for positions, xb in group_by_shape(x.views()):
        h, w = xb.shape[-2:]
        out[positions, :, :h, :w] = jpeg_differentiable(xb, quality[positions])
    return out
