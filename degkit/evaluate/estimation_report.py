"""Write a degradation-estimation run: ``results.json``, ``report.md`` and PNG figures.

Figures (matplotlib, Agg): ``confusion.png``, one confusion matrix per type
and model (rows: true level snapped to the nearest prompt level; columns: the
chosen prompt level), and ``pca.png``, per type the adaptor's fine embeddings
projected on their two first principal axes, coloured by the true level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from degkit.evaluate import estimation

__all__ = ["markdown", "write_report"]

RESULTS = "results.json"
REPORT = "report.md"
CONFUSION = "confusion.png"
PCA = "pca.png"


def write_report(
    out: str | Path,
    results: dict[str, Any],
    fine: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
) -> list[Path]:
    """Write the results, the markdown report and the figures into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / RESULTS, out / REPORT, out / CONFUSION, out / PCA]
    paths[0].write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(results), encoding="utf-8")
    _confusion_figure(results, paths[2])
    _pca_figure(fine, truth, paths[3])
    return paths


def _models(results: dict[str, Any]) -> list[str]:
    first = next(iter(results["types"].values()))
    return [m for m in ("adaptor", "regressor") if m in first]


def _level_text(protocol: dict[str, Any]) -> str:
    levels = protocol["levels"]
    if protocol["presence_only"]:
        return "absent, present"
    return ", ".join(f"{v:g}" for v in levels)


def _tolerance_text(protocol: dict[str, Any]) -> str:
    return "exact" if protocol["presence_only"] else f"< {protocol['tolerance']:g}"


def _train_line(name: str, meta: dict[str, Any] | None) -> str:
    """One provenance line of a checkpoint's metadata."""
    if meta is None:
        return f"- {name}: not evaluated"
    seconds = meta.get("wall_seconds")
    timing = (
        ", ".join(f"{phase} {value:.0f} s" for phase, value in seconds.items())
        if seconds
        else "not recorded"
    )
    hashes = ", ".join(f"`{h[:16]}`" for h in meta.get("recipe_hashes", []))
    settings = {k: meta[k] for k in ("train", "config", "width") if k in meta}
    return (
        f"- {name}: `{meta['path']}`, init {meta.get('init', 'random')}, seed {meta.get('seed')}, "
        f"{meta.get('step')} steps on {meta.get('rows', '?')} rows of recipe hash(es) {hashes}; "
        f"wall time: {timing}; settings: `{json.dumps(settings, sort_keys=True)}`"
    )


def markdown(results: dict[str, Any]) -> str:
    """The report: the protocol next to the numbers, then provenance."""
    models = _models(results)
    protocols = results["protocol"]["types"]
    prov = results["provenance"]
    data = prov["data"]
    lines = [
        "# Degradation estimation",
        "",
        f"Test set: `{data['folder']}` split `{data['split']}`, n = {data['rows']}, "
        f"fingerprint `{data['fingerprint']}`.",
        "",
        "Per type, each model picks one prompt level; a pick is correct when "
        "|prompt level - true level| < tolerance (the true level of an absent type is 0). "
        "The adaptor scores its fine embedding against the prompts "
        f"`{results['protocol']['prompt_template'].replace('{}', '{caption}')}` "
        "(the caption template it was trained with; the caption is the type's fine caption "
        "at each level, level 0: the caption of an absent type) "
        "with the frozen text tower and takes the most similar; the regressor's level "
        "(0 where its presence probability is below 0.5) is snapped to the nearest prompt level. "
        "Chance: expected accuracy of a uniformly random prompt level; majority: the best "
        "constant prompt level.",
        "",
        "| type | prompt levels | correct if | n | chance | majority | "
        + " | ".join(models)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(models),
    ]
    for protocol in protocols:
        entry = results["types"][protocol["name"]]
        level = entry["majority_level"]
        majority_level = (
            ("present" if level else "absent") if protocol["presence_only"] else f"{level:g}"
        )
        cells = [
            protocol["name"] + f" ({protocol['unit']})",
            _level_text(protocol),
            _tolerance_text(protocol),
            str(entry["n"]),
            f"{entry['chance']:.3f}",
            f"{entry['majority']:.3f} ({majority_level})",
            *(f"{entry[m]['accuracy']:.3f}" for m in models),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Confusion matrices (rows: true level snapped to the nearest prompt level; "
        "columns: the chosen prompt level):",
        "",
        f"![confusion matrices]({CONFUSION})",
        "",
        "Adaptor fine embeddings of each type, projected on their two first principal "
        "axes (PCA), coloured by the true level:",
        "",
        f"![PCA of fine embeddings]({PCA})",
        "",
        "## Provenance",
        "",
        f"- degkit {prov['degkit_version']} @ {prov['git_commit'] or 'no git'}, "
        f"torch {prov['torch_version']}, finished {prov['finished_utc']}",
        f"- command: `{' '.join(prov['command'] or ['(library call)'])}`",
        f"- test set built with `{data['command']}`; recipe hash(es) "
        f"{', '.join(f'`{h[:16]}`' for h in data['recipe_hashes'])}",
        _train_line("adaptor", prov["adaptor"]),
        _train_line("regressor", prov["regressor"]),
        "",
        "Prompts: " + "; ".join(f"`{p}`" for t in protocols for p in t["prompts"]) + ".",
        "",
    ]
    return "\n".join(lines)


def _confusion_figure(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = _models(results)
    protocols = results["protocol"]["types"]
    fig, axes = plt.subplots(
        len(models),
        len(protocols),
        figsize=(2.6 * len(protocols), 2.6 * len(models)),
        squeeze=False,
    )
    for row, model in enumerate(models):
        for ax, protocol in zip(axes[row], protocols, strict=True):
            entry = results["types"][protocol["name"]][model]
            matrix = np.asarray(entry["confusion"])
            ax.imshow(matrix, cmap="Blues")
            labels = _level_text(protocol).split(", ")
            ax.set_xticks(range(len(labels)), labels, fontsize=7)
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
            for (i, j), count in np.ndenumerate(matrix):
                color = "white" if count > matrix.max() / 2 else "black"
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=color)
            ax.set_title(f"{model}: {protocol['name']} ({entry['accuracy']:.2f})", fontsize=8)
            ax.set_xlabel("chosen", fontsize=7)
            ax.set_ylabel("true (snapped)", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pca_figure(fine: dict[str, np.ndarray], truth: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fine), figsize=(3.0 * len(fine), 2.8), squeeze=False)
    for ax, protocol in zip(axes[0], estimation.PROTOCOL, strict=False):
        points = estimation.pca_2d(fine[protocol.name])
        shown = ax.scatter(points[:, 0], points[:, 1], c=truth[protocol.name], cmap="viridis", s=8)
        ax.set_title(protocol.name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(shown, ax=ax, label=protocol.unit, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
