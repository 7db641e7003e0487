"""The report's figures: the monitored metric against each swept parameter, with the axis helpers
the other figures share (score limits, compact numbers, log axes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybrid.engine.outputs import pyplot
from hybrid.reporting.statistics import REPEAT_KEYS

PLOTS_PER_ROW = 4


def parameters_figure(table: pd.DataFrame, best_column: str, keys: list[str]):
    """``report.png``: ``best_column`` against each swept parameter but the repeat keys (numbers on
    a numeric axis, a log axis for ranges over decades such as the learning rate; anything else as
    categories); ``None`` without such a key, or without a finished job."""
    done = table[table["status"] == "ok"]
    keys = [k for k in keys if k not in REPEAT_KEYS]  # a seed repeats a configuration: aggregate.png shows it
    if not keys or done.empty:
        return None
    plt = pyplot()
    columns = min(len(keys), PLOTS_PER_ROW)
    rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(keys) :]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys, strict=False):
        values = pd.to_numeric(done[key], errors="coerce")
        if values.notna().all():
            ax.scatter(values, done[best_column])
            if values.min() > 0 and values.max() / values.min() >= 100:
                ax.set_xscale("log")
                log_axis(ax.xaxis, values)
        else:
            categories = sorted(done[key].astype(str).unique())
            ax.scatter([categories.index(v) for v in done[key].astype(str)], done[best_column])
            ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        ax.set_xlabel(key)
        ax.set_ylabel(best_column)
        ax.set_ylim(*score_limits(done[best_column]))
    fig.tight_layout()
    return fig


# A score axis spans at least this much, so two jobs 0.002 apart do not fill the plot as if far apart.
MIN_SCORE_SPAN = 0.1


def score_limits(values: pd.Series) -> tuple[float, float]:
    """y-axis limits for ``values``: their range padded by 5%, widened to :data:`MIN_SCORE_SPAN`
    about its middle (kept inside [0, 1] when every value is)."""
    x = pd.to_numeric(values, errors="coerce").dropna()
    low, high = (float(x.min()), float(x.max())) if len(x) else (0.0, 1.0)
    pad = 0.05 * (high - low)
    low, high = low - pad, high + pad
    if high - low < MIN_SCORE_SPAN:
        middle = (low + high) / 2
        low, high = middle - MIN_SCORE_SPAN / 2, middle + MIN_SCORE_SPAN / 2
    if len(x) and x.min() >= 0 and x.max() <= 1:
        shift = max(0.0, -low) - max(0.0, high - 1)
        low, high = max(0.0, low + shift), min(1.0, high + shift)
    return low, high


def compact_number(value: float, _position=None) -> str:
    """An axis label: ``0.5``, ``20``, ``300k``, ``1.2M``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def log_axis(axis, values: pd.Series) -> None:
    """A log scale with readable labels: plain numbers at 1-2-5 steps (decades only over wide
    ranges), and no labels on the minor ticks, which is what overlapped."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    x = pd.to_numeric(values, errors="coerce").dropna()
    decades = np.log10(x.max() / x.min()) if len(x) and x.min() > 0 else 0.0
    axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades > 2 else (1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(compact_number))
    axis.set_minor_formatter(NullFormatter())
