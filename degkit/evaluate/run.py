"""Score an SR model (or a folder of SR results) on a test set with pyiqa metrics.

Output folder::

    OUT/eval.json        settings of the evaluation (set hash, model, metric protocols, ...)
    OUT/per_image.csv    one row per pair: id, pair meta (type, level, ...), one column per metric
    OUT/summary.json     means and provenance; written only once every pair is scored

SR images are rounded to 8 bits before scoring, as if saved as PNG, so a model
and the folder of its saved outputs score the same. The CSV is appended and
flushed after every batch; a rerun with the same settings skips the ids it
already holds, and a folder holding other settings is never written into.
"""

from __future__ import annotations

import csv
import datetime
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import degkit
from degkit.data.state import settings_differences, write_text_atomic
from degkit.evaluate.models import SRModel, load_model, super_resolve
from degkit.evaluate.results_folder import ResultsFolder, results_folder
from degkit.evaluate.summary import Summary, git_commit

__all__ = ["Summary", "evaluate", "SUMMARY_FILE", "CSV_FILE"]

SUMMARY_FILE = "summary.json"
CSV_FILE = "per_image.csv"
SETTINGS_FILE = "eval.json"


def evaluate(
    test_set: Any,
    model: SRModel | ResultsFolder | str,
    metrics: Sequence[Any] | Sequence[str],
    out: str | Path,
    *,
    batch_size: int = 8,
    device: str = "cpu",
    precision: str = "fp32",
    tile: int | None = None,
    tile_overlap: int = 16,
    progress: bool = True,
) -> Summary:
    """Score ``model`` on every pair of ``test_set``; resumable; returns the summary.

    ``test_set``: a :class:`TestSet`, a shipped set name or a set YAML path.
    ``model``: an :class:`SRModel`, a :class:`ResultsFolder`, or a spec for
    :func:`load_model`. ``metrics``: metric objects or names for ``create_metric``.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    test_set = _as_set(test_set)
    pairs = test_set.pairs()
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if isinstance(model, str):
        model = load_model(model, test_set.scale)
    if isinstance(model, ResultsFolder):  # every file present, none extra, sizes right
        model = results_folder(model.path, pairs, test_set.scale)
    else:
        _check_truth(model, test_set, pairs)
        model.to(device)
    metrics = _as_metrics(metrics, test_set.scale, device)
    unavailable = _unavailable(metrics, test_set)
    scored = [m for m in metrics if m.name not in unavailable]
    out = Path(out)
    settings = {
        "set": {"name": test_set.name, "hash": test_set.hash, "scale": test_set.scale},
        "model": model.describe(),
        "metrics": {m.name: m.protocol for m in metrics},
        "unavailable": unavailable,
        "precision": precision if torch.device(device).type == "cuda" else "fp32",
        "tile": tile,
        "tile_overlap": tile_overlap if tile else None,
    }
    _claim(out, settings)
    names = [m.name for m in scored]
    meta_keys = sorted({k for p in pairs for k, v in p.meta.items() if _is_scalar(v)})
    columns = ["id", *[k for k in meta_keys if k not in ("id", *names)], *names]
    done = _read_done(out / CSV_FILE, columns)
    todo = [p for p in pairs if p.id not in done]
    if not todo and (out / SUMMARY_FILE).is_file():
        return Summary.read(out / SUMMARY_FILE)  # finished earlier with these settings
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    bar = tqdm(
        total=len(pairs),
        initial=len(pairs) - len(todo),
        unit="img",
        desc=f"degkit eval {test_set.name}",
        file=sys.stderr,
        disable=not progress,
    )
    with bar, open(out / CSV_FILE, "a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if not done:
            writer.writerow(columns)
        for batch in _batches(todo, batch_size):
            sr, hr = _sr_and_hr(model, batch, device, settings["precision"], tile, tile_overlap)
            scores = {m.name: m(sr, hr if m.reference == "full" else None).tolist() for m in scored}
            for i, pair in enumerate(batch):
                meta = [pair.meta.get(k, "") for k in columns[1 : len(columns) - len(scored)]]
                writer.writerow([pair.id, *meta, *[scores[m.name][i] for m in scored]])
            f.flush()
            bar.update(len(batch))
    summary = _summarise(
        out,
        test_set,
        pairs,
        metrics,
        unavailable,
        settings,
        model,
        device=str(device),
        batch_size=batch_size,
        wall_seconds=round(time.perf_counter() - start, 3),
        rows_resumed=len(pairs) - len(todo),
    )
    write_text_atomic(out / SUMMARY_FILE, summary.to_json())
    return summary


def _as_set(test_set: Any) -> Any:
    if isinstance(test_set, str | Path):
        from degkit.evaluate.sets import load_set

        return load_set(str(test_set))
    return test_set


def _check_truth(model: SRModel, test_set: Any, pairs: list[Any]) -> None:
    """A model whose conditioning reads ground truth needs the pairs' degradation records."""
    if model.needs_truth and any(p.meta.get("records") is None for p in pairs):
        raise ValueError(
            f"model {model.name}: {model.needs_truth}, but set {test_set.name} has no "
            "degradation records (only synthetic sets keep them)"
        )


def _as_metrics(metrics: Sequence[Any], scale: int, device: str) -> list[Any]:
    if any(isinstance(m, str) for m in metrics):
        from degkit.metrics import create_metric

        metrics = [
            create_metric(m, scale=scale, device=device) if isinstance(m, str) else m
            for m in metrics
        ]
    made = list(metrics)
    names = [m.name for m in made]
    if not made or len(set(names)) != len(names):
        raise ValueError(f"metrics: expected distinct metric names, got {names}")
    return made


def _unavailable(metrics: list[Any], test_set: Any) -> dict[str, str]:
    """Metric name -> ``n/a (...)`` text for metrics that cannot score this set."""
    reasons = {m.name: m.na_text for m in metrics if not m.available}
    if test_set.kind != "paired":
        for m in metrics:
            if m.reference == "full" and m.name not in reasons:
                reasons[m.name] = f"n/a (set {test_set.name} has no HR images)"
    return reasons


def _claim(out: Path, settings: dict[str, Any]) -> None:
    """Record the settings in ``out``, or check it already holds the same ones."""
    path = out / SETTINGS_FILE
    text = json.dumps(settings, indent=1, sort_keys=True) + "\n"
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != json.loads(text):
            raise ValueError(
                f"output folder {out}: holds an evaluation with other settings "
                f"({settings_differences(previous, settings)}); choose another output folder"
            )
    elif (out / CSV_FILE).exists():
        raise ValueError(
            f"output folder {out}: holds {CSV_FILE} but no {SETTINGS_FILE}; choose another"
        )
    else:
        write_text_atomic(path, text)


def _read_done(path: Path, columns: list[str]) -> set[str]:
    """Ids already scored in the CSV; drops a last line cut short by a kill."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return set()
    if rows[0] != columns:
        raise ValueError(f"{path}: columns {rows[0]} differ from this evaluation's {columns}")
    return {row[0] for row in rows[1:] if len(row) == len(columns)}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _batches(pairs: list[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive pairs of equal LR shape, at most ``size`` at a time."""
    batch: list[Any] = []
    for pair in pairs:
        if batch and (len(batch) == size or pair.lr.shape != batch[0].lr.shape):
            yield batch
            batch = []
        batch.append(pair)
    if batch:
        yield batch


def _to_tensor(images: list[np.ndarray], device: str) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return x.to(device).float().div_(255)


def _sr_and_hr(
    model: SRModel | ResultsFolder,
    batch: list[Any],
    device: str,
    precision: str,
    tile: int | None,
    overlap: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The 8-bit-rounded SR batch and the HR batch (None for LR-only sets)."""
    if isinstance(model, ResultsFolder):
        sr = _to_tensor([model.load(p.id) for p in batch], device)
    else:
        lr = _to_tensor([p.lr for p in batch], device)
        sr = super_resolve(model, lr, tile=tile, overlap=overlap, precision=precision, pairs=batch)
        sr = sr.mul_(255).round_().div_(255)
    hr = None if batch[0].hr is None else _to_tensor([p.hr for p in batch], device)
    return sr, hr


def _summarise(
    out: Path,
    test_set: Any,
    pairs: list[Any],
    metrics: list[Any],
    unavailable: dict[str, str],
    settings: dict[str, Any],
    model: SRModel | ResultsFolder,
    **run: Any,
) -> Summary:
    """Means over the finished CSV; raises if any pair is missing from it."""
    import pandas as pd

    table = pd.read_csv(out / CSV_FILE, dtype={"id": str}, keep_default_na=False)
    missing = {p.id for p in pairs} - set(table["id"])
    if missing or len(table) != len(pairs):
        raise ValueError(
            f"{out / CSV_FILE}: {len(table)} rows for {len(pairs)} pairs "
            f"({len(missing)} ids missing); the evaluation is incomplete"
        )
    results = {}
    for m in metrics:
        na = unavailable.get(m.name)
        mean = None if na else float(pd.to_numeric(table[m.name]).mean())
        results[m.name] = {
            "mean": mean,
            "na": na,
            "direction": m.direction,
            "reference": m.reference,
            "protocol": m.protocol,
        }
    return Summary(
        set=test_set.describe(),
        model=model.describe(),
        metrics=results,
        n=len(table),
        per_image_csv=CSV_FILE,
        degkit_version=degkit.__version__,
        git_commit=git_commit(),
        torch_version=torch.__version__,
        precision=settings["precision"],
        tile=settings["tile"],
        tile_overlap=settings["tile_overlap"] or 0,
        finished_utc=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **run,
    )
