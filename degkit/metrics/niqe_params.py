"""NIQE pristine-model parameters (published multivariate Gaussian of natural images).

degkit ships them as ``niqe_pris_params.npz`` (``mu_pris_param`` 36, ``cov_pris_param``
36 x 36: the parameters of the original NIQE release, as also used by BasicSR).
pyiqa's NIQE reads a MATLAB file with ``mu_prisparam`` / ``cov_prisparam``; one is
written to a temporary folder for it.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np

N_FEATURES = 36


def shipped_params_path() -> Path:
    """Path of the NIQE parameters shipped with degkit."""
    return Path(str(resources.files("degkit.metrics") / "niqe_pris_params.npz"))


def load_params(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, cov)`` from ``path`` (.npz with mu_pris_param/cov_pris_param, or pyiqa's .mat
    with mu_prisparam/cov_prisparam); the shipped parameters when ``path`` is None."""
    path = Path(path) if path is not None else shipped_params_path()
    if not path.is_file():
        raise FileNotFoundError(f"NIQE parameters file {str(path)!r} does not exist")
    if path.suffix == ".mat":
        import scipy.io

        data = scipy.io.loadmat(path)
        keys = ("mu_prisparam", "cov_prisparam")
    else:
        data = np.load(path)
        keys = ("mu_pris_param", "cov_pris_param")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"NIQE parameters file {str(path)!r} lacks {', '.join(missing)}")
    mu = np.ravel(np.asarray(data[keys[0]], dtype=np.float64))
    cov = np.asarray(data[keys[1]], dtype=np.float64)
    if mu.shape != (N_FEATURES,) or cov.shape != (N_FEATURES, N_FEATURES):
        raise ValueError(
            f"NIQE parameters file {str(path)!r}: expected mu of {N_FEATURES} and cov of "
            f"{N_FEATURES}x{N_FEATURES}, got {mu.shape} and {cov.shape}"
        )
    return mu, cov


@contextlib.contextmanager
def params_as_mat(path: str | Path | None = None) -> Iterator[Path]:
    """A temporary pyiqa-format .mat file holding the parameters of ``path``."""
    import scipy.io

    mu, cov = load_params(path)
    with tempfile.TemporaryDirectory(prefix="degkit-niqe-") as folder:
        mat = Path(folder) / "niqe_pris_params.mat"
        scipy.io.savemat(mat, {"mu_prisparam": mu[None, :], "cov_prisparam": cov})
        yield mat
