"""The leaderboard report: tables, figures and provenance, written into one folder.

``report.md`` (what a reader opens), ``results.json`` (every number, with the
same provenance), ``severity_gains.png`` and ``comparison.png``. The protocol
is stated next to every table: the metric definitions come from the
evaluation summaries, the sets with their content hashes, the training data
with its recipe hash, the seeds, the code commit, the device and wall times.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import degkit
from degkit.bench.answers import answer_lines
from degkit.bench.config import sr_steps
from degkit.bench.results import EvalRun, collect_runs
from degkit.bench.run import BenchRun, elapsed_seconds, stage_commits
from degkit.bench.tables import (
    gain_rows,
    gain_text,
    score_rows,
    severity_rows,
    spread_text,
)
from degkit.data.state import write_text_atomic
from degkit.evaluate.gains import seed_spread
from degkit.evaluate.leaderboard_figures import LEVEL_ORDER
from degkit.evaluate.summary import git_commit

__all__ = ["write_bench_report"]

REPORT = "report.md"
RESULTS = "results.json"
SEVERITY_FIGURE = "severity_gains.png"


def _duration(provenance: dict[str, Any]) -> str:
    """``12.3 min``; with stages side by side also their summed time."""
    elapsed, summed = provenance["elapsed_wall_seconds"], provenance["total_wall_seconds"]
    if summed - elapsed < 1:
        return f"{elapsed / 60:.1f} min"
    return f"{elapsed / 60:.1f} min of wall time ({summed / 60:.1f} min of stage time side by side)"


def _steps_text(sr: dict[str, Any]) -> str:
    """``1000 steps``, or the steps of each backbone's entries."""
    per = {b: sr_steps(sr, b) for b in sr["backbones"]}
    if len(set(per.values())) == 1:
        return f"{next(iter(per.values()))} steps"
    return "steps " + ", ".join(f"{n} ({b})" for b, n in per.items())


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _provenance(run: BenchRun, runs: Sequence[EvalRun], walls: dict[str, float]) -> dict[str, Any]:
    from degkit.train.data import dataset_summary

    sets = {}
    protocols: dict[str, Any] = {}
    for r in runs:
        summary = r.summary
        sets[r.set] = {"hash": summary.set["hash"], "n": summary.n}
        for name, metric in summary.metrics.items():
            protocols.setdefault(name, metric["protocol"])
    return {
        "config": run.config.to_dict(),
        "training_data": dataset_summary(run.data, "train"),
        "sets": sets,
        "metric_protocols": protocols,
        "degkit_version": degkit.__version__,
        "git_commit": git_commit(),
        "stage_commits": stage_commits(run),
        "device": run.config.device,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "stage_wall_seconds": walls,
        "total_wall_seconds": round(sum(walls.values()), 1),
        "elapsed_wall_seconds": round(elapsed_seconds(run), 1),
        "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _estimation(run: BenchRun) -> dict[str, dict[str, Any]]:
    """Per type: chance, and the adaptor's and regressor's accuracy spread across seeds."""
    per_seed = []
    for seed in run.config.seeds:
        path = run.estimation(seed) / "results.json"
        if path.is_file():
            per_seed.append(json.loads(path.read_text(encoding="utf-8"))["types"])
    out: dict[str, dict[str, Any]] = {}
    for name in per_seed[0] if per_seed else ():
        entry: dict[str, Any] = {"chance": float(np.mean([s[name]["chance"] for s in per_seed]))}
        for model in ("adaptor", "regressor"):
            values = [[s[name][model]["accuracy"]] for s in per_seed if model in s[name]]
            entry[model] = seed_spread(values) if values else None
        out[name] = entry
    return out


def _severity_figure(rows: list[dict[str, Any]], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = sorted({r["set"] for r in rows})
    if not sets:
        return None
    fig, axes = plt.subplots(1, len(sets), figsize=(3.2 * len(sets), 3.0), squeeze=False)
    x = np.arange(len(LEVEL_ORDER))
    for ax, set_name in zip(axes[0], sets, strict=True):
        chosen = [r for r in rows if r["set"] == set_name]
        for k, row in enumerate(chosen):
            gains = [row[level] for level in LEVEL_ORDER]
            mean = np.array([g.mean if g else np.nan for g in gains])
            low = np.array([g.mean - g.low if g else 0 for g in gains])
            high = np.array([g.high - g.mean if g else 0 for g in gains])
            offset = (k - (len(chosen) - 1) / 2) * 0.06
            label = f"{row['backbone']}: {row['prior']}"
            ax.errorbar(x + offset, mean, yerr=[low, high], marker="o", capsize=3, label=label)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(x, LEVEL_ORDER)
        ax.set_title(set_name.removeprefix("severity_"), fontsize=9)
        ax.set_ylabel("gain over none (dB PSNR-Y)", fontsize=8)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _json_ready(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def write_bench_report(
    run: BenchRun,
    walls: dict[str, float],
    out: str | Path,
    command: Sequence[str],
    extra_figures: Sequence[Path] = (),
) -> Path:
    """Write the report of a finished run into ``out``; returns the markdown file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(run.eval_root)
    if not runs:
        raise ValueError(f"{run.eval_root}: no finished evaluation to report")
    cfg = run.config
    provenance = _provenance(run, runs, walls)
    metrics = cfg.eval["metrics"]
    scores = {m: score_rows(runs, m) for m in metrics}
    gains = {m: gain_rows(runs, m) for m in metrics}
    severity = severity_rows(runs, metrics[0])
    estimation = _estimation(run)
    sets = sorted({r.set for r in runs})
    figure = _severity_figure(severity, out / SEVERITY_FIGURE)

    lines = [
        f"# Leaderboard `{cfg.name}`, profile `{cfg.profile}`",
        "",
        cfg.description,
        "",
        f"Made by `{' '.join(command)}` in {_duration(provenance)} "
        f"on {cfg.device} ({provenance['machine']}); degkit {degkit.__version__}, stages run "
        f"at commit {', '.join(f'`{c}`' for c in provenance['stage_commits'])}, report "
        f"written at `{provenance['git_commit']}`, {provenance['finished_utc']}.",
        "",
        "## Protocol",
        "",
        f"- Training data: recipe `{cfg.data['recipe']}` (hash "
        f"`{', '.join(provenance['training_data']['recipe_hashes'])}`), "
        f"{provenance['training_data']['rows']} crops of {cfg.data['crop']} px from the "
        f"embedded training photos, build seed {cfg.data['seed']}.",
        f"- Seeds: {', '.join(map(str, cfg.seeds))}; every SR entry: {_steps_text(cfg.sr)}, "
        f"batch {cfg.sr['batch_size']}, LR patch {cfg.sr['patch']}, Adam lr {cfg.sr['lr']}, "
        f"L1; only the prior differs. Adaptor: `{cfg.adaptor['model']}`, scratch CLIP "
        f"({cfg.adaptor['pretrain_steps']} + {cfg.adaptor['steps']} steps); regressor: "
        f"{cfg.regressor['steps']} steps, "
        f"{'with' if cfg.regressor['jpeg_grid'] else 'without'} JPEG grid scores, "
        + (
            f"levels read as the median of a {cfg.regressor['level_bins']}-bin histogram "
            "(histogram loss)."
            if cfg.regressor["level_bins"]
            else "scalar levels (smooth-L1 loss)."
        ),
        "- Scores: mean over a set's images per seed, then mean ± sample std across seeds "
        "(bicubic: one run).",
        "- Gains: prior minus `none` on the same backbone, per seed and image; 95% interval "
        "from a bootstrap over seeds and images; `(n.s.)`: the interval holds 0.",
    ]
    for name, protocol in provenance["metric_protocols"].items():
        lines.append(f"- `{name}`: `{json.dumps(protocol, sort_keys=True)}`")
    lines += ["", "| set | images | content hash |", "|---|---|---|"]
    lines += [f"| {s} | {v['n']} | `{v['hash'][:16]}` |" for s, v in provenance["sets"].items()]
    named = [s for s in cfg.eval["sets"] if s in sets]
    ordered = named + [s for s in sets if s not in named]
    lines += [
        "",
        "## Answers",
        "",
        "Counted from the tables below (a gain is better or worse only when its whole 95% "
        f"interval is above or below 0; the first set named is {ordered[0]}):",
        "",
    ]
    for metric in metrics:
        lines += answer_lines(scores[metric], gains[metric], metric, ordered)
    for metric in metrics:
        lines += ["", f"## {metric}: scores", ""]
        lines += _table(
            ["entry", *sets],
            [[r["entry"], *[spread_text(r[s]) for s in sets]] for r in scores[metric]],
        )
        lines += ["", f"## {metric}: gain of each prior", ""]
        lines += _table(
            ["backbone", "prior", "against", *sets],
            [
                [r["backbone"], r["prior"], r["against"], *[gain_text(r[s], 3) for s in sets]]
                for r in gains[metric]
            ],
        )
    if severity:
        lines += ["", f"## Gain by severity ({metrics[0]})", ""]
        lines += _table(
            ["set", "backbone", "prior", *LEVEL_ORDER],
            [
                [r["set"], r["backbone"], r["prior"], *[gain_text(r[lv], 3) for lv in LEVEL_ORDER]]
                for r in severity
            ],
        )
        if figure:
            lines += ["", f"![gain by severity]({figure.name})"]
    if estimation:
        lines += [
            "",
            "## Degradation estimation (held-out photos)",
            "",
            "Accuracy of the degradation-estimation protocol (prompt levels and tolerances in "
            "each seed's `estimation/report.md`), mean ± std across seeds.",
            "",
        ]
        lines += _table(
            ["type", "chance", "adaptor", "regressor"],
            [
                [t, f"{e['chance']:.2f}", spread_text(e["adaptor"]), spread_text(e["regressor"])]
                for t, e in estimation.items()
            ],
        )
    for extra in extra_figures:
        lines += ["", f"![{extra.stem}]({extra.name})"]
    lines += ["", "## Wall time per stage (s)", ""]
    lines += _table(["stage", "seconds"], [[k, f"{v:.0f}"] for k, v in walls.items()])
    results = {
        "scores": scores,
        "gains": gains,
        "severity": severity,
        "estimation": estimation,
        "provenance": provenance,
    }
    write_text_atomic(out / RESULTS, json.dumps(_json_ready(results), indent=1) + "\n")
    write_text_atomic(out / REPORT, "\n".join(lines) + "\n")
    return out / REPORT
