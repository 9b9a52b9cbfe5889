"""The explorer's clip view: one clip's frames (optionally under Grad-CAM) and its log-mel.

The view is a plain ``go.Figure`` (:func:`amdd_kit.viz.frames_mel_figure`), laid out once for
the store's clip shape (:func:`placeholder_figure`) and then restyled in place
(:func:`restyle_clip`: new pixels, new mel, new title), so its subplots stay where they are.
The explorer shows it in an ipywidgets ``Output`` (:func:`amdd_kit.ui.plotly_widgets.show_in`).
"""
from __future__ import annotations

import html
import logging
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..viz import frames_mel_figure, overlay_heatmap

log = logging.getLogger(__name__)

__all__ = ["clip_shape", "store_clip", "row_caption", "placeholder_figure", "restyle_clip",
           "clip_gradcam"]


def clip_shape(store: Any) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(frames [T,3,H,W], mel [n_mels,S])`` shapes of the store's clips, or None."""
    if store is None:
        return None
    return tuple(store.frames.shape[1:]), tuple(store.mels.shape[1:])


def store_clip(store: Any, r: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """``(frames [T,3,H,W] uint8, mel [n_mels,S] float32)`` of a table row, or None (no store,
    no ``clip_id``, or a clip the store does not hold: logged)."""
    if store is None or "clip_id" not in r.index:
        return None
    hits = np.flatnonzero(store.manifest["clip_id"].to_numpy() == r["clip_id"])
    if len(hits) == 0:
        log.warning("clip_id %s is not in the store", r["clip_id"])
        return None
    i = int(hits[0])
    return np.asarray(store.frames[i]), np.asarray(store.mels[i], dtype=np.float32)


def row_caption(r: pd.Series) -> tuple[str, str]:
    """``(ids as HTML, clip view title)`` of one row of the embeddings table."""
    keys = [k for k in ("clip_id", "video_id", "identity", "method", "pred_method", "p_fake",
                        "path") if k in r.index]
    ids = "<br>".join(f"<b>{k}</b>: {html.escape(str(r[k]))}" for k in keys)
    title = f"clip {r.get('clip_id', '?')}: {r.get('method', '?')}"
    if "pred_method" in r.index:
        title += f" (predicted {r['pred_method']})"
    return ids, title


def placeholder_figure(shapes: tuple[tuple[int, ...], tuple[int, ...]] | None) -> go.Figure:
    """The clip view before any click: blank frames and an empty (transparent) log-mel of the
    clip ``shapes`` (:func:`clip_shape`), laid out once, with a note that nothing is selected
    yet; without shapes (no store), a small figure that says so."""
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


def restyle_clip(fig: go.Figure, frames: np.ndarray | None, mel: np.ndarray | None, title: str,
                 cam: np.ndarray | None = None) -> None:
    """Redraw the clip view ``fig`` in place: frames ``[T,3,H,W]`` (blended with ``cam``
    ``[T,H,W]`` when given), the log-mel ``[n_mels,S]``, the title; the placeholder's note is
    removed. The traces and the layout are kept (only their ``z`` and the title change).
    ``frames=None`` changes the title only."""
    fig.layout.title.text = title
    fig.layout.annotations = []
    if frames is not None:
        images = [t for t in fig.data if t.type == "image"]
        for t, trace in enumerate(images):
            trace.z = overlay_heatmap(frames[t], cam[t]) if cam is not None \
                else frames[t].transpose(1, 2, 0)
        heat = [t for t in fig.data if t.type == "heatmap"]
        if heat:
            heat[0].z = np.asarray(mel, dtype=np.float32)


def clip_gradcam(model: Any, frames: np.ndarray, mel: np.ndarray) -> np.ndarray:
    """Grad-CAM of the detection score (:func:`amdd_kit.explain.gradcam`) over one clip's
    frames ``[T,3,H,W]`` uint8 with its mel ``[n_mels,S]``: ``[T,H,W]``."""
    from ..explain import gradcam
    from ..loaders import to_model_inputs

    device = next(model.parameters()).device
    fr, me = to_model_inputs(np.ascontiguousarray(frames[None]),
                             np.asarray(mel, np.float16)[None], device)
    return gradcam(model, fr, me, "fake")[0]
