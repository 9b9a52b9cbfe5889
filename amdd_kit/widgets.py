"""An interactive explorer of the embedding spaces (ipywidgets + plotly ``FigureWidget``).

::

    ex = EmbeddingExplorer(df, store=ClipStore(path))   # df: embeddings.parquet of a run
    ex.show()                                           # live kernel: dropdowns, map, clip panel
    ex.static_figure()                                  # plain figure for papermill / HTML export

Choose the space (``shared`` = ``emb_shared``, ``visual`` = ``fp_visual``, ``audio`` =
``fp_audio``), colour the points by method / category / identity / correctness, hover to see the
ids, click a point to see that clip's frames and log-mel beside the map. The observers are plain
ipywidgets observers: setting ``ex.space.value = "audio"`` in code redraws the map exactly like a
click on the dropdown does, and :meth:`EmbeddingExplorer.select` shows a clip by row number
(what a click calls), so the explorer can be driven without a browser.
"""
from __future__ import annotations

import html
import logging
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import geometry
from .config import METHODS
from .viz import frames_mel_figure, scatter_2d

log = logging.getLogger(__name__)

#: explorer space name -> embeddings.parquet column
SPACES: dict[str, str] = {"shared": "emb_shared", "visual": "fp_visual", "audio": "fp_audio"}
COLOR_BY: tuple[str, ...] = ("method", "category", "identity", "correctness", "dataset",
                             "pred_method")

__all__ = ["EmbeddingExplorer", "SPACES", "correctness"]


def correctness(df: pd.DataFrame) -> pd.Series:
    """``correct`` / ``wrong`` per row: attribution for the 7 classes, detection otherwise."""
    known = df["method"].isin(METHODS)
    attr_ok = df["pred_method"] == df["method"] if "pred_method" in df else known & False
    det_ok = (df["pred_label"] == df["label"]) if {"pred_label", "label"} <= set(df.columns) \
        else pd.Series(False, index=df.index)
    return pd.Series(np.where(np.where(known, attr_ok, det_ok), "correct", "wrong"),
                     index=df.index)


class EmbeddingExplorer:
    """UMAP map of an embeddings table with space / colour dropdowns and a clip viewer.

    ``df``: embeddings table (``embeddings.parquet``: ids, ``method``, predictions, vectors).
    ``store``: the ClipStore the clips come from (optional; without it a click shows the ids
    only). ``coords``: precomputed 2-D maps ``{space: [N,2]}`` (computed with
    :func:`amdd_kit.geometry.umap_2d` on first use otherwise). ``live=False`` draws into plain
    ``go.Figure`` objects instead of ``FigureWidget``s: the dropdowns still work, there are no
    click callbacks, and a batch-executed notebook does not store plotly's widget JavaScript
    bundle (about 5 MB per figure widget).
    """

    def __init__(self, df: pd.DataFrame, store: Any = None,
                 coords: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                 n_neighbors: int = 15, live: bool = True):
        import ipywidgets as w

        if len(df) == 0:
            raise ValueError("EmbeddingExplorer needs a non-empty embeddings table")
        self.df = df.reset_index(drop=True).copy()
        if "method" in self.df and "correctness" not in self.df:
            self.df["correctness"] = correctness(self.df)
        self.store = store
        self.seed, self.n_neighbors = seed, n_neighbors
        self.spaces = [s for s, col in SPACES.items()
                       if col in self.df.columns or (coords and s in coords)]
        if not self.spaces:
            raise ValueError(f"the table has none of the embedding columns {list(SPACES.values())}")
        self._coords: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in (coords or {}).items()}
        colors = [c for c in COLOR_BY if c in self.df.columns]
        self.selected: int | None = None

        self.space = w.Dropdown(options=self.spaces, value=self.spaces[0], description="space")
        self.color = w.Dropdown(options=colors, value=colors[0], description="colour by")
        self.live = live
        Fig = go.FigureWidget if live else go.Figure
        self.fig = Fig()
        self.detail = Fig(layout=dict(width=520, height=380,
                                      title="click a point to see its clip"))
        self.info = w.HTML(value="")
        self.space.observe(self._on_change, names="value")
        self.color.observe(self._on_change, names="value")
        self.widget = w.VBox([w.HBox([self.space, self.color]),
                              w.HBox([self.fig, w.VBox([self.info, self.detail])])]) if live \
            else w.HBox([self.space, self.color])
        self._redraw()

    # -- data ------------------------------------------------------------------------------
    def coords(self, space: str) -> np.ndarray:
        """2-D map ``[N, 2]`` of one space (UMAP, computed once and cached)."""
        if space not in self._coords:
            X = geometry.stack_column(self.df, SPACES[space])
            self._coords[space] = geometry.umap_2d(X, seed=self.seed, n_neighbors=self.n_neighbors)
        return self._coords[space]

    # -- drawing ---------------------------------------------------------------------------
    def _scatter(self) -> go.Figure:
        space, color = self.space.value, self.color.value
        return scatter_2d(self.df, self.coords(space), color=color,
                          title=f"{space} space (UMAP), coloured by {color}")

    def _redraw(self) -> None:
        new = self._scatter()
        self.fig.data = []
        with self.fig.batch_update():
            self.fig.add_traces(list(new.data))
            self.fig.layout = new.layout
        if self.live:
            for trace in self.fig.data:
                trace.on_click(self._on_click)

    def _on_change(self, change: dict) -> None:
        self._redraw()

    def _on_click(self, trace, points, state=None) -> None:
        """plotly click callback: ``points.point_inds`` index into the clicked trace."""
        inds = list(getattr(points, "point_inds", []) or [])
        if inds:
            self.select(int(trace.customdata[inds[0]][0]))

    def select(self, row: int) -> None:
        """Show the clip of table row ``row``: its ids, and frames + mel when a store is given."""
        if not 0 <= row < len(self.df):
            raise IndexError(f"row {row} outside the table (0..{len(self.df) - 1})")
        self.selected = row
        r = self.df.iloc[row]
        keys = [k for k in ("clip_id", "video_id", "identity", "method", "pred_method", "p_fake",
                            "path") if k in r.index]
        self.info.value = "<br>".join(f"<b>{k}</b>: {html.escape(str(r[k]))}" for k in keys)
        fig = self._clip_figure(r)
        self.detail.data = []
        with self.detail.batch_update():
            self.detail.add_traces(list(fig.data))
            self.detail.layout = fig.layout

    def _clip_figure(self, r: pd.Series) -> go.Figure:
        title = f"clip {r.get('clip_id', '?')}: {r.get('method', '?')}"
        if self.store is None or "clip_id" not in r.index:
            return go.Figure(layout=dict(title=title + " (no store given: ids only)",
                                         width=520, height=380))
        m = self.store.manifest
        hits = np.flatnonzero(m["clip_id"].to_numpy() == r["clip_id"])
        if len(hits) == 0:
            log.warning("clip_id %s is not in the store", r["clip_id"])
            return go.Figure(layout=dict(title=title + " (not in this store)"))
        i = int(hits[0])
        fig = frames_mel_figure(np.asarray(self.store.frames[i]),
                                np.asarray(self.store.mels[i], dtype=np.float32), title=title)
        fig.update_layout(width=520, height=380)
        return fig

    # -- output ----------------------------------------------------------------------------
    def show(self):
        """Display the explorer (a Jupyter front end is needed for hover and clicks).

        With ``live=False`` the dropdowns and a static copy of the map are displayed.
        """
        from IPython.display import display
        display(self.widget)
        if not self.live:
            display(self.static_figure())
        return self

    def static_figure(self) -> go.Figure:
        """A plain (non-widget) copy of the current map, for papermill runs and HTML export."""
        return go.Figure(self.fig)
