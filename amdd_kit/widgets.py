"""An interactive explorer of the embedding spaces (ipywidgets + plotly ``FigureWidget``).

::

    ex = EmbeddingExplorer(df, store=ClipStore(path))   # df: embeddings.parquet of a run
    ex.show()                                           # live kernel: dropdowns, map, clip panel
    ex.static_figure()                                  # plain figure for papermill / HTML export

Choose the space (``shared`` = ``embedding``, ``visual`` = ``f_v``, ``audio`` =
``f_a``), colour the points by method / category / identity / correctness, hover to see the
ids, click a point to see that clip's frames and log-mel beside the map. The observers are plain
ipywidgets observers: setting ``ex.space.value = "audio"`` in code redraws the map exactly like a
click on the dropdown does, and :meth:`EmbeddingExplorer.select` shows a clip by row number
(what a click calls), so the explorer can be driven without a browser.

How the figures stay right in a browser: both ``FigureWidget``s are built *with* their content
(``go.FigureWidget(fig)``), so a page that (re)connects receives the full picture, and every
later change restyles the existing traces inside ``batch_update()`` (one message per change):
the map holds one trace per colour value of the most varied colouring (unused ones are hidden),
and the clip view holds one image trace per frame and one heatmap for the log-mel, laid out
once from the store's clip shape. Neither the traces nor the layout are ever replaced, which
would lose the subplot domains in the browser and show blank axes after a reload.

A ``FigureWidget`` inside a container (our ``VBox``) hands a newly connected page the state it
had when it was built: plotly refreshes that state (``_widget_data`` / ``_widget_layout``) only
when the widget itself is displayed. :func:`_sync_state` refreshes it after every change, so a
reload or a reconnect shows the current space, colouring and clip, not the first ones.
"""
from __future__ import annotations

import html
import logging
from copy import deepcopy
from typing import Any, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import geometry
from .config import METHODS
from .viz import frames_mel_figure, scatter_2d

log = logging.getLogger(__name__)

#: explorer space name -> embeddings.parquet column
SPACES: dict[str, str] = {"shared": "embedding", "visual": "f_v", "audio": "f_a"}
COLOR_BY: tuple[str, ...] = ("method", "category", "identity", "correctness", "dataset",
                             "pred_method")

#: marker of the map's unused (hidden) traces
_HIDDEN_MARKER = dict(size=7, color="#7f7f7f", opacity=0.8)

__all__ = ["EmbeddingExplorer", "SPACES", "correctness"]


def _sync_state(fig: Any) -> None:
    """Make a ``FigureWidget``'s connect-time state equal to its current figure (a no-op for a
    plain ``go.Figure``). The front end only stores it; it draws from the restyle messages."""
    if isinstance(fig, go.FigureWidget):
        fig._widget_data = deepcopy(fig._data)
        fig._widget_layout = deepcopy(fig._layout_obj._props)


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
        #: map traces: one per value of the most varied colour column (the rest hidden)
        self.n_traces = max(self.df[c].astype(str).nunique() for c in colors)

        self.space = w.Dropdown(options=self.spaces, value=self.spaces[0], description="space")
        self.color = w.Dropdown(options=colors, value=colors[0], description="colour by")
        self.live = live
        Fig = go.FigureWidget if live else go.Figure
        self.fig = Fig(self._padded(self._scatter()))
        self.detail = Fig(self._placeholder())
        self.info = w.HTML(value="<i>Click a point on the map: its ids appear here and its "
                                 "frames and log-mel below.</i>")
        self.space.observe(self._on_change, names="value")
        self.color.observe(self._on_change, names="value")
        if live:
            for trace in self.fig.data:
                trace.on_click(self._on_click)
            self.widget = w.VBox([w.HBox([self.space, self.color]), self.fig, self.info,
                                  self.detail])
        else:
            self.widget = w.HBox([self.space, self.color])

    # -- data ------------------------------------------------------------------------------
    def coords(self, space: str) -> np.ndarray:
        """2-D map ``[N, 2]`` of one space (UMAP, computed once and cached)."""
        if space not in self._coords:
            X = geometry.stack_column(self.df, SPACES[space])
            self._coords[space] = geometry.umap_2d(X, seed=self.seed, n_neighbors=self.n_neighbors)
        return self._coords[space]

    def _clip_shape(self) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """``(frames [T,3,H,W], mel [n_mels,S])`` shapes of the store's clips, or None."""
        if self.store is None:
            return None
        return tuple(self.store.frames.shape[1:]), tuple(self.store.mels.shape[1:])

    # -- drawing ---------------------------------------------------------------------------
    def _scatter(self) -> go.Figure:
        space, color = self.space.value, self.color.value
        return scatter_2d(self.df, self.coords(space), color=color,
                          title=f"{space} space (UMAP), coloured by {color}")

    def _padded(self, fig: go.Figure) -> go.Figure:
        """``fig`` with hidden empty traces appended up to :attr:`n_traces`."""
        for _ in range(self.n_traces - len(fig.data)):
            fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="", visible=False,
                                     showlegend=False, marker=_HIDDEN_MARKER,
                                     customdata=np.empty((0, 1)), hovertemplate=""))
        return fig

    def visible_traces(self) -> list:
        """The map traces currently shown (one per colour value)."""
        return [t for t in self.fig.data if t.visible is not False]

    def _redraw(self) -> None:
        """Restyle the existing map traces for the current space and colouring (in place)."""
        new = self._scatter()
        with self.fig.batch_update():
            for i, trace in enumerate(self.fig.data):
                if i < len(new.data):
                    src = new.data[i]
                    trace.update(x=src.x, y=src.y, name=src.name, marker=src.marker,
                                 customdata=src.customdata, hovertemplate=src.hovertemplate,
                                 visible=True, showlegend=True)
                else:   # the same properties on every trace: plotly.js gets no holes
                    trace.update(x=[], y=[], name="", marker=_HIDDEN_MARKER,
                                 customdata=np.empty((0, 1)), hovertemplate="",
                                 visible=False, showlegend=False)
            self.fig.layout.title.text = new.layout.title.text
            self.fig.layout.legend.title.text = self.color.value
        _sync_state(self.fig)

    def _on_change(self, change: dict) -> None:
        self._redraw()

    def _on_click(self, trace, points, state=None) -> None:
        """plotly click callback: ``points.point_inds`` index into the clicked trace."""
        inds = list(getattr(points, "point_inds", []) or [])
        if inds:
            self.select(int(trace.customdata[inds[0]][0]))

    def _placeholder(self) -> go.Figure:
        """The clip view before any click: grey frames and an empty mel, laid out once."""
        shapes = self._clip_shape()
        if shapes is None:
            return go.Figure(layout=dict(
                width=560, height=160, title="Click a point on the map to see its ids above "
                "(no clip store given, so no frames)",
                xaxis=dict(visible=False), yaxis=dict(visible=False)))
        (T, _, H, W), mel_shape = shapes
        fig = frames_mel_figure(np.full((T, 3, H, W), 235, np.uint8),
                                np.zeros(mel_shape, np.float32), max_frames=T,
                                title=f"Click a point on the map: that clip's {T} frames "
                                      "(top) and log-mel (bottom) appear here")
        return fig

    def select(self, row: int) -> None:
        """Show the clip of table row ``row``: its ids, and frames + mel when a store is given.

        The clip view's traces are restyled in place (new pixels, new mel, new title).
        """
        if not 0 <= row < len(self.df):
            raise IndexError(f"row {row} outside the table (0..{len(self.df) - 1})")
        self.selected = row
        r = self.df.iloc[row]
        keys = [k for k in ("clip_id", "video_id", "identity", "method", "pred_method", "p_fake",
                            "path") if k in r.index]
        self.info.value = "<br>".join(f"<b>{k}</b>: {html.escape(str(r[k]))}" for k in keys)
        title = f"clip {r.get('clip_id', '?')}: {r.get('method', '?')}"
        if "pred_method" in r.index:
            title += f" (predicted {r['pred_method']})"
        clip = self._clip(r)
        with self.detail.batch_update():
            if clip is None:
                suffix = " (no store given: ids only)" if self.store is None \
                    else " (not in this store)"
                self.detail.layout.title.text = title + suffix
                frames = None
            else:
                frames, mel = clip
            if frames is not None:
                images = [t for t in self.detail.data if t.type == "image"]
                for t, trace in enumerate(images):
                    trace.z = frames[t].transpose(1, 2, 0)
                heat = [t for t in self.detail.data if t.type == "heatmap"][0]
                heat.z = mel
                self.detail.layout.title.text = title
        _sync_state(self.detail)

    def _clip(self, r: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
        """``(frames [T,3,H,W] uint8, mel [n_mels,S] float32)`` of a table row, or None."""
        if self.store is None or "clip_id" not in r.index:
            return None
        hits = np.flatnonzero(self.store.manifest["clip_id"].to_numpy() == r["clip_id"])
        if len(hits) == 0:
            log.warning("clip_id %s is not in the store", r["clip_id"])
            return None
        i = int(hits[0])
        return (np.asarray(self.store.frames[i]),
                np.asarray(self.store.mels[i], dtype=np.float32))

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
        return go.Figure(data=[go.Figure(t).data[0] for t in self.visible_traces()],
                         layout=self.fig.layout)
