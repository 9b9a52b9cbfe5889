"""Embedding figures: 2-D maps, panels side by side, distance heatmaps, alignment boxes."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import color_for, ordered


def is_continuous(values: pd.Series) -> bool:
    """Whether a column is coloured on a continuous scale (a float column such as ``p_fake``)
    rather than one colour per value."""
    return pd.api.types.is_float_dtype(values)


def scatter_2d(df: pd.DataFrame, xy: np.ndarray, color: str = "method",
               hover: Sequence[str] = ("clip_id", "video_id", "method", "identity"),
               title: str = "", marker_size: int = 7, width: int = 700,
               height: int = 560, colorscale: str = "Viridis",
               crange: tuple[float, float] | None = None) -> go.Figure:
    """A 2-D map (e.g. UMAP) of the rows of ``df``, one trace per value of ``df[color]``.

    ``xy``: ``[N, 2]`` coordinates aligned with ``df``'s rows. The row position is kept in each
    point's ``customdata[0]`` so a click can find the clip again. A float column (``p_fake``, a
    rejection score) is drawn as one trace on a continuous ``colorscale`` with a colour bar,
    from ``crange`` (default: the column's range).
    """
    xy = np.asarray(xy)
    if len(xy) != len(df):
        raise ValueError(f"{len(xy)} coordinates for {len(df)} rows")
    hover = [h for h in hover if h in df.columns and h != color]
    fig = go.Figure()
    if is_continuous(df[color]):
        rows = np.arange(len(df))
        vals = df[color].to_numpy(dtype=float)
        lo, hi = crange or (float(np.nanmin(vals)), float(np.nanmax(vals))) if len(vals) \
            else (0.0, 1.0)
        custom = np.column_stack([rows] + [df[h].astype(str).to_numpy() for h in hover])
        tmpl = "<br>".join([f"{color}: %{{marker.color:.3f}}"]
                           + [f"{h}: %{{customdata[{j + 1}]}}" for j, h in enumerate(hover)])
        fig.add_trace(go.Scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name=color, showlegend=False,
            marker=dict(size=marker_size, color=vals, colorscale=colorscale, cmin=lo, cmax=hi,
                        showscale=True, colorbar=dict(title=dict(text=color)), opacity=0.8),
            customdata=custom, hovertemplate=tmpl + "<extra></extra>"))
    else:
        values = df[color].astype(str).to_numpy()
        for i, v in enumerate(ordered(values)):
            rows = np.flatnonzero(values == v)
            custom = np.column_stack([rows] + [df[h].astype(str).to_numpy()[rows] for h in hover])
            tmpl = "<br>".join([f"{color}: {v}"] + [f"{h}: %{{customdata[{j + 1}]}}"
                                                     for j, h in enumerate(hover)])
            fig.add_trace(go.Scatter(x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=v,
                                     marker=dict(size=marker_size, color=color_for(v, i),
                                                 opacity=0.8),
                                     customdata=custom, hovertemplate=tmpl + "<extra></extra>"))
    fig.update_layout(title=title, width=width, height=height, legend_title=color,
                      xaxis=dict(showticklabels=False, title=""),
                      yaxis=dict(showticklabels=False, title=""))
    return fig


def timeline_figure(starts: Sequence[float], p_fake: Sequence[float], window_s: float,
                    fake_segments: Sequence[Sequence[float]] | None = None, title: str = "",
                    width: int = 700, height: int = 260) -> go.Figure:
    """p_fake of each window of one video over time, beside the video's known fake segments.

    ``starts`` ``[K]`` window starts (s), ``p_fake`` ``[K]``, each window ``window_s`` long;
    ``fake_segments`` ``[[start_s, end_s], ...]`` (a LAV-DF / AV-Deepfake1M partial fake's
    metadata) are shaded. Three traces, always present (empty when there is nothing to show):
    the shaded segments, p_fake per window (a point at each window's centre), and the 0.5
    decision line, so a live figure can be restyled in place.
    """
    starts = np.asarray(starts, dtype=float)
    p = np.asarray(p_fake, dtype=float)
    end = float(starts[-1] + window_s) if len(starts) else 1.0
    sx, sy = [], []
    for a, b in fake_segments or []:
        sx += [a, a, b, b, None]
        sy += [0, 1, 1, 0, None]
    fig = go.Figure([
        go.Scatter(x=sx, y=sy, fill="toself", mode="lines", line=dict(width=0),
                   fillcolor="rgba(214,39,40,0.18)", name="known fake segment",
                   showlegend=bool(sx), hoverinfo="skip"),
        go.Scatter(x=starts + window_s / 2, y=p, mode="lines+markers", name="p_fake per window",
                   marker=dict(size=8, color="#1f77b4"), customdata=np.arange(len(p)),
                   hovertemplate="window %{customdata}: %{x:.2f} s<br>p_fake %{y:.3f}"
                                 "<extra></extra>"),
        go.Scatter(x=[0, end], y=[0.5, 0.5], mode="lines", name="decision (0.5)",
                   line=dict(dash="dash", color="#7f7f7f", width=1), hoverinfo="skip"),
    ])
    fig.update_layout(title=title, width=width, height=height, margin=dict(t=50, b=40),
                      xaxis=dict(title="time in the video (s)", range=[0, end]),
                      yaxis=dict(title="p_fake", range=[-0.02, 1.02]),
                      legend=dict(orientation="h", y=-0.35))
    return fig


_AXIS_KEYS = ("showticklabels", "autorange", "title", "tickangle", "scaleanchor", "constrain")


def side_by_side(figs: Sequence[go.Figure], titles: Sequence[str], title: str = "",
                 width_each: int = 560, height: int = 520) -> go.Figure:
    """Put the traces of several single-panel figures next to each other (one row).

    Traces with the same name share one legend entry (shown once), so maps coloured by the
    same column read together; unnamed traces (heatmaps) get no legend entry. Each panel keeps
    its source figure's axis settings (tick labels, reversed y of a heatmap), so class names
    stay on heatmap axes, and each heatmap's colour bar sits beside its own panel.
    """
    n = len(figs)
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(titles),
                        horizontal_spacing=0.12 if any(
                            t.type == "heatmap" for f in figs for t in f.data) else 0.04)
    seen: set[str] = set()
    for c, f in enumerate(figs, start=1):
        xdom = fig.get_subplot(1, c).xaxis.domain
        for t in f.data:
            t = go.Figure(t).data[0]                     # a copy, so ``f`` is left untouched
            if t.type == "heatmap":
                t.showlegend = False
                t.colorbar = dict(x=xdom[1] + 0.01, len=0.9, thickness=12)
            else:
                t.legendgroup = t.name
                t.showlegend = bool(t.name) and t.name not in seen
                if t.name:
                    seen.add(t.name)
            fig.add_trace(t, row=1, col=c)
        for ax, src in (("xaxis", f.layout.xaxis), ("yaxis", f.layout.yaxis)):
            props = {k: src[k] for k in _AXIS_KEYS if src[k] is not None and k != "scaleanchor"}
            (fig.update_xaxes if ax == "xaxis" else fig.update_yaxes)(row=1, col=c, **props)
    fig.update_layout(title=title, width=width_each * n, height=height,
                      showlegend=bool(seen), margin=dict(b=90))
    return fig


def distance_heatmap(D: pd.DataFrame, title: str = "Centroid distances") -> go.Figure:
    """Heatmap of a square class-distance matrix (e.g. from ``geometry.centroid_distances``)."""
    fig = go.Figure(go.Heatmap(z=D.to_numpy(), x=[str(c) for c in D.columns],
                               y=[str(r) for r in D.index], colorscale="Viridis",
                               text=[[f"{v:.2f}" for v in row] for row in D.to_numpy()],
                               texttemplate="%{text}",
                               hovertemplate="%{y} - %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis=dict(showticklabels=True, tickangle=-40),
                      yaxis=dict(autorange="reversed", showticklabels=True), width=600, height=540)
    return fig


def alignment_figure(values: pd.DataFrame, by: str = "method", value: str = "alignment",
                     kind: str = "box",
                     title: str = "Per-clip cos(f_v, f_a): visual vs audio fingerprint"
                     ) -> go.Figure:
    """Box (or violin) plot of a per-clip value grouped by class (one box per class)."""
    if kind not in ("box", "violin"):
        raise ValueError(f"kind must be 'box' or 'violin', got {kind!r}")
    groups = values[by].astype(str).to_numpy()
    fig = go.Figure()
    for i, g in enumerate(ordered(groups)):
        y = values.loc[groups == g, value].to_numpy()
        trace = go.Box(y=y, name=g, boxpoints="all", jitter=0.4, pointpos=0) if kind == "box" \
            else go.Violin(y=y, name=g, box_visible=True, points="all")
        trace.marker.color = color_for(g, i)
        fig.add_trace(trace)
    fig.update_layout(title=title, yaxis=dict(title=value, range=[-1.05, 1.05]),
                      showlegend=False, width=720, height=440)
    return fig



def embedding_panels(maps: dict[str, tuple[pd.DataFrame, np.ndarray]], title: str = "",
                     color: str = "method", size: int = 480) -> go.Figure:
    """Several 2-D maps side by side: ``{panel title: (rows, [N, 2] coordinates)}``, each a
    :func:`scatter_2d` coloured by ``color``, one shared legend."""
    if not maps:
        return go.Figure(layout=dict(title=title, width=size, height=size))
    figs = [scatter_2d(df, xy, color=color, marker_size=6) for df, xy in maps.values()]
    return side_by_side(figs, list(maps), title=title, width_each=size, height=size)
