"""evaluate(): scores against independent references, results folders, resume, provenance."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from eval_fakes import (
    brightness,
    mae_rgb,
    np_psnr,
    psnr_rgb,
    tiny_set,
    unavailable_metric,
)
from PIL import Image

import degkit
from degkit.evaluate.models import SRModel, load_model
from degkit.evaluate.results_folder import results_folder
from degkit.evaluate.run import evaluate
from degkit.evaluate.summary import Summary


def _rows(out: Path) -> list[dict]:
    with open(out / "per_image.csv", newline="") as f:
        return list(csv.DictReader(f))


def _bicubic8(lr8: np.ndarray, scale: int) -> np.ndarray:
    """Independent bicubic: OpenCV INTER_CUBIC (a = -0.75, half-pixel) on float, then 8 bits."""
    h, w = lr8.shape[:2]
    up = cv2.resize(
        lr8.astype(np.float32) / 255, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC
    )
    return (np.clip(up, 0, 1) * 255).round().astype(np.uint8)


def test_bicubic_scores_equal_an_independent_computation(tmp_path):
    s = tiny_set(n=5, scale=2)
    summary = evaluate(s, "bicubic", [psnr_rgb()], tmp_path / "e", batch_size=2, progress=False)
    rows = {r["id"]: r for r in _rows(tmp_path / "e")}
    expected = {p.id: np_psnr(_bicubic8(p.lr, 2), p.hr) for p in s.pairs()}
    for pid, value in expected.items():
        assert float(rows[pid]["psnr_rgb"]) == pytest.approx(value, abs=0.02)
        assert rows[pid]["type"] and rows[pid]["level"]
    assert summary.n == 5
    assert summary.scores["psnr_rgb"] == pytest.approx(np.mean(list(expected.values())), abs=0.02)


def test_model_and_its_saved_outputs_score_the_same(tmp_path):
    s = tiny_set(n=4, scale=2)
    model = load_model("lanczos", 2)
    metrics = [psnr_rgb(), brightness()]
    a = evaluate(s, model, metrics, tmp_path / "model", progress=False)
    folder = tmp_path / "sr"
    folder.mkdir()
    for p in s.pairs():
        h, w = p.lr.shape[:2]
        Image.fromarray(p.lr).resize((2 * w, 2 * h), Image.LANCZOS).save(folder / f"{p.id}.png")
    b = evaluate(s, results_folder(folder, s.pairs(), 2), metrics, tmp_path / "res", progress=False)
    assert b.model["kind"] == "results" and b.model["name"] == "sr"
    for name in a.scores:
        assert a.scores[name] == pytest.approx(b.scores[name], abs=1e-5)


def test_results_folder_errors_name_the_file(tmp_path):
    s = tiny_set(n=3, scale=2)
    pairs = s.pairs()
    folder = tmp_path / "sr"
    folder.mkdir()
    for p in pairs[:2]:
        Image.fromarray(np.kron(p.lr, np.ones((2, 2, 1), np.uint8))).save(folder / f"{p.id}.png")
    with pytest.raises(ValueError, match=rf"sr/{pairs[2].id}\.png: missing file"):
        results_folder(folder, pairs, 2)
    Image.fromarray(pairs[2].lr).save(folder / f"{pairs[2].id}.png")  # LR size: wrong
    with pytest.raises(ValueError, match=rf"{pairs[2].id}\.png: 8x8 pixels, expected 16x16"):
        results_folder(folder, pairs, 2)
    Image.fromarray(pairs[2].hr).save(folder / f"{pairs[2].id}.png")
    (folder / "stray.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"sr/stray\.png: extra file, matches no pair id"):
        results_folder(folder, pairs, 2)
    (folder / "stray.png").unlink()
    assert results_folder(folder, pairs, 2).path == folder


def test_resume_after_interruption_does_not_recompute_rows(tmp_path):
    s = tiny_set(n=7, scale=2)
    calls = []

    def upscale(lr):
        calls.append(len(lr))
        if fail_after is not None and len(calls) > fail_after:
            raise RuntimeError("interrupted")
        return lr.repeat_interleave(2, -2).repeat_interleave(2, -1)

    model = SRModel(name="counting", kind="callable", scale=2, upscale=upscale)
    out = tmp_path / "e"
    fail_after = 2
    with pytest.raises(RuntimeError, match="interrupted"):
        evaluate(s, model, [psnr_rgb()], out, batch_size=2, progress=False)
    assert not (out / "summary.json").exists()  # partial: never reported as complete
    first = _rows(out)
    assert [r["id"] for r in first] == [p.id for p in s.pairs()[:4]]
    # a kill mid-write leaves a cut line: it is dropped and recomputed
    text = (out / "per_image.csv").read_text()
    (out / "per_image.csv").write_text(text + f"{s.pairs()[4].id},bl")
    calls.clear()
    fail_after = None
    summary = evaluate(s, model, [psnr_rgb()], out, batch_size=2, progress=False)
    assert calls == [2, 1]  # only the 3 missing pairs
    assert summary.n == 7 and summary.rows_resumed == 4
    rows = _rows(out)
    assert rows[:4] == first and len(rows) == 7
    expected = [np_psnr(np.kron(p.lr, np.ones((2, 2, 1))), p.hr) for p in s.pairs()]
    assert summary.scores["psnr_rgb"] == pytest.approx(np.mean(expected), abs=1e-5)
    calls.clear()
    assert evaluate(s, model, [psnr_rgb()], out, batch_size=2, progress=False) == summary
    assert calls == []  # a finished evaluation is read back as it was


def test_other_settings_are_refused(tmp_path):
    s = tiny_set(n=2, scale=2)
    evaluate(s, "nearest", [psnr_rgb()], tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds an evaluation with other settings.*metrics"):
        evaluate(s, "nearest", [psnr_rgb(), mae_rgb()], tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds an evaluation with other settings.*model"):
        evaluate(s, "bicubic", [psnr_rgb()], tmp_path, progress=False)


def test_summary_provenance(tmp_path):
    from spandrel.architectures.Compact import Compact

    s = tiny_set(n=3, scale=2)
    net = Compact(num_feat=4, num_conv=1, upscale=2)
    ckpt = tmp_path / "tiny.pth"
    torch.save(net.state_dict(), ckpt)
    summary = evaluate(
        s, str(ckpt), [psnr_rgb(), unavailable_metric()], tmp_path / "e", progress=False
    )
    on_disk = Summary.read(tmp_path / "e" / "summary.json")
    assert on_disk == summary
    assert summary.set == s.describe()
    assert summary.model["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert summary.model["parameters"] == sum(p.numel() for p in net.parameters())
    assert summary.model["name"] == "tiny" and summary.model["architecture"]
    assert summary.metrics["psnr_rgb"]["protocol"] == psnr_rgb().protocol
    assert summary.degkit_version == degkit.__version__
    root = Path(degkit.__file__).resolve().parent.parent
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True)
    assert summary.git_commit == (head.stdout.decode().strip() or None)
    assert summary.device == "cpu" and summary.precision == "fp32" and summary.wall_seconds > 0
    assert summary.n == 3 and summary.per_image_csv == "per_image.csv"
    # an unavailable metric is n/a with its reason, never a number, and has no CSV column
    assert summary.scores["lpips_fake"] == "n/a (weights missing: put fake.pth in $TORCH_HOME)"
    assert summary.metrics["lpips_fake"]["mean"] is None
    assert "lpips_fake" not in _rows(tmp_path / "e")[0]


def test_lr_only_set_scores_no_reference_metrics_only(tmp_path):
    s = tiny_set(n=3, scale=2, kind="lr_only")
    summary = evaluate(s, "nearest", [psnr_rgb(), brightness()], tmp_path, progress=False)
    assert summary.scores["psnr_rgb"] == "n/a (set tiny has no HR images)"
    expected = np.mean([np.kron(p.lr, np.ones((2, 2, 1))).mean() / 255 for p in s.pairs()])
    assert summary.scores["brightness"] == pytest.approx(expected, abs=1e-5)


def _y8(rgb8: np.ndarray) -> np.ndarray:
    """BT.601 Y on the 0-255 scale, rounded (MATLAB rgb2ycbcr on 8-bit images), border 4 cut."""
    y = 16 + rgb8.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255
    return y.round()[4:-4, 4:-4]


def test_cli_eval_bicubic_on_a_shipped_set_matches_numpy_and_skimage(tmp_path, capsys):
    """``degkit eval`` equals OpenCV bicubic + numpy PSNR-Y + scikit-image SSIM-Y."""
    from skimage.metrics import structural_similarity

    from degkit.cli import main
    from degkit.evaluate.sets import load_set

    out = tmp_path / "e"
    args = ["eval", "bicubic_x4", "--model", "bicubic", "--metrics", "psnr_y,ssim_y,lpips"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "lpips" in printed and "n/a (weights missing" in printed
    rows = {r["id"]: r for r in _rows(out)}
    s = load_set("bicubic_x4")
    for p in s.pairs():
        sr, hr = _y8(_bicubic8(p.lr, 4)), _y8(p.hr)
        psnr = 10 * np.log10(255**2 / ((sr - hr) ** 2).mean())
        ssim = structural_similarity(
            sr, hr, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert float(rows[p.id]["psnr_y"]) == pytest.approx(psnr, abs=5e-3)
        assert float(rows[p.id]["ssim_y"]) == pytest.approx(ssim, abs=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["set"]["hash"] == s.hash and summary["n"] == len(s.pairs())
    assert summary["metrics"]["lpips"]["mean"] is None
    assert summary["metrics"]["lpips"]["na"].startswith("n/a (weights missing")


def test_cli_eval_errors_are_one_line_and_nothing_is_reported_complete(tmp_path, capsys):
    from degkit.cli import main
    from degkit.evaluate.sets import load_set

    pairs = load_set("bicubic_x4").pairs()
    folder = tmp_path / "sr"
    folder.mkdir()
    for p in pairs[1:]:
        Image.fromarray(np.kron(p.lr, np.ones((4, 4, 1), np.uint8))).save(folder / f"{p.id}.png")
    assert main(["eval", "bicubic_x4", "--results", str(folder), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"degkit eval: error: {folder / (pairs[0].id + '.png')}: missing file, "
        "no SR image for this pair\n"
    )
    out = tmp_path / "w"
    args = ["eval", "bicubic_x4", "--model", "eval_fakes:wrong_shape", "--metrics", "psnr_y"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("degkit eval: error: model eval_fakes:wrong_shape: returned (8, 3, 64")
    assert err.count("\n") == 1
    assert not (out / "summary.json").exists()
