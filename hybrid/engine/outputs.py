"""Files a run leaves in its run dir: metrics.json, history.csv, predictions.csv, plots."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.predictions import write_skipped
from hybrid.util.atomic import atomic_write, atomic_write_text


def pyplot():
    """matplotlib's pyplot on the file-only backend (runs have no display), imported on first plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 110) -> Path | None:
    """Write a matplotlib figure (``None``: nothing to draw) to ``path`` atomically and close it."""
    if fig is None:
        return None
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi))
    pyplot().close(fig)
    return path


def write_json(path: Path, data: Mapping) -> None:
    """Write ``data`` as indented JSON, replacing the file atomically."""
    atomic_write_text(path, json.dumps(dict(data), indent=2, sort_keys=False) + "\n")


# How many skipped image names a log line shows (skipped.csv lists them all).
SKIPPED_SHOWN = 20


def report_skipped(path: Path, missing: Iterable[str], unreadable: Iterable[str]) -> str | None:
    """Write ``skipped.csv`` (``Filename``, ``reason``: missing or unreadable) at ``path`` and return
    the log line naming them (the first :data:`SKIPPED_SHOWN`, then a count); ``None`` if none."""
    reasons = {name: "unreadable" for name in unreadable} | {name: "missing" for name in missing}
    if not reasons:
        return None
    write_skipped(path, reasons)
    names = sorted(reasons)
    shown = ", ".join(names[:SKIPPED_SHOWN])
    more = f" and {len(names) - SKIPPED_SHOWN} more" if len(names) > SKIPPED_SHOWN else ""
    return f"skipped {len(names)} missing or unreadable images: {shown}{more} (all in {path})"


def format_figures(figures: Mapping[str, float]) -> str:
    """``name value`` pairs on one line, four decimals: ``F2 0.5123  MF1 0.4410``."""
    return "  ".join(f"{name} {value:.4f}" for name, value in figures.items())


def write_history(path: Path, rows: Sequence[Mapping]) -> None:
    """One row per epoch; columns are the union of the rows' keys, ``epoch`` first."""
    frame = pd.DataFrame(list(rows))
    columns = ["epoch"] + [c for c in frame.columns if c != "epoch"]
    atomic_write(path, lambda tmp: frame[columns].to_csv(tmp, index=False))


def relative_luminance(rgb: Sequence[float]) -> float:
    """WCAG 2's relative luminance of an sRGB colour (components in [0, 1])."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: Sequence[float], second: Sequence[float]) -> float:
    """WCAG 2's contrast ratio of two colours (1 to 21; 4.5 and above reads as body text)."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def count_colours(matrix: np.ndarray, cmap) -> tuple[np.ndarray, list[list[str]]]:
    """Each cell's colour as the plot paints it (``cmap`` over the counts from 0 to the largest, so
    a count's shade does not depend on the smallest one) and the text colour, white or black,
    that contrasts more with it."""
    top = float(matrix.max()) if matrix.size and matrix.max() > 0 else 1.0
    cells = np.asarray(cmap(np.asarray(matrix, float) / top))
    text = [
        [max(("white", "black"), key=lambda t: contrast_ratio(WHITE_BLACK[t], cell)) for cell in row] for row in cells
    ]
    return cells, text


WHITE_BLACK = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}


def plot_confusion_matrix(path: Path, matrix: np.ndarray, class_names: Sequence[str], title: str) -> Path:
    """Save a confusion matrix (counts, rows true, columns predicted) as a PNG; each count in the
    colour that reads best on its cell (:func:`count_colours`)."""
    plt = pyplot()

    size = max(3.5, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    matrix = np.asarray(matrix)
    cells, text = count_colours(matrix, plt.get_cmap("Blues"))
    ax.imshow(cells)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in ticks:
        for j in ticks:
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", color=text[i][j])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


PER_CLASS_COLUMNS = ("precision", "recall", "f1", "f2", "support")


def format_class_table(metrics: Mapping, class_names: Sequence[str]) -> str:
    """Per-class precision / recall / F1 / F2 / support as an aligned text table."""
    columns = [c for c in PER_CLASS_COLUMNS if f"{c}/{class_names[0]}" in metrics]
    width = max(8, *(len(n) for n in class_names))
    lines = [f"{'class':<{width}}" + "".join(f"{c:>11}" for c in columns)]
    for name in class_names:
        cells = [metrics[f"{c}/{name}"] for c in columns]
        lines.append(f"{name:<{width}}" + "".join(f"{v:>11d}" if isinstance(v, int) else f"{v:>11.4f}" for v in cells))
    return "\n".join(lines)


def plot_per_class(path: Path, metrics: Mapping, class_names: Sequence[str], title: str) -> Path:
    """Bar chart of per-class F1 (and F2 where computed) with the support under each class."""
    plt = pyplot()

    series = [m for m in ("f1", "f2") if f"{m}/{class_names[0]}" in metrics]
    x = np.arange(len(class_names))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * len(class_names) + 2), 3.6))
    for i, metric in enumerate(series):
        ax.bar(x + i * width, [metrics[f"{metric}/{n}"] for n in class_names], width, label=metric.upper())
    labels = [f"{n}\n({metrics.get(f'support/{n}', 0)})" for n in class_names]
    ax.set_xticks(x + width * (len(series) - 1) / 2, labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(f"{title}: per class (support)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_history(path: Path, history: Sequence[Mapping], monitor: str) -> Path:
    """Training curves per epoch: losses, validation scores (the monitored one included) and the
    learning rate, side by side; replaced atomically so a reader never sees half a file."""
    plt = pyplot()
    frame = pd.DataFrame(list(history))
    scores = [k for k in dict.fromkeys([monitor, "val/accuracy", "val/f1_macro", "val/f2_ciw"]) if k in frame]
    panels = [
        ("loss", [k for k in ("train/loss", "val/loss") if k in frame]),
        ("validation", scores),
        ("learning rate", [k for k in ("lr",) if k in frame]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            ax.plot(frame["epoch"], frame[key], marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if keys:
            ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
    return path
