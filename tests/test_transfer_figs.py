"""The Transferability heatmap's figure at full detail: labels thinned where they would overlap,
the click layer drawn the cheaper way, nothing shifted.

    .venv/bin/python -m pytest -q tests/test_transfer_figs.py

Measured in headless Chromium (bench/page_scale.py, a 300-prompt library): 300 tick labels per
axis laid out by plotly's automargin took 3.7 s of the heatmap's 3.9 s, and a WebGL click layer
costs ~2 s to start where SVG draws 10,000 cells in ~0.7 s. These tests pin the rules, not timings.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pages._transfer_figs import GL_CELLS, LABEL_PX, PLOT_PX, heatmap_figure, tick_stride


def _matrix(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    names = [f"task{i % 7}_prompt_{i:04d}" for i in range(n)]
    return pd.DataFrame(rng.normal(size=(n, n)), index=names, columns=names)


def _axes(fig):
    heat = next(t for t in fig.data if t.type == "heatmap")
    lay = fig.layout
    return heat, lay["xaxis" + (heat.xaxis or "x")[1:]], lay["yaxis" + (heat.yaxis or "y")[1:]]


def test_tick_stride():
    assert tick_stride(11, 80.0) == 1
    assert tick_stride(300, 2.2) == 5                      # 2.2 px a column (300 in 654 px) -> every 5th
    assert tick_stride(300, PLOT_PX / 300) * PLOT_PX / 300 >= LABEL_PX
    assert tick_stride(300, 4.5) == 3
    assert tick_stride(1, 0.1) == 1


def test_small_matrix_keeps_every_label_and_automargin():
    mat = _matrix(11)
    _, xa, ya = _axes(heatmap_figure(mat))
    assert list(ya.ticktext) == [str(x) for x in mat.index] and list(ya.tickvals) == list(range(11))
    assert list(xa.ticktext) == [str(x) for x in mat.columns]
    assert xa.automargin and ya.automargin


def test_large_matrix_thins_labels_that_would_overlap_and_each_names_its_own_row():
    mat = _matrix(300)
    fig = heatmap_figure(mat)
    heat, xa, ya = _axes(fig)
    for axis, names in ((xa, list(mat.columns)), (ya, list(mat.index))):
        vals, text = list(axis.tickvals), list(axis.ticktext)
        assert 1 < len(vals) < 300 and len(vals) == len(text)
        step = vals[1] - vals[0]
        assert all(b - a == step for a, b in zip(vals, vals[1:])) and vals[0] == 0
        assert text == [names[v] for v in vals]  # thinning never shifts a label off its row/column
    # columns: labels at least LABEL_PX apart on the heatmap's width; rows: on the drawn cell height
    assert (xa.tickvals[1] - xa.tickvals[0]) * PLOT_PX / 300 >= LABEL_PX
    h, n = fig.layout.height, 300
    cell_px = (h - 170) / n  # no dendrograms here: the heatmap takes the whole height
    assert (ya.tickvals[1] - ya.tickvals[0]) * cell_px >= LABEL_PX - 1e-9
    # margins set from the longest label instead of plotly's automargin (which would lay out all of them)
    assert not xa.automargin and not ya.automargin
    longest = max(len(t) for t in ya.ticktext)
    assert fig.layout.margin.l >= 0.6 * 9 * longest and fig.layout.margin.b >= 0.6 * 9 * longest * 0.8


def test_click_layer_is_svg_up_to_gl_cells_then_webgl():
    small, large = _matrix(100), _matrix(int(np.ceil(np.sqrt(GL_CELLS))) + 1)
    cells = lambda f: next(t for t in f.data if t.name == "cells")  # noqa: E731
    assert cells(heatmap_figure(small)).type == "scatter"       # 10,000 cells: SVG
    layer = cells(heatmap_figure(large))
    assert layer.type == "scattergl"
    # every cell still carries its source, target and value for a click
    assert len(layer.customdata) == large.size
    i, j = 5, 17
    assert list(layer.customdata[i * large.shape[1] + j][:3]) == [large.index[i], large.columns[j],
                                                                  f"{large.iat[i, j]:.3f}"]


def test_hover_of_a_gain_heatmap_without_click_layer_never_reads_minus_zero():
    """The half-width measured heatmap (no click layer) hovers in core.fmt's words: -0.0004 is 0.0%."""
    mat = pd.DataFrame([[-0.0004, 0.153], [np.nan, -0.2]], index=["a", "b"], columns=["t1", "t2"])
    heat = next(t for t in heatmap_figure(mat, gain=True, diverging=True, clickable=False).data if t.type == "heatmap")
    assert "%{customdata}" in heat.hovertemplate and "%{z" not in heat.hovertemplate
    assert [list(r) for r in heat.customdata] == [["0.0%", "+15.3%"], ["", "-20.0%"]]


def test_the_first_turned_x_label_is_never_clipped_at_the_left():
    """Issue 28: Predicted vs measured read "rty_parliament": the first x label, turned 60°, reached left of the
    plot, and automargin grew the left margin for the (short) y labels only."""
    m = pd.DataFrame(np.zeros((2, 3)), index=["a", "b"], columns=["party_parliament", "sent_tweet", "spam_sms"])
    fig = heatmap_figure(m, annotate=True, clickable=False, height=420)
    size = fig.layout.xaxis.tickfont.size or 11
    # half the label's length at ~0.6 em per character: what the turned label needs left of the plot
    assert fig.layout.margin.l >= 0.5 * 0.6 * size * len("party_parliament")
