"""The explorer's map: a 2-D map of each embedding space, its colourings, and its traces.

Spaces: ``shared`` = ``embedding``, ``visual`` = ``f_v``, ``audio`` = ``f_a``
(:data:`SPACES`). Colourings: the groups of :data:`COLOR_BY` present in the table, then the
score columns of :data:`COLOR_SCALES` on a continuous scale.

How the map stays right in a browser: it is the one plotly ``FigureWidget`` of the explorer
(see :mod:`amdd_kit.ui.plotly_widgets`), built *with* its content (:func:`map_figure`), and every
later change restyles the existing traces (:func:`restyle_colour_traces`,
:func:`restyle_video_trace`) inside ``batch_update()``: one trace per colour value of the most
varied colouring (:func:`n_colour_traces`; unused ones are hidden) plus the video's trace.
Neither the traces nor the layout are ever replaced, which would lose the subplot domains in
the browser. Every trace of one update gets the same leaf keys (``marker.color``,
``marker.size``, ...; :func:`restyle_marker`), never a whole ``marker`` on some and
``marker.color`` on others: plotly.js refuses such an update ("cannot set marker.color and a
parent attribute simultaneously") and the map would keep its old colouring.
"""
from __future__ import annotations

import html
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .. import geometry
from ..config import METHODS
from ..viz import is_continuous, scatter_2d

#: explorer space name -> embeddings.parquet column
SPACES: dict[str, str] = {"shared": "embedding", "visual": "f_v", "audio": "f_a"}
COLOR_BY: tuple[str, ...] = ("method", "category", "identity", "correctness", "dataset",
                             "pred_method")
#: score columns coloured on a continuous scale when the table has them: column -> (colour
#: scale, fixed range or None for the column's own)
COLOR_SCALES: dict[str, tuple[str, tuple[float, float] | None]] = {
    "p_fake": ("RdBu_r", (0.0, 1.0)), "reject_score": ("Viridis", None)}

#: marker of the map's unused (hidden) traces
_HIDDEN_MARKER = dict(size=7, color="#7f7f7f", opacity=0.8)
#: the student's video on the map: large stars with a dark outline
_VIDEO_MARKER = dict(size=17, color="#ffd700", symbol="star", opacity=1.0,
                     line=dict(color="#111111", width=1.5))

__all__ = ["SPACES", "COLOR_BY", "COLOR_SCALES", "SpaceMaps", "correctness", "colour_options",
           "n_colour_traces", "map_scatter", "map_figure", "restyle_marker",
           "restyle_colour_traces", "restyle_video_trace", "visible_traces"]


def correctness(df: pd.DataFrame) -> pd.Series:
    """``correct`` / ``wrong`` per row: attribution for the 7 classes, detection otherwise
    (against the window label ``clip_label`` when the table has one, else ``label``)."""
    known = df["method"].isin(METHODS)
    attr_ok = df["pred_method"] == df["method"] if "pred_method" in df else known & False
    target = "clip_label" if "clip_label" in df else "label"
    det_ok = (df["pred_label"] == df[target]) if {"pred_label", target} <= set(df.columns) \
        else pd.Series(False, index=df.index)
    return pd.Series(np.where(np.where(known, attr_ok, det_ok), "correct", "wrong"),
                     index=df.index)


class SpaceMaps:
    """The 2-D map of each space of an embeddings table ``df``: given (``coords``: ``{space:
    [N,2] array or geometry.Map2D}``) or fitted with :func:`amdd_kit.geometry.umap_map` on
    first use, then cached. A :class:`~amdd_kit.geometry.Map2D` places new points with UMAP's
    ``transform``, one made from a plain array by the points' nearest rows."""

    def __init__(self, df: pd.DataFrame, coords: Mapping[str, Any] | None = None, seed: int = 0,
                 n_neighbors: int = 15):
        self.df, self.seed, self.n_neighbors = df, seed, n_neighbors
        #: the spaces the table (or ``coords``) has, in :data:`SPACES` order
        self.spaces = [s for s, col in SPACES.items()
                       if col in df.columns or (coords and s in coords)]
        if not self.spaces:
            raise ValueError(f"the table has none of the embedding columns {list(SPACES.values())}")
        self._maps: dict[str, geometry.Map2D] = {}
        self._coords: dict[str, np.ndarray] = {}
        for k, v in (coords or {}).items():
            if isinstance(v, geometry.Map2D):
                self._maps[k] = v
            else:
                self._coords[k] = np.asarray(v)

    def map(self, space: str) -> geometry.Map2D:
        """The fitted 2-D map of one space (UMAP, computed once and cached)."""
        if space not in self._maps:
            X = geometry.stack_column(self.df, SPACES[space])
            if space in self._coords:
                self._maps[space] = geometry.Map2D(self._coords[space], X, None)
            else:
                self._maps[space] = geometry.umap_map(X, seed=self.seed,
                                                      n_neighbors=self.n_neighbors)
        return self._maps[space]

    def coords(self, space: str) -> np.ndarray:
        """2-D map ``[N, 2]`` of one space."""
        if space in self._coords:
            return self._coords[space]
        return self.map(space).xy


def colour_options(df: pd.DataFrame) -> list[str]:
    """The colourings of ``df``: the :data:`COLOR_BY` columns it has, then its continuous
    :data:`COLOR_SCALES` columns."""
    return ([c for c in COLOR_BY if c in df.columns]
            + [c for c in COLOR_SCALES if c in df.columns and is_continuous(df[c])])


def n_colour_traces(df: pd.DataFrame) -> int:
    """How many colour traces the map holds: the number of values of the most varied
    :data:`COLOR_BY` column of ``df`` (at least 1)."""
    return max([df[c].astype(str).nunique() for c in COLOR_BY if c in df.columns] + [1])


def map_scatter(df: pd.DataFrame, xy: np.ndarray, space: str, color: str) -> go.Figure:
    """The map of ``space`` (points ``xy`` ``[N,2]``) coloured by ``color``, as a fresh figure
    (:func:`amdd_kit.viz.scatter_2d`) whose traces are copied onto the live map."""
    scale, crange = COLOR_SCALES.get(color, ("Viridis", None))
    return scatter_2d(df, xy, color=color, colorscale=scale, crange=crange,
                      title=f"{space} space (UMAP), coloured by {color}")


def map_figure(scatter: go.Figure, n_traces: int, live: bool) -> go.Figure:
    """The map built with its content: ``scatter``'s traces, hidden empty traces up to
    ``n_traces``, then the (empty, hidden) trace of the student's video at index ``n_traces``.
    A ``FigureWidget`` when ``live``, else a plain ``go.Figure``."""
    for _ in range(n_traces - len(scatter.data)):
        scatter.add_trace(go.Scatter(x=[], y=[], mode="markers", name="", visible=False,
                                     showlegend=False, marker=_HIDDEN_MARKER,
                                     customdata=np.empty((0, 1)), hovertemplate=""))
    scatter.add_trace(go.Scatter(x=[], y=[], mode="markers", name="your video", visible=False,
                                 showlegend=False, marker=_VIDEO_MARKER,
                                 customdata=np.empty((0, 1)), hovertemplate=""))
    return (go.FigureWidget if live else go.Figure)(scatter)


def restyle_marker(trace: Any, marker: Any) -> None:
    """Set the marker's leaf properties one by one (never the whole ``marker``)."""
    m = marker if isinstance(marker, dict) else marker.to_plotly_json()
    trace.marker.color = m.get("color")
    trace.marker.size = m.get("size", 7)
    trace.marker.opacity = m.get("opacity", 0.8)
    continuous = "colorscale" in m
    trace.marker.showscale = continuous
    if continuous:
        trace.marker.colorscale = m["colorscale"]
        trace.marker.cmin, trace.marker.cmax = m.get("cmin"), m.get("cmax")
        trace.marker.colorbar.title.text = m.get("colorbar", {}).get("title", {}).get("text")


def restyle_colour_traces(fig: go.Figure, new: go.Figure, n_traces: int) -> None:
    """Copy ``new``'s traces onto the first ``n_traces`` traces of the map ``fig`` in place;
    the ones ``new`` does not fill are emptied and hidden (call inside ``batch_update()``)."""
    for i, trace in enumerate(fig.data[:n_traces]):
        if i < len(new.data):
            src = new.data[i]
            trace.update(x=src.x, y=src.y, name=src.name, customdata=src.customdata,
                         hovertemplate=src.hovertemplate, visible=True,
                         showlegend=src.showlegend is not False)
            restyle_marker(trace, src.marker)
        else:   # the same properties on every trace: plotly.js gets no holes
            trace.update(x=[], y=[], name="", customdata=np.empty((0, 1)),
                         hovertemplate="", visible=False, showlegend=False)
            restyle_marker(trace, _HIDDEN_MARKER)


def restyle_video_trace(trace: Any, xy: np.ndarray, table: pd.DataFrame, name: str) -> None:
    """Show a video's windows (``xy`` ``[K,2]``, the per-window ``table`` of
    :func:`amdd_kit.inference.video_windows`) as the map's stars; ``name``: the file's name."""
    custom = np.column_stack([table["window"].to_numpy(), table["start_s"].round(2).to_numpy(),
                              table["p_fake"].round(3).to_numpy(),
                              table["pred_method"].to_numpy()])
    name = html.escape(name)
    trace.update(x=xy[:, 0], y=xy[:, 1], name="your video", customdata=custom, visible=True,
                 showlegend=True,
                 hovertemplate=f"{name}, window %{{customdata[0]}} at %{{customdata[1]}} s"
                               "<br>p_fake %{customdata[2]}<br>predicted %{customdata[3]}"
                               "<extra>your video</extra>")
    restyle_marker(trace, _VIDEO_MARKER)


def visible_traces(fig: go.Figure) -> list:
    """The map traces currently shown (one per colour value, and the video's)."""
    return [t for t in fig.data if t.visible is not False]
