"""Clip figures: face frames (optionally under a heatmap) above the clip's log-mel.

:func:`frames_mel_figure` is the one clip figure of the kit: the clip browser of notebook 01
(:func:`amdd_kit.ui.browse.clip_figure`), the embedding explorer's clip view and the Grad-CAM
explanations of notebook 04 all draw with it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from matplotlib import colormaps
from plotly.subplots import make_subplots


def color_map(x: np.ndarray, name: str = "inferno") -> np.ndarray:
    """Map values in 0..1 ``[...]`` to RGB uint8 ``[..., 3]`` with a matplotlib colormap."""
    x = np.clip(np.nan_to_num(np.asarray(x, dtype=float)), 0, 1)
    return (colormaps[name](x)[..., :3] * 255).round().astype(np.uint8)


def overlay_heatmap(frame: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a 0..1 heatmap ``[H, W]`` over an RGB frame (``[3,H,W]`` or ``[H,W,3]`` uint8).

    Returns ``[H, W, 3]`` uint8. The frame is put in channels-last order if needed.
    """
    img = _hwc(frame).astype(float)
    if heat.shape != img.shape[:2]:
        raise ValueError(f"heatmap {heat.shape} does not match frame {img.shape[:2]}")
    a = alpha * np.clip(heat, 0, 1)[..., None]      # transparent where the map is cold
    return ((1 - a) * img + a * color_map(heat)).round().clip(0, 255).astype(np.uint8)


def _hwc(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3:
        raise ValueError(f"a frame must be [3,H,W] or [H,W,3], got {frame.shape}")
    return frame.transpose(1, 2, 0) if frame.shape[0] == 3 and frame.shape[-1] != 3 else frame


def frames_mel_figure(frames: np.ndarray, mel: np.ndarray, title: str = "",
                      heat: np.ndarray | None = None, mel_heat: np.ndarray | None = None,
                      max_frames: int = 8, width: int | None = None,
                      mel_height: int = 150, strip: bool = False,
                      mel_times: Sequence[float] | None = None) -> go.Figure:
    """One clip: its face frames in one row (true aspect), its log-mel spectrogram below.

    ``frames`` uint8 ``[T,3,H,W]``; ``mel`` ``[n_mels,S]``. At most ``max_frames`` frames are
    shown (evenly strided). Optional ``heat`` ``[T,H,W]`` (0..1, e.g. Grad-CAM) is blended over
    the frames, and ``mel_heat`` ``[n_mels,S]`` (0..1, e.g. occlusion saliency) is drawn as a
    second spectrogram panel below the mel. ``strip=True`` draws the frames as one image
    ``[H, n*W, 3]`` (one trace instead of one per frame); ``mel_times`` (``[S]``, seconds) puts
    the mel on a time axis. The figure height is computed from ``width`` so the frame row has
    the frames' own aspect ratio (no letterboxing, no stretching).
    """
    frames = np.asarray(frames)
    T = frames.shape[0]
    step = max(1, int(np.ceil(T / max_frames)))
    shown = list(range(0, T, step))
    imgs = [overlay_heatmap(frames[t], heat[t]) if heat is not None else _hwc(frames[t])
            for t in shown]
    names = [f"frame {t}" for t in shown]
    if strip:
        imgs, names = [np.concatenate(imgs, axis=1)], [f"frames {shown[0]}..{shown[-1]}"]
    n_cols = len(imgs)
    n_rows = 3 if mel_heat is not None else 2          # frames / mel / (saliency)
    h_img, w_img = imgs[0].shape[:2]
    width = width or max(90 * len(shown) + 40, 560)
    margin = dict(l=20, r=20, t=60 if title else 20, b=30)
    hspace, gap = 0.01, 30
    col_px = (width - margin["l"] - margin["r"]) * (1 - hspace * (n_cols - 1)) / n_cols
    frame_px = col_px * h_img / w_img
    plot_h = frame_px + (mel_height + gap) * (n_rows - 1)
    specs = [[{} for _ in range(n_cols)]] + \
        [[{"colspan": n_cols}] + [None] * (n_cols - 1) for _ in range(n_rows - 1)]
    fig = make_subplots(rows=n_rows, cols=n_cols, specs=specs,
                        row_heights=[frame_px] + [mel_height] * (n_rows - 1),
                        vertical_spacing=gap / plot_h, horizontal_spacing=hspace)
    for c, (img, name) in enumerate(zip(imgs, names), start=1):
        fig.add_trace(go.Image(z=img, name=name, hovertemplate=f"{name}<extra></extra>"),
                      row=1, col=c)
        fig.update_xaxes(showticklabels=False, row=1, col=c)
        fig.update_yaxes(showticklabels=False, row=1, col=c)
    x = None if mel_times is None else np.asarray(mel_times, dtype=float)
    where = "column %{x}" if x is None else "%{x:.2f} s"
    for row, (z, name, scale) in enumerate(
            [(mel, "log-mel", "Magma")]
            + ([(mel_heat, "saliency", "Inferno")] if mel_heat is not None else []), start=2):
        fig.add_trace(go.Heatmap(z=np.asarray(z, dtype=np.float32), x=x, colorscale=scale,
                                 showscale=False, name=name,
                                 **(dict(zmin=0, zmax=1) if name == "saliency" else {}),
                                 hovertemplate=f"mel bin %{{y}}<br>{where}<br>%{{z:.2f}}"
                                               f"<extra>{name}</extra>"),
                      row=row, col=1)
    fig.update_yaxes(title_text="mel bin", row=2, col=1)
    if x is not None:
        fig.update_xaxes(title_text="time in the video (s)", row=n_rows, col=1)
    fig.update_layout(title=title, width=width, showlegend=False, margin=margin,
                      height=int(round(plot_h + margin["t"] + margin["b"])))
    return fig
