"""What hybrid report draws (hybrid.reporting) reads as it should: no overlapping axis labels, no panel for a seed,
no zoom that makes a 0.002 difference fill the plot."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from hybrid.engine.outputs import pyplot
from hybrid.reporting.comparison import pareto_figure
from hybrid.reporting.figures import MIN_SCORE_SPAN, parameters_figure

# the eight models of experiment=compare, as compare.csv has them (latency from this 2-core machine)
COMPARE = pd.DataFrame(
    {
        "model": ["cats_hybrid", "xie2019", "mobilenetv3_small_100", "mobilenetv4_conv_small", "mobilevit_xxs",
                  "deit_tiny", "efficientnet_b0", "resnet18"],
        "params": [171_346, 1_050_000, 1_520_000, 2_490_000, 951_000, 5_520_000, 4_010_000, 11_180_000],
        "latency_p50_ms": [2.1, 3.4, 4.2, 5.0, 9.8, 11.5, 14.9, 21.7],
        "test/f1_macro": [0.61, 0.58, 0.63, 0.64, 0.6, 0.55, 0.66, 0.65],
    }
)  # fmt: skip


def label_boxes(fig, axis) -> list:
    """Window boxes of the tick labels ``axis`` draws (minor ones included)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    low, high = sorted(axis.get_view_interval())
    ticks = [*axis.get_major_ticks(), *axis.get_minor_ticks()]
    return [
        tick.label1.get_window_extent(renderer)
        for tick, where in zip(ticks, [*axis.get_majorticklocs(), *axis.get_minorticklocs()], strict=False)
        if tick.label1.get_visible() and tick.label1.get_text() and low <= where <= high
    ]


@pytest.mark.parametrize("cost", ["latency_p50_ms", "params"])
@pytest.mark.parametrize("rows", [slice(None), slice(0, 3)])  # eight models over decades, three within one
def test_pareto_log_axes_have_labels_that_do_not_overlap(cost, rows):
    fig = pareto_figure(COMPARE.iloc[rows].reset_index(drop=True))
    ax = fig.axes[["latency_p50_ms", "params"].index(cost)]
    boxes = label_boxes(fig, ax.xaxis)
    assert len(boxes) >= 2  # the axis is labelled at all
    assert not [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
    pyplot().close(fig)


def test_report_panels_skip_the_seed_and_do_not_zoom_two_close_jobs():
    table = pd.DataFrame(
        {
            "job": [0, 1, 2, 3],
            "status": ["ok"] * 4,
            "seed": [0, 1, 0, 1],
            "model.emb_dim": [24, 24, 48, 48],
            "val/f1_macro_best": [0.501, 0.503, 0.502, 0.504],
        }
    )
    fig = parameters_figure(table, "val/f1_macro_best", ["seed", "model.emb_dim"])
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in shown] == ["model.emb_dim"]
    low, high = shown[0].get_ylim()
    assert high - low >= MIN_SCORE_SPAN - 1e-9 and low <= 0.501 and high >= 0.504
    pyplot().close(fig)


def test_every_count_of_a_confusion_matrix_reads_on_its_cell(tmp_path):
    """Counts all large (the smallest no longer white) and one near half the largest: each count's
    colour contrasts with its cell at least 4.5:1 (WCAG body text), and the image is painted with
    those cells."""
    import matplotlib

    from hybrid.engine.outputs import WHITE_BLACK, contrast_ratio, count_colours, plot_confusion_matrix

    matrix = np.array([[100, 90, 0], [95, 98, 52], [48, 1, 60]])
    cells, text = count_colours(matrix, matplotlib.colormaps["Blues"])
    for i in range(3):
        for j in range(3):
            assert contrast_ratio(WHITE_BLACK[text[i][j]], cells[i, j]) >= 4.5, (matrix[i, j], text[i][j])
    assert text[0][2] == "black" and text[0][0] == "white"
    assert plot_confusion_matrix(tmp_path / "cm.png", matrix, ["A", "B", "C"], "t").stat().st_size
