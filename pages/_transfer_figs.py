"""Figures of the Transferability page: the cell heatmap, the block heatmap, the overview.

    from pages._transfer_figs import heatmap_figure, overview_figure

Builders only: what to show (blocks, orders, the full-detail threshold) is decided in
core.blocks / core.metrics; these functions turn it into plotly figures. Plotly heatmap
cells emit no selection event in Streamlit, so a clickable figure lays a transparent
square-marker layer over the cell centres whose customdata is [row, column, value, ...].
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core import blocks as B
from core import evidence as E
from core import fmt
from core import labels as L
from core import safetext as S
from core import metrics as M

# Diverging, centred on "no gain", and readable without colour: lightness falls monotonically
# from harm (light peach) through no gain (mid grey) to gain (dark blue) -- darker = better.
DIVERGING = [[0.0, "#fdeadb"], [0.15, "#f9c7a4"], [0.3, "#eea37e"], [0.5, "#9e9e9e"],
             [0.7, "#6b93bd"], [0.85, "#2c5a94"], [1.0, "#0b2a52"]]
SEQUENTIAL = "Viridis"  # perceptually uniform, monotone lightness: fine in greyscale too
GL_CELLS = 20000        # click layer as WebGL markers above this many cells (see heatmap_figure)
# the noise-band dot: offset from the cell centre and diameter, in cells (rows are cell_px high);
# it spans rows -0.47..-0.25 of the cell, clear of the centred value label
NOISE_DX, NOISE_DY, NOISE_SIZE = 0.34, 0.36, 0.22

# A tick label (9-11 px font) needs ~10 px along its axis; closer, plotly still lays out every one
# (text measured, margins grown to fit, all of it in the browser) and they overlap into a smear:
# 300 labels per axis took 3.7 s of a 300-prompt heatmap's 3.9 s (headless Chromium). Labels are
# thinned to every k-th row / column; the hover still names every cell.
LABEL_PX = 10.0
PLOT_PX = 640.0   # the heatmap's own width on the wide page in a 1400 px window with the sidebar open
                  # (measured in Chromium: 654 px); wider windows only space the labels more
MANY_TICKS = 40   # labels per axis above which margins are computed here, not by plotly's automargin
# Cell values are written only where they fit the narrowest window we design for (1280 px, sidebar open):
# the heatmap's own width there, labels shortened (core.labels); tick font ~0.6 em per character.
# Denser, the values would run into each other ("0.350.351.000.64"): they are left to the hover.
VALUE_PLOT_PX = 520.0
VALUE_PAD_PX = 4.0


def values_fit(n_cols: int, n_rows: int, texts, font_px: float, *, dendro: bool = False,
               row_px: float = 28.0, plot_px: float = VALUE_PLOT_PX) -> bool:
    """True when the longest of ``texts`` fits a cell of an n_rows x n_cols heatmap drawn
    ``plot_px`` wide (0.88 of it beside dendrograms) and ``row_px`` high, with VALUE_PAD_PX to spare."""
    chars = max((len(t) for t in texts), default=0)
    cell_w = plot_px * (0.88 if dendro else 1.0) / max(n_cols, 1)
    return chars * 0.6 * font_px + VALUE_PAD_PX <= cell_w and font_px + 2 <= row_px


def tick_stride(n: int, px_per_cell: float) -> int:
    """Label every k-th of n cells, k the smallest that keeps labels LABEL_PX apart (1 = all)."""
    return max(1, int(np.ceil(LABEL_PX / max(px_per_cell, 1e-9)))) if n > 1 else 1


def _short(labels: list[str]) -> list[str]:
    """Tick labels without the folders every label shares and a common ending (thunlp:
    'thunlp-prompt-transferability/task_prompt_emb/' and 'PromptRoberta'): core.labels' one rule.
    The hover names each cell in full."""
    labels = [str(x) for x in labels]
    short = L.short_names(labels)
    return [short[x] for x in labels]


def heatmap_figure(mat: pd.DataFrame, *, clustering: M.Clustering | None = None, annotate: bool = False,
                   diverging: bool = False, noise: pd.DataFrame | None = None, zlabel: str = "",
                   height: int | None = None, clickable: bool = True,
                   row_info: list[str] | None = None, col_info: list[str] | None = None,
                   what: tuple[str, str] = ("source", "target"), gain: bool = False,
                   marks: pd.DataFrame | None = None, hover: pd.DataFrame | None = None) -> go.Figure:
    """Heatmap (row 0 at the top) with optional dendrograms, cell labels, noise-band markers and a
    transparent square-marker layer at the cell centres that carries the click selection.

    row_info / col_info: a note per row / column shown in the hover (blocks: "52 prompts");
    the click layer's customdata is then [row, column, value, row note, column note].
    what: how the hover names a row and a column ("source block", "target block").
    gain: the values are relative gains (fractions): cells, hover and colour bar read in percent
    (core.fmt: one unit for gains everywhere).
    marks: core.evidence's mark per cell (measured): self-transfer cells are greyed and hatched and left
    out of the colour range, every other mark but "inside noise" (the ○ layer) is written in the cell's
    corner (★ evidence, ✕ not measurable, ? noise unknown, ⚠ flagged, ...). hover: a line per cell
    (the absolute numbers) that replaces the value in the hover.
    """
    rows, cols = [str(x) for x in mat.index], [str(x) for x in mat.columns]
    z = mat.to_numpy(dtype=float)
    n_r, n_c = z.shape
    xs, ys = np.arange(n_c), np.arange(n_r)
    dendro = clustering is not None and bool(clustering.row_lines or clustering.col_lines)
    if dendro:
        # axes linked by `matches` below (make_subplots' shared axes would hide the heatmap's row labels)
        # heatmap bottom-left, column dendrogram above it, row dendrogram to its right (row labels stay
        # on the left, clear of the tree)
        fig = make_subplots(rows=2, cols=2, column_widths=[0.88, 0.12], row_heights=[0.12, 0.88],
                            horizontal_spacing=0.004, vertical_spacing=0.004, specs=[[{}, None], [{}, {}]])
        pos = dict(row=2, col=1)
    else:
        fig = go.Figure()
        pos = {}
    mk = (marks.reindex(index=mat.index, columns=mat.columns).fillna("").to_numpy(dtype=object)
          if marks is not None else None)
    self_cells = (mk == E.SELF) if mk is not None else np.zeros(z.shape, dtype=bool)
    flagged = (mk == E.FLAGGED) if mk is not None else np.zeros(z.shape, dtype=bool)
    # a self-transfer is no transfer, a cell of flagged runs no finding: neither sets the colour range
    # every real transfer is read on
    finite = z[np.isfinite(z) & ~self_cells & ~flagged]
    zmax = float(np.abs(finite).max()) if finite.size else 1.0
    zrange = {}
    if not diverging and self_cells.any():
        # a source's own task predicts itself best: scale colours by the other cells (as the diagonal below)
        off = z[~self_cells & np.isfinite(z)]
        if off.size and off.max() > off.min():
            zrange = {"zmin": float(off.min()), "zmax": float(off.max())}
    elif not diverging and rows == cols and n_r > 2:
        # a prompt is always most similar to itself: scale colours by the off-diagonal values,
        # or the diagonal flattens every other contrast
        off = z[~np.eye(n_r, dtype=bool) & np.isfinite(z)]
        if off.size and off.max() > off.min():
            zrange = {"zmin": float(off.min()), "zmax": float(off.max())}
    if flagged.any():  # not coloured at all (the grey marker alone is smaller than a wide cell): no gain to read
        z = np.where(flagged, np.nan, z)
    font_px = 9 if max(n_r, n_c) > 20 else 11
    if annotate:  # values only where they fit; the hover keeps every one
        sample = [fmt.gain(v, 0) if gain else f"{v:.2f}" for v in z.reshape(-1)[:4000] if np.isfinite(v)]
        row_guess = float(np.clip(700 / max(n_r, 1), 12, 26)) if height is None else (height - 170) / max(n_r, 1)
        annotate = values_fit(n_c, n_r, sample, font_px, dendro=dendro, row_px=row_guess)
        values_hidden = not annotate
    else:
        values_hidden = False
    heat = go.Heatmap(
        z=z, x=xs, y=ys, hoverinfo="skip" if clickable else None, xgap=0.5 if max(n_r, n_c) <= 60 else 0,
        ygap=0.5 if max(n_r, n_c) <= 60 else 0,
        colorscale=DIVERGING if diverging else SEQUENTIAL,
        zmid=0.0 if diverging else None, zmin=-zmax if diverging else zrange.get("zmin"),
        zmax=zmax if diverging else zrange.get("zmax"),
        # gain labels are written here (core.fmt.gain): plotly's d3 "+.0%" prints -0.004 as "-0%"
        text=[[fmt.gain(v, 0) for v in row] for row in z] if gain and annotate else None,
        texttemplate=("%{text}" if gain else "%{z:.2f}") if annotate else None, textfont={"size": font_px},
        colorbar={"title": {"text": zlabel, "side": "right"}, "thickness": 12, "len": 0.8 if dendro else 1.0,
                  "y": 0.44 if dendro else 0.5, "x": 1.01, **({"tickformat": ".0%"} if gain else {})},
        # a gain's hover is written by core.fmt.gain too (d3's "+.1%" reads -0.0004 as "-0.0%")
        customdata=(hover.reindex(index=mat.index, columns=mat.columns).fillna("").to_numpy(dtype=str).tolist()
                    if hover is not None and not clickable else
                    [[fmt.gain(v) if np.isfinite(v) else "" for v in row] for row in z] if gain and not clickable
                    else None),
        hovertemplate=None if clickable else (("%{customdata}" if gain or hover is not None else "%{z:.3f}") + "<extra></extra>"))
    fig.add_trace(heat, **pos)
    row_px = float(np.clip(700 / max(n_r, 1), 12, 26))
    h = height or int(np.clip(170 + row_px * n_r * (1.14 if dendro else 1.0), 380, 1700))
    cell_px = max(4.0, min(28.0, (h - 170) * (0.88 if dendro else 1.0) / max(n_r, 1)))
    if noise is not None:
        nm = noise.reindex(index=mat.index, columns=mat.columns).fillna(False).to_numpy(dtype=bool)
        rr, cc = np.nonzero(nm)
        if len(rr):
            # white dot with a black rim in the cell's top-right corner, above the value label (which is
            # centred and at most ~0.4 of a cell high): visible on any colour and in greyscale
            fig.add_trace(go.Scatter(
                x=cc + NOISE_DX, y=rr - NOISE_DY, mode="markers", name="inside noise band", hoverinfo="skip",
                showlegend=False,  # the caption under every such figure says what ○ means: a legend
                                   # sits where plotly's toolbar is (over it, in a half-width figure)
                marker={"symbol": "circle", "size": max(4.0, cell_px * NOISE_SIZE), "color": "white",
                        "line": {"color": "black", "width": 1}}), **pos)
    if mk is not None:
        rr, cc = np.nonzero(self_cells)
        if len(rr):  # greyed and hatched: drawn apart from the transfers
            fig.add_trace(go.Scatter(
                x=cc, y=rr, mode="markers", name=E.SELF, hoverinfo="skip", showlegend=False,
                marker={"symbol": "square-x", "size": cell_px, "color": "rgba(160,160,160,0.85)",
                        "line": {"color": "rgba(90,90,90,0.9)", "width": 1}}), **pos)
        rr, cc = np.nonzero(flagged)
        if len(rr):  # every run of the cell flagged (e.g. kept its initial prompt): greyed, never a coloured gain
            fig.add_trace(go.Scatter(
                x=cc, y=rr, mode="markers", name=E.FLAGGED, hoverinfo="skip", showlegend=False,
                marker={"symbol": "square", "size": cell_px, "color": "rgba(200,200,200,0.92)",
                        "line": {"color": "rgba(90,90,90,0.9)", "width": 1}}), **pos)
        sym = np.vectorize(lambda m: E.MARK_SYMBOL.get(m, "") if m not in (E.SELF, E.INSIDE_NOISE) else "")(mk) \
            if mk.size else mk
        rr, cc = np.nonzero(sym != "")
        if len(rr):  # the mark in the cell's top-left corner (the ○ of the noise band is top-right)
            fig.add_trace(go.Scatter(
                x=cc - NOISE_DX, y=rr - NOISE_DY, mode="text", text=[str(sym[r, c]) for r, c in zip(rr, cc)],
                name="evidence marks", hoverinfo="skip", showlegend=False,
                textfont={"size": max(7.0, min(12.0, cell_px * 0.45)), "color": "black"}), **pos)
    if clickable:
        rr, cc = np.meshgrid(ys, xs, indexing="ij")
        vals = [("" if not np.isfinite(v) else f"{v:.3f}") for v in z.reshape(-1)]  # for a click: the value
        shown = [("" if not np.isfinite(v) else fmt.gain(v)) for v in z.reshape(-1)] if gain else vals  # the hover
        if hover is not None:  # the absolute numbers behind a measured cell, and its mark
            hv = hover.reindex(index=mat.index, columns=mat.columns).fillna("").to_numpy(dtype=object).reshape(-1)
            shown = [h or v for h, v in zip(hv, shown)]
        # one row per cell, row-major: [source, target, value(, source note, target note)]. Built and
        # handed to plotly as numpy string arrays: plotly validates (and deep-copies) a list of lists
        # element by element, 4 of a 300-prompt page's 7 s; an array it takes as is.
        columns = [np.repeat(np.array(rows, dtype=str), n_c), np.tile(np.array(cols, dtype=str), n_r),
                   np.array(vals, dtype=str)]
        if row_info is not None and col_info is not None:
            columns += [np.repeat(np.array(row_info, dtype=str), n_c), np.tile(np.array(col_info, dtype=str), n_r)]
            notes = (" (%{customdata[3]})", " (%{customdata[4]})")
        else:
            notes = ("", "")
        # the hover shows the names as plotly text (core.safetext: no <a href> from a prompt's name);
        # columns 0 and 1 stay the raw names a click hands back
        columns += [np.repeat(np.array(S.plotly_all(rows), dtype=str), n_c),
                    np.tile(np.array(S.plotly_all(cols), dtype=str), n_r)]
        shown_r, shown_c = f"%{{customdata[{len(columns) - 2}]}}", f"%{{customdata[{len(columns) - 1}]}}"
        custom = np.stack(columns, axis=1)
        shown = np.array(shown, dtype=str)
        # SVG markers cost ~0.08 ms each to draw, WebGL ~2 s to start in a browser without a GPU
        # (headless Chromium, measured on 10,000 and 90,000 cells): SVG up to GL_CELLS cells
        trace = go.Scattergl if n_r * n_c > GL_CELLS else go.Scatter
        fig.add_trace(trace(
            x=cc.reshape(-1), y=rr.reshape(-1), mode="markers", name="cells", showlegend=False,
            marker={"symbol": "square", "size": cell_px, "color": "rgba(0,0,0,0)"},
            customdata=custom, text=shown, selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}},
            hovertemplate=f"{what[0]} {shown_r}{notes[0]}<br>{what[1]} {shown_c}{notes[1]}<br>"
                          + (zlabel or "value") + " %{text}<extra></extra>"), **pos)
    tick = {"size": 9 if max(n_r, n_c) > 30 else 11}
    kx = tick_stride(n_c, PLOT_PX / max(n_c, 1))
    ky = tick_stride(n_r, cell_px)
    xt, yt = S.plotly_all(_short(cols)[::kx]), S.plotly_all(_short(rows)[::ky])
    # automargin measures every label in the browser and relays the figure out until the margins
    # fit (~1 s at 100 labels per axis); with many labels the margins are set here from the longest
    # label instead (tick font ~0.6 em per character; x labels are turned 60 degrees)
    auto = max(len(xt), len(yt)) <= MANY_TICKS
    fig.update_xaxes(tickvals=xs[::kx], ticktext=xt, tickangle=-60, tickfont=tick, showgrid=False,
                     zeroline=False, range=[-0.5, n_c - 0.5], side="bottom", automargin=auto, **pos)
    fig.update_yaxes(tickvals=ys[::ky], ticktext=yt, tickfont=tick, showgrid=False, zeroline=False,
                     range=[n_r - 0.5, -0.5], automargin=auto, **pos)
    em = 0.6 * tick["size"]
    # the first x label, turned 60 degrees, reaches left of the plot by half its length: plotly's automargin
    # grows the left margin for the y labels only, so a short y label let it be clipped ("rty_parliament")
    margin = {"l": int(10 + em * len(xt[0]) * 0.5) if len(xt) else 10, "r": 10, "t": 30, "b": 10}
    if not auto:
        margin["l"] = max(margin["l"], int(16 + em * max(map(len, yt), default=0)))
        margin["b"] = int(16 + em * max(map(len, xt), default=0) * 0.87)
    if dendro:
        def lines(pairs, swap):
            X, Y = [], []
            for p, hgt in pairs:
                a, b = (hgt, p) if swap else (p, hgt)
                X += list(a) + [None]
                Y += list(b) + [None]
            return X, Y
        X, Y = lines(clustering.col_lines, swap=False)
        fig.add_trace(go.Scatter(x=X, y=Y, mode="lines", line={"color": "#444", "width": 1}, hoverinfo="skip",
                                 showlegend=False), row=1, col=1)
        X, Y = lines(clustering.row_lines, swap=True)
        fig.add_trace(go.Scatter(x=X, y=Y, mode="lines", line={"color": "#444", "width": 1}, hoverinfo="skip",
                                 showlegend=False), row=2, col=2)
        heat_x = fig.data[0].xaxis or "x"
        heat_y = fig.data[0].yaxis or "y"
        fig.update_xaxes(visible=False, row=2, col=2)
        fig.update_yaxes(visible=False, row=1, col=1)
        fig.update_xaxes(matches=heat_x, visible=False, row=1, col=1)
        fig.update_yaxes(matches=heat_y, visible=False, row=2, col=2)
    fig.update_layout(height=h, margin=margin, plot_bgcolor="white",
                      clickmode="event+select", dragmode=False if clickable else "zoom", showlegend=False,
                      # asked-for cell values left to the hover (too dense to read): the page says so
                      meta={"values_hidden": values_hidden})
    return fig


def overview_figure(ov: B.Overview, row_groups: B.Groups, col_groups: B.Groups, *, diverging: bool = False,
                    zlabel: str = "", height: int = 520) -> go.Figure:
    """The whole matrix pooled into at most B.OVERVIEW_MAX bins per axis (core.blocks.overview,
    in block order), with the block borders drawn. The hover names the bin's prompt positions and
    the block(s) it stands for: a few hundred axis labels are sent, never one text per cell."""
    rspan, cspan = B.spans(ov.row_edges, row_groups), B.spans(ov.col_edges, col_groups)
    ylab = [f"{S.plotly(s)} · #{a + 1}–{b}" for s, a, b in zip(rspan, ov.row_edges[:-1], ov.row_edges[1:])]
    xlab = [f"{S.plotly(s)} · #{a + 1}–{b}" for s, a, b in zip(cspan, ov.col_edges[:-1], ov.col_edges[1:])]
    z = ov.values.astype(np.float32)  # a colour per bin: float32 halves what is sent
    finite = z[np.isfinite(z)]
    zmax = float(np.abs(finite).max()) if finite.size else 1.0
    fig = go.Figure(go.Heatmap(
        z=z, x=xlab, y=ylab, colorscale=DIVERGING if diverging else SEQUENTIAL, zmid=0.0 if diverging else None,
        zmin=-zmax if diverging else None, zmax=zmax if diverging else None,
        colorbar={"title": {"text": zlabel, "side": "right"}, "thickness": 12},
        hovertemplate="sources %{y}<br>targets %{x}<br>mean " + (zlabel or "value") + " %{z:.3f}<extra></extra>"))
    step_r = max(1, int(ov.row_edges[1] - ov.row_edges[0])) if len(ov.row_edges) > 1 else 1
    step_c = max(1, int(ov.col_edges[1] - ov.col_edges[0])) if len(ov.col_edges) > 1 else 1
    shapes = []
    for starts, step, along in ((np.cumsum([len(v) for v in row_groups.values()])[:-1], step_r, "h"),
                                (np.cumsum([len(v) for v in col_groups.values()])[:-1], step_c, "v")):
        for p in starts:
            q = p / step - 0.5
            shapes.append({"type": "line", "xref": "x" if along == "v" else "paper",
                           "yref": "y" if along == "h" else "paper", "x0": q if along == "v" else 0,
                           "x1": q if along == "v" else 1, "y0": q if along == "h" else 0, "y1": q if along == "h" else 1,
                           "line": {"color": "white", "width": 0.6}})
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10}, plot_bgcolor="white",
                      shapes=shapes)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, title_text="targets →")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     title_text="← sources")
    return fig
