"""An interactive explorer of the embedding spaces (ipywidgets + plotly ``FigureWidget``): the
widget layout, its state and what each control does.

::

    ex = EmbeddingExplorer(df, store=ClipStore(path), run_dir="runs/demo")
    ex.show()                        # live kernel: dropdowns, map, your video, clip panel
    ex.add_video("my_phone.mp4")     # or type a path / upload a file in the widget
    ex.static_figure()               # plain figure for papermill / HTML export

Choose the space (``shared`` / ``visual`` / ``audio``), colour the points by a group or a score,
hover to see the ids, click a point to see that clip's frames and log-mel below the map. The
observers are plain ipywidgets observers: setting ``ex.space.value = "audio"`` in code redraws
the map exactly like a click on the dropdown does, and :meth:`EmbeddingExplorer.select` shows a
clip by row number (what a click calls), so the explorer can be driven without a browser.
**Your own video** (with ``run_dir``): :meth:`EmbeddingExplorer.add_video` cuts a video into
windows like the clip stores (:func:`amdd_kit.inference.video_windows`), predicts each, places
them on the map as stars (:meth:`amdd_kit.geometry.Map2D.transform`), draws p_fake per window on
a timeline and shows a window under Grad-CAM; an unusable video is one sentence in the widget.

Where the parts live: the map and its colourings in :mod:`amdd_kit.ui.embedding_map` (the one
``FigureWidget``, restyled in place), the clip view in :mod:`amdd_kit.ui.clip_view`, the words
and numbers about a student's video in :mod:`amdd_kit.ui.your_video`, and how a figure reaches
the browser and survives a page reload in :mod:`amdd_kit.ui.plotly_widgets` (the clip view and
the timeline are plain figures in ``Output`` areas, not more ``FigureWidget`` s). If the explorer
reads "Error displaying widget: model not found" after a page reload (ipywidgets issue #4026),
reload the page once more, or run ``ex.show()`` in a new cell: the explorer keeps its state in
the kernel.
"""
from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .. import paths
from ..geometry import stack_column
from ..viz import timeline_figure
from .clip_view import (clip_gradcam, clip_shape, placeholder_figure, restyle_clip, row_caption,
                        store_clip)
from .embedding_map import (SPACES, SpaceMaps, colour_options, correctness, map_figure,
                            map_scatter, n_colour_traces, restyle_colour_traces,
                            restyle_video_trace, visible_traces)
from .plotly_widgets import show_in, sync_state
from .your_video import (VIDEO_FORMATS, nearest_clips, open_set_verdict, predict_windows,
                         run_face_detector, saved_upload, video_summary, video_timeline,
                         window_caption)

log = logging.getLogger(__name__)

__all__ = ["EmbeddingExplorer"]


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
        self.maps = SpaceMaps(self.df, coords, seed=seed, n_neighbors=n_neighbors)
        self.spaces = self.maps.spaces
        colors = colour_options(self.df)
        self.selected: int | None = None
        #: map traces: one per value of the most varied colour column (the rest hidden), then
        #: the video's trace
        self.n_traces = n_colour_traces(self.df)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._run: tuple[Any, Any] | None = None
        self.video: dict[str, Any] | None = None       # the added video (see add_video)
        self._selected_window: int | None = None       # the video window shown, if any

        self.space = w.Dropdown(options=self.spaces, value=self.spaces[0], description="space")
        self.color = w.Dropdown(options=colors, value=colors[0], description="colour by")
        self.live = live
        self.fig = map_figure(self._scatter(), self.n_traces, live)
        #: the clip view: a plain figure, redrawn into ``_detail_out`` (see the module docstring)
        self.detail = placeholder_figure(clip_shape(self.store))
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
        self.face = w.Dropdown(options=["haar", "dlib"], value=run_face_detector(self.run_dir),
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
        # Outputs holding plain figures, not more FigureWidgets: see ui.plotly_widgets
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
    def map(self, space: str):
        """The fitted 2-D map of one space (:meth:`SpaceMaps.map`: UMAP, computed once)."""
        return self.maps.map(space)

    def coords(self, space: str) -> np.ndarray:
        """2-D map ``[N, 2]`` of one space."""
        return self.maps.coords(space)

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
        return map_scatter(self.df, self.coords(self.space.value), self.space.value,
                           self.color.value)

    def visible_traces(self) -> list:
        """The map traces currently shown (one per colour value, and the video's)."""
        return visible_traces(self.fig)

    def _redraw(self) -> None:
        """Restyle the existing map traces for the current space and colouring (in place)."""
        new = self._scatter()
        with self.fig.batch_update():
            restyle_colour_traces(self.fig, new, self.n_traces)
            self._draw_video_points()
            self.fig.layout.title.text = new.layout.title.text
            self.fig.layout.legend.title.text = self.color.value
        sync_state(self.fig)

    def _draw(self, out: Any, fig: go.Figure) -> None:
        """Show ``fig`` in the Output ``out`` (:func:`~amdd_kit.ui.plotly_widgets.show_in`);
        nothing without live widgets, where no Output is displayed and the plain figures
        (``detail``, ``timeline``) are all a batch run reads."""
        if self.live:
            show_in(out, fig)

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

    def _show_clip(self, frames: np.ndarray | None, mel: np.ndarray | None, title: str,
                   cam: np.ndarray | None = None) -> None:
        """Redraw the clip view in place (:func:`~amdd_kit.ui.clip_view.restyle_clip`)."""
        restyle_clip(self.detail, frames, mel, title, cam)
        self._draw(self._detail_out, self.detail)

    def _cam(self, frames: np.ndarray, mel: np.ndarray) -> np.ndarray | None:
        """Grad-CAM of the detection score over one clip's frames ``[T,H,W]``, or None when
        switched off or without a run."""
        if not self.gradcam.value or self.run_dir is None:
            return None
        _, model = self.model()
        return clip_gradcam(model, frames, mel)

    def select(self, row: int) -> None:
        """Show the clip of table row ``row``: its ids, and frames + mel when a store is given
        (under the model's Grad-CAM when that box is ticked and a run is given).

        The clip view's traces are restyled in place (new pixels, new mel, new title).
        """
        if not 0 <= row < len(self.df):
            raise IndexError(f"row {row} outside the table (0..{len(self.df) - 1})")
        self.selected, self._selected_window = row, None
        r = self.df.iloc[row]
        self.info.value, title = row_caption(r)
        clip = store_clip(self.store, r)
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

    # -- the student's own video -----------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "inherit"
        self.status.value = f"<span style='color:{color}'>{text}</span>"

    def _on_upload(self, change: dict) -> None:
        """Write an uploaded file to a temporary folder, add it, delete it again."""
        files = change["new"]
        if not files:
            return
        try:
            with saved_upload(files) as path:
                self.add_video(path)
        finally:
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
        got = predict_windows(self.model, p, audio, face_detector or self.face.value)
        if isinstance(got, str):
            self._say(html.escape(got), error=True)
            return None
        cfg, clips, table = got
        verdict = self._open_set(table)
        self.video = {"path": p, "clips": clips, "table": table, "xy": {},
                      "fake_segments": [list(map(float, s)) for s in fake_segments or []],
                      "window_s": cfg.data.window_seconds, "open_set": verdict}
        self._redraw()
        self._draw_timeline()
        xy = self.video["xy"][self.space.value]
        table["x"], table["y"] = xy[:, 0], xy[:, 1]
        self._say(video_summary(self.video))
        self.select_window(0)
        return table

    def _open_set(self, table: pd.DataFrame) -> dict[str, Any] | str:
        """:func:`~amdd_kit.ui.your_video.open_set_verdict` for the video; its failure becomes
        a sentence."""
        try:
            return open_set_verdict(self.run_dir, table)
        except Exception as e:  # noqa: BLE001 -- the widget says it instead of a traceback
            log.warning("open-set rejection failed: %s", e)
            return f"open-set rejection failed: {e}"

    def _video_xy(self, space: str) -> np.ndarray:
        """The video's windows on the map of ``space`` ``[K, 2]`` (placed once per space)."""
        v = self.video
        if space not in v["xy"]:
            v["xy"][space] = self.map(space).transform(stack_column(v["table"], SPACES[space]))
        return v["xy"][space]

    def _draw_video_points(self) -> None:
        """Restyle the video's trace for the current space (inside the map's batch update)."""
        if self.video is None:
            return
        restyle_video_trace(self.fig.data[self.n_traces], self._video_xy(self.space.value),
                            self.video["table"], self.video["path"].name)

    def _draw_timeline(self) -> None:
        self.timeline = video_timeline(self.video)
        self._draw(self._timeline_out, self.timeline)
        self._timeline_out.layout.display = "flex" if len(self.video["table"]) > 1 else "none"

    def nearest(self, window: int, k: int = 5) -> pd.DataFrame:
        """The ``k`` clips of the map nearest to one window of the video in the current space
        (cosine distance): ``clip_id``, ``method``, ``identity``, ``pred_method``, ``distance``."""
        col = SPACES[self.space.value]
        return nearest_clips(self.df, col, self.video["table"][col].iloc[window], k)

    def select_window(self, window: int) -> None:
        """Show one window of the added video: its frames under Grad-CAM, its log-mel, its
        prediction and the nearest clips of the map."""
        if self.video is None:
            raise ValueError("no video added yet: call add_video(path) first")
        t, clips = self.video["table"], self.video["clips"]
        if not 0 <= window < len(t):
            raise IndexError(f"window {window} outside the video (0..{len(t) - 1})")
        self._selected_window = window
        self.info.value, title = window_caption(self.video, window, self.nearest(window),
                                                self.space.value)
        frames, mel = clips.frames[window], np.asarray(clips.mels[window], dtype=np.float32)
        shapes = clip_shape(self.store)   # the clip view is laid out for the store's clips
        fits = shapes is not None and (frames.shape, mel.shape) == shapes
        cam = self._cam(frames, mel) if fits else None
        title += ((" · Grad-CAM of p_fake" if cam is not None else "")
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
