"""libjpeg's lossy round trip in integer tensor arithmetic, batched, on any device.

A baseline JPEG's pixels after encoding and decoding depend only on its lossy
steps; the entropy coding between them is lossless. This module computes those
steps as libjpeg(-turbo) does with its default settings (``jpeg_set_quality``
with baseline tables, the ``islow`` integer DCTs, no smoothing, fancy
upsampling), in int32 tensor operations, so every sample of a batch gets its
own quality in one pass on the CPU or on CUDA and the results are the same
integers on both:

* RGB to YCbCr with ``jccolor.c``'s 16-bit fixed-point coefficients;
* chroma downsampling (``jcsample.c``: 2 x 2 or 2 x 1 sums with alternating
  rounding bias) after replicating the right and bottom edges to whole blocks;
* the ``islow`` forward DCT (``jfdctint.c``: 13-bit constants, two passes);
* quantisation by the reciprocal, correction and shift of ``jcdctmgr.c``,
  with the tables of ``jcparam.c`` scaled by the quality;
* dequantisation and the ``islow`` inverse DCT (``jidctint.c``), clamped to 0..255;
* fancy upsampling of chroma (``jdsample.c``: triangle filters with their
  rounding; repetition for components of at most 2 columns), and YCbCr to
  RGB with ``jdcolor.c``'s tables.

A ragged batch on a canvas (``sizes``) is compressed in the same pass, each
sample at its own size: every size-dependent step (edge replication, the
chroma component's size for fancy upsampling, cropping) gathers with the
sample's own lengths, so equal sizes are the special case of shared ones.

The tests check the output against Pillow's encode and decode (libjpeg-turbo)
byte for byte.
"""

from __future__ import annotations

import torch

from degkit.ops.canvas import clamped_index, gather_columns, gather_rows

__all__ = ["jpeg_round_trip", "quant_tables"]

# Annex K tables of ITU-T T.81, row-major (natural) order, as jcparam.c lists them.
_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
)  # fmt: skip
# One length for the whole batch, or each sample's (``N`` int64 on the device).
Lengths = int | torch.Tensor
# Whether components have at most 2 columns: one bool, or each sample's (``N`` on the host).
Narrow = bool | torch.Tensor
_SUBSAMPLING = {"4:4:4": (1, 1), "4:2:2": (2, 1), "4:2:0": (2, 2)}  # chroma (h, v) factors

# islow constants: FIX(x) = round(x * 2**13)
_CONST_BITS, _PASS1_BITS = 13, 2
_F0_298, _F0_390, _F0_541, _F0_765 = 2446, 3196, 4433, 6270
_F0_899, _F1_175, _F1_501, _F1_847 = 7373, 9633, 12299, 15137
_F1_961, _F2_053, _F2_562, _F3_072 = 16069, 16819, 20995, 25172


def quant_tables(quality: torch.Tensor) -> torch.Tensor:
    """``N x 2 x 64`` int32: the luma and chroma tables ``jpeg_set_quality(q, TRUE)`` makes."""
    q = quality.to(torch.int32).clamp(1, 100)
    scale = torch.where(q < 50, 5000 // q, 200 - 2 * q).view(-1, 1, 1)
    base = torch.tensor([_LUMA, _CHROMA], dtype=torch.int32).to(quality.device, non_blocking=True)
    return torch.div(base * scale + 50, 100, rounding_mode="floor").clamp(1, 255)


def _descale(x: torch.Tensor, n: int) -> torch.Tensor:
    return (x + (1 << (n - 1))) >> n


def _rotations(d: list[torch.Tensor], pass_two: bool) -> list[torch.Tensor]:
    """One pass of ``jpeg_fdct_islow`` over the 8 samples ``d`` (lists of tensors)."""
    tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
    tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
    tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
    tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    out: list[torch.Tensor] = [torch.empty(0)] * 8
    if pass_two:
        out[0] = _descale(tmp10 + tmp11, _PASS1_BITS)
        out[4] = _descale(tmp10 - tmp11, _PASS1_BITS)
        shift = _CONST_BITS + _PASS1_BITS
    else:
        out[0] = (tmp10 + tmp11) << _PASS1_BITS
        out[4] = (tmp10 - tmp11) << _PASS1_BITS
        shift = _CONST_BITS - _PASS1_BITS
    z1 = (tmp12 + tmp13) * _F0_541
    out[2] = _descale(z1 + tmp13 * _F0_765, shift)
    out[6] = _descale(z1 - tmp12 * _F1_847, shift)
    z1, z2, z3, z4 = tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7
    z5 = (z3 + z4) * _F1_175
    tmp4, tmp5, tmp6, tmp7 = tmp4 * _F0_298, tmp5 * _F2_053, tmp6 * _F3_072, tmp7 * _F1_501
    z1, z2 = z1 * -_F0_899, z2 * -_F2_562
    z3, z4 = z3 * -_F1_961 + z5, z4 * -_F0_390 + z5
    out[7] = _descale(tmp4 + z1 + z3, shift)
    out[5] = _descale(tmp5 + z2 + z4, shift)
    out[3] = _descale(tmp6 + z2 + z3, shift)
    out[1] = _descale(tmp7 + z1 + z4, shift)
    return out


def _fdct(blocks: torch.Tensor) -> torch.Tensor:
    """``jpeg_fdct_islow`` of ``... x 8 x 8`` level-shifted int32 blocks (output scaled by 8)."""
    rows = _rotations(list(blocks.unbind(-1)), pass_two=False)
    cols = _rotations(list(torch.stack(rows, -1).unbind(-2)), pass_two=True)
    return torch.stack(cols, -2)


def _idct_pass(d: list[torch.Tensor], shift: int) -> list[torch.Tensor]:
    """One pass of ``jpeg_idct_islow`` over 8 (dequantised) inputs, descaled by ``shift``."""
    z1 = (d[2] + d[6]) * _F0_541
    tmp2 = z1 - d[6] * _F1_847
    tmp3 = z1 + d[2] * _F0_765
    tmp0 = (d[0] + d[4]) << _CONST_BITS
    tmp1 = (d[0] - d[4]) << _CONST_BITS
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    t0, t1, t2, t3 = d[7], d[5], d[3], d[1]
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * _F1_175
    t0, t1, t2, t3 = t0 * _F0_298, t1 * _F2_053, t2 * _F3_072, t3 * _F1_501
    z1, z2 = z1 * -_F0_899, z2 * -_F2_562
    z3, z4 = z3 * -_F1_961 + z5, z4 * -_F0_390 + z5
    t0, t1, t2, t3 = t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4
    return [
        _descale(tmp10 + t3, shift),
        _descale(tmp11 + t2, shift),
        _descale(tmp12 + t1, shift),
        _descale(tmp13 + t0, shift),
        _descale(tmp13 - t0, shift),
        _descale(tmp12 - t1, shift),
        _descale(tmp11 - t2, shift),
        _descale(tmp10 - t3, shift),
    ]


def _idct(coefs: torch.Tensor) -> torch.Tensor:
    """``jpeg_idct_islow`` of dequantised ``... x 8 x 8`` blocks -> samples 0..255."""
    cols = _idct_pass(list(coefs.unbind(-2)), _CONST_BITS - _PASS1_BITS)
    rows = _idct_pass(list(torch.stack(cols, -2).unbind(-1)), _CONST_BITS + _PASS1_BITS + 3)
    return (torch.stack(rows, -1) + 128).clamp(0, 255)


def _quantize(coefs: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """Quantise ``N x B x 8 x 8`` FDCT output by ``N x 64`` tables as ``jcdctmgr.c`` does:
    ``(|x| + c) * recip >> r``, the reciprocal of ``8 q`` in 16-bit fixed point."""
    divisor = (tables << 3).view(-1, 1, 8, 8).long()
    bits = sum(((divisor >> k) > 0).long() for k in range(1, 12))  # floor(log2), as flss - 1
    r = 16 + bits
    one = torch.ones_like(divisor)
    fq = torch.div(one << r, divisor, rounding_mode="floor")
    fr = (one << r) - fq * divisor
    c = divisor // 2
    power = fr == 0
    fq = torch.where(power, fq >> 1, fq)
    r = torch.where(power, r - 1, r)
    c = torch.where(~power & (fr <= divisor // 2), c + 1, c)
    fq = torch.where(~power & (fr > divisor // 2), fq + 1, fq)
    magnitude = ((coefs.abs().long() + c) * fq) >> r
    return torch.where(coefs < 0, -magnitude, magnitude)


def _lengths(sizes: torch.Tensor | None, pixels: torch.Tensor) -> tuple[Lengths, Lengths]:
    """Sample heights and widths: shared ints when every sample fills the ``N x C x H x W``
    batch, else each sample's own (``sizes``, ``N x 2`` on the host) on its device."""
    n, _, height, width = pixels.shape
    if sizes is not None and tuple(sizes.shape) != (n, 2):
        raise ValueError(
            f"sizes must be {n} x 2 (height, width per sample), got {tuple(sizes.shape)}"
        )
    if sizes is None or bool((sizes == torch.tensor([height, width])).all()):
        return height, width
    if not bool(((sizes >= 1) & (sizes <= torch.tensor([height, width]))).all()):
        raise ValueError(f"sizes must lie in 1..{height} x 1..{width}, got {sizes.tolist()}")
    return tuple(sizes.to(pixels.device, torch.int64, non_blocking=True).unbind(1))


def _edge_index(lengths: Lengths, count: int, device: torch.device) -> torch.Tensor:
    """Positions ``0 .. count - 1`` clamped below each length (libjpeg's edge replication):
    one shared index for an ``int`` length, ``N x count`` for per-sample lengths."""
    if isinstance(lengths, int):
        return torch.arange(count, device=device).clamp_(max=lengths - 1)
    return clamped_index(lengths, 0, count)


def _pad(
    x: torch.Tensor, heights: Lengths, widths: Lengths, height: int, width: int
) -> torch.Tensor:
    """``N x C x height x width``: each sample's rows from its own height on repeat its last
    row, and likewise for columns (by indexing: CUDA's replicate padding takes no integer
    tensors). A shared length that already fills the output is a view."""
    if not (isinstance(heights, int) and heights == height == x.shape[-2]):
        rows = _edge_index(heights, height, x.device)
        x = x.index_select(-2, rows) if rows.ndim == 1 else gather_rows(x, rows)
    if not (isinstance(widths, int) and widths == width == x.shape[-1]):
        cols = _edge_index(widths, width, x.device)
        x = x.index_select(-1, cols) if cols.ndim == 1 else gather_columns(x, cols)
    return x


def _fit(x: torch.Tensor, heights: Lengths, widths: Lengths) -> torch.Tensor:
    """Each sample limited to its own height and width: a crop for shared lengths; for
    per-sample ones the tensor keeps its size and rows and columns beyond a sample's own
    repeat its last (so filters see libjpeg's repeated edges)."""
    if isinstance(heights, int) and isinstance(widths, int):
        return x[..., :heights, :widths]
    return _pad(x, heights, widths, x.shape[-2], x.shape[-1])


def _blocks(plane: torch.Tensor) -> torch.Tensor:
    """``N x H x W`` (multiples of 8) -> ``N x (H/8 * W/8) x 8 x 8``."""
    n, h, w = plane.shape
    return plane.view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(n, -1, 8, 8)


def _unblocks(blocks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    n = blocks.shape[0]
    return blocks.view(n, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(n, h, w)


def _code_plane(plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Encode and decode one component (``N x H x W`` int64, multiples of 8)."""
    h, w = plane.shape[-2:]
    coefs = _fdct(_blocks(plane - 128))
    levels = _quantize(coefs, table)
    return _unblocks(_idct(levels * table.view(-1, 1, 8, 8)), h, w)


def _rgb_to_ycc(rgb: torch.Tensor) -> torch.Tensor:
    """``jccolor.c``: ``N x 3 x H x W`` int32 RGB -> YCbCr (16-bit fixed point)."""
    r, g, b = rgb.long().unbind(1)
    half = 1 << 15
    y = (19595 * r + 38470 * g + 7471 * b + half) >> 16
    cb = (-11059 * r - 21709 * g + 32768 * b + (128 << 16) + half - 1) >> 16
    cr = (32768 * r - 27439 * g - 5329 * b + (128 << 16) + half - 1) >> 16
    return torch.stack([y, cb, cr], 1)


def _ycc_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """``jdcolor.c``: YCbCr -> RGB with its rounded fixed-point tables, clamped to 0..255."""
    y, cb, cr = ycc.long().unbind(1)
    cb, cr = cb - 128, cr - 128
    half = 1 << 15
    r = y + ((91881 * cr + half) >> 16)
    g = y + ((-22554 * cb + half - 46802 * cr) >> 16)
    b = y + ((116130 * cb + half) >> 16)
    return torch.stack([r, g, b], 1).clamp(0, 255)


def _downsample(chroma: torch.Tensor, h_factor: int, v_factor: int) -> torch.Tensor:
    """``jcsample.c``: sum each ``v x h`` group, add the alternating bias, shift."""
    n, c, h, w = chroma.shape
    sums = chroma.view(n, c, h // v_factor, v_factor, w // h_factor, h_factor).sum((3, 5))
    columns = torch.arange(w // h_factor, device=chroma.device)
    if h_factor * v_factor == 4:
        return (sums + 1 + (columns % 2)) >> 2
    return (sums + (columns % 2)) >> 1


def _fancy_h2(rows: torch.Tensor, scale: int, bias_even: int, bias_odd: int) -> torch.Tensor:
    """Horizontal triangle upsampling of column sums (``jdsample.c``), output width 2W.

    ``rows`` holds each input column's (vertically weighted) sum times ``scale / 4``
    of the final weight; edge columns repeat themselves.
    """
    left = torch.cat([rows[..., :1], rows[..., :-1]], -1)
    right = torch.cat([rows[..., 1:], rows[..., -1:]], -1)
    even = (rows * 3 + left + bias_even) >> scale
    odd = (rows * 3 + right + bias_odd) >> scale
    return torch.stack([even, odd], -1).flatten(-2)


def _upsample(chroma: torch.Tensor, h_factor: int, v_factor: int, narrow: Narrow) -> torch.Tensor:
    """``jdsample.c`` fancy upsampling of ``chroma`` (each sample cut to its component's
    size by :func:`_fit`): h2v2 (triangle in both axes) or h2v1. libjpeg's special first
    and last columns equal the general filters over a repeated edge. Components of at
    most 2 columns (``narrow``: one bool, or an ``N`` bool tensor on the host) are
    upsampled by repetition, as libjpeg does."""
    any_narrow = bool(narrow.any()) if isinstance(narrow, torch.Tensor) else narrow
    all_narrow = bool(narrow.all()) if isinstance(narrow, torch.Tensor) else narrow
    if any_narrow:
        repeated = chroma.repeat_interleave(2, -1).repeat_interleave(v_factor, -2)
        if all_narrow:
            return repeated
    if v_factor == 1:
        fancy = _fancy_h2(chroma, 2, 1, 2)
    else:
        above = torch.cat([chroma[..., :1, :], chroma[..., :-1, :]], -2)
        below = torch.cat([chroma[..., 1:, :], chroma[..., -1:, :]], -2)
        rows = torch.stack([chroma * 3 + above, chroma * 3 + below], -2).flatten(-3, -2)
        fancy = _fancy_h2(rows, 4, 8, 7)
    if not any_narrow:
        return fancy
    mask = narrow.to(chroma.device, non_blocking=True).view(-1, 1, 1, 1)
    return torch.where(mask, repeated, fancy)


def jpeg_round_trip(
    pixels: torch.Tensor,
    quality: torch.Tensor,
    subsampling: str = "4:2:0",
    sizes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode(encode(``pixels``)) as libjpeg does, sample ``i`` at ``quality[i]`` (1..100).

    ``pixels`` is ``N x 3 x H x W`` uint8 RGB on any device; returns the same.
    With ``sizes`` (``N x 2`` int64 on the host) ``pixels`` is a canvas: sample
    ``i`` is ``pixels[i, :, :h_i, :w_i]`` and is compressed at that size,
    whatever the rest holds; the output keeps the layout and its padding is
    unspecified.
    """
    if subsampling not in _SUBSAMPLING:
        raise ValueError(f"subsampling must be one of {list(_SUBSAMPLING)}, got {subsampling!r}")
    h_factor, v_factor = _SUBSAMPLING[subsampling]
    height, width = pixels.shape[-2:]
    heights, widths = _lengths(sizes, pixels)
    tables = quant_tables(quality.to(pixels.device, non_blocking=True)).long()
    # Whole MCUs (8 x 8 luma blocks times the chroma factors), edges replicated:
    # jcprepct.c's rows to a whole row group and jcsample.c's columns to whole MCUs.
    full_h = -(-height // (8 * v_factor)) * 8 * v_factor
    full_w = -(-width // (8 * h_factor)) * 8 * h_factor
    ycc = _rgb_to_ycc(_pad(pixels, heights, widths, full_h, full_w).long())
    luma = _code_plane(ycc[:, 0], tables[:, 0])[:, :height, :width]
    chroma = ycc[:, 1:]
    chroma_heights = (heights + v_factor - 1) // v_factor
    chroma_widths = (widths + h_factor - 1) // h_factor
    if subsampling != "4:4:4":
        chroma = _downsample(chroma, h_factor, v_factor)
    if v_factor > 1:  # jcprepct.c: the last downsampled row repeats down to whole blocks
        chroma = _pad(
            chroma, chroma_heights, full_w // h_factor, full_h // v_factor, full_w // h_factor
        )
    # Both chroma components in one pass, each with its sample's chroma table.
    coded = _code_plane(chroma.flatten(0, 1), tables[:, 1].repeat_interleave(2, 0))
    coded = coded.view(chroma.shape)
    if subsampling != "4:4:4":
        # The decoder filters chroma within the component's own size, edges repeated.
        coded = _fit(coded, chroma_heights, chroma_widths)
        narrow = (
            chroma_widths <= 2 if isinstance(chroma_widths, int) else sizes[:, 1] <= 2 * h_factor
        )
        coded = _upsample(coded, h_factor, v_factor, narrow)
    rgb = _ycc_to_rgb(torch.cat([luma.unsqueeze(1), coded[..., :height, :width]], 1))
    return rgb.to(torch.uint8)
