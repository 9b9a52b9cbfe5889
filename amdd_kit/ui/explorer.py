"""An interactive explorer of the embedding spaces (ipywidgets + plotly ``FigureWidget``).

::

    ex = EmbeddingExplorer(df, store=ClipStore(path), run_dir="runs/demo")
    ex.show()                        # live kernel: dropdowns, map, your video, clip panel
    ex.add_video("my_phone.mp4")     # or type a path / upload a file in the widget
    ex.static_figure()               # plain figure for papermill / HTML export

Choose the space (``shared`` = ``embedding``, ``visual`` = ``f_v``, ``audio`` =
``f_a``), colour the points by method / category / identity / correctness / dataset /
predicted method, or on a continuous scale by a score column (``p_fake``, and
``reject_score`` when the table has one), hover to see the ids, click a point to see that
clip's frames and log-mel beside the map. The observers are plain ipywidgets observers: setting
``ex.space.value = "audio"`` in code redraws the map exactly like a click on the dropdown does,
and :meth:`EmbeddingExplorer.select` shows a clip by row number (what a click calls), so the
explorer can be driven without a browser.

**Your own video** (with ``run_dir``): :meth:`EmbeddingExplorer.add_video` preprocesses a video
with the same code as the clip stores (:func:`amdd_kit.inference.video_windows`, which calls
:func:`amdd_kit.data.decode.clips_from_video` on every back-to-back window), predicts each
window, places the windows on the current map (UMAP's ``transform``,
:meth:`amdd_kit.geometry.Map2D.transform`) as stars, lists the nearest clips of the map, draws
p_fake per window on a timeline (with the known fake segments of a partial fake shaded) and
shows a window's frames with the model's Grad-CAM (:func:`amdd_kit.explain.gradcam`) and its
log-mel. A video that cannot be used (no face, no audio, an unreadable file) is explained in one
sentence in the widget.

How the figures stay right in a browser: the map is the one plotly ``FigureWidget`` (it needs
click callbacks). It is built *with* its content (``go.FigureWidget(fig)``), so a page that
(re)connects receives the full picture, and every later change restyles the existing traces
inside ``batch_update()`` (one message per change): one trace per colour value of the most
varied colouring (unused ones are hidden) plus the video's trace. Neither the traces nor the
layout are ever replaced, which would lose the subplot domains in the browser. Every trace of
one update gets the same leaf keys (``marker.color``, ``marker.size``, ...), never a whole
``marker`` on some and ``marker.color`` on others: plotly.js refuses such an update ("cannot
set marker.color and a parent attribute simultaneously") and the map would keep its old
colouring. A ``FigureWidget`` inside a container (our ``VBox``) hands a newly connected page
the state it had when it was built; :func:`_sync_state` refreshes that state after every
change, so a reload shows the current space and colouring, not the first ones.

The clip view and the video's timeline are plain figures shown in ipywidgets ``Output`` areas
(:func:`_show_in`), not more ``FigureWidget`` s: each ``FigureWidget`` sends plotly's 4.7 MB
widget bundle to the browser, anywidget gives a model 2 s to load it, and on a page reload
the bigger the widget state, the more often JupyterLab's widget manager loses a model it is
still restoring (the explorer then reads "Error displaying widget: model not found",
ipywidgets issue #4026). If that happens after a reload, reload the page once more, or run
``ex.show()`` in a new cell: the explorer keeps its state in the kernel.
"""
from __future__ import annotations

import html
import json
import logging
import shutil
import tempfile
from copy import deepcopy
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from .. import geometry, paths
from ..config import METHODS
from ..viz import frames_mel_figure, is_continuous, overlay_heatmap, scatter_2d, timeline_figure

log = logging.getLogger(__name__)

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
VIDEO_FORMATS = ".mp4,.avi,.mov,.mkv,.webm,.m4v"

#: a skip reason of :class:`amdd_kit.data.video.SkipVideo` as a sentence for the widget
SKIP_SENTENCES: dict[str, str] = {
    "missing": "There is no file at {path}. Check the path (relative paths start at the project "
               "folder).",
    "unsafe_path": "{name} was refused: {detail}.",
    "empty": "{name} is empty (0 bytes): the upload or copy did not finish.",
    "corrupt": "{name} could not be read as a video ({detail}).",
    "no_video": "{name} has no video stream: the model needs a face to look at.",
    "no_audio": "{name} has no audio track: the model needs the voice as well as the face.",
    "no_face": "No face was found in {name} ({detail}). Try the 'dlib' face detector, or a "
               "video where the face is frontal, large and well lit.",
    "too_short": "{name} is too short for one clip ({detail}).",
    "error": "{name} could not be processed: {detail}.",
}

__all__ = ["EmbeddingExplorer", "SPACES", "COLOR_BY", "COLOR_SCALES", "SKIP_SENTENCES",
           "correctness", "open_set_verdict"]


def _sync_state(fig: Any) -> None:
    """Make a ``FigureWidget``'s connect-time state equal to its current figure (a no-op for a
    plain ``go.Figure``). The front end only stores it; it draws from the restyle messages."""
    if isinstance(fig, go.FigureWidget):
        fig._widget_data = deepcopy(fig._data)
        fig._widget_layout = deepcopy(fig._layout_obj._props)


def _show_in(out: Any, fig: go.Figure) -> None:
    """Make the ipywidgets ``Output`` ``out`` show ``fig`` alone, as its plotly JSON (the
    ``plotly_mimetype`` bundle that JupyterLab's plotly extension draws). The kernel sets the
    ``outputs`` trait in one update: no front-end capture is involved, so it works from a click
    callback, before the explorer is displayed, and for a page that connects later."""
    bundle = {"application/vnd.plotly.v1+json": json.loads(pio.to_json(fig, validate=False)),
              "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>"}
    out.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)


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


def open_set_verdict(run_dir: str | Path, windows: pd.DataFrame) -> dict[str, Any]:
    """THE call point of open-set rejection for a student's video: the run's open set
    (:func:`amdd_kit.openset.load_or_fit_open_set`: the saved one, or fitted from the run's
    embeddings and saved) applied to ``windows``, the table of
    :func:`amdd_kit.inference.video_windows` (it needs ``attr_logits`` and ``embedding``).

    Returns ``{"score": name, "scores": [K] float, "unknown": [K] bool (per window),
    "threshold": float, "video_unknown": bool}``; the video is unknown when its windows' mean
    score passes the threshold, the rule ``amdd-kit predict`` applies. Raises what fitting the
    open set raises (e.g. ``FileNotFoundError`` for a run without its embeddings tables)."""
    from ..openset import load_or_fit_open_set  # openset builds on inference: import on use

    rejector = load_or_fit_open_set(run_dir)
    scores = rejector.scores(windows)[rejector.recommended].to_numpy(dtype=float)
    return {"score": rejector.recommended, "scores": scores,
            "unknown": scores > rejector.threshold, "threshold": float(rejector.threshold),
            "video_unknown": bool(scores.mean() > rejector.threshold)}


def skip_sentence(err: Any, path: str | Path) -> str:
    """A :class:`~amdd_kit.data.video.SkipVideo` as one sentence naming the file."""
    reason = getattr(err, "reason", "error")
    detail = getattr(err, "detail", "") or str(err)
    return SKIP_SENTENCES.get(reason, SKIP_SENTENCES["error"]).format(
        path=path, name=Path(path).name, detail=detail)


class EmbeddingExplorer:
    """UMAP map of an embeddings table with space / colour dropdowns, a clip viewer and a place
    for the student's own video.

    ``df``: embeddings table (``embeddings.parquet``: ids, ``method``, predictions, vectors).
    ``store``: the ClipStore the clips come from (optional; without it a click shows the ids
    only). ``coords``: precomputed 2-D maps ``{space: [N,2] array or geometry.Map2D}``; a
    :class:`~amdd_kit.geometry.Map2D` from :func:`~amdd_kit.geometry.umap_map` places new
    videos with UMAP's ``transform``, a plain array by the video's nearest clips (computed with
    :func:`amdd_kit.geometry.umap_map` on first use when not given). ``run_dir``: the trained
    run, which enables adding a video and Grad-CAM (the model is loaded on first use).
    ``live=False`` draws into plain ``go.Figure`` objects instead of ``FigureWidget``s: the
    dropdowns and :meth:`add_video` still work, there are no click callbacks, and a
    batch-executed notebook does not store plotly's widget JavaScript bundle (about 5 MB per
    figure widget).
    """

    def __init__(self, df: pd.DataFrame, store: Any = None,
                 coords: Mapping[str, Any] | None = None, seed: int = 0,
                 n_neighbors: int = 15, live: bool = True, run_dir: str | Path | None = None):
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
        self._maps: dict[str, geometry.Map2D] = {}
        self._coords: dict[str, np.ndarray] = {}
        for k, v in (coords or {}).items():
            if isinstance(v, geometry.Map2D):
                self._maps[k] = v
            else:
                self._coords[k] = np.asarray(v)
        categorical = [c for c in COLOR_BY if c in self.df.columns]
        scales = [c for c in COLOR_SCALES if c in self.df.columns
                  and is_continuous(self.df[c])]
        colors = categorical + scales
        self.selected: int | None = None
        #: map traces: one per value of the most varied colour column (the rest hidden), then
        #: the video's trace
        self.n_traces = max([self.df[c].astype(str).nunique() for c in categorical] + [1])
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._run: tuple[Any, Any] | None = None
        self.video: dict[str, Any] | None = None       # the added video (see add_video)
        self._selected_window: int | None = None       # the video window shown, if any

        self.space = w.Dropdown(options=self.spaces, value=self.spaces[0], description="space")
        self.color = w.Dropdown(options=colors, value=colors[0], description="colour by")
        self.live = live
        Fig = go.FigureWidget if live else go.Figure
        self.fig = Fig(self._with_video_trace(self._padded(self._scatter())))
        #: the clip view: a plain figure, redrawn into ``_detail_out`` (see the module docstring)
        self.detail = self._placeholder()
        #: p_fake per window of the added video (a plain figure, shown in ``_timeline_out``)
        self.timeline = timeline_figure([], [], 1.0, title="Add a video: p_fake of each of its "
                                                            "windows appears here")
        self.info = w.HTML(value="<i>Click a point on the map: its ids appear here and its "
                                 "frames and log-mel below.</i>")
        self.space.observe(self._on_change, names="value")
        self.color.observe(self._on_change, names="value")
        self.video_path = w.Text(placeholder="path/to/video.mp4", description="your video",
                                 layout=w.Layout(width="360px"))
        self.add_button = w.Button(description="Add video", icon="film",
                                   tooltip="preprocess the video, predict, place it on the map")
        self.upload = w.FileUpload(accept=VIDEO_FORMATS, multiple=False, description="Upload")
        self.face = w.Dropdown(options=["haar", "dlib"], value=self._run_face_detector(),
                               description="faces", layout=w.Layout(width="160px"))
        self.gradcam = w.Checkbox(value=self.run_dir is not None, description="Grad-CAM",
                                  indent=False, layout=w.Layout(width="110px"),
                                  disabled=self.run_dir is None)
        self.status = w.HTML(value="" if self.run_dir is None else
                             "<i>Type a video's path or upload one: each of its windows is "
                             "placed on the map as a star.</i>")
        self.add_button.on_click(lambda _: self.add_video(self.video_path.value))
        self.upload.observe(self._on_upload, names="value")
        self.gradcam.observe(lambda _: self._reshow(), names="value")
        # Outputs holding plain figures, not more FigureWidgets: see the module docstring
        self._timeline_out = w.Output(layout=w.Layout(display="none"))
        self._detail_out = w.Output()
        self._draw(self._detail_out, self.detail)
        if live:
            for trace in self.fig.data[:self.n_traces]:
                trace.on_click(self._on_click)
            self.fig.data[self.n_traces].on_click(self._on_video_click)
            rows = [w.HBox([self.space, self.color]), self.fig]
            if self.run_dir is not None:
                rows += [w.HBox([self.video_path, self.add_button, self.upload, self.face,
                                 self.gradcam]), self.status, self._timeline_out]
            self.widget = w.VBox(rows + [self.info, self._detail_out])
        else:
            self.widget = w.HBox([self.space, self.color])

    # -- data ------------------------------------------------------------------------------
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

    def _clip_shape(self) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """``(frames [T,3,H,W], mel [n_mels,S])`` shapes of the store's clips, or None."""
        if self.store is None:
            return None
        return tuple(self.store.frames.shape[1:]), tuple(self.store.mels.shape[1:])

    def _run_face_detector(self) -> str:
        """The face detector the run was preprocessed with (``data.face_detector``)."""
        if self.run_dir is None or not (self.run_dir / "config.json").is_file():
            return "haar"
        try:
            det = json.loads((self.run_dir / "config.json").read_text())["data"].get(
                "face_detector", "haar")
        except (ValueError, KeyError, TypeError):
            return "haar"
        return det if det in ("haar", "dlib") else "haar"

    def model(self) -> tuple[Any, Any]:
        """``(cfg, model)`` of ``run_dir``, loaded on first use."""
        if self.run_dir is None:
            raise ValueError("this explorer has no run_dir: pass run_dir=... to add videos")
        if self._run is None:
            from ..inference import load_run
            self._run = load_run(self.run_dir)
        return self._run

    # -- drawing ---------------------------------------------------------------------------
    def _scatter(self) -> go.Figure:
        space, color = self.space.value, self.color.value
        scale, crange = COLOR_SCALES.get(color, ("Viridis", None))
        return scatter_2d(self.df, self.coords(space), color=color, colorscale=scale,
                          crange=crange,
                          title=f"{space} space (UMAP), coloured by {color}")

    def _padded(self, fig: go.Figure) -> go.Figure:
        """``fig`` with hidden empty traces appended up to :attr:`n_traces`."""
        for _ in range(self.n_traces - len(fig.data)):
            fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="", visible=False,
                                     showlegend=False, marker=_HIDDEN_MARKER,
                                     customdata=np.empty((0, 1)), hovertemplate=""))
        return fig

    def _with_video_trace(self, fig: go.Figure) -> go.Figure:
        """``fig`` with the (empty, hidden) trace of the student's video appended."""
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="your video", visible=False,
                                 showlegend=False, marker=_VIDEO_MARKER,
                                 customdata=np.empty((0, 1)), hovertemplate=""))
        return fig

    def visible_traces(self) -> list:
        """The map traces currently shown (one per colour value, and the video's)."""
        return [t for t in self.fig.data if t.visible is not False]

    @staticmethod
    def _restyle_marker(trace, marker) -> None:
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

    def _redraw(self) -> None:
        """Restyle the existing map traces for the current space and colouring (in place)."""
        new = self._scatter()
        with self.fig.batch_update():
            for i, trace in enumerate(self.fig.data[:self.n_traces]):
                if i < len(new.data):
                    src = new.data[i]
                    trace.update(x=src.x, y=src.y, name=src.name, customdata=src.customdata,
                                 hovertemplate=src.hovertemplate, visible=True,
                                 showlegend=src.showlegend is not False)
                    self._restyle_marker(trace, src.marker)
                else:   # the same properties on every trace: plotly.js gets no holes
                    trace.update(x=[], y=[], name="", customdata=np.empty((0, 1)),
                                 hovertemplate="", visible=False, showlegend=False)
                    self._restyle_marker(trace, _HIDDEN_MARKER)
            self._draw_video_points()
            self.fig.layout.title.text = new.layout.title.text
            self.fig.layout.legend.title.text = self.color.value
        _sync_state(self.fig)

    def _draw(self, out: Any, fig: go.Figure) -> None:
        """Show ``fig`` in the Output ``out`` (:func:`_show_in`); nothing without live widgets,
        where no Output is displayed and the plain figures (``detail``, ``timeline``) are all
        a batch run reads."""
        if self.live:
            _show_in(out, fig)

    def _on_change(self, change: dict) -> None:
        self._redraw()

    def _on_click(self, trace, points, state=None) -> None:
        """plotly click callback: ``points.point_inds`` index into the clicked trace."""
        inds = list(getattr(points, "point_inds", []) or [])
        if inds:
            self.select(int(trace.customdata[inds[0]][0]))

    def _on_video_click(self, trace, points, state=None) -> None:
        inds = list(getattr(points, "point_inds", []) or [])
        if inds and self.video is not None:
            self.select_window(int(np.ravel(trace.customdata[inds[0]])[0]))

    def _placeholder(self) -> go.Figure:
        """The clip view before any click: blank frames and an empty (transparent) log-mel,
        laid out once, with a note that nothing is selected yet."""
        shapes = self._clip_shape()
        if shapes is None:
            return go.Figure(layout=dict(
                width=560, height=160, title="Click a point on the map to see its ids above "
                "(no clip store given, so no frames)",
                xaxis=dict(visible=False), yaxis=dict(visible=False)))
        (T, _, H, W), mel_shape = shapes
        fig = frames_mel_figure(np.full((T, 3, H, W), 255, np.uint8),
                                np.full(mel_shape, np.nan, np.float32), max_frames=T,
                                title=f"Click a point on the map: that clip's {T} frames "
                                      "(top) and log-mel (bottom) appear here")
        fig.update_xaxes(showgrid=False, zeroline=False)
        fig.update_yaxes(showgrid=False, zeroline=False)
        fig.add_annotation(text="no clip selected yet", showarrow=False, x=0.5, y=0.25,
                           xref="paper", yref="paper", font=dict(size=15, color="#7f7f7f"))
        return fig

    def _show_clip(self, frames: np.ndarray | None, mel: np.ndarray | None, title: str,
                   cam: np.ndarray | None = None) -> None:
        """Redraw the clip view: frames (blended with ``cam`` ``[T,H,W]`` when given), the
        log-mel, the title; the placeholder's note is removed. The traces and the layout are
        kept (only their ``z`` and the title change), so the subplots stay where they were."""
        self.detail.layout.title.text = title
        self.detail.layout.annotations = []
        if frames is not None:
            images = [t for t in self.detail.data if t.type == "image"]
            for t, trace in enumerate(images):
                trace.z = overlay_heatmap(frames[t], cam[t]) if cam is not None \
                    else frames[t].transpose(1, 2, 0)
            heat = [t for t in self.detail.data if t.type == "heatmap"]
            if heat:
                heat[0].z = np.asarray(mel, dtype=np.float32)
        self._draw(self._detail_out, self.detail)

    def _cam(self, frames: np.ndarray, mel: np.ndarray) -> np.ndarray | None:
        """Grad-CAM of the detection score over one clip's frames ``[T,H,W]``, or None when
        switched off or without a run."""
        if not self.gradcam.value or self.run_dir is None:
            return None
        from ..explain import gradcam
        from ..loaders import to_model_inputs

        cfg, model = self.model()
        device = next(model.parameters()).device
        fr, me = to_model_inputs(np.ascontiguousarray(frames[None]),
                                 np.asarray(mel, np.float16)[None], cfg, device)
        return gradcam(model, fr, me, "fake")[0]

    def select(self, row: int) -> None:
        """Show the clip of table row ``row``: its ids, and frames + mel when a store is given
        (under the model's Grad-CAM when that box is ticked and a run is given).

        The clip view's traces are restyled in place (new pixels, new mel, new title).
        """
        if not 0 <= row < len(self.df):
            raise IndexError(f"row {row} outside the table (0..{len(self.df) - 1})")
        self.selected, self._selected_window = row, None
        r = self.df.iloc[row]
        keys = [k for k in ("clip_id", "video_id", "identity", "method", "pred_method", "p_fake",
                            "path") if k in r.index]
        self.info.value = "<br>".join(f"<b>{k}</b>: {html.escape(str(r[k]))}" for k in keys)
        title = f"clip {r.get('clip_id', '?')}: {r.get('method', '?')}"
        if "pred_method" in r.index:
            title += f" (predicted {r['pred_method']})"
        clip = self._clip(r)
        if clip is None:
            suffix = " (no store given: ids only)" if self.store is None \
                else " (not in this store)"
            self._show_clip(None, None, title + suffix)
            return
        frames, mel = clip
        cam = self._cam(frames, mel)
        self._show_clip(frames, mel, title + (" · Grad-CAM of p_fake" if cam is not None
                                              else ""), cam)

    def _reshow(self) -> None:
        """Draw the current selection again (after the Grad-CAM box changed)."""
        if self._selected_window is not None:
            self.select_window(self._selected_window)
        elif self.selected is not None:
            self.select(self.selected)

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

    # -- the student's own video -----------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "inherit"
        self.status.value = f"<span style='color:{color}'>{text}</span>"

    def _on_upload(self, change: dict) -> None:
        """Write an uploaded file to a temporary folder, add it, delete it again."""
        files = change["new"]
        if not files:
            return
        f = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        name = Path(str(f.get("name", "upload.mp4"))).name or "upload.mp4"
        tmp = Path(tempfile.mkdtemp(prefix="amdd-upload-"))
        try:
            path = tmp / name
            path.write_bytes(bytes(f["content"]))
            self.add_video(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            self.upload.value = ()           # the same file can be uploaded again

    def add_video(self, path: str | Path, fake_segments: Sequence[Sequence[float]] | None = None,
                  audio: str | Path | None = None, face_detector: str | None = None
                  ) -> pd.DataFrame | None:
        """Preprocess a video, predict each of its windows, and place them on the map.

        ``path``: a video file (relative paths: from the current folder, else the project
        root, :func:`amdd_kit.paths.resolve`). ``fake_segments``: its known fake spans
        ``[[start_s, end_s], ...]`` (a LAV-DF / AV-Deepfake1M partial fake), shaded on the
        timeline. ``face_detector``: ``"haar"`` / ``"dlib"`` (default: the dropdown, which
        starts at the run's). Returns the per-window table
        (:func:`amdd_kit.inference.video_windows`) with ``x``/``y`` map columns, or None when the
        video cannot be used: the reason is then a sentence in :attr:`status` (and logged).
        """
        from ..data.video import SkipVideo
        from ..inference import video_windows

        if self.run_dir is None:
            self._say("Adding a video needs the trained run: build the explorer with "
                      "run_dir=... .", error=True)
            return None
        text = str(path).strip()
        if not text:
            self._say("Type the path of a video file first, or upload one.", error=True)
            return None
        p = Path(text).expanduser()
        p = p if p.is_absolute() or p.exists() else paths.resolve(p)
        self._say(f"Reading {html.escape(p.name)}: finding the face, cutting windows, "
                  "predicting...")
        try:
            cfg, model = self.model()
            clips, table = video_windows(model, cfg, p, audio=audio,
                                         face_detector=face_detector or self.face.value)
        except SkipVideo as e:
            self._say(html.escape(skip_sentence(e, p)), error=True)
            log.warning("%s", skip_sentence(e, p))
            return None
        except ImportError as e:         # the dlib face detector without its package
            self._say(html.escape(str(e)), error=True)
            return None
        except (OSError, ValueError, RuntimeError) as e:
            msg = f"{p.name} could not be used: {e}"
            self._say(html.escape(msg), error=True)
            log.warning("%s", msg, exc_info=log.isEnabledFor(logging.DEBUG))
            return None
        verdict = self._open_set(table)
        self.video = {"path": p, "clips": clips, "table": table, "xy": {},
                      "fake_segments": [list(map(float, s)) for s in fake_segments or []],
                      "window_s": cfg.data.window_seconds, "open_set": verdict}
        self._redraw()
        self._draw_timeline()
        xy = self.video["xy"][self.space.value]
        table["x"], table["y"] = xy[:, 0], xy[:, 1]
        self._say(self._summary())
        self.select_window(0)
        return table

    def _open_set(self, table: pd.DataFrame) -> dict[str, Any] | str:
        """:func:`open_set_verdict` for the video; its failure becomes a sentence."""
        try:
            return open_set_verdict(self.run_dir, table)
        except Exception as e:  # noqa: BLE001 -- the widget says it instead of a traceback
            log.warning("open-set rejection failed: %s", e)
            return f"open-set rejection failed: {e}"

    def _video_xy(self, space: str) -> np.ndarray:
        """The video's windows on the map of ``space`` ``[K, 2]`` (placed once per space)."""
        v = self.video
        if space not in v["xy"]:
            X = geometry.stack_column(v["table"], SPACES[space])
            v["xy"][space] = self.map(space).transform(X)
        return v["xy"][space]

    def _draw_video_points(self) -> None:
        """Restyle the video's trace for the current space (inside the map's batch update)."""
        trace = self.fig.data[self.n_traces]
        if self.video is None:
            return
        xy = self._video_xy(self.space.value)
        t = self.video["table"]
        custom = np.column_stack([t["window"].to_numpy(), t["start_s"].round(2).to_numpy(),
                                  t["p_fake"].round(3).to_numpy(), t["pred_method"].to_numpy()])
        name = html.escape(self.video["path"].name)
        trace.update(x=xy[:, 0], y=xy[:, 1], name="your video", customdata=custom, visible=True,
                     showlegend=True,
                     hovertemplate=f"{name}, window %{{customdata[0]}} at %{{customdata[1]}} s"
                                   "<br>p_fake %{customdata[2]}<br>predicted %{customdata[3]}"
                                   "<extra>your video</extra>")
        self._restyle_marker(trace, _VIDEO_MARKER)

    def _draw_timeline(self) -> None:
        v = self.video
        t = v["table"]
        new = timeline_figure(t["start_s"], t["p_fake"], v["window_s"], v["fake_segments"],
                              title=f"p_fake per {v['window_s']:.2f} s window: "
                                    f"{v['path'].name}")
        self.timeline = new
        self._draw(self._timeline_out, new)
        self._timeline_out.layout.display = "flex" if len(t) > 1 else "none"

    def _summary(self) -> str:
        """The video's verdict in words: fake or real, generator (or unknown), windows."""
        v = self.video
        t = v["table"]
        p = float(t["p_fake"].mean())
        probs = np.stack(t["attr_probs"].to_numpy()).mean(0)
        gen = METHODS[int(probs.argmax())]
        n_fake = int((t["pred_label"] == 1).sum())
        s = (f"<b>{html.escape(v['path'].name)}</b>: {len(t)} window(s) of "
             f"{v['window_s']:.2f} s, mean p_fake <b>{p:.2f}</b> "
             f"({'fake' if p >= 0.5 else 'real'}; {n_fake} of {len(t)} windows judged fake). ")
        os_ = v["open_set"]
        if isinstance(os_, dict):
            unknown = os_["video_unknown"]
            s += (f"Generator: <b>{'unknown' if unknown else gen}</b> (open-set score "
                  f"{os_['score']}: mean {os_['scores'].mean():.3g} against the threshold "
                  f"{os_['threshold']:.3g}; {int(os_['unknown'].sum())} of {len(t)} windows "
                  "above it" + (f"; nearest known class {gen}" if unknown else "") + ").")
        else:
            s += (f"Most likely generator of the 7 known classes: <b>{gen}</b> "
                  f"(p={probs.max():.2f}). Open-set rejection is not available"
                  + (f" ({html.escape(os_)})" if isinstance(os_, str) else "")
                  + ", so a generator it has never seen is still named as one of these.")
        return s + " The stars on the map are its windows; click one to see it below."

    def nearest(self, window: int, k: int = 5) -> pd.DataFrame:
        """The ``k`` clips of the map nearest to one window of the video in the current space
        (cosine distance): ``clip_id``, ``method``, ``identity``, ``pred_method``, ``distance``."""
        col = SPACES[self.space.value]
        X = geometry.stack_column(self.df, col)
        q = np.asarray(self.video["table"][col].iloc[window], dtype=np.float64)
        Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        d = 1.0 - Xn @ (q / max(np.linalg.norm(q), 1e-12))
        order = np.argsort(d, kind="stable")[:k]
        cols = [c for c in ("clip_id", "method", "identity", "pred_method") if c in self.df]
        return self.df.iloc[order][cols].assign(distance=d[order].round(3)).reset_index(drop=True)

    def select_window(self, window: int) -> None:
        """Show one window of the added video: its frames under Grad-CAM, its log-mel, its
        prediction and the nearest clips of the map."""
        if self.video is None:
            raise ValueError("no video added yet: call add_video(path) first")
        t, clips = self.video["table"], self.video["clips"]
        if not 0 <= window < len(t):
            raise IndexError(f"window {window} outside the video (0..{len(t) - 1})")
        self._selected_window = window
        r = t.iloc[window]
        near = self.nearest(window)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                       for row in near.itertuples(index=False))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in near.columns)
        self.info.value = (
            f"<b>your video</b>: {html.escape(self.video['path'].name)}, window {window} "
            f"({r['start_s']:.2f}-{r['end_s']:.2f} s): p_fake <b>{r['p_fake']:.3f}</b>, "
            f"predicted <b>{html.escape(str(r['pred_method']))}</b><br>"
            f"nearest clips of the map ({self.space.value} space, cosine distance):"
            f"<table><tr>{head}</tr>{rows}</table>")
        frames, mel = clips.frames[window], np.asarray(clips.mels[window], dtype=np.float32)
        shapes = self._clip_shape()       # the clip view is laid out for the store's clips
        fits = shapes is not None and (frames.shape, mel.shape) == shapes
        cam = self._cam(frames, mel) if fits else None
        title = (f"your video ({self.video['path'].name}), window {window} at "
                 f"{r['start_s']:.2f} s: p_fake "
                 f"{r['p_fake']:.2f}, predicted {r['pred_method']}"
                 + (" · Grad-CAM of p_fake" if cam is not None else "")
                 + ("" if fits else " (its clips do not fit this clip view's layout)"))
        self._show_clip(frames if fits else None, mel if fits else None, title, cam)

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
