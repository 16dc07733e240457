"""Image-quality metrics for SR evaluation: one registry over pyiqa with the SR protocol.

    m = create_metric("psnr_y", scale=4)   # BT.601 Y, 4 px border crop, float64
    scores = m(sr, hr)                      # float64 (N,), one score per image

``psnr_y``, ``ssim_y`` and ``psnr`` are batched float64 torch code validated against
pyiqa; the others wrap pyiqa. Metrics whose weights are not present locally are
created unavailable (``m.available`` False, ``m.na_text`` says what to put where);
nothing is ever downloaded.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import torch

from degkit.metrics import pixel
from degkit.metrics.metric import Metric, MetricUnavailable
from degkit.metrics.table import METRICS, MetricSpec

__all__ = ["Metric", "MetricUnavailable", "available_metrics", "create_metric"]

_SSIM_WINDOW = f"gaussian {pixel.SSIM_WINDOW}x{pixel.SSIM_WINDOW} sigma {pixel.SSIM_SIGMA}"


def available_metrics() -> list[str]:
    """Every registered metric name, sorted (whether or not its weights are present)."""
    return sorted(METRICS)


def create_metric(
    name: str,
    scale: int = 4,
    device: str | torch.device = "cpu",
    crop: int | None = None,
    **settings: Any,
) -> Metric:
    """A configured metric.

    ``crop`` pixels are removed from each edge before scoring; it defaults to
    ``scale`` for psnr_y, ssim_y, psnr and niqe (the SR protocol) and to 0 for the
    others. Extra settings: ``round_y`` (psnr_y, ssim_y; default True: Y rounded to
    whole 0-255 levels as MATLAB/pyiqa do), ``params`` (niqe: path of a .npz or
    pyiqa-format .mat with the pristine-model parameters; default: shipped ones).
    ``device`` is where pyiqa models run; psnr_y, ssim_y and psnr run on the
    device of their inputs. Missing weights give an unavailable metric, not an error.
    """
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(available_metrics())}")
    spec = METRICS[name]
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"{name}: scale must be a positive integer, got {scale!r}")
    if crop is None:
        crop = scale if spec.crop_is_scale else 0
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 0:
        raise ValueError(f"{name}: crop must be a non-negative integer, got {crop!r}")
    allowed = _ALLOWED_SETTINGS.get(name, ())
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(
            f"{name}: unknown setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    protocol = _protocol(spec, scale=scale, crop=crop)
    if spec.implementation == "degkit":
        return _pixel_metric(spec, protocol, **settings)
    return _pyiqa_metric(spec, protocol, torch.device(device), **settings)


_ALLOWED_SETTINGS = {"psnr_y": ("round_y",), "ssim_y": ("round_y",), "niqe": ("params",)}


def _pyiqa_version() -> str:
    return metadata.version("pyiqa")


def _protocol(spec: MetricSpec, scale: int, crop: int) -> dict[str, Any]:
    return {
        "name": spec.name,
        "pyiqa_name": spec.pyiqa_name,
        "pyiqa_version": _pyiqa_version(),
        "implementation": spec.implementation,
        "reference": spec.reference,
        "direction": spec.direction,
        "colour_space": spec.colour_space,
        "y_transform": spec.y_transform,
        "crop_border": crop,
        "scale": scale,
        "data_range": spec.data_range,
        "settings": dict(spec.pyiqa_kwargs),
    }


def _pixel_metric(spec: MetricSpec, protocol: dict[str, Any], round_y: bool = True) -> Metric:
    if not isinstance(round_y, bool):
        raise ValueError(f"{spec.name}: round_y must be True or False, got {round_y!r}")
    if spec.name == "psnr":

        def score(sr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
            return pixel.psnr(sr.to(torch.float64) * 255.0, hr.to(torch.float64) * 255.0, 255.0)

    else:
        fn = pixel.psnr if spec.name == "psnr_y" else pixel.ssim
        protocol["settings"]["round_y"] = round_y

        def score(sr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
            return fn(pixel.bt601_y(sr, round_y), pixel.bt601_y(hr, round_y), 255.0)

    protocol["settings"]["precision"] = "float64"
    if spec.name == "ssim_y":
        protocol["settings"].update(
            window=_SSIM_WINDOW, k1=pixel.SSIM_K1, k2=pixel.SSIM_K2, positions="valid"
        )
    if spec.name != "ssim_y":
        protocol["settings"]["identical_images"] = "inf"
    return Metric(spec, protocol, score)


def _pyiqa_metric(
    spec: MetricSpec, protocol: dict[str, Any], device: torch.device, params: str | None = None
) -> Metric:
    from degkit.metrics.weights import DownloadBlocked, missing_requirements, no_downloads

    missing = missing_requirements(spec)
    if missing:
        return Metric(spec, protocol, None, missing)
    kwargs = dict(spec.pyiqa_kwargs)
    try:
        with no_downloads():
            model = _create_pyiqa(spec, device, kwargs, params, protocol)
    except DownloadBlocked as blocked:
        return Metric(spec, protocol, None, f"weights missing: {blocked}")
    model.eval()

    def score(sr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
        sr = sr.to(device=device, dtype=torch.float32)
        if hr is None:
            return model(sr)
        return model(sr, hr.to(device=device, dtype=torch.float32))

    return Metric(spec, protocol, score)


def _create_pyiqa(
    spec: MetricSpec,
    device: torch.device,
    kwargs: dict[str, Any],
    params: str | None,
    protocol: dict[str, Any],
) -> torch.nn.Module:
    import pyiqa
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    defaults = DEFAULT_CONFIGS[spec.pyiqa_name]["metric_opts"]
    protocol["settings"] = {k: v for k, v in {**defaults, **kwargs}.items() if k != "type"}
    if spec.name != "niqe":
        return pyiqa.create_metric(spec.pyiqa_name, device=device, **kwargs)
    from degkit.metrics.niqe_params import params_as_mat, shipped_params_path

    protocol["settings"]["params"] = str(params) if params else shipped_params_path().name
    with params_as_mat(params) as mat:
        return pyiqa.create_metric(
            spec.pyiqa_name, device=device, pretrained_model_path=str(mat), **kwargs
        )
