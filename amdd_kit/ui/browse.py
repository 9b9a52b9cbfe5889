"""Look at clips in a store: a static plotly figure per clip and an ipywidgets browser.

``clip_figure(store, i)`` works anywhere (it is a plain plotly figure: it shows in exported HTML
and in notebooks run by papermill). ``clip_browser(store)`` adds dropdowns to pick a generator
and a clip above that figure; the figure stays an ordinary output that the dropdowns replace in
place, so it is shown once live and kept in a saved notebook.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..viz import frames_mel_figure


def clip_figure(store, clip_id: int):
    """Plotly figure of one clip: its face-crop frames as a strip above its log-mel, on the
    video's time axis (drawn by :func:`amdd_kit.viz.frames_mel_figure`).

    Args:
        store: a :class:`~amdd_kit.data.store.ClipStore`.
        clip_id: row of ``store.manifest``.
    """
    if not 0 <= clip_id < len(store):
        raise IndexError(f"clip_id {clip_id} out of range 0..{len(store) - 1}")
    row = store.manifest.iloc[clip_id]
    cfg = store.data_config
    mel = np.asarray(store.mels[clip_id], dtype=np.float32)
    frames = np.asarray(store.frames[clip_id])
    t = np.arange(mel.shape[1]) * cfg.hop_length / cfg.sample_rate + float(row["start_s"])
    label = "fake" if int(row["clip_label"]) else "real"
    title = (f"clip {clip_id}: {row['method']} ({label}), {row['identity']}, "
             f"{float(row['start_s']):.2f} s of {row['path']}<br><sup>{cfg.n_frames} frames, "
             f"every {cfg.frame_stride}th at {cfg.fps:g} fps; log-mel {cfg.n_mels} bins x "
             f"{cfg.mel_frames} columns of {1000 * cfg.hop_length / cfg.sample_rate:g} ms</sup>")
    return frames_mel_figure(frames, mel, title=title, max_frames=len(frames), strip=True,
                             mel_times=t, mel_height=220)


class ClipBrowser:
    """Pick a method, then a clip; the figure below updates.

    The figure is an ordinary notebook output (a plotly figure shown with a ``display_id``),
    not a widget: the dropdowns replace it in place (``update_display``). So a live notebook
    shows the selected clip once, and a saved, exported or papermill-executed notebook keeps
    the last figure shown (a widget's output would be lost without its saved state).

    Attributes:
        widget: the ipywidgets ``HBox`` of the two dropdowns.
        figure: the plotly figure of the selected clip.
    """

    def __init__(self, store, clip_id: int = 0):
        import uuid

        import ipywidgets as W

        self.store = store
        m = store.manifest
        methods = ["(all)"] + sorted(m["method"].unique().tolist())
        self.method = W.Dropdown(options=methods, value="(all)", description="method")
        self.clip = W.Dropdown(options=self._options("(all)"), description="clip")
        self.widget = W.HBox([self.method, self.clip])
        self.figure = None
        self.display_id = f"amdd-clip-browser-{uuid.uuid4().hex}"
        self._shown = False           # the figure output exists (update it, do not add one)
        self.method.observe(self._on_method, names="value")
        self.clip.observe(self._on_clip, names="value")
        if len(store):
            self.select(clip_id)

    def _options(self, method: str) -> list[tuple[str, int]]:
        m = self.store.manifest
        if method != "(all)":
            m = m[m["method"] == method]
        return [(f"{r.clip_id}: {r.method} {r.identity} @{r.start_s:.2f}s", int(r.clip_id))
                for r in m.itertuples()]

    def _on_method(self, change: dict[str, Any]) -> None:
        opts = self._options(change["new"])
        self.clip.options = opts
        if opts:
            self.clip.value = opts[0][1]

    def _on_clip(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self._draw(int(change["new"]))

    def _draw(self, clip_id: int) -> None:
        self.figure = clip_figure(self.store, clip_id)
        if self._shown:
            from IPython.display import update_display
            update_display(self.figure, display_id=self.display_id)

    def select(self, clip_id: int) -> None:
        """Show ``clip_id`` (as if picked in the dropdown)."""
        if self.clip.value == clip_id:
            self._draw(clip_id)
        else:
            self.clip.value = clip_id

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)
        if self.figure is not None:
            display(self.figure, display_id=self.display_id)
            self._shown = True


def clip_browser(store, clip_id: int = 0) -> ClipBrowser:
    """Display a :class:`ClipBrowser` (dropdowns, then the figure of ``clip_id``, once)."""
    from IPython.display import display

    browser = ClipBrowser(store, clip_id)
    display(browser)
    return browser
